"""The conversation training set's rows, on a hand-made lake (the Feast join is exercised by the
DAG): the window's conversation impressions with labels, dwell, and their context when served;
a lake without them is skipped, not an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.conversation.context import follow_relations
from pipelines.conversation.ranker import conversation_config, skip_reason
from pipelines.conversation.training_set import (
    CONTEXT_FIELDS,
    build_conversation_set,
    context_frame,
    conversation_entities,
)
from tests.utils.factories import at
from tests.utils.lake import write_impressions, write_static

DAYS = [f"2026-03-0{d}" for d in range(2, 8)]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    """Six lake days, each with a home and a conversation impression (tweet 11 on viewer 3's
    conversation page); window of 4 days."""
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    config = FeedrankConfig.model_validate(
        {"train": {"window_days": 4}, "ranker": {"test_days": 2}}
    )
    write_static(config, DAYS[0])
    for day in DAYS:
        write_impressions(config, day)
    return config


def test_the_rows_are_the_windows_conversation_impressions_with_context_and_dwell(
    cfg: FeedrankConfig,
) -> None:
    frame = conversation_entities(cfg)
    assert len(frame) == 4  # one per window day
    assert set(frame["tweet_id"]) == {11} and set(frame["viewer_id"]) == {3}
    labels = {f"label_{head}" for head in cfg.conversation_ranker.heads}
    assert labels <= set(frame.columns) and "dwell_ms" in frame.columns
    assert set(CONTEXT_FIELDS) <= set(frame.columns)
    # tweet 11 is a root (the lake's only conversation): depth 0, no replies
    assert frame["reply_depth"].tolist() == [0] * 4
    assert frame["conversation_size"].tolist() == [0] * 4


def test_a_lake_without_conversation_impressions_is_skipped_and_a_stale_set_removed(
    cfg: FeedrankConfig,
) -> None:
    for day in DAYS:
        rows = schema.read_table(cfg.paths.raw, "impressions", [day])
        home = rows[rows["surface"] == "home"]
        schema.write_partition(home, cfg.paths.raw, "impressions", day, schema.IMPRESSIONS)
    stale = cfg.paths.conversation_training_set
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"from an earlier run")
    summary = build_conversation_set(cfg)
    assert "no `conversation` impressions" in summary["skipped"]
    assert summary["train_rows"] == 0 and not stale.exists()
    assert "no conversation training set" in str(skip_reason(cfg))


def test_context_is_taken_when_each_impression_was_served() -> None:
    tweets = pd.DataFrame(
        {
            "tweet_id": [1, 2, 3],
            "author_id": [10, 20, 10],
            "created_at": [at(0), at(1), at(2)],
            "conversation_id": [1, 1, 1],
            "in_reply_to_tweet_id": pd.array([None, 1, 2], dtype="Int64"),
        }
    )
    follows = pd.DataFrame({"follower_id": [20, 30], "followee_id": [10, 20]})
    impressions = pd.DataFrame(
        {
            "tweet_id": [2, 2],
            "viewer_id": [30, 30],
            "author_id": [20, 20],
            "served_at": [at(1.5), at(3)],
        }
    )
    context = context_frame(tweets, follows, impressions)
    assert list(context.columns) == list(CONTEXT_FIELDS)
    assert context["root_author_replied"].tolist() == [0, 1]  # 3 (by the root author) at h2
    assert context["reply_descendants"].tolist() == [0, 1]
    assert context["replier_follows_root_author"].tolist() == [1, 1]
    assert context["root_author_follows_replier"].tolist() == [0, 0]


def test_an_impression_of_a_tweet_the_lake_lacks_is_an_error_naming_it() -> None:
    tweets = pd.DataFrame(
        {
            "tweet_id": [1],
            "author_id": [10],
            "created_at": [at(0)],
            "conversation_id": [1],
            "in_reply_to_tweet_id": pd.array([None], dtype="Int64"),
        }
    )
    impressions = pd.DataFrame(
        {"tweet_id": [7], "viewer_id": [3], "author_id": [5], "served_at": [at(1)]}
    )
    with pytest.raises(ValueError, match=r"\[7\]"):
        context_frame(tweets, pd.DataFrame({"follower_id": [], "followee_id": []}), impressions)


def test_follow_relations_read_the_graph_both_ways_and_an_unknown_root_author_follows_nobody() -> (
    None
):
    follows = pd.DataFrame({"follower_id": [1, 2], "followee_id": [2, 3]})
    relations = follow_relations(follows, np.array([1, 3, 1]), np.array([2, 2, -1]))
    assert relations["replier_follows_root_author"].tolist() == [1, 0, 0]
    assert relations["root_author_follows_replier"].tolist() == [0, 1, 0]


def test_the_conversation_config_puts_the_conversation_ranker_where_the_shared_code_reads_it(
    cfg: FeedrankConfig,
) -> None:
    view = conversation_config(cfg, {"fav": 1.0, "dwell": 2.0})
    assert view.ranker == cfg.conversation_ranker and view.ranker.feature_set == "conversation"
    assert view.blend.weights == {"fav": 1.0, "dwell": 2.0}
    assert view.tracking.ranker_model_name == cfg.tracking.conversation_model_name
    assert view.paths.ranker_dir(view.ranker.feature_set) == cfg.paths.conversation_ranker_dir
    # what a Ray Train worker does with it: validate it whole again
    again = FeedrankConfig.model_validate(view.model_dump(mode="json", by_alias=True))
    assert again.ranker.heads == cfg.conversation_ranker.heads
    assert conversation_config(cfg).blend.weights == cfg.conversation_blend.weights
