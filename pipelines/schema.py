"""Canonical tables of feedrank as pyarrow schemas (DESIGN section 3).

Raw tables live in the lake as parquet partitioned by day: ``raw/<table>/day=YYYY-MM-DD/part.parquet``.
Static tables (users, follows) are one partition, ``day=static``. Timestamps are UTC, microseconds.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")

# The one vocabulary of actions, heads and engagements: every other module imports these.
# Actions labelled on every impression; each binary one has a `<action>_at` timestamp column.
BINARY_ACTIONS: tuple[str, ...] = (
    "fav",
    "reply",
    "retweet",
    "quote",
    "profile_click",
    "negative",
    "report",
    "reply_engaged_by_author",
)
# `reply_engaged_by_author`: the viewer replied and the tweet's author engaged with that reply
# (Twitter's most valuable action); only ever True where `reply` is.
DERIVED_ACTIONS: dict[str, str] = {"reply_engaged_by_author": "reply"}
# The public engagements a tweet accumulates (its counts, trending, the world's memory of them).
ENGAGEMENTS: tuple[str, ...] = ("fav", "reply", "retweet", "quote")
DWELL_THRESHOLD_MS = 15_000  # the `dwell` head: dwelled at least this long
# The heads a ranker may predict, in a fixed order: every binary action a viewer does, `dwell`
# (dwelled at least DWELL_THRESHOLD_MS), the derived actions, and `dwell_time`.
HEADS: tuple[str, ...] = (
    *(action for action in BINARY_ACTIONS if action not in DERIVED_ACTIONS),
    "dwell",
    *DERIVED_ACTIONS,
    "dwell_time",
)
# Heads that predict a real value (squared-error loss) rather than a probability: `dwell_time` is
# the expected log of the dwell in seconds. Every other head is binary.
REGRESSION_HEADS: frozenset[str] = frozenset({"dwell_time"})
SURFACES: tuple[str, ...] = ("home", "conversation")

USERS = pa.schema(
    [
        ("user_id", pa.int64()),
        ("created_at", TS),
        ("is_verified", pa.bool_()),
        ("follower_count", pa.int64()),
        ("following_count", pa.int64()),
        ("language", pa.string()),
        ("country", pa.string()),
    ]
)

FOLLOWS = pa.schema([("follower_id", pa.int64()), ("followee_id", pa.int64()), ("created_at", TS)])

TWEETS = pa.schema(
    [
        ("tweet_id", pa.int64()),
        ("author_id", pa.int64()),
        ("created_at", TS),
        ("text", pa.string()),
        ("language", pa.string()),
        ("has_image", pa.bool_()),
        ("has_video", pa.bool_()),
        ("has_url", pa.bool_()),
        ("hashtags", pa.list_(pa.string())),
        ("conversation_id", pa.int64()),
        ("in_reply_to_tweet_id", pa.int64()),
        ("toxicity", pa.float32()),
    ]
)

IMPRESSIONS = pa.schema(
    [
        ("impression_id", pa.int64()),
        ("viewer_id", pa.int64()),
        ("tweet_id", pa.int64()),
        ("served_at", TS),
        ("surface", pa.string()),
        ("position", pa.int32()),
        ("request_id", pa.int64()),
        ("model_version", pa.string()),
        ("experiment_arm", pa.string()),
    ]
    + [(name, pa.bool_()) for name in BINARY_ACTIONS]
    + [(f"{name}_at", TS) for name in BINARY_ACTIONS]
    + [("dwell_ms", pa.int32())]
)

# Ground truth: per impression the true probability of every action. Only evaluation reads it.
TRUTH = pa.schema(
    [("impression_id", pa.int64())]
    + [(f"p_{name}", pa.float32()) for name in (*BINARY_ACTIONS, "dwell")]
    + [("expected_dwell_ms", pa.float32()), ("mean_log_dwell_s", pa.float32())]
)

TABLES: dict[str, pa.Schema] = {
    "users": USERS,
    "follows": FOLLOWS,
    "tweets": TWEETS,
    "impressions": IMPRESSIONS,
}
DAILY_TABLES: dict[str, str] = {"tweets": "created_at", "impressions": "served_at"}
STATIC_PARTITION = "static"
PART_FILE = "part.parquet"  # the one file of a partition


def id_array(ids: Collection[int] | np.ndarray) -> np.ndarray:
    """Ids (a set, a list, an array) as the int64 array the tables hold them in."""
    if isinstance(ids, np.ndarray):
        return ids.astype(np.int64, copy=False)
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def partition_dir(root: Path, table: str, day: str) -> Path:
    return root / table / f"day={day}"


def write_partition(df: pd.DataFrame, root: Path, table: str, day: str, schema: pa.Schema) -> Path:
    """Write one day of a table, conformed to its schema (columns, order and types)."""
    target = partition_dir(root, table, day)
    target.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    path = target / PART_FILE
    pq.write_table(arrow, path)
    return path


def list_partitions(root: Path, table: str) -> list[str]:
    base = root / table
    if not base.exists():
        return []
    return sorted(p.name.split("=", 1)[1] for p in base.iterdir() if p.name.startswith("day="))


def read_table(root: Path, table: str, days: list[str] | None = None) -> pd.DataFrame:
    """Read all (or some) partitions of a table into one frame with the canonical columns."""
    schema = TRUTH if table == "truth" else TABLES[table]
    wanted = list_partitions(root, table) if days is None else days
    frames = [
        pq.read_table(partition_dir(root, table, day) / PART_FILE, schema=schema).to_pandas()
        for day in wanted
        if (partition_dir(root, table, day) / PART_FILE).exists()
    ]
    if not frames:
        return schema.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)
