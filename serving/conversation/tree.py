"""The candidates of a page as a tree below its focal tweet, in arrays [N] by candidate, and the
linearization that chooses which branches a reader sees.

Linearization: the score of a thread is the average score of its replies down to a fixed depth
below its top reply (``conversation.thread_depth``), built bottom up one level at a time. Below
the top level, the ``shown_children`` best branches of each reply by thread score are shown, down
to ``shown_depth``; every other branch collapses into its parent's "more replies" count (the
replies of the branch, its own included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TOP_LEVEL = -1  # the parent position of a reply to the focal tweet


@dataclass(frozen=True)
class ReplyTree:
    """parent: [N] position of each candidate's parent among the candidates (TOP_LEVEL for a
    reply to the focal tweet); depth: [N] levels below the focal tweet (1 = top level);
    descendants: [N] candidates below each one; thread: [N] the position of the top-level reply
    whose thread each candidate is in (itself for a top-level reply)."""

    parent: np.ndarray
    depth: np.ndarray
    descendants: np.ndarray
    thread: np.ndarray

    @property
    def top_level(self) -> np.ndarray:
        """Positions [K] of the top-level replies, in candidate order."""
        return np.flatnonzero(self.parent == TOP_LEVEL)


def _climb(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth [N], thread [N], in_cycle [N]): levels below the top (1 = top level) and the
    top-level ancestor, by climbing all chains at once, one step per level; a chain still
    climbing after N steps is a cycle."""
    depth = np.ones(len(parent), dtype=np.int64)
    thread = np.arange(len(parent), dtype=np.int64)
    ancestor = parent.copy()
    for _ in range(len(parent)):
        climbing = ancestor != TOP_LEVEL
        if not climbing.any():
            break
        depth[climbing] += 1
        thread[climbing] = ancestor[climbing]
        ancestor[climbing] = parent[ancestor[climbing]]
    return depth, thread, ancestor != TOP_LEVEL


def build_tree(ids: np.ndarray, parent_ids: np.ndarray, focal_id: int) -> ReplyTree:
    """The tree of candidates `ids` [N] with parents `parent_ids` [N] below `focal_id`.

    A candidate whose parent is neither the focal tweet nor a candidate (a hole the ancestor
    store could not repair), or that answers itself, hangs at the top level; so does every
    member of a cycle (never in a well-formed lake).
    """
    ids = np.asarray(ids, dtype=np.int64)
    if not pd.Index(ids).is_unique:
        raise ValueError("conversation candidates repeat a tweet id")
    parent = np.asarray(pd.Index(ids).get_indexer(parent_ids), dtype=np.int64)
    parent[(parent_ids == focal_id) | (parent == np.arange(len(ids)))] = TOP_LEVEL
    depth, thread, in_cycle = _climb(parent)
    if in_cycle.any():
        parent[in_cycle] = TOP_LEVEL
        depth, thread, _ = _climb(parent)
    return ReplyTree(parent, depth, _descendants(parent, depth), thread)


def _descendants(parent: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Candidates below each candidate [N], summed from the deepest level up."""
    below = np.zeros(len(parent), dtype=np.int64)
    for level in range(int(depth.max(initial=1)), 1, -1):
        nodes = np.flatnonzero(depth == level)
        below += np.bincount(parent[nodes], weights=1 + below[nodes], minlength=len(parent)).astype(
            np.int64
        )
    return below


def thread_scores(tree: ReplyTree, scores: np.ndarray, depth: int) -> np.ndarray:
    """The average score [N] of each reply's thread: the reply and its replies down to `depth`
    levels below it, built bottom up (`depth` vectorized passes over the tree)."""
    own: np.ndarray = np.asarray(scores, dtype=np.float64)
    has_parent = tree.parent != TOP_LEVEL
    parents, n = tree.parent[has_parent], len(own)
    total: np.ndarray = own.copy()
    count: np.ndarray = np.ones(n, dtype=np.float64)
    for _ in range(depth):
        total = own + np.bincount(parents, weights=total[has_parent], minlength=n)
        count = 1.0 + np.bincount(parents, weights=count[has_parent], minlength=n)
    return total / count


def sibling_ranks(tree: ReplyTree, thread: np.ndarray) -> np.ndarray:
    """0-based rank [N] of each reply among its siblings by thread score (best first; ties
    keep candidate order)."""
    order = np.lexsort((np.arange(len(thread)), -thread, tree.parent))
    grouped = tree.parent[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order)) - first
    return ranks


@dataclass(frozen=True)
class Linearized:
    """shown: [N] whether each candidate is on the page (given its thread is); more: [N] replies
    collapsed below each shown candidate; rank: [N] its rank among its siblings."""

    shown: np.ndarray
    more: np.ndarray
    rank: np.ndarray


def linearize(
    tree: ReplyTree, thread: np.ndarray, shown_depth: int, shown_children: int
) -> Linearized:
    """Which branches to show: every top-level reply, and below it the `shown_children` best
    branches of each shown reply by thread score, down to `shown_depth`; the replies of every
    other branch are counted in its shown ancestor's `more`."""
    rank = sibling_ranks(tree, thread)
    top = tree.parent == TOP_LEVEL
    shown = (tree.depth <= shown_depth) & (top | (rank < shown_children))
    for level in range(2, int(tree.depth.max(initial=1)) + 1):
        nodes = np.flatnonzero(tree.depth == level)
        shown[nodes] &= shown[tree.parent[nodes]]
    cut = ~top & ~shown
    cut &= shown[np.where(top, 0, tree.parent)]  # the first hidden reply of a branch
    more = np.bincount(
        tree.parent[cut], weights=1 + tree.descendants[cut], minlength=len(thread)
    ).astype(np.int64)
    return Linearized(shown, more, rank)
