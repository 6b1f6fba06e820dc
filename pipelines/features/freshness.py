"""Fresh engagement counts: push them to the online store without waiting for the daily batch."""

from __future__ import annotations

import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.features.spec import TWEET_ENGAGEMENT_FEATURES, epoch_seconds
from pipelines.features.store import feature_store

PUSH_SOURCE = "tweet_engagement_push"
DECAYED = "tweet_engagements_decayed_at_snapshot"
PUSH_COLUMNS = ("tweet_id", "event_timestamp", *TWEET_ENGAGEMENT_FEATURES, DECAYED)


def push_tweet_engagement(cfg: FeedrankConfig, counts: pd.DataFrame) -> int:
    """Write fresh windowed counts (one row per tweet) straight to the online store.

    counts: tweet_id, event_timestamp (when the counts were observed), every
    TWEET_ENGAGEMENT_FEATURES column and the decayed total at that moment. On Redis the row with the newest event timestamp wins; sqlite
    keeps the last write, so a later batch materialization can replace a pushed value there (the
    next push restores it). Returns the number of rows pushed.
    """
    missing = [c for c in PUSH_COLUMNS if c not in counts.columns]
    if missing:
        raise ValueError(f"engagement push is missing columns {missing}")
    if counts.empty:
        return 0
    frame = counts[list(PUSH_COLUMNS)].copy()
    frame["tweet_id"] = frame["tweet_id"].astype("int64")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    for column in (*TWEET_ENGAGEMENT_FEATURES, DECAYED):
        frame[column] = frame[column].astype("float64")
    frame["tweet_engagement_snapshot_s"] = epoch_seconds(frame["event_timestamp"])
    from feast.data_source import PushMode

    feature_store(cfg).push(PUSH_SOURCE, frame, to=PushMode.ONLINE)
    return len(frame)
