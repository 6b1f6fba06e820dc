"""The DAG's conversation steps on the smoke world: the reply ranker is trained on conversation
impressions, its blend tuned by grid search, evaluated against LightGBM and the oracle under
`conv_` names, and registered as a second model whose champion serving can load."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.conversation.ranker import conversation_config
from pipelines.handoffs import (
    ConversationBlend,
    ConversationEvaluationMetrics,
    ConversationRankerTraining,
    ConversationRegistration,
)
from pipelines.release.registry import alias_version, load_ranker
from serving.engine.conversation_scorer import tuned_weights

pytestmark = pytest.mark.e2e


def test_the_conversation_ranker_is_trained_on_conversation_impressions(
    trained_cfg: FeedrankConfig,
) -> None:
    frame = pd.read_parquet(trained_cfg.paths.conversation_training_set)
    assert set(frame["split"]) == {"train", "test"}
    assert frame["conv_reply_depth"].min() >= 1  # every row shows a reply
    training = ConversationRankerTraining.read(trained_cfg)
    assert training.train_rows == int((frame["split"] == "train").sum())
    assert training.bundle_dir == str(trained_cfg.paths.conversation_ranker_dir)


def test_the_conversation_ranker_is_evaluated_under_conv_names_with_a_tuned_blend(
    trained_cfg: FeedrankConfig,
) -> None:
    metrics = ConversationEvaluationMetrics.read(trained_cfg).values()
    ranker = trained_cfg.conversation_ranker
    for model in ("conv_ranker", "conv_lgbm", "conv_logreg", "conv_oracle"):
        assert f"{model}_ndcg" in metrics
        for head in ranker.heads:
            metric = "rce" if head in ranker.binary_heads else "r2"
            assert f"{model}_{metric}_{head}" in metrics
    # The oracle's true probabilities are the ceiling of every model on the commonest head.
    assert metrics["conv_oracle_rce_fav"] > metrics["conv_ranker_rce_fav"]
    assert metrics["conv_oracle_rce_fav"] > metrics["conv_lgbm_rce_fav"]
    blend = ConversationBlend.read(trained_cfg)
    assert blend.combinations > 1 and set(blend.weights) <= set(ranker.heads)
    assert not math.isnan(blend.check_ndcg_tuned) and not math.isnan(blend.check_ndcg_hand)
    assert metrics["conv_blend_dwell_ndcg_tuned"] == pytest.approx(blend.check_ndcg_tuned)


def test_the_conversation_ranker_is_registered_apart_and_served_with_its_blend(
    trained_cfg: FeedrankConfig,
) -> None:
    conversation = conversation_config(trained_cfg)
    registration = ConversationRegistration.read(trained_cfg)
    assert alias_version(conversation, "challenger") == registration.version
    assert alias_version(conversation, "champion") is not None
    model = load_ranker(conversation, "champion")
    assert model is not None and model.heads == trained_cfg.conversation_ranker.heads
    assert model.feature_set == "conversation"
    assert tuned_weights(model) == ConversationBlend.read(trained_cfg).weights
    # the feed's ranker is a model of its own
    assert trained_cfg.tracking.ranker_model_name != trained_cfg.tracking.conversation_model_name
