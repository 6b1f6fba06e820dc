"""The offline evaluation report: a markdown summary plus plots comparing models per head.

``results`` is the dict the evaluation step builds::

    {
        "heads": ["fav", "reply", ...],
        "models": {"ranker": {"fav": {"roc_auc": 0.71, "rce": 8.2, ...}, ...}, "lgbm": ...},
        "ndcg": {"ranker": 0.42, "lgbm": 0.40, "oracle": 0.47},           # optional
        "curves": {"ranker": {"fav": (y_true [N], p [N]), ...}, ...},      # optional
        "segments": {"new_viewers": {"rows": 812,                           # optional
                                     "models": {"ranker": {"fav": {"rce": 6.1, ...}}}}},
        "ndcg_by_origin": {"served": {"ranker": 0.44, ...}, "organic": ...},  # optional
        "holdout_days": ["2026-03-12"],                                      # optional
    }

A head missing from a segment's models was skipped (too few rows or one class there).

Plots are drawn on standalone ``Figure`` objects rendered by Agg: no pyplot global state, no
display, safe in Airflow workers and threads.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from pipelines.evaluate.metrics import calibration_curve, pr_auc

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CALIBRATION_BINS = 10
SEGMENT_HEADS = ("fav", "reply", "retweet")  # the heads the segment table shows, when present
Curves = Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]


def format_value(value: Any) -> str:
    """A metric value for a markdown cell: 4 decimals, an em dash for missing/nan."""
    if value is None:
        return "—"
    number = float(value)
    return "—" if math.isnan(number) else f"{number:.4f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _metric_names(models: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """Every metric that any model reports for any head, in order of first appearance."""
    names: dict[str, None] = {}
    for per_head in models.values():
        for metrics in per_head.values():
            names.update(dict.fromkeys(metrics))
    return list(names)


def render_markdown(results: Mapping[str, Any], images: Sequence[str] = ()) -> str:
    """The report text: one table per metric (rows heads, columns models), the NDCG table, and
    links to ``images`` (file names next to the report)."""
    heads: list[str] = list(results["heads"])
    models: Mapping[str, Mapping[str, Mapping[str, float]]] = results["models"]
    model_names = list(models)
    lines = ["# Offline evaluation", ""]
    lines += [f"Models: {', '.join(model_names)}. Heads: {', '.join(heads)}.", ""]
    if results.get("holdout_days"):
        lines += [f"Held-out days: {', '.join(results['holdout_days'])}.", ""]
    for metric in _metric_names(models):
        rows = [
            [head] + [format_value(models[m].get(head, {}).get(metric)) for m in model_names]
            for head in heads
        ]
        lines += [f"## {metric}", "", *markdown_table(["head", *model_names], rows), ""]
    ndcg: Mapping[str, float] = results.get("ndcg") or {}
    realized: Mapping[str, float] = results.get("ndcg_realized") or {}
    if ndcg:
        rows = [
            [model, format_value(value), format_value(realized.get(model))]
            for model, value in ndcg.items()
        ]
        table = markdown_table(["model", "ndcg", "ndcg vs realized labels"], rows)
        lines += ["## NDCG of the blended feed score", "", *table, ""]
    by_origin: Mapping[str, Mapping[str, float]] = results.get("ndcg_by_origin") or {}
    if by_origin:
        lines += _origin_table(by_origin)
    segments: Mapping[str, Mapping[str, Any]] = results.get("segments") or {}
    if segments:
        lines += _segment_tables(segments, heads)
    if images:
        links = [f"![{Path(name).stem}]({name})" for name in images]
        lines += ["## Plots", "", *links, ""]
    return "\n".join(lines)


def _origin_table(by_origin: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Blended NDCG per model (rows) on the served and the organic held-out rows (columns)."""
    origins = list(by_origin)
    model_names = list(dict.fromkeys(m for per_model in by_origin.values() for m in per_model))
    rows = [
        [model, *(format_value(by_origin[o].get(model)) for o in origins)] for model in model_names
    ]
    return [
        "## NDCG on served vs organic impressions",
        "",
        "Served: chosen by the live service (a sample biased by the ranker); organic: by the "
        "world's logging policy.",
        "",
        *markdown_table(["model", *origins], rows),
        "",
    ]


def _segment_tables(segments: Mapping[str, Mapping[str, Any]], heads: Sequence[str]) -> list[str]:
    """One table per key head: rows segments, columns the row count and each model's RCE."""
    shown = [head for head in SEGMENT_HEADS if head in heads] or list(heads[:3])
    model_names: dict[str, None] = {}
    for summary in segments.values():
        model_names.update(dict.fromkeys(summary["models"]))
    lines = [
        "## RCE by segment",
        "",
        'Held-out rows per segment; "skipped" marks a head with too few rows or a single '
        "class in the segment.",
        "",
    ]
    for head in shown:
        rows = []
        for segment, summary in segments.items():
            per_model = summary["models"]
            cells = [
                format_value(per_model[m][head]["rce"])
                if "rce" in per_model.get(m, {}).get(head, {})
                else "skipped"
                for m in model_names
            ]
            rows.append([segment, str(summary["rows"]), *cells])
        header = ["segment", "rows", *(f"{m} RCE" for m in model_names)]
        lines += [f"### {head}", "", *markdown_table(header, rows), ""]
    return lines


def new_figure(width: float, height: float) -> Figure:
    """A standalone figure; saving it to .png renders with Agg whatever the session's backend."""
    # Matplotlib writes a font cache on first import; keep it out of an unwritable or shared HOME.
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "feedrank-matplotlib"))
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _head_grid(num_heads: int, title: str) -> tuple[Figure, list[Axes]]:
    """A figure with one subplot per head, at most 4 per row; spare axes are hidden."""
    ncols = min(4, max(num_heads, 1))
    nrows = math.ceil(max(num_heads, 1) / ncols)
    fig = new_figure(4.0 * ncols, 3.6 * nrows)
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[num_heads:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:num_heads]


def plot_rce_per_head(results: Mapping[str, Any], path: Path) -> Path:
    """Grouped bar chart: RCE per head (x), one bar per model."""
    models: Mapping[str, Mapping[str, Mapping[str, float]]] = results["models"]
    heads = [  # heads with an RCE: the regression heads report R² instead
        head
        for head in results["heads"]
        if any("rce" in per_head.get(head, {}) for per_head in models.values())
    ]
    fig = new_figure(max(6.0, 1.2 * len(heads) + 2.0), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(heads), dtype=np.float64)
    width = 0.8 / max(len(models), 1)
    for i, (name, per_head) in enumerate(models.items()):
        values = [float(per_head.get(head, {}).get("rce", np.nan)) for head in heads]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, values, width, label=name)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, heads, rotation=30, ha="right")
    ax.set_ylabel("RCE (%)")
    ax.set_title("Relative cross-entropy per head (higher is better)")
    ax.legend()
    return _save(fig, path)


def plot_pr_curves(heads: Sequence[str], curves: Curves, path: Path) -> Path:
    """Precision-recall curve per head, one line per model (skipped where a head has one class)."""
    fig, axes = _head_grid(len(heads), "Precision-recall")
    for ax, head in zip(axes, heads, strict=True):
        for name, per_head in curves.items():
            if head not in per_head:
                continue
            y_true, p = (np.asarray(a, dtype=np.float64) for a in per_head[head])
            positives = y_true > 0.5
            if positives.all() or not positives.any():
                continue
            precision, recall, _ = precision_recall_curve(positives, p)
            label = f"{name} (AP {pr_auc(positives, p):.3f})"
            ax.plot(recall, precision, label=label, drawstyle="steps-post")
        ax.set_title(head)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, path)


def plot_calibration(heads: Sequence[str], curves: Curves, path: Path) -> Path:
    """Reliability diagram per head: observed rate vs mean prediction per bin, a line per model."""
    fig, axes = _head_grid(len(heads), "Calibration (reliability)")
    for ax, head in zip(axes, heads, strict=True):
        ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", linewidth=0.8)
        for name, per_head in curves.items():
            if head not in per_head:
                continue
            y_true, p = per_head[head]
            mean_p, mean_y, _ = calibration_curve(y_true, p, CALIBRATION_BINS)
            ax.plot(mean_p, mean_y, marker="o", markersize=3, label=name)
        ax.set_title(head)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed rate")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, path)


def write_report(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Writes ``report.md``, ``rce_per_head.png`` and, when ``results`` has curves,
    ``pr_curves.png`` and ``calibration.png`` into ``out_dir``; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_rce_per_head(results, out_dir / "rce_per_head.png")]
    curves: Curves = results.get("curves") or {}
    if curves:
        heads = [h for h in results["heads"] if any(h in c for c in curves.values())]
        plots.append(plot_pr_curves(heads, curves, out_dir / "pr_curves.png"))
        plots.append(plot_calibration(heads, curves, out_dir / "calibration.png"))
    markdown = out_dir / "report.md"
    markdown.write_text(render_markdown(results, [plot.name for plot in plots]))
    return [markdown, *plots]
