"""The world index grows with the live service: appended tweets are candidates at once, replies
join their conversations, live engagements count for trending and resurfaced, and an extended
index is the very index a rebuild with every tweet would give (the same lookups per request)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from serving.candidates.sources import CandidateGenerator, FeedContext
from serving.candidates.world_index import WorldIndex, timestamp_ns
from tests.utils.world import HOUR, NOW, ROOT, make_cfg, tiny_world


def posted(rows: list[tuple[int, int, pd.Timestamp, int | None, int]]) -> pd.DataFrame:
    """Posted tweets (tweet_id, author_id, created_at, parent, conversation) in the index's
    columns."""
    frame = pd.DataFrame(
        rows,
        columns=["tweet_id", "author_id", "created_at", "in_reply_to_tweet_id", "conversation_id"],
    )
    return frame.assign(
        text=[f"posted {t}" for t in frame["tweet_id"]],
        toxicity=0.0,
        hashtags=[["news"] for _ in range(len(frame))],
        in_reply_to_tweet_id=frame["in_reply_to_tweet_id"].astype("Int64"),
    )


NEW = posted(
    [
        (301, 2, NOW + HOUR / 4, None, 301),  # by a followee of user 1
        (302, 4, NOW + HOUR / 3, None, 302),  # out of network for user 1
        (303, 3, NOW + HOUR / 2, ROOT, ROOT),  # a reply into the tiny world's conversation
    ]
)
LATER = NOW + HOUR


def context(index: WorldIndex, user_id: int, now: pd.Timestamp = LATER) -> FeedContext:
    return replace(FeedContext.of(index, user_id), now=now)


def test_an_appended_tweet_is_a_candidate_of_a_followers_next_feed_at_once() -> None:
    cfg = make_cfg()
    index = WorldIndex.from_frames(cfg, **tiny_world())
    generator = CandidateGenerator(index, cfg.serve)
    before = generator.generate(context(index, 1))
    assert 301 not in before["tweet_id"].tolist()

    assert index.extend(NEW) == 3

    after = generator.generate(context(index, 1))
    new = after[after["tweet_id"] == 301]
    assert new["source"].tolist() == ["in_network_recent"]
    assert new["in_network"].tolist() == [True]
    assert index.has_tweet(303) and not index.is_root(303)
    # Not before its creation time: the clock decides what exists.
    early = generator.generate(context(index, 1, NOW + HOUR / 8))
    assert 301 not in early["tweet_id"].tolist()


def test_an_appended_reply_joins_its_conversation() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    index.extend(NEW)
    replies = index.replies(ROOT)
    assert replies["tweet_id"].tolist() == [202, 203, 204, 303]
    assert replies.set_index("tweet_id").loc[303, "in_reply_to_tweet_id"] == ROOT


def test_extend_skips_known_ids_and_keeps_rows_in_time_order() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    assert index.extend(NEW) == 3
    assert index.extend(NEW) == 0
    # Older than the newest indexed tweet: indexed when it arrived, so the rows stay sorted.
    late = posted([(304, 5, NOW - 10 * HOUR, None, 304)])
    assert index.extend(late) == 1
    created = index.arrays.created_ns
    assert (np.diff(created) >= 0).all()
    assert created[index.rows_of(np.array([304]))[0]] == timestamp_ns(NOW + HOUR / 2)
    assert index.tweet(304)["created_at"] == NOW - 10 * HOUR  # the tweet keeps its own time


def test_an_extended_index_answers_every_request_as_a_rebuilt_one() -> None:
    cfg = make_cfg()
    extended = WorldIndex.from_frames(cfg, **tiny_world())
    extended.extend(NEW.iloc[:1])
    extended.extend(NEW.iloc[1:])
    frames = tiny_world()
    every = pd.concat(
        [frames["tweets"], NEW.assign(in_reply_to_tweet_id=NEW["in_reply_to_tweet_id"])],
        ignore_index=True,
    )
    rebuilt = WorldIndex.from_frames(cfg, **{**frames, "tweets": every})

    assert extended.arrays.tweet_id.tolist() == rebuilt.arrays.tweet_id.tolist()
    assert extended.arrays.created_ns.tolist() == rebuilt.arrays.created_ns.tolist()
    rows = np.arange(extended.n_tweets)
    for name in ("hashtags_of", "engagements_of"):
        got, want = getattr(extended, name)(rows), getattr(rebuilt, name)(rows)
        assert [len(part) for part in got] == [len(part) for part in want]
    start, end = timestamp_ns(NOW - 200 * HOUR), timestamp_ns(LATER)
    for authors in ([2], [2, 3, 4], [1, 5]):
        assert (
            extended.root_rows_by(np.array(authors), start, end).tolist()
            == rebuilt.root_rows_by(np.array(authors), start, end).tolist()
        )
    for user in range(1, 6):
        got = CandidateGenerator(extended, cfg.serve).generate(context(extended, user))
        want = CandidateGenerator(rebuilt, cfg.serve).generate(context(rebuilt, user))
        pd.testing.assert_frame_equal(got, want)


def test_live_engagements_count_for_trending_at_once() -> None:
    cfg = make_cfg()
    index = WorldIndex.from_frames(cfg, **tiny_world())
    generator = CandidateGenerator(index, cfg.serve)
    assert 106 not in generator.generate(context(index, 1))["tweet_id"].tolist()  # never engaged

    added = index.add_engagements(
        np.array([106, 999]), np.array([3, 3]), np.array([timestamp_ns(NOW + HOUR / 2)] * 2)
    )

    assert added == 1  # the unknown tweet is skipped
    trending = generator.generate(context(index, 1))
    assert trending.set_index("tweet_id").loc[106, "source"] == "out_of_network_trending"
    # Counted at its time: before it, the tweet had no engagement.
    assert index.engagement_counts(index.rows_of(np.array([106])), timestamp_ns(NOW)).tolist() == [
        0
    ]


def test_live_engagements_after_an_impression_resurface_the_tweet() -> None:
    cfg = make_cfg(resurface_min_new_engagements=2, resurface_min_growth=1.5)
    index = WorldIndex.from_frames(cfg, **tiny_world())
    generator = CandidateGenerator(index, cfg.serve)
    # User 1 saw 102 at NOW - 30 min; two engagements after that make it grow.
    assert generator.resurfaced.rows(context(index, 1), 10).tolist() == []
    at = timestamp_ns(NOW + HOUR / 2)
    index.add_engagements(np.array([102, 102]), np.array([4, 5]), np.array([at, at]))
    rows = generator.resurfaced.rows(context(index, 1), 10)
    assert index.arrays.tweet_id[rows].tolist() == [102]


def test_extend_takes_the_event_logs_rows_as_they_are() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    frame = NEW.assign(seq=[1, 2, 3], language="en", has_image=False)
    assert index.extend(frame) == 3  # extra columns (seq, language, ...) are ignored
