"""Product rules of serving as plain functions: blended scores, reply trees, health sections.

No Ray and no I/O here, so every rule is unit-tested on hand-made frames.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.ranking import blend_scores
from serving.schemas import ReplyNode

PREDICTION_PREFIX = "p_"  # score_candidates adds one `p_<head>` column per ranker head


def score_candidates(
    candidates: pd.DataFrame, predictions: Mapping[str, np.ndarray], weights: Mapping[str, float]
) -> pd.DataFrame:
    """`candidates` (reindexed, in their order) with the blended `score` and one `p_<head>`
    column per head. predictions: head -> probabilities [N] in the candidates' row order;
    weights: head -> blend weight."""
    for head, values in predictions.items():
        if len(values) != len(candidates):
            raise ValueError(
                f"head {head!r} has {len(values)} predictions for {len(candidates)} candidates"
            )
    score = blend_scores(predictions, weights) if len(candidates) else np.zeros(0)
    return candidates.reset_index(drop=True).assign(
        score=score,
        **{
            f"{PREDICTION_PREFIX}{head}": np.asarray(p, dtype=np.float64)
            for head, p in predictions.items()
        },
    )


def head_columns(frame: pd.DataFrame) -> dict[str, str]:
    """head -> column name of the `p_<head>` columns that :func:`score_candidates` added."""
    return {
        col[len(PREDICTION_PREFIX) :]: col
        for col in frame.columns
        if col.startswith(PREDICTION_PREFIX)
    }


def build_reply_tree(
    replies: pd.DataFrame,
    root_id: int,
    scores: np.ndarray,
    predictions: Mapping[str, np.ndarray] | None = None,
) -> list[ReplyNode]:
    """Nest the replies of a conversation into a tree; siblings ordered by score descending.

    replies: [N rows] with tweet_id, author_id, in_reply_to_tweet_id, toxicity (the conversation
    without its root); scores: [N] blended scores in the same row order; predictions: head -> [N]
    probabilities (optional). Returns the top-level nodes (direct replies to `root_id`), each with
    its subtree. A reply whose parent is missing from `replies` is repaired into a top-level reply
    rather than dropped. Ties between siblings keep the row order (stable).
    """
    if len(scores) != len(replies):
        raise ValueError(f"{len(scores)} scores for {len(replies)} replies")
    heads = predictions or {}
    ids = replies["tweet_id"].to_numpy(dtype=np.int64)
    parents = replies["in_reply_to_tweet_id"].to_numpy()
    known = set(ids.tolist())
    children: dict[int, list[int]] = {}
    # Visit rows best first so every child list comes out ordered by score.
    for row in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        parent = parents[row]
        parent_id = int(parent) if pd.notna(parent) and int(parent) in known else int(root_id)
        if parent_id == ids[row]:  # a self-reply would be a cycle; treat as top level
            parent_id = int(root_id)
        children.setdefault(parent_id, []).append(int(row))

    authors = replies["author_id"].to_numpy(dtype=np.int64)
    toxicity = replies["toxicity"].to_numpy(dtype=np.float64)

    def node(row: int, path: frozenset[int]) -> ReplyNode:
        tweet_id = int(ids[row])
        kids = [r for r in children.get(tweet_id, []) if int(ids[r]) not in path]
        inner = path | {tweet_id}
        return ReplyNode(
            tweet_id=tweet_id,
            author_id=int(authors[row]),
            score=float(scores[row]),
            toxicity=float(toxicity[row]),
            predictions={head: float(values[row]) for head, values in heads.items()},
            replies=[node(r, inner) for r in kids],
        )

    return [node(row, frozenset({int(root_id)})) for row in children.get(int(root_id), [])]


def section_replies(
    top_level: list[ReplyNode], toxicity_threshold: float
) -> tuple[list[ReplyNode], list[ReplyNode]]:
    """Split top-level reply subtrees into (main, low_quality), each keeping the input order.

    A whole subtree goes to low_quality when its top reply's toxicity is above the threshold, so a
    toxic reply does not drag its (possibly healthy) answers into the main section out of context.
    """
    main = [n for n in top_level if n.toxicity <= toxicity_threshold]
    low_quality = [n for n in top_level if n.toxicity > toxicity_threshold]
    return main, low_quality
