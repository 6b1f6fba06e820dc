"""Candidate sources of a conversation page: the replies below its focal tweet (the root, or the
reply clicked), from the world index.

- ``recent_replies``: the recent-replies cache, the newest ``recent`` replies (newest first).
- ``top_replies``: where more replies exist than the cache holds, the best ``top`` of the older
  ones by the search-model score, a linear score of what the index knows of each reply::

      search = w_e * log(1 + engagements so far) + w_r * log(1 + direct replies to it)
               + 2 ** (-age_h / half_life_h)

  (weights and half-life: ``conversation.search_*``).
- ``ancestors``: the ancestor store's repair, the missing chain between a fetched reply and the
  focal tweet (so every candidate hangs in the tree).

Only replies created by `now` are candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np
import pandas as pd

from pipelines.config import ConversationConfig
from serving.candidates.world_index import WorldIndex
from serving.conversation.ancestors import AncestorStore
from serving.schemas import ReplySource

SOURCES: tuple[str, ...] = get_args(ReplySource)  # in the order they are fetched
NS_PER_HOUR = 3_600 * 10**9


@dataclass(frozen=True)
class Caps:
    """How many replies each fetching source may return for one request."""

    recent: int
    top: int


@dataclass(frozen=True)
class Fetched:
    """The candidates of one page: index rows [N], the source of each [N], counts per source,
    and the ids [R] (sorted) of every reply below the focal tweet that the conversation's root
    author answered (fetched or not)."""

    rows: np.ndarray
    source: np.ndarray
    counts: dict[str, int]
    author_replied: np.ndarray


def below_focal(ids: np.ndarray, parent_ids: np.ndarray, focal_id: int) -> np.ndarray:
    """bool [M]: which of the tweets `ids` [M] (with their parents [M]) descend from `focal_id`
    through tweets among `ids`. One vectorized step per level of the deepest chain."""
    positions = pd.Index(ids).get_indexer(parent_ids)  # -1: the parent is not among ids
    reached = parent_ids == focal_id
    ancestor = positions.copy()
    for _ in range(len(ids)):
        climbing = (ancestor >= 0) & ~reached
        if not climbing.any():
            break
        up = ancestor[climbing]
        reached[climbing] = parent_ids[up] == focal_id
        ancestor[climbing] = positions[up]
    return reached


def replies_below(index: WorldIndex, focal_id: int, now_ns: int) -> np.ndarray:
    """Index rows [M] of the replies below `focal_id` created by `now_ns`, oldest first."""
    tweet = index.tweet(focal_id)
    rows = index.conversation_rows(int(tweet["conversation_id"]))
    rows = rows[index.arrays.created_ns[rows] <= now_ns]
    if index.is_root(focal_id):
        return rows
    arrays = index.arrays
    return rows[below_focal(arrays.tweet_id[rows], arrays.parent_id[rows], focal_id)]


def search_scores(
    index: WorldIndex, rows: np.ndarray, now_ns: int, cfg: ConversationConfig
) -> np.ndarray:
    """The search-model score [M] of index rows [M] (see the module docstring). Direct replies
    are counted among `rows`."""
    arrays = index.arrays
    engagements = index.engagement_counts(rows, now_ns)
    positions = pd.Index(arrays.tweet_id[rows]).get_indexer(arrays.parent_id[rows])
    direct = np.bincount(positions[positions >= 0], minlength=len(rows))
    age_h = np.maximum(now_ns - arrays.created_ns[rows], 0) / NS_PER_HOUR
    return (
        cfg.search_engagement_weight * np.log1p(engagements)
        + cfg.search_reply_weight * np.log1p(direct)
        + np.exp2(-age_h / cfg.search_half_life_hours)
    )


def fetch(
    index: WorldIndex,
    store: AncestorStore,
    focal_id: int,
    now_ns: int,
    caps: Caps,
    cfg: ConversationConfig,
) -> Fetched:
    """Every source's candidates for the page of `focal_id`, without duplicates: the recent
    replies (newest first), then the top replies (best first), then the repaired ancestors."""
    below = replies_below(index, focal_id, now_ns)
    recent = below[::-1][: caps.recent]
    older = below[: max(len(below) - caps.recent, 0)]
    top = np.zeros(0, dtype=np.int64)
    if len(older) and caps.top:
        scores = search_scores(index, below, now_ns, cfg)[: len(older)]
        best = np.argsort(-scores, kind="stable")[: caps.top]
        top = older[best]
    fetched = np.concatenate([recent, top])
    repaired = store.repair(fetched, focal_id)
    parts = {"recent_replies": recent, "top_replies": top, "ancestors": repaired}
    arrays = index.arrays
    # The conversation's root (the top of the focal tweet's chain, or the focal tweet itself).
    above = store.chain(focal_id)
    root_row = int(above[0]) if len(above) else int(index.rows_of(np.array([focal_id]))[0])
    by_author = below[arrays.author_id[below] == arrays.author_id[root_row]]
    return Fetched(
        rows=np.concatenate(list(parts.values())),
        source=np.repeat(np.array(SOURCES), [len(part) for part in parts.values()]),
        counts={name: len(part) for name, part in parts.items()},
        author_replied=np.unique(arrays.parent_id[by_author]),
    )
