"""The real-tree benchmark's table, plot and MLflow run.

:func:`table` renders a protocol's result (:func:`pipelines.realtrees.evaluate.run_protocol`) as
a markdown table: per stratum and model, NDCG@10, its bootstrap interval and capped recall@10.
:func:`write_report` writes the tables, an NDCG bar plot with the intervals as error bars and the
JSON under ``cfg.paths.trees_reports``; :func:`log_report` logs them with the headline metrics
(``conv_real_<stratum>_<model>_ndcg10``) to the MLflow run ``conversation-real-trees``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.config import FeedrankConfig
from pipelines.realtrees.evaluate import MODELS, STRATA

PROTOCOLS: tuple[str, ...] = ("real_trees", "real_trees_early_cut", "real_trees_time_split")
REPORT_FILE, PLOT_FILE, JSON_FILE = "real_trees.md", "real_trees_ndcg.png", "real_trees.json"


def table(result: Mapping[str, Any]) -> str:
    """A protocol's models per stratum as a markdown table."""
    lines = [
        "| stratum | trees | model | NDCG@10 | 95% interval | capped recall@10 |",
        "|---|---:|---|---:|---|---:|",
    ]
    for stratum in STRATA:
        for model in MODELS:
            row = result[stratum][model]
            low, high = row["ci"]
            lines.append(
                f"| {stratum} | {row['trees']} | {model} | {row['ndcg10']:.3f} "
                f"| [{low:.3f}, {high:.3f}] | {row['recall10']:.3f} |"
            )
    return "\n".join(lines)


def gains_table(result: Mapping[str, Any]) -> str:
    """The ranker's paired NDCG@10 gains over the baselines on the same trees."""
    lines = ["| stratum | ranker minus | NDCG@10 gain | 95% interval |", "|---|---|---:|---|"]
    for stratum in STRATA:
        for baseline, row in result[stratum]["ranker_minus"].items():
            low, high = row["ci"]
            lines.append(
                f"| {stratum} | {baseline} | {row['ndcg10_gain']:+.3f} | [{low:+.3f}, {high:+.3f}] |"
            )
    return "\n".join(lines)


def markdown(figures: Mapping[str, Any]) -> str:
    """Every protocol's tables and the section shares, as one markdown report."""
    parts = [f"# Conversation ranking on real reply trees ({figures['platform']})"]
    for protocol in PROTOCOLS:
        result = figures[protocol]
        parts += [f"## {protocol}", table(result), "", gains_table(result)]
    sections = figures["real_trees"]["sections"]
    parts += [
        "## Section shares of the test candidates (by toxicity)",
        ", ".join(f"{k}: {v:.3f}" for k, v in sections.items()),
    ]
    return "\n\n".join(parts) + "\n"


def plot(result: Mapping[str, Any], path: Path) -> Path:
    """NDCG@10 bars per model and stratum, the bootstrap intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(MODELS))
    width = 0.8 / len(STRATA)
    for i, stratum in enumerate(STRATA):
        rows = [result[stratum][model] for model in MODELS]
        values = np.array([row["ndcg10"] for row in rows])
        errors = np.array(
            [[v - row["ci"][0], row["ci"][1] - v] for v, row in zip(values, rows, strict=True)]
        )
        offset = (i - (len(STRATA) - 1) / 2) * width
        ax.bar(x + offset, values, width, yerr=errors.T, capsize=3, label=stratum)
    ax.set_xticks(x, list(MODELS), rotation=20)
    ax.set_ylabel("NDCG@10 (held-out trees)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title("Ranking top-level replies of real reply trees")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(cfg: FeedrankConfig, figures: Mapping[str, Any]) -> list[Path]:
    """The markdown report, the plot and the JSON under ``cfg.paths.trees_reports``."""
    folder = cfg.paths.trees_reports
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / REPORT_FILE
    report.write_text(markdown(figures))
    data = folder / JSON_FILE
    data.write_text(json.dumps(figures, indent=2, default=str))
    return [report, plot(figures["real_trees"], folder / PLOT_FILE), data]


def headline_metrics(figures: Mapping[str, Any]) -> dict[str, float]:
    """``conv_real_<stratum>_<model>_{ndcg10,recall10}`` of the main protocol."""
    out = {}
    for stratum in STRATA:
        for model in MODELS:
            row = figures["real_trees"][stratum][model]
            out[f"conv_real_{stratum}_{model}_ndcg10"] = float(row["ndcg10"])
            out[f"conv_real_{stratum}_{model}_recall10"] = float(row["recall10"])
    return out


def log_report(cfg: FeedrankConfig, figures: Mapping[str, Any], files: list[Path]) -> None:
    """The headline metrics, the trees config and the report files, to MLflow."""
    import mlflow

    from pipelines.release.registry import configure_mlflow

    configure_mlflow(cfg)
    with mlflow.start_run(run_name="conversation-real-trees"):
        params = {k: str(v)[:500] for k, v in cfg.flat().items() if k.startswith("trees.")}
        mlflow.log_params(params | {"trees.platform_run": figures["platform"]})
        mlflow.log_metrics(headline_metrics(figures))
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="real_trees")
