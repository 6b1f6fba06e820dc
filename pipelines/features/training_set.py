"""Training-set assembly: impressions + Feast point-in-time features + labels, split by time.

The rows are the home-feed impressions of the sliding window (:func:`pipelines.lake.training_days`:
the newest `train.window_days` days of the lake), split at the first held-out day. Each row also
records where it came from, so evaluation can measure the feedback loop: ``served`` (the live
service served it; else the world's logging policy did), ``source`` (the candidate source that
produced it; the logging policy's name for world rows) and its ``position`` on the page.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog
from pipelines.features.store import historical_features
from pipelines.handoffs import TrainingSetDays
from pipelines.ingest.served import IMPRESSION_ID_OFFSET
from pipelines.inputs.spec import epoch_seconds
from pipelines.lake import TrainingDays, lake_days, training_days
from pipelines.schema import BINARY_ACTIONS, DWELL_THRESHOLD_MS, read_table

log = logging.getLogger(__name__)

ID_COLUMNS = ("impression_id", "request_id", "viewer_id", "tweet_id", "author_id", "served_at")
# Where each row came from (module docstring): kept beside the ids, never a model input.
ORIGIN_COLUMNS = ("served", "source", "position")
TRAINING_SURFACE = "home"  # the ranker ranks the home feed; conversation rows are not its task
UNKNOWN_SOURCE = "unknown"  # a served row whose event log row is gone (the log was replaced)


def split_boundary(cfg: FeedrankConfig) -> pd.Timestamp:
    """Impressions at or after this moment are held out (the first held-out day's midnight)."""
    return training_days(cfg).boundary


def dwell_time_label(dwell_ms: pd.Series | np.ndarray) -> np.ndarray:
    """The `dwell_time` regression target: log of the dwell in seconds, ``log((ms + 1) / 1000)``."""
    return np.log((np.asarray(dwell_ms, dtype=np.float64) + 1.0) / 1000.0).astype(np.float32)


def labels_of(impressions: pd.DataFrame, heads: tuple[str, ...]) -> pd.DataFrame:
    """One column per head: 0/1 for binary heads (`dwell` is dwelled at least
    DWELL_THRESHOLD_MS), the log-seconds dwell for `dwell_time`."""
    out = pd.DataFrame(index=impressions.index)
    for head in heads:
        if head == "dwell_time":
            out[f"label_{head}"] = dwell_time_label(impressions["dwell_ms"])
        elif head == "dwell":
            out[f"label_{head}"] = (impressions["dwell_ms"] >= DWELL_THRESHOLD_MS).astype("int8")
        elif head in BINARY_ACTIONS:
            out[f"label_{head}"] = impressions[head].astype("int8")
        else:
            raise KeyError(f"no label for head {head!r}")
    return out


def impression_sources(cfg: FeedrankConfig, impressions: pd.DataFrame) -> np.ndarray:
    """``[N]`` the candidate source of each impression: from the serving event log for rows the
    live service served (``UNKNOWN_SOURCE`` where the log no longer has the row), the logging
    policy (the row's `model_version`) for the world's rows."""
    served = impressions["impression_id"].to_numpy(np.int64) >= IMPRESSION_ID_OFFSET
    sources = impressions["model_version"].to_numpy(dtype=object).copy()
    if not served.any():
        return sources
    known = pd.Series(dtype=object)
    if cfg.paths.serving_events.exists():
        events = EventLog(cfg.paths.serving_events)
        try:
            rows = events.live_rows()
        finally:
            events.close()
        known = pd.Series(rows["source"].to_numpy(object), index=rows["row_id"].to_numpy())
    row_ids = impressions["impression_id"].to_numpy(np.int64)[served] - IMPRESSION_ID_OFFSET
    found = known.reindex(row_ids)
    if found.isna().any():
        log.warning(
            "training set: %d served impressions have no event log row; source %r",
            int(found.isna().sum()),
            UNKNOWN_SOURCE,
        )
    sources[served] = found.fillna(UNKNOWN_SOURCE).to_numpy(object)
    return sources


def entity_frame(
    cfg: FeedrankConfig,
    days: TrainingDays,
    surface: str = TRAINING_SURFACE,
    heads: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """The window's impressions on `surface` (the home feed by default) with author, follow
    relation, labels of `heads` (default: the ranker's) and origin (``ORIGIN_COLUMNS``): the rows
    to attach features to."""
    raw = cfg.paths.raw
    window = [day for day in lake_days(cfg) if day >= days.train[0]]
    impressions = read_table(raw, "impressions", window)
    impressions = impressions[impressions["surface"] == surface].reset_index(drop=True)
    impressions["served"] = impressions["impression_id"] >= IMPRESSION_ID_OFFSET
    impressions["source"] = impression_sources(cfg, impressions)
    tweets = read_table(raw, "tweets")[["tweet_id", "author_id"]]
    follows = read_table(raw, "follows")[["follower_id", "followee_id"]]
    frame = impressions.merge(tweets, on="tweet_id", how="left", validate="many_to_one")
    followed = pd.MultiIndex.from_frame(follows)
    frame["in_network"] = pd.MultiIndex.from_arrays([frame["viewer_id"], frame["author_id"]]).isin(
        followed
    )
    frame = pd.concat([frame, labels_of(frame, heads or cfg.ranker.heads)], axis=1)
    frame["event_timestamp"] = frame["served_at"]
    return frame


def point_in_time_set(
    cfg: FeedrankConfig,
    entities: pd.DataFrame,
    days: TrainingDays,
    request_columns: tuple[str, ...] = (),
    service: str | None = None,
) -> pd.DataFrame:
    """Feast's point-in-time features of a feature service (default: the ranker's) for the rows
    of :func:`entity_frame`, with a time split column (``train`` before the first held-out day,
    ``test`` from it), sorted by impression id.

    `request_columns` are further columns of `entities` handed to Feast as request data (and
    kept), beside the impression time and the follow relation every service reads."""
    entities = entities.copy()
    label_columns = [c for c in entities.columns if c.startswith("label_")]
    # The request-time values come from Feast's on-demand view, fed with the impression time.
    entities["request_time_s"] = epoch_seconds(entities["served_at"])
    entities["viewer_follows_author"] = entities.pop("in_network").astype("int64")
    keep = [
        *ID_COLUMNS,
        *ORIGIN_COLUMNS,
        "request_time_s",
        "viewer_follows_author",
        *request_columns,
        "event_timestamp",
        *label_columns,
    ]
    log.info("training set: joining features for %d impressions", len(entities))
    joined = historical_features(cfg, entities[keep], service)
    joined["split"] = np.where(joined["served_at"] >= days.boundary, "test", "train")
    return joined.sort_values("impression_id").reset_index(drop=True)


def build_training_set(cfg: FeedrankConfig) -> dict[str, int]:
    """Point-in-time features for every impression of the window, written with a time split
    column (``train`` before the first held-out day, ``test`` from it); the days go to the
    `TrainingSetDays` hand-off."""
    days = training_days(cfg)
    joined = point_in_time_set(cfg, entity_frame(cfg, days), days)
    path = cfg.paths.training_set
    path.parent.mkdir(parents=True, exist_ok=True)
    joined.to_parquet(path, index=False)
    TrainingSetDays(
        train_days=list(days.train),
        holdout_days=list(days.holdout),
        served_holdout=days.served_holdout,
    ).write(cfg)
    counts = joined["split"].value_counts().to_dict()
    log.info(
        "training set: %s written (%s); train days %s..%s, held out %s (%s)",
        path,
        counts,
        days.train[0],
        days.train[-1],
        list(days.holdout),
        "served" if days.served_holdout else "the window's last days",
    )
    served = joined["served"].to_numpy(bool)
    return {
        "train_rows": int(counts.get("train", 0)),
        "test_rows": int(counts.get("test", 0)),
        "served_rows": int(served.sum()),
        "train_days": len(days.train),
        "holdout_days": len(days.holdout),
    }
