"""Fresh engagement counts and tweet embeddings: push them to the online store without waiting for
the daily batch. :func:`tweet_engagement_at` computes a tweet's counts at any moment by the batch
table's own definition (`pipelines.features.batch.tweet_engagement`), so a pushed row and a
materialized one mean the same thing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.features.batch import tweet_engagement
from pipelines.features.store import feature_store
from pipelines.inputs import catalog
from pipelines.inputs.catalog import ENGAGEMENT_DECAY_HOURS
from pipelines.inputs.spec import TWEET_ENGAGEMENT_FEATURES, epoch_seconds

DECAYED = "tweet_engagements_decayed_at_snapshot"
# Who engaged in the last 3 days (ids, newest first): the viewer's-network counts read them.
ENGAGER_LISTS = ("tweet_recent_engagers", "tweet_recent_favers")
PUSH_COLUMNS = ("tweet_id", "event_timestamp", *TWEET_ENGAGEMENT_FEATURES, DECAYED, *ENGAGER_LISTS)


def tweet_engagement_at(
    tweet_ids: np.ndarray, impressions: pd.DataFrame, events: pd.DataFrame, now: pd.Timestamp
) -> pd.DataFrame:
    """The tweet_engagement features of tweets [N] at `now`: one row each (PUSH_COLUMNS, event
    time `now`), ready for :func:`push_tweet_engagement`.

    impressions: tweet_id, served_at; events: viewer_id, tweet_id, action (the ENGAGEMENTS),
    at; both the whole history known at `now` (later rows are ignored). The values are the batch
    table's at the end of now's hour (the boundary whose windows hold every event up to now),
    with the decayed total taken on to `now` itself, where the pushed snapshot time puts it. A
    tweet without any history gets zeros and empty engager lists.
    """
    ids = np.asarray(tweet_ids, dtype=np.int64)
    stamp = pd.Timestamp(now)
    boundary = int(stamp.timestamp() // 3600) + 1
    impressions = impressions[pd.to_datetime(impressions["served_at"], utc=True) <= stamp]
    events = events[pd.to_datetime(events["at"], utc=True) <= stamp]
    history = not (impressions.empty and events.empty)
    table = tweet_engagement(impressions, events) if history else pd.DataFrame()
    row = _rows_at(table, ids, boundary)
    out = pd.DataFrame({"tweet_id": ids, "event_timestamp": stamp})
    for column in (*TWEET_ENGAGEMENT_FEATURES, DECAYED):
        out[column] = row[column].fillna(0.0).astype("float64").to_numpy()
    # From the row's boundary to now's no event came, so the total only decays; then on to now.
    elapsed_h = stamp.timestamp() / 3600.0 - row["hour"].fillna(boundary).to_numpy()
    out[DECAYED] = out[DECAYED].to_numpy() * np.exp(-elapsed_h / ENGAGEMENT_DECAY_HOURS)
    for column in ENGAGER_LISTS:
        out[column] = [
            v if isinstance(v, np.ndarray) else np.zeros(0, np.int64) for v in row[column]
        ]
    return out


def _rows_at(table: pd.DataFrame, ids: np.ndarray, boundary: int) -> pd.DataFrame:
    """The batch table's latest row at or before hour `boundary` of each tweet [N] (NaN where a
    tweet has none), with its boundary as ``hour``: every value holds until the next row."""
    if table.empty:
        return pd.DataFrame(index=ids, columns=[*PUSH_COLUMNS[2:], "hour"], dtype=object)
    hours = (epoch_seconds(table["event_timestamp"]) // 3600).astype("int64").to_numpy()
    keep = (hours <= boundary) & table["tweet_id"].isin(ids).to_numpy()
    latest = (
        table[keep]
        .assign(hour=hours[keep])
        .sort_values(["tweet_id", "hour"], kind="stable")
        .groupby("tweet_id", sort=False)
        .tail(1)
        .set_index("tweet_id")
    )
    return latest.reindex(ids)


def push_tweet_engagement(cfg: FeedrankConfig, counts: pd.DataFrame) -> int:
    """Write fresh windowed counts (one row per tweet) straight to the online store.

    counts: tweet_id, event_timestamp (when the counts were observed), every
    TWEET_ENGAGEMENT_FEATURES column, the decayed total at that moment and the ENGAGER_LISTS (lists
    of user ids). On Redis the row with the newest event timestamp wins; sqlite
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
    for column in ENGAGER_LISTS:
        frame[column] = [_ids(value, column) for value in frame[column]]
    frame["tweet_engagement_snapshot_s"] = epoch_seconds(frame["event_timestamp"])
    from feast.data_source import PushMode

    feature_store(cfg).push(catalog.push_source("tweet_engagement"), frame, to=PushMode.ONLINE)
    return len(frame)


def push_tweet_embeddings(
    cfg: FeedrankConfig, tweets: pd.DataFrame, vectors: np.ndarray, at: pd.Timestamp | None = None
) -> int:
    """Write new tweets' text embeddings (and topic) straight to the online store.

    tweets: tweet_id, created_at; vectors [N, D] from the current encoder, row aligned; at: the
    event time of the rows, when the embeddings became known (the live service passes its
    clock's now, the moment the tweets were posted to it; default each tweet's created_at). The
    topic is the nearest of the centroids the last embed step saved. Returns the number of rows
    pushed.
    """
    from pipelines.features.embeddings import nearest_topic

    if len(tweets) != len(vectors):
        raise ValueError(f"{len(tweets)} tweets but {len(vectors)} embeddings")
    if tweets.empty:
        return 0
    centroids_path = cfg.paths.topic_centroids
    if not centroids_path.exists():
        raise FileNotFoundError(f"no topic centroids at {centroids_path}: run the embed step first")
    matrix = np.asarray(vectors, dtype=np.float32)
    frame = pd.DataFrame(
        {
            "tweet_id": tweets["tweet_id"].astype("int64").to_numpy(),
            "event_timestamp": pd.to_datetime(
                tweets["created_at"] if at is None else [at] * len(tweets), utc=True
            ).to_numpy(),
            "tweet_embedding": list(matrix),
            "tweet_topic": nearest_topic(matrix, np.load(centroids_path)),
        }
    )
    from feast.data_source import PushMode

    feature_store(cfg).push(catalog.push_source("tweet_embedding"), frame, to=PushMode.ONLINE)
    return len(frame)


def _ids(value: object, column: str) -> list[int]:
    if not isinstance(value, list | tuple | np.ndarray):
        raise ValueError(f"engagement push column {column} must hold lists of user ids")
    return [int(v) for v in value]
