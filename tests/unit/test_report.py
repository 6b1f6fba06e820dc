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
