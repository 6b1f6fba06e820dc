"""Offline evaluation on held-out later days: ranker vs the LightGBM and logistic-regression
baselines vs the oracle, per head, blended, and per segment of viewers, authors and network.

The oracle scores each impression with the world's true probabilities (the `truth` table, which only
evaluation reads): its RCE is the ceiling any model can reach on this data. The blended ranking
metric is the mean per-request NDCG@k of the feed score against the blend of what actually happened.
Segments (:func:`segment_masks`) show where a model's average gain comes from: a ranker can beat
the baselines overall and still lose on new viewers or out-of-network tweets. Two segments measure
the feedback loop: `served` (impressions the live service chose, a sample biased by the ranker
itself) and `organic` (the world's logging policy); the blended NDCG is reported on each too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.evaluate.metrics import head_metrics, mean_ndcg_at_k, regression_metrics
from pipelines.evaluate.report import write_report
from pipelines.handoffs import EvaluationMetrics, TrainingSetDays
from pipelines.models.bundle import RankerBundle
from pipelines.ranking import blend_scores
from pipelines.schema import REGRESSION_HEADS, read_table
from pipelines.train.baselines import fit_lightgbm, fit_logreg, predict_lightgbm, predict_logreg
from pipelines.train.ranker import model_inputs

log = logging.getLogger(__name__)

NEW_VIEWER_MAX_TRAIN_ROWS = 20  # a viewer with at most this many training impressions is "new"
LONG_HISTORY_QUANTILE = 0.75  # top quartile of training impressions per viewer
LARGE_AUTHOR_QUANTILE = 0.9  # top decile of author_follower_count over the held-out impressions
MIN_SEGMENT_ROWS = 50  # fewer rows than this give no segment metric (too noisy to read)
SEGMENT_METRICS = ("rce", "roc_auc")
SEGMENT_COLUMNS = ["viewer_id", "author_follower_count", "in_network", "served"]
ORIGINS = ("served", "organic")  # the segments by who chose the impression
ORACLE_COLUMNS = {"dwell_time": "mean_log_dwell_s"}  # truth column per head, if not p_<head>


def oracle_predictions(
    cfg: FeedrankConfig, impression_ids: np.ndarray, truth: pd.DataFrame | None = None
) -> dict[str, np.ndarray] | None:
    """True probabilities per head for the given impressions (for `dwell_time` the true mean log
    dwell in seconds); None when the data has no truth."""
    if truth is None:
        truth = read_table(cfg.paths.truth, "truth")
    if truth.empty:
        return None
    aligned = truth.set_index("impression_id").reindex(impression_ids)
    if aligned.isna().any().any():
        raise ValueError("truth is missing for some held-out impressions (see with_truth)")
    columns = {head: ORACLE_COLUMNS.get(head, f"p_{head}") for head in cfg.ranker.heads}
    return {head: aligned[column].to_numpy(dtype=np.float64) for head, column in columns.items()}


def with_truth(truth: pd.DataFrame, impression_ids: np.ndarray) -> np.ndarray:
    """[N] bool: the impressions the world's truth covers. Impressions the live service served
    (ingested from its event log) have none; when truth exists, evaluation keeps to the rows that
    have it, so every model, the oracle included, is measured on the same rows."""
    if truth.empty:
        return np.ones(len(impression_ids), dtype=bool)
    return np.isin(impression_ids, truth["impression_id"].to_numpy())


def blended_ndcg(
    cfg: FeedrankConfig,
    requests: np.ndarray,
    labels: np.ndarray | dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
) -> float:
    """Mean NDCG@k per request of the blended score; gain = max(0, blend of `labels`).

    `labels` is ``[N, H]`` realized labels in head order, or ``{head: [N]}`` (e.g. the true
    probabilities, whose blend is the value the feed should have ranked by).
    """
    if isinstance(labels, dict):
        target = labels
    else:
        target = {head: labels[:, i] for i, head in enumerate(cfg.ranker.heads)}
    gains = np.maximum(0.0, blend_scores(target, cfg.blend.weights))
    scores = blend_scores(predictions, cfg.blend.weights)
    return mean_ndcg_at_k(requests, gains, scores, cfg.promote.ndcg_k)


def segment_masks(test_frame: pd.DataFrame, train_frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean ``[N]`` masks over the held-out rows, one per segment.

    Args:
        test_frame: ``[N]`` held-out impressions with ``viewer_id``, ``author_follower_count``
            (the feature at impression time) and ``in_network`` (1.0 / 0.0 feature).
        train_frame: the training-split impressions, with ``viewer_id``.

    Segments (a row can be in several; a missing feature puts it in neither side):

    - ``new_viewers``: the viewer has at most ``NEW_VIEWER_MAX_TRAIN_ROWS`` training rows (0 too).
    - ``long_history_viewers``: the viewer's training rows are at least the 75th percentile of
      training rows per viewer (over viewers with any).
    - ``small_authors``: follower count below the median of the held-out impressions.
    - ``large_authors``: follower count at or above their 90th percentile.
    - ``in_network`` / ``out_of_network``: the viewer follows the author (1) / does not (0).
    - ``served`` / ``organic``: the live service served the impression / the world's logging
      policy did (the training set's ``served`` column).
    """
    per_viewer = train_frame["viewer_id"].value_counts()
    history = test_frame["viewer_id"].map(per_viewer).fillna(0).to_numpy(dtype=np.float64)
    long_history = (
        np.quantile(per_viewer.to_numpy(), LONG_HISTORY_QUANTILE) if len(per_viewer) else np.inf
    )
    followers = test_frame["author_follower_count"].to_numpy(dtype=np.float64)
    known = np.isfinite(followers)
    median, top_decile = (
        np.quantile(followers[known], [0.5, LARGE_AUTHOR_QUANTILE]) if known.any() else (0, 0)
    )
    network = test_frame["in_network"].to_numpy(dtype=np.float64)
    served = test_frame["served"].to_numpy(dtype=bool)
    return {
        "new_viewers": history <= NEW_VIEWER_MAX_TRAIN_ROWS,
        "long_history_viewers": (history > 0) & (history >= long_history),
        "small_authors": known & (followers < median),
        "large_authors": known & (followers >= top_decile),
        "in_network": network == 1.0,
        "out_of_network": network == 0.0,
        "served": served,
        "organic": ~served,
    }


def segment_metrics(
    heads: list[str],
    labels: np.ndarray,
    predictions: dict[str, dict[str, np.ndarray]],
    masks: dict[str, np.ndarray],
) -> dict[str, dict[str, Any]]:
    """RCE and ROC-AUC of every model per head on each segment.

    Args:
        labels: ``[N, H]`` held-out labels, columns in ``heads`` order.
        predictions: model -> head -> ``[N]`` probability.
        masks: segment -> ``[N]`` bool (:func:`segment_masks`).

    Returns ``{segment: {"rows": n, "models": {model: {head: {"rce": .., "roc_auc": ..}}}}}``.
    A head is left out of a segment with fewer than ``MIN_SEGMENT_ROWS`` rows or a single class
    there, so no NaN metric is ever emitted; regression heads are not segmented.
    """
    out: dict[str, dict[str, Any]] = {}
    for segment, mask in masks.items():
        rows = int(mask.sum())
        usable = []
        if rows >= MIN_SEGMENT_ROWS:
            positives = labels[mask] > 0.5
            usable = [
                (i, h)
                for i, h in enumerate(heads)
                if h not in REGRESSION_HEADS and 0 < positives[:, i].sum() < rows
            ]
        models: dict[str, dict[str, dict[str, float]]] = {}
        for model, per_head in predictions.items():
            models[model] = {}
            for i, head in usable:
                values = head_metrics(labels[mask, i], per_head[head][mask])
                finite = {m: values[m] for m in SEGMENT_METRICS if np.isfinite(values[m])}
                if finite:
                    models[model][head] = finite
        out[segment] = {"rows": rows, "models": models}
    return out


@dataclass
class HeldOut:
    """The held-out rows evaluation scores: those the world labelled (they have a truth)."""

    test: pd.DataFrame  # impression_id, request_id and SEGMENT_COLUMNS per held-out row
    train: pd.DataFrame  # the same columns of the training rows (for the segments)
    x: np.ndarray  # [N, F] dense features
    y: np.ndarray  # [N, H] labels
    covered: np.ndarray  # [N_all] bool: which of the arrays' held-out rows these are


def held_out_rows(
    cfg: FeedrankConfig,
    arrays: Mapping[str, np.ndarray],
    truth: pd.DataFrame,
    training_set: Path | None = None,
) -> HeldOut:
    """The arrays' held-out rows with the columns of their training set (default: the feed's),
    less any served live (no truth: no oracle to compare with)."""
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    frame = pd.read_parquet(
        training_set or cfg.paths.training_set,
        columns=["impression_id", "request_id", "split", *SEGMENT_COLUMNS],
    )
    test = frame[frame["split"] == "test"]
    if len(test) != len(x_test):
        raise ValueError(
            "training set and arrays disagree on the held-out rows; rerun train_ranker"
        )
    covered = with_truth(truth, test["impression_id"].to_numpy())
    if not covered.all():
        log.info(
            "evaluate: %d held-out impressions served live have no truth; evaluating the %d "
            "the world labelled",
            int((~covered).sum()),
            int(covered.sum()),
        )
    train = frame[frame["split"] == "train"]
    return HeldOut(test[covered], train, x_test[covered], y_test[covered], covered)


def model_predictions(
    cfg: FeedrankConfig, arrays: Mapping[str, np.ndarray], held: HeldOut, truth: pd.DataFrame
) -> dict[str, dict[str, np.ndarray]]:
    """model -> head -> ``[N]`` predictions on the held-out rows: the ranker, the LightGBM and
    logistic-regression baselines (fitted here on the training rows) and the oracle when the
    world's truth covers them."""
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    predictions: dict[str, dict[str, np.ndarray]] = {}
    # The ranker also reads the sparse ids when it has them; the baselines stay dense-only.
    ranker_inputs = [arrays[f"{name}_test"][held.covered] for name in model_inputs(cfg.ranker)]
    predictions["ranker"] = RankerBundle.load(
        cfg.paths.ranker_dir(cfg.ranker.feature_set)
    ).predict_matrix(*ranker_inputs)
    log.info("evaluate: fitting the LightGBM baseline on %d rows", len(x_train))
    predictions["lgbm"] = predict_lightgbm(fit_lightgbm(cfg, x_train, y_train), held.x)
    log.info("evaluate: fitting the logistic-regression baseline")
    predictions["logreg"] = predict_logreg(fit_logreg(cfg, x_train, y_train), held.x)
    oracle = oracle_predictions(cfg, held.test["impression_id"].to_numpy(), truth)
    if oracle is not None:
        predictions["oracle"] = oracle
    return predictions


def score_models(
    cfg: FeedrankConfig, held: HeldOut, predictions: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
    """The results the report and metrics.json are made of (see :mod:`pipelines.evaluate.report`):
    every model's metrics per head, blended NDCGs, the curves to plot and the segments."""
    heads = list(cfg.ranker.heads)
    requests, y = held.test["request_id"].to_numpy(), held.y
    oracle = predictions.get("oracle")
    # NDCG against the blend of the true probabilities where the world's truth exists (the
    # oracle then scores 1); `ndcg_realized` ranks against what actually happened.
    results: dict[str, Any] = {
        "heads": heads,
        "models": {},
        "ndcg": {},
        "ndcg_realized": {},
        "curves": {},
    }
    for model, per_head in predictions.items():
        results["models"][model] = {
            head: (regression_metrics if head in REGRESSION_HEADS else head_metrics)(
                y[:, i], per_head[head]
            )
            for i, head in enumerate(heads)
        }
        realized = blended_ndcg(cfg, requests, y, per_head)
        results["ndcg_realized"][model] = realized
        results["ndcg"][model] = (
            realized if oracle is None else blended_ndcg(cfg, requests, oracle, per_head)
        )
        results["curves"][model] = {
            head: (y[:, i], per_head[head])
            for i, head in enumerate(heads)
            if head not in REGRESSION_HEADS
        }
    masks = segment_masks(held.test, held.train)
    results["segments"] = segment_metrics(heads, y, predictions, masks)
    results["ndcg_by_origin"] = origin_ndcg(
        cfg, requests, oracle if oracle is not None else y, predictions, masks
    )
    return results


def origin_ndcg(
    cfg: FeedrankConfig,
    requests: np.ndarray,
    target: np.ndarray | dict[str, np.ndarray],
    predictions: dict[str, dict[str, np.ndarray]],
    masks: dict[str, np.ndarray],
) -> dict[str, dict[str, float]]:
    """``{origin: {model: blended NDCG}}`` on the served and on the organic held-out rows (an
    origin with fewer than ``MIN_SEGMENT_ROWS`` rows is left out). A request is served by one
    policy, so each origin's requests are whole.

    Args:
        requests: ``[N]`` request ids; target: ``[N, H]`` labels or ``{head: [N]}`` true
            probabilities (:func:`blended_ndcg`); masks: :func:`segment_masks`.
    """
    out: dict[str, dict[str, float]] = {}
    for origin in ORIGINS:
        mask = masks[origin]
        if mask.sum() < MIN_SEGMENT_ROWS:
            continue
        subset = (
            {head: values[mask] for head, values in target.items()}
            if isinstance(target, dict)
            else target[mask]
        )
        out[origin] = {
            model: blended_ndcg(
                cfg,
                requests[mask],
                subset,
                {head: values[mask] for head, values in per_head.items()},
            )
            for model, per_head in predictions.items()
        }
    return out


def evaluate(cfg: FeedrankConfig) -> dict[str, Any]:
    """Score the held-out days with every model; the flat metrics go to the `EvaluationMetrics`
    hand-off, the report with plots beside it. Returns the blended NDCG of every model."""
    holdout_days = TrainingSetDays.read(cfg).holdout_days
    arrays = np.load(cfg.paths.ranker_arrays(cfg.ranker.feature_set))
    truth = read_table(cfg.paths.truth, "truth")  # read once: coverage and the oracle
    held = held_out_rows(cfg, arrays, truth)
    predictions = model_predictions(cfg, arrays, held, truth)
    results = score_models(cfg, held, predictions)
    results["holdout_days"] = holdout_days
    out = cfg.paths.evaluation
    written = write_report(results, out)
    metrics = flatten_metrics(results)
    EvaluationMetrics(holdout_days=results["holdout_days"], **metrics).write(cfg)
    log.info("evaluate: blended NDCG@%d %s", cfg.promote.ndcg_k, results["ndcg"])
    for head in results["heads"]:
        metric = "r2" if head in REGRESSION_HEADS else "rce"
        log.info(
            "evaluate: %s %-23s %s",
            metric.upper(),
            head,
            "  ".join(f"{m}={results['models'][m][head][metric]:.3f}" for m in predictions),
        )
    ndcg = {key: value for key, value in metrics.items() if key.endswith("_ndcg")}
    return {**ndcg, "report_files": len(written)}


def flatten_metrics(results: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names: `<model>_<metric>_<head>`, `<model>_ndcg` (against the true blend
    where the world's truth exists), `<model>_ndcg_realized`, per origin (`served`, `organic`)
    `<model>_ndcg_<origin>`, and per segment
    `<model>_<metric>_<head>_<segment>` (e.g. `ranker_rce_fav_new_viewers`) with
    `segment_rows_<segment>`."""
    flat: dict[str, float] = {}
    for model, per_head in results["models"].items():
        for head, values in per_head.items():
            for metric, value in values.items():
                flat[f"{model}_{metric}_{head}"] = float(value)
    for model, value in results["ndcg"].items():
        flat[f"{model}_ndcg"] = float(value)
    for model, value in results.get("ndcg_realized", {}).items():
        flat[f"{model}_ndcg_realized"] = float(value)
    for origin, per_model in results.get("ndcg_by_origin", {}).items():
        for model, value in per_model.items():
            flat[f"{model}_ndcg_{origin}"] = float(value)
    for segment, summary in results.get("segments", {}).items():
        flat[f"segment_rows_{segment}"] = float(summary["rows"])
        for model, per_head in summary["models"].items():
            for head, values in per_head.items():
                for metric, value in values.items():
                    flat[f"{model}_{metric}_{head}_{segment}"] = float(value)
    return flat
