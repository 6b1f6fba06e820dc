"""Where a reply stands in its conversation at a moment: the conversation context of a candidate.

One function, :func:`conversation_context`, serves training (each impression at its own serving
time), serving (every candidate at the clock's now) and the simulated world. It is point in time:
only tweets created strictly before `at` count, so a label never leaks into its own features.

Counting "how many tweets of a group were created before each candidate's moment" is done for all
candidates at once with one sorted array of ``group rank * stride + time rank`` keys and two
binary searches per candidate (:func:`_count_before`), never a loop over candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# The lake tweet columns the context is computed from.
TWEET_COLUMNS: tuple[str, ...] = (
    "tweet_id",
    "author_id",
    "created_at",
    "conversation_id",
    "in_reply_to_tweet_id",
)
# The context of each candidate, in order (int64 counts and flags, float64 seconds).
CONTEXT_COLUMNS: tuple[str, ...] = (
    "reply_depth",
    "root_author_replied",
    "is_root_author",
    "reply_descendants",
    "conversation_size",
    "conversation_age_s",
    "reply_age_s",
)
FLOAT_COLUMNS = frozenset({"conversation_age_s", "reply_age_s"})


def conversation_context(tweets: pd.DataFrame, candidates: pd.DataFrame, at: Any) -> pd.DataFrame:
    """The conversation context of each candidate reply at `at`, one row per candidate (same order,
    a fresh RangeIndex).

    Args:
        tweets: the lake tweet columns (TWEET_COLUMNS) of the conversations concerned: roots and
            replies; ``in_reply_to_tweet_id`` is null for a root.
        candidates: ``tweet_id`` (a tweet of `tweets`) and ``viewer_id`` [N].
        at: one moment for every candidate, or [N] moments (timestamps; naive ones are UTC). Only
            tweets created strictly before a candidate's moment count for it.

    Returns [N] columns CONTEXT_COLUMNS:

    - ``reply_depth``: hops to the root (1 = a direct reply; 0 for the root itself). A parent
      missing from `tweets` is taken for a direct reply of the root (a lower bound).
    - ``root_author_replied``: 1 if the root's author replied to this tweet before `at`.
    - ``is_root_author``: 1 if the tweet is by the root's author.
    - ``reply_descendants``: replies below the tweet (at any depth) created before `at`.
    - ``conversation_size``: replies in the conversation (the root excluded) created before `at`.
    - ``conversation_age_s``: seconds from the root's creation to `at` (NaN without the root).
    - ``reply_age_s``: seconds from the tweet's creation to `at`.

    Raises ValueError naming missing columns, candidate ids absent from `tweets`, duplicate tweet
    ids, or a number of moments other than one or N.
    """
    _require(tweets, TWEET_COLUMNS, "tweets")
    _require(candidates, ("tweet_id", "viewer_id"), "candidates")
    table = _tweet_table(tweets)
    n = len(candidates)
    at_ns = _moments(at, n)
    rows = _candidate_rows(table, candidates["tweet_id"].to_numpy(np.int64))
    created = table["created_ns"].to_numpy()
    root_created = table["root_created_ns"].to_numpy()
    out = {
        "reply_depth": table["depth"].to_numpy()[rows],
        "root_author_replied": (
            _count_before(*_root_author_replies(table), table["tweet_id"].to_numpy()[rows], at_ns)
            > 0
        ).astype(np.int64),
        "is_root_author": table["by_root_author"].to_numpy()[rows].astype(np.int64),
        "reply_descendants": _count_before(
            *_descendant_pairs(table), table["tweet_id"].to_numpy()[rows], at_ns
        ),
        "conversation_size": _count_before(
            *_reply_times(table), table["conversation_id"].to_numpy()[rows], at_ns
        ),
        "conversation_age_s": _seconds(at_ns, root_created[rows]),
        "reply_age_s": _seconds(at_ns, created[rows]),
    }
    return pd.DataFrame({name: out[name] for name in CONTEXT_COLUMNS})


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"conversation_context: {what} lacks columns {missing}")


def _moments(at: Any, n: int) -> np.ndarray:
    """`at` as [n] int64 nanoseconds since the epoch, UTC."""
    if isinstance(at, pd.Series | pd.Index | np.ndarray | list | tuple):
        stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(at), utc=True))
        if len(stamps) != n:
            raise ValueError(f"conversation_context: {len(stamps)} moments for {n} candidates")
        if stamps.hasnans:
            raise ValueError("conversation_context: a moment `at` is missing (NaT)")
        return _nanoseconds(stamps)
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return np.full(n, stamp.as_unit("ns").value, dtype=np.int64)


def _nanoseconds(stamps: pd.DatetimeIndex) -> np.ndarray:
    """[N] int64 nanoseconds since the epoch, whatever the resolution the stamps are held in
    (the lake's are microseconds)."""
    return stamps.as_unit("ns").asi8.astype(np.int64)


def _tweet_table(tweets: pd.DataFrame) -> pd.DataFrame:
    """One row per tweet: ids, creation (ns), parent (-1 for a root), depth, the root's author
    and creation, and whether the tweet is by the root's author."""
    table = pd.DataFrame(
        {
            "tweet_id": tweets["tweet_id"].to_numpy(np.int64),
            "author_id": tweets["author_id"].to_numpy(np.int64),
            "created_ns": _nanoseconds(
                pd.DatetimeIndex(pd.to_datetime(tweets["created_at"], utc=True))
            ),
            "conversation_id": tweets["conversation_id"].to_numpy(np.int64),
            "parent": tweets["in_reply_to_tweet_id"].fillna(-1).to_numpy(np.int64),
        }
    )
    if table["tweet_id"].duplicated().any():
        dupes = table.loc[table["tweet_id"].duplicated(), "tweet_id"].unique()[:5].tolist()
        raise ValueError(f"conversation_context: tweets has duplicate tweet ids {dupes}")
    table["depth"] = _depths(table)
    roots = table.set_index("tweet_id")
    root_author = roots["author_id"].reindex(table["conversation_id"]).to_numpy()
    table["root_created_ns"] = roots["created_ns"].reindex(table["conversation_id"]).to_numpy()
    # A conversation whose root is absent has no known root author: nobody is it.
    table["by_root_author"] = table["author_id"].to_numpy() == root_author
    return table


def _depths(table: pd.DataFrame) -> np.ndarray:
    """[T] int64 hops from each tweet up to its root, one vectorized step per level."""
    ids = table["tweet_id"].to_numpy()
    parents = table["parent"].to_numpy()
    conversations = table["conversation_id"].to_numpy()
    position = pd.Index(ids)
    depth = np.zeros(len(ids), dtype=np.int64)
    current = parents.copy()  # each tweet's ancestor at the level reached so far
    active = current != -1
    depth[active] = 1
    for _ in range(len(ids)):
        if not active.any():
            break
        reached = current[active]
        rows = position.get_indexer(reached)
        known = rows >= 0
        ancestor_parent = np.full(len(rows), -1, dtype=np.int64)
        ancestor_parent[known] = parents[rows[known]]
        # The root ends a chain; an ancestor missing from the tweets (other than the root) ends
        # it one hop further, as a direct reply of the root would (a lower bound).
        missing_reply = ~known & (reached != conversations[active])
        climbing = np.flatnonzero(active)[(ancestor_parent != -1) | missing_reply]
        depth[climbing] += 1
        current[active] = ancestor_parent
        active = current != -1
    return depth


def _candidate_rows(table: pd.DataFrame, tweet_ids: np.ndarray) -> np.ndarray:
    rows = pd.Index(table["tweet_id"].to_numpy()).get_indexer(tweet_ids)
    if (rows < 0).any():
        unknown = np.unique(tweet_ids[rows < 0])[:5].tolist()
        raise ValueError(f"conversation_context: candidates {unknown} are not among the tweets")
    return rows


def _root_author_replies(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(parent id, creation ns) of every reply the root's author wrote."""
    mask = table["by_root_author"].to_numpy() & (table["parent"].to_numpy() != -1)
    return table["parent"].to_numpy()[mask], table["created_ns"].to_numpy()[mask]


def _descendant_pairs(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ancestor id, creation ns of a reply below it) for every ancestor of every reply."""
    parents = pd.Series(table["parent"].to_numpy(), index=table["tweet_id"].to_numpy())
    ancestors = table["parent"].to_numpy()
    created = table["created_ns"].to_numpy()
    groups, times = [], []
    reply = ancestors != -1
    while reply.any():
        groups.append(ancestors[reply])
        times.append(created[reply])
        created = created[reply]
        ancestors = parents.reindex(ancestors[reply]).fillna(-1).to_numpy(np.int64)
        reply = ancestors != -1
    if not groups:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(groups), np.concatenate(times)


def _reply_times(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(conversation id, creation ns) of every reply (roots are not replies)."""
    reply = table["parent"].to_numpy() != -1
    return table["conversation_id"].to_numpy()[reply], table["created_ns"].to_numpy()[reply]


def _count_before(
    groups: np.ndarray, times: np.ndarray, queries: np.ndarray, at_ns: np.ndarray
) -> np.ndarray:
    """[N] int64: for each query group, how many (group, time) items have time < its moment.

    Times are ranked over the items' and the moments' times together, so ``group rank * stride +
    time rank`` orders items by group, then time; a query's count is the distance between two
    binary searches in that one sorted key array.
    """
    if not len(groups):
        return np.zeros(len(queries), dtype=np.int64)
    distinct = np.unique(groups)
    all_times = np.unique(np.concatenate([times, at_ns]))
    stride = len(all_times) + 1
    keys = np.sort(np.searchsorted(distinct, groups) * stride + np.searchsorted(all_times, times))
    slot = np.searchsorted(distinct, queries)
    known = (slot < len(distinct)) & (distinct[np.minimum(slot, len(distinct) - 1)] == queries)
    start = slot * stride
    upto = start + np.searchsorted(all_times, at_ns)  # the moment's own rank: strictly before
    counts = np.searchsorted(keys, upto, side="left") - np.searchsorted(keys, start, side="left")
    return np.where(known, counts, 0).astype(np.int64)


def _seconds(at_ns: np.ndarray, since_ns: np.ndarray) -> np.ndarray:
    """[N] float64 seconds from `since_ns` to `at_ns` (NaN where `since_ns` is unknown)."""
    since = np.asarray(since_ns, dtype=np.float64)
    return (at_ns.astype(np.float64) - since) / 1e9


def follow_relations(
    follows: pd.DataFrame, repliers: np.ndarray, root_authors: np.ndarray
) -> dict[str, np.ndarray]:
    """[N] int64 ``replier_follows_root_author`` and ``root_author_follows_replier`` of each
    (reply author, root author) pair, from the follow graph (follower_id, followee_id); 0 where
    the root author is unknown (-1)."""
    graph = pd.MultiIndex.from_frame(follows[["follower_id", "followee_id"]])
    forward = pd.MultiIndex.from_arrays([repliers, root_authors]).isin(graph)
    backward = pd.MultiIndex.from_arrays([root_authors, repliers]).isin(graph)
    return {
        "replier_follows_root_author": forward.astype(np.int64),
        "root_author_follows_replier": backward.astype(np.int64),
    }
