"""Unit tests of the evaluation report writer on synthetic results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.evaluate.metrics import head_metrics
from pipelines.evaluate.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEADS = ["fav", "reply", "report"]
MODELS = {"ranker": 1.5, "lgbm": 1.0, "oracle": 3.0}  # model -> signal strength


def _synthetic_results() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    models: dict[str, dict[str, dict[str, float]]] = {name: {} for name in MODELS}
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {name: {} for name in MODELS}
    for head, rate in zip(HEADS, [0.3, 0.05, 0.01], strict=True):
        latent = rng.normal(size=500)
        y = (rng.random(500) < 1 / (1 + np.exp(-(latent + np.log(rate / (1 - rate)))))).astype(
            float
        )
        for name, strength in MODELS.items():
            noisy = strength * latent + rng.normal(size=500)
            p = 1 / (1 + np.exp(-(noisy / strength + np.log(rate / (1 - rate)))))
            models[name][head] = head_metrics(y, p)
            curves[name][head] = (y, p)
    ndcg = {"ranker": 0.41, "lgbm": 0.39, "oracle": 0.47}
    return {"heads": HEADS, "models": models, "ndcg": ndcg, "curves": curves}


def test_write_report_writes_markdown_and_plots(tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    written = write_report(_synthetic_results(), out_dir)

    names = {path.name for path in written}
    assert names == {"report.md", "rce_per_head.png", "pr_curves.png", "calibration.png"}
    for path in written:
        assert path.parent == out_dir
        assert path.stat().st_size > 0
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
            assert path.stat().st_size > 5_000  # a drawn chart, not an empty canvas

    markdown = (out_dir / "report.md").read_text()
    for token in [*MODELS, *HEADS, "roc_auc", "rce", "ndcg", "0.47"]:
        assert token in markdown, token
    # One table row per head under each metric heading: rows heads, columns models.
    assert "| head | ranker | lgbm | oracle |" in markdown
    assert markdown.count("| fav |") == len(_synthetic_results()["models"]["ranker"]["fav"])


def test_write_report_without_curves_and_with_nan(tmp_path: Path) -> None:
    results = {
        "heads": ["fav"],
        "models": {"ranker": {"fav": {"roc_auc": float("nan"), "rce": 2.0}}},
    }
    written = write_report(results, tmp_path)
    assert [path.name for path in written] == ["report.md", "rce_per_head.png"]
    assert "| fav | —" in (tmp_path / "report.md").read_text()


def test_report_with_an_extra_model_and_segment_tables(tmp_path: Path) -> None:
    results = _synthetic_results()
    results["models"]["logreg"] = results["models"]["lgbm"]
    results["curves"]["logreg"] = results["curves"]["lgbm"]
    results["segments"] = {
        "new_viewers": {
            "rows": 812,
            "models": {
                "ranker": {"fav": {"rce": 6.5, "roc_auc": 0.7}, "reply": {"rce": 1.25}},
                "logreg": {"fav": {"rce": 2.0, "roc_auc": 0.6}},
            },
        },
        "large_authors": {"rows": 12, "models": {"ranker": {}, "logreg": {}}},
    }
    written = write_report(results, tmp_path)
    assert {path.name for path in written} == {
        "report.md",
        "rce_per_head.png",
        "pr_curves.png",
        "calibration.png",
    }

    markdown = (tmp_path / "report.md").read_text()
    assert "| head | ranker | lgbm | oracle | logreg |" in markdown
    assert "## RCE by segment" in markdown
    # One table per key head present in the results (fav, reply; this run has no retweet head).
    assert "### fav" in markdown and "### reply" in markdown and "### retweet" not in markdown
    assert "| segment | rows | ranker RCE | logreg RCE |" in markdown
    assert "| new_viewers | 812 | 6.5000 | 2.0000 |" in markdown
    assert "| new_viewers | 812 | 1.2500 | skipped |" in markdown
    assert "| large_authors | 12 | skipped | skipped |" in markdown


def test_report_names_the_held_out_days_and_ndcg_on_served_vs_organic(tmp_path: Path) -> None:
    results = _synthetic_results()
    results["holdout_days"] = ["2026-03-12"]
    results["ndcg_by_origin"] = {
        "served": {"ranker": 0.5, "oracle": 1.0},
        "organic": {"ranker": 0.25},
    }
    write_report(results, tmp_path)

    markdown = (tmp_path / "report.md").read_text()
    assert "Held-out days: 2026-03-12." in markdown
    assert "## NDCG on served vs organic impressions" in markdown
    assert "| model | served | organic |" in markdown
    assert "| ranker | 0.5000 | 0.2500 |" in markdown
    assert "| oracle | 1.0000 | — |" in markdown
