"""From the package's rows to clean reply trees with lake ids and consistent times.

:func:`rekey_posts` replaces every id at once (the real account ids go no further).
:func:`repair_trees` then keeps, per tree, the posts reachable from its one root by parent links
(a post whose parent is missing, or that sits on a parent cycle, is unreachable: it is dropped,
with its subtree, and counted), and repairs the times: a post's effective time is the running
maximum of the creation times down its chain from the root, so a reply never precedes what it
replies to (clock skew and edited timestamps in the source put a few replies before their parent).

A repaired frame has one row per post, trees in the order of their root's time (then id), each
tree's posts by effective time (then id):

========================  =====================================================================
``tree``                  int64, the lake id of the root post (the lake's ``conversation_id``)
``post``, ``parent``      int64 lake ids; ``parent`` is -1 for the root
``author``                int64 lake id of the author
``created_at``            the source's creation time (UTC)
``at``                    the effective time (UTC), ``>=`` the parent's
``at_s``                  ``at`` in whole seconds since the epoch (int64)
``depth``                 0 for the root, 1 for a top-level reply, ...
``top``                   the top-level reply a post sits under (itself at depth 1; -1: root)
``text_length``           characters of the withheld text
``toxicity``              float, NaN where not scored
``sentiment``             float, NaN where not scored
========================  =====================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipelines.realtrees.rekey import Rekeyer

REPAIRED_COLUMNS: tuple[str, ...] = (
    "tree",
    "post",
    "parent",
    "author",
    "created_at",
    "at",
    "at_s",
    "depth",
    "top",
    "text_length",
    "toxicity",
    "sentiment",
)


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_trees` changed: counts of trees and posts, never ids."""

    trees_in: int
    posts_in: int
    trees_dropped_without_one_root: int
    posts_dropped_unreachable: int
    trees_with_unreachable_posts: int
    trees_dropped_without_replies: int
    posts_with_repaired_time: int
    trees_out: int
    posts_out: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def rekey_posts(raw: pd.DataFrame, rekeyer: Rekeyer) -> pd.DataFrame:
    """The package's rows with lake ids: ``source_tree``, ``post``, ``parent`` (-1: none),
    ``author``, ``created_at``, ``text_length``, ``toxicity``, ``sentiment``. No source id
    (in particular no account id) is kept."""
    created = pd.to_datetime(raw["created_at"], utc=True)
    return pd.DataFrame(
        {
            "source_tree": rekeyer.ids("tree", raw["tree_id"]),
            "post": rekeyer.ids("post", raw["post_id"]),
            "parent": rekeyer.ids("post", raw["parent_id"]),
            "author": rekeyer.ids("author", raw["author_id"]),
            "created_at": created.reset_index(drop=True),
            "text_length": pd.to_numeric(raw["text"], errors="coerce").to_numpy(dtype=np.float64),
            "toxicity": pd.to_numeric(raw["toxic_value"], errors="coerce").to_numpy(np.float64),
            "sentiment": pd.to_numeric(raw["sentiment_value"], errors="coerce").to_numpy(
                np.float64
            ),
        }
    )


def _expand(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenated ranges ``[starts[i], starts[i] + lengths[i])`` as one index array."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total) - offsets


def _walk_down(
    parent_index: np.ndarray, roots: np.ndarray, created_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Breadth-first from the roots along child links: ``(depth [N] (-1: unreached),
    effective time [N] ns, top [N] row of the depth-1 ancestor (-1: none))``."""
    n = len(parent_index)
    order = np.argsort(parent_index, kind="stable")
    sorted_parents = parent_index[order]
    depth = np.full(n, -1, dtype=np.int64)
    effective = created_ns.copy()
    top = np.full(n, -1, dtype=np.int64)
    depth[roots] = 0
    frontier, level = roots, 0
    while len(frontier):
        level += 1
        lo = np.searchsorted(sorted_parents, frontier, side="left")
        hi = np.searchsorted(sorted_parents, frontier, side="right")
        children = order[_expand(lo, hi - lo)]
        children = children[depth[children] < 0]  # a cycle through a reached post stops here
        parents = parent_index[children]
        depth[children] = level
        effective[children] = np.maximum(created_ns[children], effective[parents])
        top[children] = children if level == 1 else top[parents]
        frontier = children
    return depth, effective, top


def repair_trees(posts: pd.DataFrame) -> tuple[pd.DataFrame, RepairReport]:
    """Clean trees from re-keyed posts (:func:`rekey_posts`); see the module docstring.

    A tree without exactly one root (a post without a parent) is dropped whole; so is a tree
    left without replies.
    """
    frame = posts.reset_index(drop=True)
    if frame["post"].duplicated().any():
        raise ValueError("post ids repeat across the package's rows; ids must be unique")
    is_root = (frame["parent"] < 0).to_numpy()
    roots_per_tree = pd.Series(is_root).groupby(frame["source_tree"].to_numpy()).sum()
    one_root = roots_per_tree.index[roots_per_tree.to_numpy() == 1]
    keep = frame["source_tree"].isin(one_root).to_numpy()
    dropped_no_root = int((roots_per_tree != 1).sum())
    frame = frame[keep].reset_index(drop=True)
    is_root = (frame["parent"] < 0).to_numpy()

    parent_index = pd.Index(frame["post"]).get_indexer(frame["parent"])
    same_tree = np.zeros(len(frame), dtype=bool)
    linked = parent_index >= 0
    tree_ids = frame["source_tree"].to_numpy()
    same_tree[linked] = tree_ids[parent_index[linked]] == tree_ids[linked]
    parent_index = np.where(same_tree, parent_index, -1)
    created_ns = created_ns_of(frame)
    depth, effective, top = _walk_down(parent_index, np.flatnonzero(is_root), created_ns)

    reached = depth >= 0
    frame = frame.assign(depth=depth, effective=effective, top_row=top)
    unreachable_trees = frame.loc[~reached, "source_tree"].nunique()
    root_post = pd.Series(frame["post"].to_numpy()[is_root], index=tree_ids[is_root])
    top_post = np.where(top >= 0, frame["post"].to_numpy()[np.maximum(top, 0)], -1)
    frame = frame.assign(top=top_post)[reached]
    replies = frame.groupby("source_tree")["depth"].transform("max").to_numpy()
    without_replies = frame.loc[replies == 0, "source_tree"].nunique()
    frame = frame[replies > 0]
    repaired = frame.sort_values(["source_tree", "effective", "post"], kind="stable")
    at = pd.to_datetime(repaired["effective"].to_numpy(), utc=True)
    out = pd.DataFrame(
        {
            "tree": root_post.reindex(repaired["source_tree"]).to_numpy(dtype=np.int64),
            "post": repaired["post"].to_numpy(),
            "parent": repaired["parent"].where(repaired["depth"] > 0, -1).to_numpy(),
            "author": repaired["author"].to_numpy(),
            "created_at": repaired["created_at"].array,
            "at": at,
            "at_s": repaired["effective"].to_numpy() // 1_000_000_000,
            "depth": repaired["depth"].to_numpy(),
            "top": repaired["top"].to_numpy(),
            "text_length": repaired["text_length"].to_numpy(),
            "toxicity": repaired["toxicity"].to_numpy(),
            "sentiment": repaired["sentiment"].to_numpy(),
        }
    )
    # Trees in the order of their root's time: every seeded draw over trees (splits, samples)
    # is then the same whatever salt made the ids.
    root_time = out.groupby("tree")["at_s"].transform("min")
    out = (
        out.assign(root_time=root_time)
        .sort_values(["root_time", "tree", "at_s", "post"], kind="stable")
        .drop(columns="root_time")
        .reset_index(drop=True)
    )
    report = RepairReport(
        trees_in=int(len(roots_per_tree)),
        posts_in=int(len(posts)),
        trees_dropped_without_one_root=dropped_no_root,
        posts_dropped_unreachable=int((~reached).sum()),
        trees_with_unreachable_posts=int(unreachable_trees),
        trees_dropped_without_replies=int(without_replies),
        posts_with_repaired_time=int((repaired["effective"] != created_ns_of(repaired)).sum()),
        trees_out=int(out["tree"].nunique()),
        posts_out=int(len(out)),
    )
    return out, report


def created_ns_of(frame: pd.DataFrame) -> np.ndarray:
    """``[N]`` int64 nanoseconds of a frame's ``created_at``."""
    return pd.DatetimeIndex(frame["created_at"]).as_unit("ns").asi8
