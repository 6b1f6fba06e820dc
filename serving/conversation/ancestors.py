"""The ancestor store: the parent link of every tweet, read from the world index (lake and live
tweets alike).

It serves two things: the chain above a reply that was clicked (the page shows it root first, then
the reply, then the replies below it), and the repair of a candidate set whose tree has holes (a
candidate's parent was not fetched, e.g. an older reply past the recent-replies cache): the
missing chain is fetched so that every candidate hangs below the page's focal tweet.
"""

from __future__ import annotations

import numpy as np

from serving.candidates.world_index import WorldIndex

NO_PARENT = -1  # the parent id of a root


class AncestorStore:
    """Parent links of every tweet the index holds, looked up by id or row."""

    def __init__(self, index: WorldIndex) -> None:
        self.index = index

    def parent_ids(self, rows: np.ndarray) -> np.ndarray:
        """Parent tweet ids [N] of tweet rows [N] (NO_PARENT for a root)."""
        return self.index.arrays.parent_id[rows]

    def chain(self, tweet_id: int) -> np.ndarray:
        """Rows [k] of the tweets above `tweet_id`, root first (empty for a root). A link to a
        tweet the index lacks ends the chain there; a cycle (never in a well-formed lake) stops
        at the first repeat."""
        index = self.index
        row = int(index.rows_of(np.array([tweet_id]))[0])
        above: list[int] = []
        seen = {row}
        while row >= 0:
            parent = int(index.arrays.parent_id[row])
            row = int(index.rows_of(np.array([parent]))[0]) if parent != NO_PARENT else -1
            if row < 0 or row in seen:
                break
            seen.add(row)
            above.append(row)
        return np.asarray(above[::-1], dtype=np.int64)

    def repair(self, rows: np.ndarray, anchor_id: int) -> np.ndarray:
        """Rows [m] to add to candidate rows [N] so that every candidate's parent chain reaches
        `anchor_id` (the page's focal tweet) through candidates: the missing ancestors, each
        once, fetched level by level (one vectorized lookup per level). A parent the index lacks,
        or a chain that reaches a root other than the anchor, is left as it is: the tree builder
        hangs such a reply directly below the anchor."""
        index = self.index
        have = np.asarray(rows, dtype=np.int64)
        added: list[np.ndarray] = []
        frontier = have
        while len(frontier):
            parents = index.arrays.parent_id[frontier]
            parents = np.unique(parents[(parents != NO_PARENT) & (parents != anchor_id)])
            parent_rows = index.rows_of(parents)
            parent_rows = parent_rows[parent_rows >= 0]
            frontier = np.setdiff1d(parent_rows, have, assume_unique=True)
            if len(frontier):
                added.append(frontier)
                have = np.concatenate([have, frontier])
        return np.concatenate(added) if added else np.zeros(0, dtype=np.int64)
