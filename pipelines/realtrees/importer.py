"""`feedrank import-trees`: the package's real reply trees into a lake of their own, as
conversations.

The lake is ``cfg.paths.trees_lake(platform)`` (``<state root>/trees/<platform>``), apart from the
simulated world's, with the world's layout and schemas (:mod:`pipelines.schema`):

- ``tweets`` (``TWEETS``), partitioned by day: one row per post; ``conversation_id`` is the root's
  tweet id, ``in_reply_to_tweet_id`` the parent's (null for the root), ``created_at`` the
  repaired (effective) time, ``toxicity`` the package's score (null where not scored). The text
  is withheld by the package; ``text`` holds the placeholder :data:`TEXT_PLACEHOLDER` naming its
  length (``"[text withheld: 86 characters]"``). ``language``, ``has_image``, ``has_video``,
  ``has_url`` and ``hashtags`` are null: the package does not know them.
- ``users`` (``USERS``), one static partition: one row per author; ``created_at`` is the
  author's first post in the package (the account's own creation time is not shipped); every
  other column is null for the same reason.

Every id is a lake id (:mod:`pipelines.realtrees.rekey`); a re-import replaces both tables.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.realtrees.rekey import Rekeyer, load_or_create_salt
from pipelines.realtrees.repair import RepairReport, rekey_posts, repair_trees
from pipelines.realtrees.source import read_posts
from pipelines.schema import STATIC_PARTITION, TWEETS, USERS, write_partition

log = logging.getLogger(__name__)

TEXT_PLACEHOLDER = "[text withheld: {length} characters]"


def load_trees(cfg: FeedrankConfig, platform: str) -> tuple[pd.DataFrame, RepairReport]:
    """The platform's trees with lake ids and repaired times (``repair_trees``' frame), and what
    the repair changed. The package's ids are replaced as soon as they are read."""
    rekeyer = Rekeyer(load_or_create_salt(cfg.paths.trees_salt), platform)
    posts = rekey_posts(read_posts(platform), rekeyer)
    return repair_trees(posts)


def tweet_rows(trees: pd.DataFrame) -> pd.DataFrame:
    """Canonical ``tweets`` rows of repaired trees (see the module docstring)."""
    lengths = trees["text_length"].fillna(0).astype(np.int64)
    unknown = pd.Series([None] * len(trees), dtype=object)
    return pd.DataFrame(
        {
            "tweet_id": trees["post"].to_numpy(),
            "author_id": trees["author"].to_numpy(),
            "created_at": trees["at"].to_numpy(),
            "text": [TEXT_PLACEHOLDER.format(length=n) for n in lengths],
            "language": unknown,
            "has_image": unknown,
            "has_video": unknown,
            "has_url": unknown,
            "hashtags": unknown,
            "conversation_id": trees["tree"].to_numpy(),
            "in_reply_to_tweet_id": pd.Series(trees["parent"].to_numpy(), dtype="Int64").mask(
                trees["depth"].to_numpy() == 0
            ),
            "toxicity": trees["toxicity"].to_numpy(dtype=np.float32),
        }
    )


def user_rows(trees: pd.DataFrame) -> pd.DataFrame:
    """Canonical ``users`` rows: each author once, first seen at their first post."""
    first = trees.groupby("author")["at"].min()
    unknown = pd.Series([None] * len(first), dtype=object)
    return pd.DataFrame(
        {
            "user_id": first.index.to_numpy(dtype=np.int64),
            "created_at": first.to_numpy(),
            "is_verified": unknown,
            "follower_count": pd.Series([None] * len(first), dtype="Int64"),
            "following_count": pd.Series([None] * len(first), dtype="Int64"),
            "language": unknown,
            "country": unknown,
        }
    )


def write_trees(cfg: FeedrankConfig, platform: str, trees: pd.DataFrame) -> dict[str, int]:
    """Replace the platform lake's ``tweets`` (by day) and ``users``; the row counts."""
    root = cfg.paths.trees_lake(platform)
    for table in ("tweets", "users"):
        shutil.rmtree(root / table, ignore_errors=True)
    tweets = tweet_rows(trees)
    days = tweets["created_at"].dt.strftime("%Y-%m-%d")
    for day, part in tweets.groupby(days.to_numpy(), sort=True):
        write_partition(part, root, "tweets", str(day), TWEETS)
    users = user_rows(trees)
    write_partition(users, root, "users", STATIC_PARTITION, USERS)
    return {"tweets": len(tweets), "users": len(users), "days": int(days.nunique())}


def import_trees(cfg: FeedrankConfig, platform: str) -> dict[str, Any]:
    """Read, re-key, repair and write `platform`'s trees; a summary (counts, never ids)."""
    trees, report = load_trees(cfg, platform)
    written = write_trees(cfg, platform, trees)
    replies = trees[trees["depth"] > 0]
    summary = {
        "platform": platform,
        "lake": str(cfg.paths.trees_lake(platform)),
        "conversations": int(trees["tree"].nunique()),
        "replies": int(len(replies)),
        "top_level_replies": int((replies["depth"] == 1).sum()),
        "max_depth": int(trees["depth"].max()),
        "first_post": trees["at"].min().isoformat(),
        "last_post": trees["at"].max().isoformat(),
        "text": TEXT_PLACEHOLDER,
        "repair": report.as_dict(),
        **written,
    }
    log.info("import-trees: %s", summary)
    return summary
