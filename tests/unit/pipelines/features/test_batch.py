"""Batch features on hand-made rows: correct counts, and no value from the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.features.batch import tweet_engagement, viewer_author, windowed_counts
from pipelines.inputs.spec import (
    REQUEST_FEATURES,
    feature_matrix,
    feature_names,
    request_time_columns,
    request_time_values,
)
from tests.utils.factories import at


def test_windowed_counts_by_hand() -> None:
    # key 7: events in hours 0, 1 and 5; window 2 hours.
    counts = windowed_counts(
        np.array([7, 7, 7]), np.array([0, 1, 5]), np.ones((3, 1)), windows=(2, 4), decay_hours=2.0
    ).set_index("boundary")
    # boundary t sums hours [t-2, t-1]
    assert counts.loc[1, "w2_0"] == 1  # hour 0
    assert counts.loc[2, "w2_0"] == 2  # hours 0, 1
    assert counts.loc[3, "w2_0"] == 1  # hour 1 (hour 0 left)
    assert counts.loc[4, "w2_0"] == 0  # both left
    assert counts.loc[6, "w2_0"] == 1 and counts.loc[6, "total_0"] == 3
    # the 4-hour window at boundary 5 sums hours [1, 4]: only hour 1
    assert counts.loc[5, "w4_0"] == 1
    # decayed at boundary 2: exp(-(2-0)/2) + exp(-(2-1)/2)
    assert counts.loc[2, "decayed_0"] == pytest.approx(np.exp(-1.0) + np.exp(-0.5))


def test_windowed_counts_keep_keys_apart() -> None:
    counts = windowed_counts(np.array([1, 2]), np.array([3, 3]), np.ones((2, 1)), windows=(5,))
    assert (counts.loc[counts["boundary"] == 4, "w5_0"] == 1).all()


def _impressions(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_tweet_engagement_never_counts_a_later_engagement() -> None:
    impressions = _impressions([{"tweet_id": 10, "served_at": at(0.5)}])
    events = pd.DataFrame({"viewer_id": [3], "tweet_id": [10], "action": ["fav"], "at": [at(2.25)]})
    table = tweet_engagement(impressions, events).sort_values("event_timestamp")
    # the fav (02:15) must not be visible in any row stamped at or before 02:15
    before = table[table["event_timestamp"] <= at(2.25)]
    assert (before["tweet_favs_window"] == 0).all() and len(before) > 0
    after = table[table["event_timestamp"] > at(2.25)]
    assert after["tweet_favs_window"].iloc[0] == 1 and after["tweet_favs_3d"].iloc[0] == 1
    # and every row is stamped at an hour boundary after the events it counts
    assert (table["event_timestamp"] >= at(1)).all()


def test_viewer_author_snapshots_are_stamped_after_their_day() -> None:
    impressions = _impressions(
        [
            {"viewer_id": 1, "tweet_id": 10, "served_at": at(10)},
            {"viewer_id": 1, "tweet_id": 11, "served_at": at(30)},
        ]
    )
    tweets = pd.DataFrame({"tweet_id": [10, 11], "author_id": [5, 5]})
    events = pd.DataFrame(
        {"viewer_id": [1], "tweet_id": [11], "author_id": [5], "action": ["fav"], "at": [at(30.1)]}
    )
    table = viewer_author(impressions, events, tweets).set_index("event_timestamp")
    # day 1 (impression only) is known from day 2 00:00; the day-2 engagement only from day 3
    assert table.loc[at(24), "va_impressions"] == 1 and table.loc[at(24), "va_engagements"] == 0
    assert table.loc[at(48), "va_impressions"] == 2 and table.loc[at(48), "va_engagements"] == 1


def test_request_time_features_offline_equal_online() -> None:
    when = at(25.5).timestamp()
    frame = pd.DataFrame(
        {
            "request_time_s": [when, when],
            "tweet_created_s": [at(1).timestamp(), at(20).timestamp()],
            "tweet_language": ["en", "ja"],
            "viewer_language": ["en", "en"],
            "viewer_follows_author": [True, False],
            "tweet_embedding": [np.array([1.0, 0.0]), np.array([0.0, 1.0])],
            "viewer_embedding": [np.array([0.6, 0.8]), None],
        }
    )
    # Offline: Feast's on-demand view on the joined frame; online: the same function on plain
    # columns (vectors as held matrices, a missing one NaN), as the serving path calls it.
    offline = request_time_values(frame)
    columns = {name: frame[name].to_numpy() for name in frame if not name.endswith("embedding")}
    columns["tweet_embedding"] = np.array([[1.0, 0.0], [0.0, 1.0]])
    columns["viewer_embedding"] = np.array([[0.6, 0.8], [np.nan, np.nan]])
    online = request_time_columns(columns)
    assert list(offline.columns) == list(REQUEST_FEATURES) == list(online)
    pd.testing.assert_frame_equal(offline, pd.DataFrame(online, index=frame.index))
    assert offline["tweet_age_hours"].tolist() == [24.5, 5.5]
    assert offline["hour_of_day"].tolist() == [1.0, 1.0]
    assert offline["day_of_week"].tolist() == [1.0, 1.0]  # 2026-03-03 is a Tuesday
    assert offline["same_language"].tolist() == [1.0, 0.0]
    assert offline["in_network"].tolist() == [1.0, 0.0]
    assert offline["viewer_tweet_similarity"].iloc[0] == pytest.approx(0.6)
    assert np.isnan(offline["viewer_tweet_similarity"].iloc[1])


def test_feature_matrix_has_the_spec_columns_in_order() -> None:
    from pipelines.inputs.spec import DENSE_FEATURES

    frame = pd.DataFrame({name: [1.0, np.nan] for name in DENSE_FEATURES})
    frame["tweet_embedding"] = [np.ones(3), None]
    frame["viewer_embedding"] = [np.zeros(3), np.full(3, 2.0)]
    matrix = feature_matrix(frame, embedding_dim=3)
    assert matrix.shape == (2, len(feature_names(3)))
    assert (
        np.isnan(matrix[1, 0])
        and (matrix[1, len(DENSE_FEATURES) : len(DENSE_FEATURES) + 3] == 0).all()
    )
    with pytest.raises(KeyError, match="viewer_embedding"):
        feature_matrix(frame.drop(columns="viewer_embedding"), embedding_dim=3)


def test_days_to_next_holiday_by_hand() -> None:
    from pipelines.inputs.spec import days_to_next_holiday

    stamps = [
        pd.Timestamp("2026-03-02", tz="UTC"),  # next is Jul 4: beyond the 60-day horizon
        pd.Timestamp("2026-12-20 13:00", tz="UTC"),  # Dec 25 in 5 days
        pd.Timestamp("2026-12-30", tz="UTC"),  # Jan 1 of the next year in 2 days
        pd.Timestamp("2026-02-14 23:00", tz="UTC"),  # the day itself
    ]
    seconds = np.array([s.timestamp() for s in stamps])
    assert days_to_next_holiday(seconds).tolist() == [60.0, 5.0, 2.0, 0.0]
