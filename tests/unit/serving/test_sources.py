"""The home feed's candidate sources and generator on a hand-made world (no model, no services).

The world, at NOW (the last impression): viewer 1 follows 2 and 3 and last visited at NOW - 10 h.

- recent in-network: 11 (by 2, 2 h old), 12 (by 3, 5 h); 13 is a reply, 15 is from the future;
- backlog (before the visit, unseen): 22 (by 3, 30 h, 2 engagements), 21 (by 2, 20 h, none);
  23 (by 2) was seen; 24 (by 3, 200 h) is older than the 168 h backlog;
- seen by viewer 1, engagement since (after / before the viewer's latest impression):
  31 (by 2) 4 / 1, 32 (by 4) 3 / 0, 33 (by 3) 3 / 1 but two of the three by followees 2 and 3,
  34 (by 3) 4 / 2 with one by a followee (not enough), 35 (by 4) grew but is 200 h old;
- out-of-network of the last 48 h: 41 (by 4, #a, 3 engagements), 42 (by 5, #b, 2), 49 (by 7, #d,
  1), 44 (by 4, none), 45 (by 5, seen by 1), 14 (viewer 1's own); 43 (by 6) is 50 h old;
- viewer 1 engaged with 46 (#b) and 47 (#b #d): interest in 42 is 2/2, in 49 1/2, in 41 0.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig, ServeConfig
from pipelines.schema import TABLES
from serving.candidates.sources import (
    CANDIDATE_COLUMNS,
    SOURCE_NAMES,
    CandidateGenerator,
    EmbeddingRetrieval,
    FeedContext,
    InNetworkBacklog,
    InNetworkRecent,
    Resurfaced,
    TrendingInInterests,
)
from serving.candidates.world_index import WorldIndex
from tests.utils.world import conform

NOW = pd.Timestamp("2026-03-10 12:00", tz="UTC")
HOUR = pd.Timedelta(hours=1)
VIEWER = 1
NEWCOMER = 11  # follows 2 and 3, never served
STRANGER = 10  # follows nobody, never served nor engaged


TWEETS = [
    # tweet_id, author_id, age (h), parent, hashtags
    (11, 2, 2, None, []),
    (12, 3, 5, None, []),
    (13, 2, 1, 11, []),
    (14, 1, 3, None, []),
    (15, 2, -1, None, []),
    (21, 2, 20, None, []),
    (22, 3, 30, None, []),
    (23, 2, 15, None, []),
    (24, 3, 200, None, []),
    (31, 2, 40, None, []),
    (32, 4, 41, None, []),
    (33, 3, 42, None, []),
    (34, 3, 43, None, []),
    (35, 4, 200, None, []),
    (41, 4, 10, None, ["#a"]),
    (42, 5, 12, None, ["#b"]),
    (43, 6, 50, None, ["#b"]),
    (44, 4, 5, None, []),
    (45, 5, 20, None, []),
    (46, 6, 60, None, ["#b"]),
    (47, 6, 60, None, ["#b", "#d"]),
    (49, 7, 8, None, ["#d"]),
]


def _impressions() -> list[tuple[int, int, int, bool]]:
    """(viewer, tweet, served age in hours, engaged)."""
    seen_by_viewer = [
        (VIEWER, 23, 10, False),  # the last visit
        (VIEWER, 31, 38, False),  # 31 twice: the latest impression (36 h) counts
        (VIEWER, 31, 36, False),
        (VIEWER, 32, 30, False),
        (VIEWER, 33, 30, False),
        (VIEWER, 34, 30, False),
        (VIEWER, 35, 190, False),
        (VIEWER, 45, 10, False),
        (VIEWER, 46, 50, True),
        (VIEWER, 47, 50, True),
    ]
    engagements = [
        (5, 31, 37, True),
        *[(user, 31, age, True) for user, age in [(6, 20), (7, 15), (8, 12), (9, 11)]],
        *[(user, 32, 20, True) for user in (5, 6, 7)],
        (5, 33, 35, True),
        *[(user, 33, 20, True) for user in (2, 3, 6)],
        *[(user, 34, 35, True) for user in (5, 6)],
        *[(user, 34, 20, True) for user in (2, 7, 8, 9)],
        *[(user, 35, 100, True) for user in (5, 6, 7, 8, 9)],
        *[(user, 22, 25, True) for user in (5, 6)],
        *[(user, 41, 5, True) for user in (5, 6, 7)],
        *[(user, 42, 5, True) for user in (8, 9)],
        *[(user, 43, 45, True) for user in (5, 6)],
        (5, 45, 15, True),
        (5, 14, 2, True),
        (6, 49, 6, True),
        (9, 44, 0, False),  # the world's last impression: NOW
    ]
    return seen_by_viewer + engagements


def world() -> dict[str, pd.DataFrame]:
    tweets = pd.DataFrame(
        TWEETS, columns=["tweet_id", "author_id", "age_h", "in_reply_to_tweet_id", "hashtags"]
    )
    tweets = tweets.assign(
        created_at=NOW - tweets.pop("age_h") * HOUR,
        conversation_id=tweets["in_reply_to_tweet_id"].fillna(tweets["tweet_id"]).astype(int),
        in_reply_to_tweet_id=tweets["in_reply_to_tweet_id"].astype("float64"),
    )
    impressions = pd.DataFrame(_impressions(), columns=["viewer_id", "tweet_id", "age_h", "fav"])
    impressions = impressions.assign(
        impression_id=np.arange(len(impressions)),
        served_at=NOW - impressions.pop("age_h") * HOUR,
    )
    follows = pd.DataFrame({"follower_id": [1, 1, 11, 11], "followee_id": [2, 3, 2, 3]})
    return {
        "users": conform(pd.DataFrame({"user_id": range(1, 12)}), TABLES["users"]),
        "follows": conform(follows, TABLES["follows"]),
        "tweets": conform(tweets, TABLES["tweets"]),
        "impressions": conform(impressions, TABLES["impressions"]),
    }


def make_cfg(**serve: Any) -> FeedrankConfig:
    return FeedrankConfig(serve=ServeConfig(**serve))


@pytest.fixture(scope="module")
def index() -> WorldIndex:
    return WorldIndex.from_frames(make_cfg(), **world())


def _ids(frame: pd.DataFrame) -> list[int]:
    return [int(t) for t in frame["tweet_id"]]


def retrieve_fixed(viewer_id: int, seen: np.ndarray) -> pd.DataFrame:
    """Embedding retrieval stand-in: 11 by a followee, 45 seen, 13 a reply, 15 from the future,
    999 unknown, 14 the viewer's own; 44 and 41 are eligible (44 twice)."""
    ids = [11, 45, 13, 15, 999, 44, 41, 14, 44]
    return pd.DataFrame({"tweet_id": ids, "author_id": np.zeros(len(ids), dtype=np.int64)})


# ------------------------------------------------------------------------------- the index


def test_the_index_keeps_engagements_impressions_and_roots_by_author(index: WorldIndex) -> None:
    assert index.now == NOW
    ids = index.arrays.tweet_id
    by_3 = index.root_rows_by(np.array([3, 99]), int((NOW - 45 * HOUR).value), int(NOW.value))
    assert ids[by_3].tolist() == [34, 33, 22, 12]  # oldest first; 24 is too old
    rows = index.rows_of(np.array([31, 999]))
    assert rows[1] == -1
    # 31: engaged at 37, 20, 15, 12 and 11 h before NOW
    assert index.engagement_counts(rows[:1], int(NOW.value)).tolist() == [5]
    assert index.engagement_counts(rows[:1], int((NOW - 14 * HOUR).value)).tolist() == [3]
    owner, times, users = index.engagements_of(rows[:1])
    assert owner.tolist() == [0] * 5 and users.tolist() == [5, 6, 7, 8, 9]
    assert np.all(np.diff(times) > 0)
    seen_rows, served = index.impressions_of(VIEWER)
    latest = dict(zip(ids[seen_rows].tolist(), served.tolist(), strict=True))
    assert latest[31] == (NOW - 36 * HOUR).value and len(latest) == 9
    assert sorted(ids[index.engaged_rows(VIEWER, int(NOW.value))].tolist()) == [46, 47]
    assert index.engaged_rows(VIEWER, int((NOW - 51 * HOUR).value)).size == 0
    owner, tags = index.hashtags_of(index.rows_of(np.array([47, 11, 41])))
    assert owner.tolist() == [0, 0, 2] and len(set(tags.tolist())) == 3
    assert index.created_at(np.array([12])).tolist() == [(NOW - 5 * HOUR).value]
    with pytest.raises(KeyError):
        index.created_at(np.array([999]))


def test_the_context_unions_the_live_seen_tweets(index: WorldIndex) -> None:
    ctx = FeedContext.of(index, VIEWER, extra_seen=np.array([99, 11]))
    assert ctx.user_id == VIEWER and ctx.now == NOW
    assert ctx.last_visit == NOW - 10 * HOUR
    assert ctx.followees.tolist() == [2, 3]
    assert ctx.seen.tolist() == [11, 23, 31, 32, 33, 34, 35, 45, 46, 47, 99]
    assert FeedContext.of(index, NEWCOMER).last_visit is None
    cfg = make_cfg().serve
    assert _ids(InNetworkRecent(index, cfg).fetch(ctx, 10)) == [12]  # 11 was served live


# ------------------------------------------------------------------------------- the sources


def test_in_network_recent_is_what_followees_posted_since_the_last_visit(
    index: WorldIndex,
) -> None:
    source = InNetworkRecent(index, make_cfg().serve)
    got = source.fetch(FeedContext.of(index, VIEWER), limit=10)
    assert list(got.columns) == list(CANDIDATE_COLUMNS)
    assert _ids(got) == [11, 12]  # newest first; 13 a reply, 15 not posted yet
    assert got["source"].tolist() == ["in_network_recent"] * 2
    assert got["in_network"].tolist() == [True, True]
    assert got["original_tweet_id"].tolist() == [11, 12]
    assert got["tweet_id"].dtype == np.int64 and got["author_id"].tolist() == [2, 3]
    # Never served: the 72 h lookback, newest first, cut at the limit.
    newcomer = FeedContext.of(index, NEWCOMER)
    assert _ids(source.fetch(newcomer, 100)) == [11, 12, 23, 21, 22, 31, 33, 34]
    assert _ids(source.fetch(newcomer, 3)) == [11, 12, 23]
    short = InNetworkRecent(index, make_cfg(in_network_lookback_hours=10).serve)
    assert _ids(short.fetch(newcomer, 100)) == [11, 12]


def test_in_network_backlog_is_the_unseen_rest_of_the_week_most_engaged_first(
    index: WorldIndex,
) -> None:
    source = InNetworkBacklog(index, make_cfg().serve)
    got = source.fetch(FeedContext.of(index, VIEWER), limit=10)
    assert _ids(got) == [22, 21]  # 2 engagements, then none; 23 seen, 24 too old
    assert got["source"].tolist() == ["in_network_backlog"] * 2
    assert source.fetch(FeedContext.of(index, NEWCOMER), 10).empty  # no last visit
    short = InNetworkBacklog(index, make_cfg(backlog_lookback_hours=25).serve)
    assert _ids(short.fetch(FeedContext.of(index, VIEWER), 10)) == [21]


def test_resurfaced_are_seen_tweets_whose_engagement_grew(index: WorldIndex) -> None:
    source = Resurfaced(index, make_cfg().serve)
    got = source.fetch(FeedContext.of(index, VIEWER), limit=10)
    # growth after / (before + 1): 32 3/1, 31 4/2, 33 3/2 (through followees); 34 did not grow
    # enough, 35 is too old.
    assert _ids(got) == [32, 31, 33]
    assert got["in_network"].tolist() == [False, True, True]
    assert got["source"].tolist() == ["resurfaced"] * 3
    assert _ids(source.fetch(FeedContext.of(index, VIEWER), limit=1)) == [32]
    strict = Resurfaced(index, make_cfg(resurface_min_new_engagements=4).serve)
    assert _ids(strict.fetch(FeedContext.of(index, VIEWER), 10)) == [31, 33]
    assert source.fetch(FeedContext.of(index, NEWCOMER), 10).empty


def test_embedding_retrieval_keeps_servable_out_of_network_tweets(index: WorldIndex) -> None:
    source = EmbeddingRetrieval(index, make_cfg().serve, retrieve_fixed)
    got = source.fetch(FeedContext.of(index, VIEWER), limit=10)
    assert _ids(got) == [44, 41]
    assert got["author_id"].tolist() == [4, 4]  # from the index, not the retriever
    assert got["in_network"].tolist() == [False, False]
    assert got["source"].tolist() == ["out_of_network_embedding"] * 2
    assert _ids(source.fetch(FeedContext.of(index, VIEWER), limit=1)) == [44]
    assert (
        EmbeddingRetrieval(index, make_cfg().serve, None)
        .fetch(FeedContext.of(index, VIEWER), 10)
        .empty
    )


def test_trending_weights_engagements_by_the_viewers_hashtag_interests(index: WorldIndex) -> None:
    source = TrendingInInterests(index, make_cfg().serve)
    ctx = FeedContext.of(index, VIEWER)
    rows = index.rows_of(np.array([41, 42, 49]))
    assert source.interest(ctx, rows, int(NOW.value)).tolist() == [0.0, 1.0, 0.5]
    got = source.fetch(ctx, limit=10)
    # scores 2 * (1 + 1) = 4, 3 * 1 = 3, 1 * 1.5; followees', seen, own and old ones excluded
    assert _ids(got) == [42, 41, 49]
    assert got["source"].tolist() == ["out_of_network_trending"] * 3
    assert got["in_network"].tolist() == [False] * 3
    # No history: plain trending, most engaged first, then newest.
    plain = source.fetch(FeedContext.of(index, STRANGER), limit=100)
    assert _ids(plain) == [34, 31, 33, 41, 32, 42, 22, 14, 49, 45]
    assert _ids(source.fetch(FeedContext.of(index, STRANGER), limit=2)) == [34, 31]


# ----------------------------------------------------------------------------- the generator


def test_the_generator_runs_every_source_in_priority_order(index: WorldIndex) -> None:
    generator = CandidateGenerator(index, make_cfg().serve, retrieve_fixed)
    frame, counts = generator.generate_with_counts(FeedContext.of(index, VIEWER))
    assert _ids(frame) == [11, 12, 22, 21, 32, 31, 33, 44, 41, 42, 49]
    assert frame["source"].tolist() == (
        ["in_network_recent"] * 2
        + ["in_network_backlog"] * 2
        + ["resurfaced"] * 3
        + ["out_of_network_embedding"] * 2
        + ["out_of_network_trending"] * 2  # 41 went to retrieval first
    )
    assert frame["in_network"].tolist() == [True] * 4 + [False, True, True] + [False] * 4
    assert counts == {
        "in_network_recent": 2,
        "in_network_backlog": 2,
        "resurfaced": 3,
        "out_of_network_embedding": 2,
        "out_of_network_trending": 2,
    }
    assert list(counts) == list(SOURCE_NAMES)
    assert frame["tweet_id"].is_unique
    assert _ids(generator.generate(FeedContext.of(index, VIEWER))) == _ids(frame)


def test_the_fixed_quotas_bound_their_sources_and_in_network_fills_the_rest(
    index: WorldIndex,
) -> None:
    serve = make_cfg(
        max_candidates=7, resurface_candidates=1, out_of_network_candidates=1, trending_candidates=2
    ).serve
    frame, counts = CandidateGenerator(index, serve, retrieve_fixed).generate_with_counts(
        FeedContext.of(index, VIEWER)
    )
    # resurfaced 1, embedding 1, trending 2 (41 is free again), in-network the other 3
    assert _ids(frame) == [11, 12, 22, 32, 44, 42, 41]
    assert counts == {
        "in_network_recent": 2,
        "in_network_backlog": 1,
        "resurfaced": 1,
        "out_of_network_embedding": 1,
        "out_of_network_trending": 2,
    }
    # A cap below the fixed quotas: they keep their places, in-network gets none.
    tiny = CandidateGenerator(index, make_cfg(max_candidates=4).serve, retrieve_fixed)
    assert _ids(tiny.generate(FeedContext.of(index, VIEWER))) == [32, 31, 33, 44]


def test_a_viewer_back_after_weeks_gets_the_smaller_cap_with_shrunk_quotas(
    index: WorldIndex,
) -> None:
    settings: dict[str, Any] = {
        "max_candidates": 6,
        "returning_user_max_candidates": 3,
        "resurface_candidates": 0,
        "out_of_network_candidates": 2,
        "trending_candidates": 2,
    }
    ctx = FeedContext.of(index, VIEWER)  # away 10 h
    regular = CandidateGenerator(index, make_cfg(**settings).serve, retrieve_fixed)
    assert regular.cap(ctx) == 6
    assert _ids(regular.generate(ctx)) == [11, 12, 44, 41, 42, 49]
    # Away at least returning_user_days (0.4 days < 10 h): cap 3, out-of-network quotas halved.
    returning = CandidateGenerator(
        index, make_cfg(**settings, returning_user_days=0.4).serve, retrieve_fixed
    )
    assert returning.cap(ctx) == 3
    assert returning.quotas(ctx) == {
        "resurfaced": 0,
        "out_of_network_embedding": 1,
        "out_of_network_trending": 1,
    }
    frame, counts = returning.generate_with_counts(ctx)
    assert _ids(frame) == [11, 44, 42]
    assert counts["in_network_recent"] == 1 and counts["in_network_backlog"] == 0
    # The default caps: 1500, and 500 two weeks after the last visit.
    defaults = CandidateGenerator(index, make_cfg().serve)
    assert defaults.cap(ctx) == 1500
    later = replace(ctx, now=NOW + pd.Timedelta(days=14))
    assert defaults.cap(later) == 500
    assert defaults.quotas(later) == {
        "resurfaced": 16,
        "out_of_network_embedding": 266,  # 800 * 500 / 1500, rounded down
        "out_of_network_trending": 133,  # 400 * 500 / 1500
    }
    assert defaults.cap(replace(ctx, now=NOW + pd.Timedelta(days=13))) == 1500
    assert defaults.cap(FeedContext.of(index, NEWCOMER)) == 1500  # never served: not returning


def test_a_viewer_following_nobody_gets_only_trending_tweets_unseen(index: WorldIndex) -> None:
    # Viewer 8 saw 31, 34 (which did not grow since) and 42, and engaged with all three.
    frame, counts = CandidateGenerator(index, make_cfg().serve).generate_with_counts(
        FeedContext.of(index, 8)
    )
    assert _ids(frame) == [33, 41, 32, 22, 14, 49, 45]
    assert frame["in_network"].tolist() == [False] * 7
    assert counts == dict.fromkeys(SOURCE_NAMES, 0) | {"out_of_network_trending": 7}


def test_a_viewer_with_nothing_gets_an_empty_typed_frame() -> None:
    frames = world()
    frames["follows"] = frames["follows"].iloc[:0]
    frames["impressions"] = frames["impressions"].iloc[:0]
    index = WorldIndex.from_frames(make_cfg(), **frames)
    frame, counts = CandidateGenerator(index, make_cfg().serve).generate_with_counts(
        FeedContext.of(index, VIEWER)
    )
    assert frame.empty and list(frame.columns) == list(CANDIDATE_COLUMNS)
    assert frame["tweet_id"].dtype == np.int64 and frame["in_network"].dtype == bool
    assert counts == dict.fromkeys(SOURCE_NAMES, 0)
