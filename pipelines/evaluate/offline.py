"""Offline evaluation on held-out later days: ranker vs LightGBM vs the oracle, per head and blended.

The oracle scores each impression with the world's true probabilities (the `truth` table, which only
evaluation reads): its RCE is the ceiling any model can reach on this data. The blended ranking
metric is the mean per-request NDCG@k of the feed score against the blend of what actually happened.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.evaluate.metrics import head_metrics, mean_ndcg_at_k
from pipelines.evaluate.report import write_report
from pipelines.features.training_set import training_set_path
from pipelines.models.bundle import RankerBundle
from pipelines.ranking import blend_scores
from pipelines.schema import read_table
from pipelines.train.baselines import fit_lightgbm, predict_lightgbm
from pipelines.train.ranker import arrays_path, model_inputs, ranker_dir

log = logging.getLogger(__name__)


def evaluation_dir(cfg: FeedrankConfig) -> Path:
    return cfg.paths.reports / "evaluation"


def oracle_predictions(
    cfg: FeedrankConfig, impression_ids: np.ndarray
) -> dict[str, np.ndarray] | None:
    """True probabilities per head for the given impressions; None when the data has no truth."""
    truth = read_table(cfg.paths.truth, "truth")
    if truth.empty:
        return None
    aligned = truth.set_index("impression_id").reindex(impression_ids)
    if aligned.isna().any().any():
        raise ValueError("truth is missing for some held-out impressions")
    return {head: aligned[f"p_{head}"].to_numpy(dtype=np.float64) for head in cfg.ranker.heads}


def blended_ndcg(
    cfg: FeedrankConfig,
    requests: np.ndarray,
    labels: np.ndarray,
    predictions: dict[str, np.ndarray],
) -> float:
    """Mean NDCG@k per request; gain = max(0, blend of the realized labels)."""
    realized = {head: labels[:, i] for i, head in enumerate(cfg.ranker.heads)}
    gains = np.maximum(0.0, blend_scores(realized, cfg.blend.weights))
    scores = blend_scores(predictions, cfg.blend.weights)
    return mean_ndcg_at_k(requests, gains, scores, cfg.promote.ndcg_k)


def evaluate(cfg: FeedrankConfig) -> dict[str, Any]:
    """Score the held-out days with every model, write metrics.json and the report with plots."""
    arrays = np.load(arrays_path(cfg))
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    frame = pd.read_parquet(
        training_set_path(cfg), columns=["impression_id", "request_id", "split"]
    )
    test = frame[frame["split"] == "test"]
    if len(test) != len(x_test):
        raise ValueError(
            "training set and arrays disagree on the held-out rows; rerun train_ranker"
        )

    predictions: dict[str, dict[str, np.ndarray]] = {}
    # The ranker also reads the sparse ids when it has them; the baselines stay dense-only.
    ranker_inputs = [arrays[f"{name}_test"] for name in model_inputs(cfg.ranker)]
    predictions["ranker"] = RankerBundle.load(ranker_dir(cfg)).predict_matrix(*ranker_inputs)
    log.info("evaluate: fitting the LightGBM baseline on %d rows", len(x_train))
    predictions["lgbm"] = predict_lightgbm(fit_lightgbm(cfg, x_train, y_train), x_test)
    oracle = oracle_predictions(cfg, test["impression_id"].to_numpy())
    if oracle is not None:
        predictions["oracle"] = oracle

    heads = list(cfg.ranker.heads)
    requests = test["request_id"].to_numpy()
    results: dict[str, Any] = {"heads": heads, "models": {}, "ndcg": {}, "curves": {}}
    for model, per_head in predictions.items():
        results["models"][model] = {
            head: head_metrics(y_test[:, i], per_head[head]) for i, head in enumerate(heads)
        }
        results["ndcg"][model] = blended_ndcg(cfg, requests, y_test, per_head)
        results["curves"][model] = {
            head: (y_test[:, i], per_head[head]) for i, head in enumerate(heads)
        }

    out = evaluation_dir(cfg)
    written = write_report(results, out)
    metrics = flatten_metrics(results)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    log.info("evaluate: blended NDCG@%d %s", cfg.promote.ndcg_k, results["ndcg"])
    for head in heads:
        log.info(
            "evaluate: RCE %-13s %s",
            head,
            "  ".join(f"{m}={results['models'][m][head]['rce']:.2f}" for m in predictions),
        )
    return {"metrics": metrics, "report_files": [str(p) for p in written]}


def flatten_metrics(results: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names: `<model>_<metric>_<head>` and `<model>_ndcg`."""
    flat: dict[str, float] = {}
    for model, per_head in results["models"].items():
        for head, values in per_head.items():
            for metric, value in values.items():
                flat[f"{model}_{metric}_{head}"] = float(value)
    for model, value in results["ndcg"].items():
        flat[f"{model}_ndcg"] = float(value)
    return flat
