"""Offline evaluation of the conversation ranker on the held-out conversation impressions: the
ranker vs LightGBM, logistic regression and the oracle (the world's true probabilities), with the
feed evaluation's code and metric names under a `conv_` model prefix (`conv_ranker_rce_fav`,
`conv_lgbm_ndcg`, `conv_oracle_rce_reply`), after the blend weights are tuned by grid search
(:mod:`pipelines.conversation.blend`) for the blended NDCG and the serving score. The blended
NDCGs are measured on the requests the search did not see (its check half, requests of two
replies or more); the per-head metrics on every held-out row.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.conversation.blend import (
    TooFewRequestsError,
    hand_blend,
    ranked_rows,
    search_blend,
    tune_half,
)
from pipelines.conversation.ranker import conversation_config, skip_reason
from pipelines.conversation.training_set import DWELL_COLUMN
from pipelines.evaluate.offline import (
    HeldOut,
    blended_ndcg,
    flatten_metrics,
    held_out_rows,
    model_predictions,
    score_models,
)
from pipelines.evaluate.report import write_report
from pipelines.handoffs import ConversationBlend, ConversationEvaluationMetrics, TrainingSetDays
from pipelines.schema import read_table

log = logging.getLogger(__name__)

MODEL_PREFIX = "conv_"  # the conversation models' names: conv_ranker, conv_lgbm, ...


def prefixed(name: str) -> str:
    """A metric or model name of the feed's scheme as the conversation ranker's."""
    return name if name.startswith(MODEL_PREFIX) else f"{MODEL_PREFIX}{name}"


def prefix_models(results: dict[str, Any]) -> dict[str, Any]:
    """`score_models`' results with every model named as the conversation ranker's (`ranker` ->
    `conv_ranker`), wherever results key by model."""

    def renamed(per_model: dict[str, Any]) -> dict[str, Any]:
        return {prefixed(model): value for model, value in per_model.items()}

    out = dict(results)
    for key in ("models", "ndcg", "ndcg_realized", "curves"):
        out[key] = renamed(results[key])
    out["segments"] = {
        segment: {**summary, "models": renamed(summary["models"])}
        for segment, summary in results["segments"].items()
    }
    out["ndcg_by_origin"] = {
        origin: renamed(per_model) for origin, per_model in results["ndcg_by_origin"].items()
    }
    return out


def held_out_dwell(cfg: FeedrankConfig, held: HeldOut) -> np.ndarray:
    """[N] realized dwell (ms) of the held-out rows evaluation scores, in their order."""
    frame = pd.read_parquet(
        cfg.paths.conversation_training_set, columns=["impression_id", DWELL_COLUMN]
    )
    dwell = frame.set_index("impression_id")[DWELL_COLUMN]
    return dwell.reindex(held.test["impression_id"].to_numpy()).to_numpy(dtype=np.float64)


def blend_metrics(search: ConversationBlend) -> dict[str, float]:
    """The blend search as flat metrics: the tuned weight of every head, and the dwell NDCG of
    hand and tuned weights on the requests the search did not see."""
    metrics = {f"blend_weight_{head}": float(w) for head, w in search.weights.items()}
    metrics["blend_dwell_ndcg_hand"] = search.check_ndcg_hand
    metrics["blend_dwell_ndcg_tuned"] = search.check_ndcg_tuned
    metrics["blend_combinations"] = float(search.combinations)
    return {prefixed(name): value for name, value in metrics.items()}


def check_half_ndcg(
    tuned: FeedrankConfig, held: HeldOut, predictions: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """``{"ndcg": {model: x}, "ndcg_realized": {model: x}}``: every model's blended NDCG (the
    tuned weights) on the held-out requests the blend search did not see (its check half), so
    the weights chosen on the ranker's own predictions flatter no model; over every held-out
    request when the check half has none of two or more replies (a small served day)."""
    requests = held.test["request_id"].to_numpy()
    check = ~tune_half(requests) & ranked_rows(requests)
    if not check.any():
        log.warning(
            "conversation evaluation: no held-out request of two or more replies in the check "
            "half; the blended NDCGs are over every held-out request"
        )
        check = np.ones(len(requests), dtype=bool)
    oracle = predictions.get("oracle")
    out: dict[str, dict[str, float]] = {"ndcg": {}, "ndcg_realized": {}}
    for model, per_head in predictions.items():
        seen = {head: values[check] for head, values in per_head.items()}
        realized = blended_ndcg(tuned, requests[check], held.y[check], seen)
        out["ndcg_realized"][model] = realized
        out["ndcg"][model] = (
            realized
            if oracle is None
            else blended_ndcg(
                tuned,
                requests[check],
                {head: values[check] for head, values in oracle.items()},
                seen,
            )
        )
    return out


def evaluate_conversation(cfg: FeedrankConfig) -> dict[str, Any]:
    """The `evaluate_conversation` step: tune the blend weights on the held-out days (written
    beside the bundle, the `ConversationBlend` hand-off), then score every model on the held-out
    conversation rows; the `conv_` metrics go to the `ConversationEvaluationMetrics` hand-off,
    the report beside them. Skipped (and said so) without a conversation set."""
    reason = skip_reason(cfg)
    if reason is not None:
        log.warning("conversation evaluation: skipped: %s", reason)
        return {"skipped": reason}
    hand = conversation_config(cfg)
    arrays = np.load(cfg.paths.ranker_arrays(hand.ranker.feature_set))
    truth = read_table(cfg.paths.truth, "truth")
    held = held_out_rows(hand, arrays, truth, cfg.paths.conversation_training_set)
    predictions = model_predictions(hand, arrays, held, truth)
    requests = held.test["request_id"].to_numpy()
    try:
        search = search_blend(
            requests,
            held_out_dwell(cfg, held),
            predictions["ranker"],
            cfg.conversation_blend,
            cfg.promote.ndcg_k,
        )
    except TooFewRequestsError as exc:
        log.warning("conversation evaluation: %s; the hand weights are kept", exc)
        search = hand_blend(cfg.conversation_blend, cfg.promote.ndcg_k)
    search.write(cfg)
    tuned = conversation_config(cfg, search.weights)
    # Scored under the feed's model names (the oracle is found by its name), then renamed.
    results = score_models(tuned, held, predictions)
    results.update(check_half_ndcg(tuned, held, predictions))
    results = prefix_models(results)
    results["holdout_days"] = TrainingSetDays.read(cfg).holdout_days
    written = write_report(results, cfg.paths.conversation_evaluation)
    metrics = {prefixed(k): v for k, v in flatten_metrics(results).items()}
    metrics |= blend_metrics(search)
    ConversationEvaluationMetrics(holdout_days=results["holdout_days"], **metrics).write(cfg)
    log.info("conversation evaluation: blended NDCG@%d %s", cfg.promote.ndcg_k, results["ndcg"])
    ndcg = {key: value for key, value in metrics.items() if key.endswith("_ndcg")}
    return {
        **ndcg,
        "blend_dwell_ndcg_hand": search.check_ndcg_hand,
        "blend_dwell_ndcg_tuned": search.check_ndcg_tuned,
        "report_files": len(written),
    }
