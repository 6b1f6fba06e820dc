"""Hand-made raw lakes for tests: users, follows, tweets and impressions partitions."""

from __future__ import annotations

import pandas as pd

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.ingest.served import IMPRESSION_ID_OFFSET
from tests.utils.factories import ts

WORLD_POLICY = "world-logging-policy"  # the model_version of the world's own impressions


def write_static(cfg: FeedrankConfig, tweets_day: str) -> None:
    """Users 1-3 (2 and 3 follow 1); tweets 10 (by 1) and 11 (by 2) early on `tweets_day`."""
    users = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "created_at": [ts("2025-01-01")] * 3,
            "is_verified": [True, False, False],
            "follower_count": [2, 0, 0],
            "following_count": [0, 1, 1],
            "language": ["en"] * 3,
            "country": ["US", "GB", "DE"],
        }
    )
    follows = pd.DataFrame(
        {"follower_id": [2, 3], "followee_id": [1, 1], "created_at": [ts("2025-06-01")] * 2}
    )
    tweets = pd.DataFrame(
        {
            "tweet_id": [10, 11],
            "author_id": [1, 2],
            "created_at": [ts(f"{tweets_day} 00:01"), ts(f"{tweets_day} 00:02")],
            "text": ["hello world", "another one"],
            "language": ["en", "en"],
            "has_image": [False, True],
            "has_video": [False, False],
            "has_url": [True, False],
            "hashtags": [["ml"], []],
            "conversation_id": [10, 11],
            "in_reply_to_tweet_id": pd.array([None, None], dtype="Int64"),
            "toxicity": [0.1, 0.2],
        }
    )
    raw = cfg.paths.raw
    schema.write_partition(users, raw, "users", schema.STATIC_PARTITION, schema.USERS)
    schema.write_partition(follows, raw, "follows", schema.STATIC_PARTITION, schema.FOLLOWS)
    schema.write_partition(tweets, raw, "tweets", tweets_day, schema.TWEETS)


def write_impressions(cfg: FeedrankConfig, day: str, *, served: bool = False) -> None:
    """Two impressions at noon of `day` (viewer 2 sees tweet 10 on home, viewer 3 tweet 11 in a
    conversation): the world's (small ids) or, with `served`, ids of the live service's range."""
    first = IMPRESSION_ID_OFFSET if served else int(pd.Timestamp(day).dayofyear) * 10
    frame = pd.DataFrame(
        {
            "impression_id": [first + 1, first + 2],
            "viewer_id": [2, 3],
            "tweet_id": [10, 11],
            "served_at": [pd.Timestamp(f"{day} 12:00", tz="UTC")] * 2,
            "surface": ["home", "conversation"],
            "position": [0, 1],
            "request_id": [5, 5],
            "model_version": ["7" if served else WORLD_POLICY] * 2,
            "experiment_arm": ["control"] * 2,
            "dwell_ms": [0, 0],
        }
    )
    for action in schema.BINARY_ACTIONS:
        frame[action] = False
        frame[f"{action}_at"] = pd.Series([pd.NaT] * 2, dtype="datetime64[us, UTC]")
    schema.write_partition(frame, cfg.paths.raw, "impressions", day, schema.IMPRESSIONS)
