"""Without conversation impressions every conversation step says it skipped (the DAG goes on);
the conversation metrics are the feed's names under a `conv_` prefix, and the gates read them
back under the feed's names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import FeedrankConfig
from pipelines.conversation.evaluate import evaluate_conversation, prefix_models, prefixed
from pipelines.conversation.ranker import train_conversation_ranker
from pipelines.conversation.release import (
    promote_conversation,
    register_conversation,
    unprefixed,
)
from pipelines.evaluate.offline import flatten_metrics


@pytest.mark.parametrize(
    "step",
    [train_conversation_ranker, evaluate_conversation, register_conversation, promote_conversation],
)
def test_each_conversation_step_skips_without_a_conversation_set(
    step, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    summary = step(FeedrankConfig())
    assert "no conversation training set" in summary["skipped"]


def results() -> dict:
    """What `score_models` returns, small: two models, one head, one segment, one origin."""
    return {
        "heads": ["fav"],
        "models": {"ranker": {"fav": {"rce": 3.0}}, "oracle": {"fav": {"rce": 9.0}}},
        "ndcg": {"ranker": 0.7, "oracle": 1.0},
        "ndcg_realized": {"ranker": 0.6, "oracle": 0.65},
        "curves": {"ranker": {}, "oracle": {}},
        "segments": {"new_viewers": {"rows": 60, "models": {"ranker": {"fav": {"rce": 2.0}}}}},
        "ndcg_by_origin": {"organic": {"ranker": 0.7, "oracle": 1.0}},
    }


def test_conversation_metrics_are_the_feeds_names_with_a_conv_prefix() -> None:
    feed = flatten_metrics(results())
    conversation = {prefixed(k): v for k, v in flatten_metrics(prefix_models(results())).items()}
    assert conversation == {prefixed(k): v for k, v in feed.items()}
    assert conversation["conv_ranker_rce_fav"] == 3.0
    assert conversation["conv_oracle_ndcg"] == 1.0
    assert conversation["conv_ranker_rce_fav_new_viewers"] == 2.0
    assert conversation["conv_segment_rows_new_viewers"] == 60.0
    assert conversation["conv_ranker_ndcg_organic"] == 0.7


def test_the_gates_read_the_conversation_metrics_under_the_feeds_names() -> None:
    metrics = {"conv_ranker_ndcg": 0.8, "conv_lgbm_ndcg": 0.7, "ranker_ndcg": 0.1}
    assert unprefixed(metrics) == {"ranker_ndcg": 0.8, "lgbm_ndcg": 0.7}
