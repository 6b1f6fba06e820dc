"""The world index: its clock, lookups, replies, the lake it loads, and its own candidate list
(in-network within the lookback, out-of-network trending with its quota)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.candidates.world_index import WorldIndex
from tests.utils.world import HOUR, NOW, ROOT, make_cfg, tiny_world, write_lake


def test_world_index_clock_and_lookups() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    assert index.now == NOW
    assert index.has_user(1) and not index.has_user(99)
    assert index.has_tweet(204) and not index.has_tweet(999)
    assert index.is_root(ROOT) and not index.is_root(202) and not index.is_root(999)
    assert index.followees(1).tolist() == [2, 3]
    assert index.seen(1).tolist() == [102]
    assert index.last_visit(1) == NOW - HOUR / 2
    assert index.last_visit(3) is None


def test_candidates_filter_seen_old_own_and_split_sources() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    candidates = index.candidates(1)
    assert list(candidates.columns) == ["tweet_id", "author_id", "in_network", "source"]
    assert candidates["tweet_id"].tolist() == [101, 104]
    assert candidates["in_network"].tolist() == [True, False]
    assert candidates["source"].tolist() == ["in_network", "out_of_network"]
    assert candidates["tweet_id"].dtype == np.int64
    # User 5 has seen 104 (the only engaged tweet) and follows nobody.
    assert index.candidates(5).empty


def test_candidates_respect_the_caps() -> None:
    index = WorldIndex.from_frames(make_cfg(max_candidates=1), **tiny_world())
    assert index.candidates(1)["tweet_id"].tolist() == [104]  # out-of-network keeps its quota
    index = WorldIndex.from_frames(make_cfg(out_of_network_candidates=0), **tiny_world())
    assert index.candidates(1)["tweet_id"].tolist() == [101]


def test_replies_are_the_conversation_without_its_root() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    replies = index.replies(ROOT)
    assert replies["tweet_id"].tolist() == [202, 203, 204]
    assert replies["in_reply_to_tweet_id"].tolist() == [ROOT, ROOT, 202]
    assert index.replies(101).empty


def test_world_index_loads_from_the_lake(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    write_lake(cfg)
    index = WorldIndex.load(cfg)
    assert index.now == NOW
    assert index.candidates(1)["tweet_id"].tolist() == [101, 104]
