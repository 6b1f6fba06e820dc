"""Training-set assembly: impressions + Feast point-in-time features + labels, split by time."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.features.store import historical_features
from pipelines.inputs.spec import epoch_seconds
from pipelines.schema import BINARY_ACTIONS, DWELL_THRESHOLD_MS, read_table

log = logging.getLogger(__name__)

ID_COLUMNS = ("impression_id", "request_id", "viewer_id", "tweet_id", "author_id", "served_at")


def split_boundary(cfg: FeedrankConfig) -> pd.Timestamp:
    """Impressions at or after this moment are held out: the last `test_days` days."""
    start = pd.Timestamp(cfg.world.start_date, tz="UTC")
    return start + timedelta(days=cfg.world.days - cfg.ranker.test_days)


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


def entity_frame(cfg: FeedrankConfig) -> pd.DataFrame:
    """Impressions with author, follow relation and labels: the rows to attach features to."""
    raw = cfg.paths.raw
    impressions = read_table(raw, "impressions")
    tweets = read_table(raw, "tweets")[["tweet_id", "author_id"]]
    follows = read_table(raw, "follows")[["follower_id", "followee_id"]]
    frame = impressions.merge(tweets, on="tweet_id", how="left", validate="many_to_one")
    followed = pd.MultiIndex.from_frame(follows)
    frame["in_network"] = pd.MultiIndex.from_arrays([frame["viewer_id"], frame["author_id"]]).isin(
        followed
    )
    frame = pd.concat([frame, labels_of(frame, cfg.ranker.heads)], axis=1)
    frame["event_timestamp"] = frame["served_at"]
    return frame


def build_training_set(cfg: FeedrankConfig) -> dict[str, int]:
    """Point-in-time features for every impression, written with a time split column."""
    entities = entity_frame(cfg)
    label_columns = [c for c in entities.columns if c.startswith("label_")]
    # The request-time values come from Feast's on-demand view, fed with the impression time.
    entities["request_time_s"] = epoch_seconds(entities["served_at"])
    entities["viewer_follows_author"] = entities.pop("in_network").astype("int64")
    keep = [
        *ID_COLUMNS,
        "request_time_s",
        "viewer_follows_author",
        "event_timestamp",
        *label_columns,
    ]
    log.info("training set: joining features for %d impressions", len(entities))
    joined = historical_features(cfg, entities[keep])
    boundary = split_boundary(cfg)
    joined["split"] = np.where(joined["served_at"] >= boundary, "test", "train")
    joined = joined.sort_values("impression_id").reset_index(drop=True)
    path = cfg.paths.training_set
    path.parent.mkdir(parents=True, exist_ok=True)
    joined.to_parquet(path, index=False)
    counts = joined["split"].value_counts().to_dict()
    log.info("training set: %s written (%s)", path, counts)
    return {"train_rows": int(counts.get("train", 0)), "test_rows": int(counts.get("test", 0))}
