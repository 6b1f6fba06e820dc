"""Engagement counts at the clock's now: the batch definition on the same events (checked against
the windows written out by hand), and the pusher that recomputes them from the lake's history plus
the live event log, off the request path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.event_log import EventLog, ServedItem
from pipelines.features.freshness import DECAYED, PUSH_COLUMNS, tweet_engagement_at
from pipelines.inputs.catalog import ENGAGEMENT_DECAY_HOURS
from serving.live.counts import EngagementPusher, TweetHistory

T0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")
HOUR_S = 3600.0


def random_history(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impressions (tweet_id, served_at) and events (viewer_id, tweet_id, action, at) of three
    tweets over ten days."""
    rng = np.random.default_rng(seed)
    seconds = 10 * 24 * 3600
    impressions = pd.DataFrame(
        {
            "tweet_id": rng.integers(1, 4, 600),
            "served_at": T0 + pd.to_timedelta(rng.integers(0, seconds, 600), unit="s"),
        }
    )
    events = pd.DataFrame(
        {
            "viewer_id": rng.integers(1, 40, 300),
            "tweet_id": rng.integers(1, 4, 300),
            "action": rng.choice(["fav", "reply", "retweet", "quote"], 300),
            "at": T0 + pd.to_timedelta(rng.integers(0, seconds, 300), unit="s"),
        }
    ).sort_values("at", ignore_index=True)
    return impressions, events


def by_hand(
    tweet: int, impressions: pd.DataFrame, events: pd.DataFrame, now: pd.Timestamp
) -> dict[str, object]:
    """The definitions of the catalog, written out: a window of w hours at the end of now's
    hour holds what happened in the w hours before it, up to now."""
    boundary = int(now.timestamp() // HOUR_S) + 1
    views = impressions[(impressions["tweet_id"] == tweet) & (impressions["served_at"] <= now)]
    done = events[(events["tweet_id"] == tweet) & (events["at"] <= now)]
    view_hours = (views["served_at"].map(pd.Timestamp.timestamp) // HOUR_S).to_numpy()
    hours = (done["at"].map(pd.Timestamp.timestamp) // HOUR_S).to_numpy()

    def within(w: int, of: np.ndarray) -> np.ndarray:
        return of >= boundary - w

    action = done["action"].to_numpy()
    recent = done[within(72, hours)].iloc[::-1]
    favs = recent[recent["action"] == "fav"]
    return {
        "tweet_impressions_window": within(24, view_hours).sum(),
        "tweet_engagements_window": within(24, hours).sum(),
        "tweet_favs_window": (within(24, hours) & (action == "fav")).sum(),
        "tweet_replies_window": (within(24, hours) & (action == "reply")).sum(),
        "tweet_retweets_window": (within(24, hours) & (action == "retweet")).sum(),
        "tweet_engagements_total": len(done),
        "tweet_engagements_1h": within(1, hours).sum(),
        "tweet_engagements_3d": within(72, hours).sum(),
        "tweet_engagements_7d": within(168, hours).sum(),
        "tweet_favs_3d": (within(72, hours) & (action == "fav")).sum(),
        "tweet_replies_3d": (within(72, hours) & (action == "reply")).sum(),
        "tweet_retweets_2h": (within(2, hours) & (action == "retweet")).sum(),
        DECAYED: np.exp(-(now.timestamp() / HOUR_S - hours) / ENGAGEMENT_DECAY_HOURS).sum(),
        "tweet_recent_engagers": list(dict.fromkeys(recent["viewer_id"].tolist())),
        "tweet_recent_favers": list(dict.fromkeys(favs["viewer_id"].tolist())),
    }


@pytest.mark.parametrize(
    "now",
    [
        T0 + pd.Timedelta(days=4, minutes=37),
        T0 + pd.Timedelta(days=7),  # on an hour boundary
        T0 + pd.Timedelta(days=9, hours=23, minutes=59),
    ],
)
def test_counts_at_now_follow_the_batch_definition_on_the_same_events(now: pd.Timestamp) -> None:
    impressions, events = random_history()
    got = tweet_engagement_at(np.array([1, 2, 3]), impressions, events, now).set_index("tweet_id")
    assert list(got.reset_index().columns) == list(PUSH_COLUMNS)
    assert (got["event_timestamp"] == now).all()
    for tweet in (1, 2, 3):
        want = by_hand(tweet, impressions, events, now)
        for column, value in want.items():
            if isinstance(value, list):
                assert got.loc[tweet, column].tolist() == value, column
            else:
                assert got.loc[tweet, column] == pytest.approx(value), column


def test_a_tweet_without_history_has_zero_counts() -> None:
    impressions, events = random_history()
    got = tweet_engagement_at(np.array([42]), impressions.iloc[:0], events.iloc[:0], T0)
    assert got["tweet_engagements_total"].tolist() == [0.0]
    assert got["tweet_recent_engagers"].iloc[0].tolist() == []


# ------------------------------------------------------------------------------------- pusher


def lake_impressions() -> pd.DataFrame:
    """Two lake impressions of tweet 7: one faved by viewer 1 (at T0 + 10 min), one not."""
    frame = pd.DataFrame(
        {
            "viewer_id": [1, 2],
            "tweet_id": [7, 7],
            "served_at": [T0, T0 + pd.Timedelta(minutes=5)],
        }
    )
    for action in ("fav", "reply", "retweet", "quote"):
        frame[action] = [action == "fav", False]
        frame[f"{action}_at"] = (
            [T0 + pd.Timedelta(minutes=10), pd.NaT] if action == "fav" else pd.NaT
        )
        frame[f"{action}_at"] = pd.to_datetime(frame[f"{action}_at"], utc=True)
    return frame


class Pushes:
    """Where the pusher's frames land (the real Feast push is the integration test's)."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def __call__(self, frame: pd.DataFrame) -> int:
        self.frames.append(frame)
        return len(frame)


class Clock:
    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> pd.Timestamp:
        return self.now


def serve_and_fav(events: EventLog, request_id: str, viewer: int, at: pd.Timestamp) -> None:
    item = ServedItem(tweet_id=7, author_id=9, position=0, source="in_network_recent", score=1.0)
    events.log_served(request_id, "b" * 32, viewer, at, [item], model_version="1", arm="champion")
    events.record_engagement(request_id, viewer, 7, "fav", at + pd.Timedelta(minutes=1))


def test_the_pusher_counts_the_lake_and_the_live_log_once_each(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.db")
    history = TweetHistory.from_impressions(lake_impressions())
    now = T0 + pd.Timedelta(hours=1)
    pushed = Pushes()
    syncs: list[int] = []
    pusher = EngagementPusher(
        history,
        events,
        Clock(now),
        push=pushed,
        after_push=lambda: syncs.append(1),
    )
    # Served before the lake's end: exported already, so it is not counted again.
    serve_and_fav(events, "1" * 32, 1, T0)
    serve_and_fav(events, "2" * 32, 3, T0 + pd.Timedelta(minutes=30))

    pusher.mark([7])
    assert pusher.flush() == 1

    row = pushed.frames[0].iloc[0]
    assert row["tweet_impressions_window"] == 3  # two in the lake, one live
    assert row["tweet_favs_window"] == 2  # viewer 1's (lake) and viewer 3's (live)
    assert row["tweet_recent_favers"].tolist() == [3, 1]
    assert syncs == [1]
    assert pusher.pending() == 0 and pusher.flush() == 0


def test_pushes_at_one_clock_time_get_increasing_event_times(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.db")
    history = TweetHistory.from_impressions(lake_impressions())
    pushed = Pushes()
    pusher = EngagementPusher(history, events, Clock(T0 + pd.Timedelta(hours=1)), push=pushed)
    for _ in range(3):
        pusher.mark([7])
        pusher.flush()
    stamps = [frame["event_timestamp"].iloc[0] for frame in pushed.frames]
    assert stamps[0] == T0 + pd.Timedelta(hours=1)
    assert stamps[0] < stamps[1] < stamps[2]


def test_a_failed_push_keeps_the_tweets_for_the_next_flush(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.db")
    history = TweetHistory.from_impressions(lake_impressions())

    def down(frame: pd.DataFrame) -> int:
        raise ConnectionError("online store is down")

    pusher = EngagementPusher(history, events, Clock(T0 + pd.Timedelta(hours=1)), push=down)
    pusher.mark([7, 8])
    with pytest.raises(ConnectionError):
        pusher.flush()
    assert pusher.pending() == 2
