"""Author history across trees, counted strictly before a moment: a time-ordered index.

The trees span years and share authors. A candidate's author is known by what they did in
*other* conversations before the cut: how many posts they wrote and how many replies their posts
received, each counted only where the post (or the reply) is strictly older than the cut. Posts
of the candidate's own tree are left out here (the protocol counts them, before the cut, as
features of the tree itself), so nothing a tree's future holds can leak into its features.

Every count is two binary searches in one sorted key array (author, time): no loop over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_TIME_BITS = 34  # seconds since the epoch stay below 2**34 until the year 2514


def _keys(group: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """int64 keys ordering rows by group code, then time."""
    if len(seconds) and (seconds.min() < 0 or seconds.max() >= 1 << _TIME_BITS):
        raise ValueError("times must be seconds since 1970 before the year 2514")
    return (group.astype(np.int64) << _TIME_BITS) | seconds.astype(np.int64)


class _Counter:
    """Counts events per group strictly before a time, excluding a tree's own events."""

    def __init__(self, group: np.ndarray, tree: np.ndarray, seconds: np.ndarray) -> None:
        self._groups = pd.Index(pd.unique(group))
        self._pairs = pd.MultiIndex.from_arrays([tree, group]).unique()
        self._all = np.sort(_keys(self._groups.get_indexer(group), seconds))
        pair_codes = self._pairs.get_indexer(pd.MultiIndex.from_arrays([tree, group]))
        self._own = np.sort(_keys(pair_codes, seconds))

    @staticmethod
    def _before(keys: np.ndarray, codes: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        found = codes >= 0
        safe = np.where(found, codes, 0)
        hi = np.searchsorted(keys, _keys(safe, seconds), side="left")
        lo = np.searchsorted(keys, _keys(safe, np.zeros_like(seconds)), side="left")
        return np.where(found, hi - lo, 0)

    def before(self, group: np.ndarray, tree: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """``[Q]`` events of ``group[q]`` strictly before ``seconds[q]`` outside ``tree[q]``."""
        everywhere = self._before(self._all, self._groups.get_indexer(group), seconds)
        own_codes = self._pairs.get_indexer(pd.MultiIndex.from_arrays([tree, group]))
        own = self._before(self._own, own_codes, seconds)
        return everywhere - own


class AuthorHistory:
    """What each author did in other trees before a moment.

    Args:
        posts: a repaired frame (:func:`pipelines.realtrees.repair.repair_trees`): ``tree``,
            ``post``, ``parent``, ``author``, ``at_s``.
    """

    def __init__(self, posts: pd.DataFrame) -> None:
        tree = posts["tree"].to_numpy()
        author = posts["author"].to_numpy()
        seconds = posts["at_s"].to_numpy()
        self._posts = _Counter(author, tree, seconds)
        author_of = pd.Series(author, index=posts["post"].to_numpy())
        is_reply = posts["parent"].to_numpy() >= 0
        parent_author = author_of.reindex(posts["parent"].to_numpy()[is_reply]).to_numpy()
        self._received = _Counter(parent_author, tree[is_reply], seconds[is_reply])

    def posts_before(self, author: np.ndarray, tree: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """``[Q]`` posts by ``author[q]`` in trees other than ``tree[q]``, strictly before
        ``seconds[q]``."""
        return self._posts.before(author, tree, seconds)

    def replies_received_before(
        self, author: np.ndarray, tree: np.ndarray, seconds: np.ndarray
    ) -> np.ndarray:
        """``[Q]`` replies to ``author[q]``'s posts in trees other than ``tree[q]``, each reply
        strictly before ``seconds[q]``."""
        return self._received.before(author, tree, seconds)
