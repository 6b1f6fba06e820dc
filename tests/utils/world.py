"""A tiny world of five users and ten tweets, as canonical frames, a config over it, and a serving
engine on it with fake features and rankers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.config import FeedrankConfig, PathsConfig, ServeConfig
from pipelines.event_log import EventLog
from pipelines.schema import STATIC_PARTITION, TABLES, write_partition
from serving.candidates.world_index import WorldIndex
from serving.engine.feed import FeedEngine
from serving.engine.ports import ArmModel
from tests.utils.fakes import FakeFeatures, fake_arm

NOW = pd.Timestamp("2026-03-10 12:00", tz="UTC")
HOUR = pd.Timedelta(hours=1)
ROOT = 201  # a conversation: 202 (by 2) and 203 (by 5, toxic) answer it, 204 (by 3) answers 202

# User 1 follows 2 and 3 and last visited at NOW - 30 min: 101 and 103 (by 2) are from before the
# visit (in_network_backlog), 104 (by 4) is trending out of network; 102 was seen. Fake p(fav) =
# tweet_id % 10 / 10 + 0.05 and blend fav 0.5: 103 -> 0.175, 104 -> 0.225 * 0.75 (out of network)
# = 0.16875, 101 -> 0.075 * 0.5 (the second tweet of author 2) = 0.0375.
FEED_ORDER = [103, 104, 101]


def conform(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """Fill the canonical columns a test does not care about with neutral values."""
    out = frame.copy()
    for field in schema:
        if field.name in out.columns:
            continue
        if pa.types.is_boolean(field.type):
            out[field.name] = False
        elif pa.types.is_integer(field.type):
            out[field.name] = 0
        elif pa.types.is_floating(field.type):
            out[field.name] = 0.0
        elif pa.types.is_timestamp(field.type):
            out[field.name] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
        elif pa.types.is_list(field.type):
            out[field.name] = [[] for _ in range(len(out))]
        else:
            out[field.name] = ""
    return out[schema.names]


def tiny_world() -> dict[str, pd.DataFrame]:
    """Five users; user 1 follows 2 and 3; the last impression is served at NOW."""
    tweets = pd.DataFrame(
        [
            # tweet_id, author_id, age (h), parent, toxicity
            (101, 2, 1, None, 0.0),  # in-network for user 1
            (102, 3, 2, None, 0.0),  # in-network but already seen by user 1
            (103, 2, 100, None, 0.0),  # in-network but older than the lookback
            (104, 4, 3, None, 0.0),  # out-of-network, engaged (a fav by user 5)
            (105, 1, 1, None, 0.0),  # user 1's own tweet
            (106, 5, 4, None, 0.0),  # out-of-network, never engaged
            (ROOT, 4, 5, None, 0.0),
            (202, 2, 4, ROOT, 0.1),
            (203, 5, 4, ROOT, 0.9),
            (204, 3, 3, 202, 0.0),
        ],
        columns=["tweet_id", "author_id", "age_h", "in_reply_to_tweet_id", "toxicity"],
    )
    tweets = tweets.assign(
        created_at=NOW - tweets.pop("age_h") * HOUR,
        conversation_id=np.where(tweets["tweet_id"] >= ROOT, ROOT, tweets["tweet_id"]),
        text=[f"tweet {t}" for t in tweets["tweet_id"]],
        in_reply_to_tweet_id=tweets["in_reply_to_tweet_id"].astype("float64"),
    )
    impressions = pd.DataFrame(
        {
            "impression_id": [1, 2],
            "viewer_id": [1, 5],
            "tweet_id": [102, 104],
            "served_at": [NOW - HOUR / 2, NOW],
            "fav": [False, True],
        }
    )
    return {
        "users": conform(pd.DataFrame({"user_id": [1, 2, 3, 4, 5]}), TABLES["users"]),
        "follows": conform(
            pd.DataFrame({"follower_id": [1, 1, 2], "followee_id": [2, 3, 1]}), TABLES["follows"]
        ),
        "tweets": conform(tweets, TABLES["tweets"]),
        "impressions": conform(impressions, TABLES["impressions"]),
    }


def make_cfg(root: Path | None = None, **serve: Any) -> FeedrankConfig:
    paths = PathsConfig(root=str(root)) if root is not None else PathsConfig()
    return FeedrankConfig(paths=paths, serve=ServeConfig(**serve))


def make_engine(
    cfg: FeedrankConfig,
    challenger: bool = False,
    features: FakeFeatures | None = None,
    champion: ArmModel | None = None,
) -> FeedEngine:
    """An engine over the tiny world; with an event log when `cfg` has its own state root."""
    frames = tiny_world()
    index = WorldIndex.from_frames(cfg, **frames)
    arms = {"champion": champion or fake_arm("v1")}
    if challenger:
        arms["challenger"] = fake_arm("v2")
    events = EventLog(cfg.paths.serving_events) if cfg.paths.root != ".feedrank" else None
    return FeedEngine(cfg, index, features or FakeFeatures(), arms, events=events)


def write_lake(cfg: FeedrankConfig) -> None:
    for table, frame in tiny_world().items():
        write_partition(frame, cfg.paths.raw, table, STATIC_PARTITION, TABLES[table])
