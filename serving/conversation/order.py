"""Product order of the top-level threads of a conversation page.

Three groups, in this order: replies by accounts the viewer follows that the conversation's root
author replied to (on a reply's page too: the root author, not the clicked reply's), then replies
by verified accounts, then everyone else. Within a group the ML score orders: the thread score of linearization, best first.
"""

from __future__ import annotations

import numpy as np

GROUPS: tuple[str, ...] = ("followed_and_author_replied", "verified", "everyone_else")


def product_groups(
    followed: np.ndarray, author_replied: np.ndarray, verified: np.ndarray
) -> np.ndarray:
    """Group index [K] into GROUPS of K top-level replies, from bool [K] each: the viewer follows
    its author, the root author replied to it, its author is verified."""
    return np.where(followed & author_replied, 0, np.where(verified, 1, 2)).astype(np.int64)


def product_order(groups: np.ndarray, thread: np.ndarray) -> np.ndarray:
    """The permutation [K] that puts threads in product order: by group, then thread score
    descending; ties keep the input order."""
    return np.lexsort((np.arange(len(groups)), -np.asarray(thread, dtype=np.float64), groups))
