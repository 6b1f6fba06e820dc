"""The conversation ranker's release: `register_conversation` logs its run to MLflow and registers
it as a second model (`tracking.conversation_model_name`) with alias `challenger`;
`promote_conversation` moves `champion` with the feed's gates (`pipelines.release.gates`) and
decision (`pipelines.release.promotion.apply_gates`), on the conversation held-out rows and the
tuned blend."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.conversation.evaluate import MODEL_PREFIX
from pipelines.conversation.ranker import conversation_config, skip_reason
from pipelines.handoffs import (
    ConversationBlend,
    ConversationEvaluationMetrics,
    ConversationRankerTraining,
    ConversationRegistration,
)
from pipelines.release import gates, registry
from pipelines.release.promotion import apply_gates

log = logging.getLogger(__name__)


def tuned_config(cfg: FeedrankConfig) -> FeedrankConfig:
    """The conversation ranker's config with this run's tuned blend weights."""
    return conversation_config(cfg, ConversationBlend.read(cfg).weights)


def register_conversation(cfg: FeedrankConfig) -> dict[str, Any]:
    """Log the conversation ranker's run (config, training curve, `conv_` metrics, report, the
    tuned blend) to MLflow and register its bundle as `challenger` of the conversation model.
    Skipped (and said so) without a conversation set."""
    reason = skip_reason(cfg)
    if reason is not None:
        log.warning("conversation registration: skipped: %s", reason)
        return {"skipped": reason}
    metrics = ConversationEvaluationMetrics.read(cfg).values()
    training = ConversationRankerTraining.read(cfg)
    metrics[f"{MODEL_PREFIX}ranker_train_seconds"] = training.seconds
    result = registry.log_and_register(
        tuned_config(cfg),
        cfg.paths.conversation_ranker_dir,
        None,
        cfg.paths.conversation_evaluation,
        metrics,
        training.history,
        extra_artifacts={"conversation_blend": cfg.paths.conversation_blend},
        params=training.days_params(),
        run_name=f"conversation_ranker-{cfg.name}",
    )
    registration = ConversationRegistration(run_id=result["run_id"], version=result["version"])
    registration.write(cfg)
    return registration.model_dump()


def compare_with_champion(cfg: FeedrankConfig) -> gates.ChampionComparison | None:
    """The champion gate on the conversation held-out rows: this run's conversation ranker vs
    the registered conversation champion, both blended with this run's tuned weights; None when
    there is no champion (or it cannot score today's features)."""
    from pipelines.models.bundle import IncompatibleBundleError, RankerBundle

    tuned = tuned_config(cfg)
    try:
        champion = registry.load_ranker(tuned, registry.CHAMPION)
    except IncompatibleBundleError as exc:
        log.warning("conversation gate: the champion cannot score today's features (%s)", exc)
        return None
    if champion is None:
        return None
    lacking = sorted(set(tuned.blend.weights) - set(champion.heads))
    if lacking:
        log.warning(
            "conversation gate: the champion v%s has no heads %s that the blend weighs; gating "
            "as if there were none",
            champion.version,
            lacking,
        )
        return None
    frame = pd.read_parquet(cfg.paths.conversation_training_set)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    heads = list(tuned.ranker.heads)
    labels = {head: test[f"label_{head}"].to_numpy(dtype=np.float64) for head in heads}
    challenger = RankerBundle.load(cfg.paths.conversation_ranker_dir).predict(test)
    return gates.compare_predictions(
        test["request_id"].to_numpy(),
        labels,
        challenger,
        champion.predict(test),
        tuned.blend.weights,
        cfg.promote,
        seed=cfg.world.seed,
    )


def unprefixed(metrics: dict[str, float]) -> dict[str, float]:
    """The `conv_` metrics under the feed's names, as the gates read them."""
    return {
        name.removeprefix(MODEL_PREFIX): value
        for name, value in metrics.items()
        if name.startswith(MODEL_PREFIX)
    }


def promote_conversation(cfg: FeedrankConfig) -> dict[str, Any]:
    """Gate the registered conversation challenger against the conversation champion (or
    against LightGBM while there is none) and move `champion` if it passes; the decision is
    logged to its MLflow run. Skipped (and said so) without a conversation set."""
    reason = skip_reason(cfg)
    if reason is not None:
        log.warning("conversation promotion: skipped: %s", reason)
        return {"skipped": reason}
    registration = ConversationRegistration.read(cfg)
    metrics = unprefixed(ConversationEvaluationMetrics.read(cfg).values())
    return apply_gates(tuned_config(cfg), registration, metrics, compare_with_champion(cfg))
