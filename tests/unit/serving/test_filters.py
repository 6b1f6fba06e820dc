"""The feed's filters on hand-made candidate frames: seen, blocked or muted authors, own tweets,
duplicates (retweets included)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.candidates.filters import (
    FILTER_NAMES,
    apply_filters,
    drop_authors,
    drop_duplicates,
    drop_own,
    drop_seen,
)
from serving.candidates.sources import CANDIDATE_COLUMNS, FeedContext

VIEWER = 5
BLOCKED = 11
SEEN = np.array([104, 105])


def candidates() -> pd.DataFrame:
    rows = [
        # tweet_id, author_id, in_network, source, original_tweet_id
        (101, 10, True, "in_network_recent", 101),
        (102, VIEWER, True, "in_network_recent", 102),  # the viewer's own
        (103, BLOCKED, True, "in_network_recent", 103),
        (104, 12, True, "in_network_backlog", 104),  # seen
        (105, 12, True, "resurfaced", 105),  # seen, but resurfaced on purpose
        (106, 13, False, "out_of_network_trending", 104),  # a retweet of the seen 104
        (101, 10, False, "out_of_network_trending", 101),  # 101 again
        (107, 14, False, "out_of_network_trending", 101),  # a retweet of the candidate 101
        (108, 15, False, "out_of_network_embedding", 120),  # a retweet of 120
        (109, 16, False, "out_of_network_trending", 120),  # another retweet of 120
        (110, 17, False, "out_of_network_trending", 110),
    ]
    return pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))


def context() -> FeedContext:
    return FeedContext(
        user_id=VIEWER,
        now=pd.Timestamp("2026-03-10 12:00", tz="UTC"),
        last_visit=None,
        followees=np.array([10, 12], dtype=np.int64),
        seen=SEEN,
    )


def _ids(frame: pd.DataFrame) -> list[int]:
    return [int(t) for t in frame["tweet_id"]]


def test_drop_seen_keeps_resurfaced_and_drops_retweets_of_seen_tweets() -> None:
    kept = drop_seen(candidates(), SEEN)
    assert _ids(kept) == [101, 102, 103, 105, 101, 107, 108, 109, 110]
    assert list(kept.index) == list(range(9))
    assert _ids(drop_seen(candidates(), SEEN, exempt_sources=())) == [
        101,
        102,
        103,
        101,
        107,
        108,
        109,
        110,
    ]
    assert len(drop_seen(candidates(), np.zeros(0, dtype=np.int64))) == 11


def test_drop_authors_and_drop_own() -> None:
    assert _ids(drop_authors(candidates(), np.array([BLOCKED, 15]))) == [
        101,
        102,
        104,
        105,
        106,
        101,
        107,
        109,
        110,
    ]
    assert len(drop_authors(candidates(), np.zeros(0, dtype=np.int64))) == 11
    assert VIEWER not in drop_own(candidates(), VIEWER)["author_id"].tolist()
    assert len(drop_own(candidates(), VIEWER)) == 10


def test_drop_duplicates_counts_a_retweet_as_its_original() -> None:
    kept = drop_duplicates(candidates())
    # 106 (retweets the candidate 104), 101 again, 107 (retweets 101) and 109 (a second retweet
    # of 120) go
    assert _ids(kept) == [101, 102, 103, 104, 105, 108, 110]
    assert kept["source"].iloc[0] == "in_network_recent"  # the first of 101 stays
    # A retweet first and its original later: the first stays, whichever it is.
    frame = candidates().iloc[[7, 0]]
    assert _ids(drop_duplicates(frame)) == [107]
    # Frames without original_tweet_id hold original tweets only.
    plain = candidates().drop(columns="original_tweet_id")
    assert _ids(drop_duplicates(plain)) == [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]


def test_apply_filters_runs_them_all_and_counts_what_each_removed() -> None:
    kept, removed = apply_filters(candidates(), context(), np.array([BLOCKED]))
    assert _ids(kept) == [101, 105, 108, 110]
    assert kept["source"].tolist() == [
        "in_network_recent",
        "resurfaced",
        "out_of_network_embedding",
        "out_of_network_trending",
    ]
    assert removed == {"own": 1, "blocked_or_muted": 1, "seen": 2, "duplicates": 3}
    assert tuple(removed) == FILTER_NAMES
    assert list(kept.columns) == list(CANDIDATE_COLUMNS)


def test_apply_filters_on_an_empty_frame() -> None:
    empty = candidates().iloc[:0]
    kept, removed = apply_filters(empty, context(), np.zeros(0, dtype=np.int64))
    assert kept.empty and removed == dict.fromkeys(FILTER_NAMES, 0)
