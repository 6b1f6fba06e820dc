"""The conversation context of a reply, on a hand-made reply tree (times in hours after T0)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.conversation.context import CONTEXT_COLUMNS, conversation_context
from tests.utils.factories import at

ROOT_AUTHOR = 1

# Conversation 100 (by user 1):
#   100 (h0, by 1)
#   ├── 101 (h1, by 2)
#   │   ├── 103 (h3, by 1: the root author answers 101)
#   │   │   └── 105 (h5, by 4)
#   │   └── 104 (h4, by 3)
#   └── 102 (h2, by 1: the root author's own reply)
# Conversation 200 (by user 9): 201 (h1, by 2) answers a missing parent 299.
TREE = [
    (100, 1, 0, 100, None),
    (101, 2, 1, 100, 100),
    (102, 1, 2, 100, 100),
    (103, 1, 3, 100, 101),
    (104, 3, 4, 100, 101),
    (105, 4, 5, 100, 103),
    (200, 9, 0, 200, None),
    (201, 2, 1, 200, 299),
]


def tweets() -> pd.DataFrame:
    frame = pd.DataFrame(
        TREE,
        columns=["tweet_id", "author_id", "hours", "conversation_id", "in_reply_to_tweet_id"],
    )
    frame["created_at"] = [at(h) for h in frame.pop("hours")]
    frame["in_reply_to_tweet_id"] = frame["in_reply_to_tweet_id"].astype("Int64")
    return frame


def context(ids: list[int], moment: object) -> pd.DataFrame:
    candidates = pd.DataFrame({"tweet_id": ids, "viewer_id": 7})
    return conversation_context(tweets(), candidates, moment)


def test_every_column_is_there_in_order_with_integer_counts_and_float_seconds() -> None:
    out = context([101, 104], at(10))
    assert tuple(out.columns) == CONTEXT_COLUMNS
    assert out["reply_depth"].dtype == np.int64 and out["reply_age_s"].dtype == np.float64


def test_depth_counts_hops_to_the_root() -> None:
    assert context([100, 101, 102, 103, 104, 105], at(10))["reply_depth"].tolist() == [
        0,
        1,
        1,
        2,
        2,
        3,
    ]


def test_a_missing_parent_counts_as_a_direct_reply_of_the_root() -> None:
    assert context([201], at(10))["reply_depth"].tolist() == [2]


def test_root_author_replied_only_once_the_reply_exists() -> None:
    out = context([101, 101, 101, 104], [at(2), at(3), at(3.5), at(10)])
    # 103 (by the root author) answers 101 at hour 3: strictly before `at` counts.
    assert out["root_author_replied"].tolist() == [0, 0, 1, 0]


def test_is_root_author_marks_the_root_authors_own_replies() -> None:
    assert context([101, 102, 103, 201], at(10))["is_root_author"].tolist() == [0, 1, 1, 0]


def test_descendants_count_every_reply_below_created_strictly_before_at() -> None:
    out = context([101, 101, 101, 103, 105], [at(3), at(4.5), at(6), at(6), at(6)])
    # below 101: 103 (h3), 104 (h4), 105 (h5, under 103)
    assert out["reply_descendants"].tolist() == [0, 2, 3, 1, 0]


def test_conversation_size_counts_replies_before_at_without_the_root() -> None:
    out = context([101, 101, 101, 201], [at(1), at(2.5), at(9), at(9)])
    assert out["conversation_size"].tolist() == [0, 2, 5, 1]


def test_ages_are_seconds_from_the_root_and_from_the_reply() -> None:
    out = context([103], at(4))
    assert out["conversation_age_s"].tolist() == [4 * 3600.0]
    assert out["reply_age_s"].tolist() == [3600.0]


def test_a_conversation_without_its_root_has_no_age_and_no_root_author() -> None:
    frame = tweets()
    frame = frame[frame["tweet_id"] != 100]
    candidates = pd.DataFrame({"tweet_id": [102], "viewer_id": [7]})
    out = conversation_context(frame, candidates, at(10))
    assert np.isnan(out["conversation_age_s"].iloc[0])
    assert out["is_root_author"].tolist() == [0]


def test_one_moment_for_all_equals_the_same_moment_for_each() -> None:
    ids = [101, 102, 103, 104, 105]
    pd.testing.assert_frame_equal(context(ids, at(4.5)), context(ids, [at(4.5)] * len(ids)))


def test_naive_moments_are_utc() -> None:
    naive = pd.Timestamp(at(4.5).tz_convert(None))
    pd.testing.assert_frame_equal(context([101], naive), context([101], at(4.5)))


def test_an_unknown_candidate_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\[999\]"):
        context([101, 999], at(10))


def test_a_wrong_number_of_moments_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 moments for 3 candidates"):
        context([101, 102, 103], [at(1), at(2)])


def test_missing_tweet_columns_are_named() -> None:
    with pytest.raises(ValueError, match="conversation_id"):
        conversation_context(
            tweets().drop(columns="conversation_id"),
            pd.DataFrame({"tweet_id": [101], "viewer_id": [7]}),
            at(1),
        )


def test_microsecond_stamps_as_the_lake_holds_them_count_like_nanosecond_ones() -> None:
    frame = tweets()
    frame["created_at"] = frame["created_at"].astype("datetime64[us, UTC]")
    candidates = pd.DataFrame({"tweet_id": [101, 103], "viewer_id": 7})
    moments = pd.Series([at(3.5), at(3.5)]).astype("datetime64[us, UTC]")
    out = conversation_context(frame, candidates, moments)
    pd.testing.assert_frame_equal(out, context([101, 103], at(3.5)))
    assert out["reply_age_s"].tolist() == [2.5 * 3600.0, 0.5 * 3600.0]
