"""Hand-made reply trees in the delab-trees package's row format, for the real-tree tests.

A tree is a list of posts ``(post, parent, author, minute)``: ``parent`` None for the root,
``minute`` the creation time in minutes after 2022-01-01 00:00 UTC. Post names become
UUID-like strings and authors large int64 "account ids", as in the package.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import pandas as pd

Post = tuple[str, str | None, int, float]
START = pd.Timestamp("2022-01-01", tz="UTC")
ACCOUNT_BASE = 1_400_000_000_000_000_000  # real-looking account ids, far from small numbers


def source_id(tree: str, post: str) -> str:
    """A stable UUID-like source id for a post of a tree."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tree}/{post}"))


def account(author: int) -> int:
    return ACCOUNT_BASE + author


def raw_posts(
    trees: Mapping[str, Sequence[Post]],
    toxicity: Mapping[tuple[str, str], float] | None = None,
    platform: str = "twitter",
) -> pd.DataFrame:
    """The package's columns for the given trees (toxicity 0.1 unless given; text length 40)."""
    rows = []
    for tree, posts in trees.items():
        root = next(post for post, parent, _, _ in posts if parent is None)
        for post, parent, author, minute in posts:
            rows.append(
                {
                    "tree_id": source_id(tree, root),
                    "post_id": source_id(tree, post),
                    "parent_id": None if parent is None else source_id(tree, parent),
                    "author_id": account(author),
                    "created_at": START + pd.Timedelta(minutes=minute),
                    "text": 40,
                    "platform": platform,
                    "sentiment_value": 0.0,
                    "toxic_value": (toxicity or {}).get((tree, post), 0.1),
                }
            )
    return pd.DataFrame(rows)


def chain_of_replies(root_author: int, count: int, first_minute: float = 1.0) -> list[Post]:
    """A root and `count` top-level replies, one a minute, by authors 100, 101, ..."""
    posts: list[Post] = [("root", None, root_author, 0.0)]
    posts += [(f"r{i}", "root", 100 + i, first_minute + i) for i in range(count)]
    return posts
