"""The conversation ranker: the feed ranker's model code (ParallelMaskNet, the Ray Train loop, the
baselines, the registry) run on the conversation training set with its own config section.

The shared code reads the ranker, the blend and the registered model name from a config;
:func:`conversation_config` is the config as that code sees the conversation ranker, so one
implementation trains, evaluates and registers both rankers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipelines.config import BlendConfig, FeedrankConfig
from pipelines.handoffs import ConversationRankerTraining

log = logging.getLogger(__name__)


def conversation_config(
    cfg: FeedrankConfig, weights: Mapping[str, float] | None = None
) -> FeedrankConfig:
    """`cfg` with the conversation ranker in the ranker's place: `conversation_ranker` as
    `ranker`, the blend `weights` (default: the hand weights of `conversation_blend`) as `blend`
    and the conversation model's registered name as the ranker's. Paths follow the ranker's
    feature set (`models/ranker_conversation`, `datasets/ranker_arrays_conversation.npz`)."""
    blend = BlendConfig(weights=dict(weights or cfg.conversation_blend.weights))
    tracking = cfg.tracking.model_copy(
        update={"ranker_model_name": cfg.tracking.conversation_model_name}
    )
    return cfg.model_copy(
        update={"ranker": cfg.conversation_ranker, "blend": blend, "tracking": tracking}
    )


def skip_reason(cfg: FeedrankConfig) -> str | None:
    """Why the conversation ranker cannot be trained from this run's conversation set (None when
    it can): no set (the lake had no conversation impressions), or an empty split."""
    path = cfg.paths.conversation_training_set
    if not path.exists():
        return (
            f"no conversation training set at {path}: the lake holds no conversation "
            "impressions (see the build_conversation_set step)"
        )
    splits = pd.read_parquet(path, columns=["split"])["split"].value_counts()
    empty = [split for split in ("train", "test") if not splits.get(split, 0)]
    if empty:
        return f"the conversation training set has no {' and no '.join(empty)} rows"
    return None


def train_conversation_ranker(cfg: FeedrankConfig) -> dict[str, Any]:
    """The `train_conversation_ranker` step: the reply ranker fitted with Ray Train on the
    conversation training set, saved under `paths.conversation_ranker_dir`; skipped (and said so)
    without conversation rows."""
    from pipelines.train.ranker import fit_ranker

    reason = skip_reason(cfg)
    if reason is not None:
        log.warning("conversation ranker: skipped: %s", reason)
        return {"skipped": reason}
    # Blend weights belong to one model: the new one gets its own from evaluate_conversation.
    cfg.paths.conversation_blend.unlink(missing_ok=True)
    training = fit_ranker(
        conversation_config(cfg), cfg.paths.conversation_training_set, ConversationRankerTraining
    )
    return training.model_dump()
