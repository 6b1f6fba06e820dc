"""Hand-made conversations for the conversation-path tests: a world index whose one large
conversation has a known shape, and reply trees as plain arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import ConversationConfig, FeedrankConfig, PathsConfig
from pipelines.schema import TABLES
from serving.candidates.world_index import WorldIndex
from tests.utils.world import NOW, conform

BIG_ROOT = 1_000_000  # the root of the generated conversation
ROOT_AUTHOR = 1


def conversation_cfg(root: Path | None = None, **conversation: object) -> FeedrankConfig:
    paths = PathsConfig(root=str(root)) if root is not None else PathsConfig()
    return FeedrankConfig(paths=paths, conversation=ConversationConfig(**conversation))


def conversation_frames(
    n_replies: int, n_users: int = 50, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """A world with one conversation of `n_replies` replies (ids BIG_ROOT + 1.., one a minute
    after the root, oldest first), each answering the root or an earlier reply; users 1..n_users
    (1 is the root author, 2..4 are verified); user 10 follows 2..9."""
    rng = np.random.default_rng(seed)
    ids = BIG_ROOT + np.arange(n_replies + 1)
    parents = np.array(
        [
            -1,
            *(
                BIG_ROOT + rng.integers(0, max(i, 1)) if rng.random() < 0.6 else BIG_ROOT
                for i in range(1, n_replies + 1)
            ),
        ],
        dtype=np.int64,
    )
    created = (
        NOW
        - (n_replies + 1) * pd.Timedelta(minutes=1)
        + np.arange(n_replies + 1) * pd.Timedelta(minutes=1)
    )
    tweets = pd.DataFrame(
        {
            "tweet_id": ids,
            "author_id": np.r_[ROOT_AUTHOR, rng.integers(2, n_users + 1, size=n_replies)],
            "created_at": created,
            "conversation_id": BIG_ROOT,
            "in_reply_to_tweet_id": np.where(parents < 0, np.nan, parents.astype(float)),
            "toxicity": np.r_[0.0, rng.random(n_replies) * 0.5],
            "text": [f"tweet {t}" for t in ids],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1),
            "is_verified": np.isin(np.arange(1, n_users + 1), [2, 3, 4]),
        }
    )
    follows = pd.DataFrame({"follower_id": 10, "followee_id": np.arange(2, 10)})
    impressions = pd.DataFrame(
        {"impression_id": [1], "viewer_id": [10], "tweet_id": [BIG_ROOT], "served_at": [NOW]}
    )
    return {
        "users": conform(users, TABLES["users"]),
        "follows": conform(follows, TABLES["follows"]),
        "tweets": conform(tweets, TABLES["tweets"]),
        "impressions": conform(impressions, TABLES["impressions"]),
    }


def conversation_index(cfg: FeedrankConfig, frames: dict[str, pd.DataFrame]) -> WorldIndex:
    return WorldIndex.from_frames(cfg, **frames)
