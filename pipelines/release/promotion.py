"""The release steps: `register` logs this run to MLflow and registers its ranker as
`challenger`; `promote` applies the gates and moves `champion` when the challenger passes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pipelines.config import FeedrankConfig
from pipelines.handoffs import EncoderTraining, EvaluationMetrics, RankerTraining, Registration
from pipelines.release import gates, registry

log = logging.getLogger(__name__)


def register(cfg: FeedrankConfig) -> dict[str, Any]:
    """Log the run (config, the training and held-out days, curves, metrics, report, encoder,
    index) to MLflow and register the ranker as `challenger`."""
    metrics = EvaluationMetrics.read(cfg).values()
    training = RankerTraining.read(cfg)
    encoder = EncoderTraining.read(cfg)
    metrics["encoder_loss_first"] = encoder.loss_first
    metrics["encoder_loss_last"] = encoder.loss_last
    metrics["ranker_train_seconds"] = training.seconds
    result = registry.log_and_register(
        cfg,
        cfg.paths.ranker_dir(cfg.ranker.feature_set),
        cfg.paths.encoder_dir,
        cfg.paths.evaluation,
        metrics,
        training.history,
        # The index belongs to the encoder version that built it: both are artifacts of this run.
        extra_artifacts={
            "validation": cfg.paths.validation_summary,
            "tweet_index": cfg.paths.tweet_index,
        },
        series={"encoder_loss": [float(point["loss"]) for point in encoder.loss_curve]},
        params=training.days_params(),
    )
    registration = Registration(run_id=result["run_id"], version=result["version"])
    registration.write(cfg)
    return registration.model_dump()


def promote(cfg: FeedrankConfig) -> dict[str, Any]:
    """Gate the registered challenger against the serving champion (bootstrap NDCG gain, RCE per
    head), or against LightGBM while there is no champion; it becomes `champion` only if it
    passes. The decision is logged to the challenger's MLflow run."""
    registration = Registration.read(cfg)
    metrics = EvaluationMetrics.read(cfg).values()
    return apply_gates(cfg, registration, metrics, gates.compare_with_champion(cfg))


def apply_gates(
    cfg: FeedrankConfig,
    registration: Registration,
    metrics: Mapping[str, float],
    comparison: gates.ChampionComparison | None,
) -> dict[str, Any]:
    """Decide on a registered challenger, move `champion` if it passes, log the decision."""
    decision = gates.decide(metrics, comparison, cfg.promote)
    previous = registry.alias_version(cfg, registry.CHAMPION)
    decision.update({"version": registration.version, "previous_champion": previous})
    if decision["promote"]:
        registry.set_alias(cfg, registry.CHAMPION, registration.version)
    decision["champion"] = registration.version if decision["promote"] else previous
    registry.log_decision(registration.run_id, decision)
    log.info(
        "release: %s v%s: %s",
        "PROMOTED" if decision["promote"] else "NOT promoted",
        registration.version,
        decision["reason"],
    )
    return decision
