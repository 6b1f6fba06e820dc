"""What the conversation path needs of a reply ranker: :class:`ReplyScorer` and its answer.

The default implementation (the arm's feed ranker and ``blend.weights``) is
`serving.engine.conversation.FeedRankerReplyScorer`; the conversation ranker trained on
conversation engagement implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

# The columns every scorer receives, one row per candidate reply (see ReplyScorer.score).
CANDIDATE_COLUMNS: tuple[str, ...] = (
    "tweet_id",
    "author_id",
    "in_network",
    "in_reply_to_tweet_id",
    "created_at",
    "depth",
)


@dataclass(frozen=True)
class ScoredReplies:
    """A scorer's answer for N candidates, in their row order.

    scores: [N] float64, the blended value of each reply (higher is better); predictions: head ->
    [N] probabilities (or the regression head's value); version: the model version that scored.
    """

    scores: np.ndarray
    predictions: Mapping[str, np.ndarray] = field(default_factory=dict)
    version: str = ""


def checked(scored: ScoredReplies, n: int) -> ScoredReplies:
    """A scorer's answer for `n` candidates as a ScoredReplies (any object with `scores`,
    `predictions` and `version` will do), scores as float64; ValueError naming what is wrong
    when an array does not have `n` rows or a score is not finite."""
    scores = np.asarray(scored.scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"the scorer returned scores of shape {scores.shape} for {n} replies")
    if not np.isfinite(scores).all():
        raise ValueError("the scorer returned non-finite scores")
    predictions = {head: np.asarray(values) for head, values in scored.predictions.items()}
    for head, values in predictions.items():
        if values.shape != (n,):
            raise ValueError(f"the scorer's head {head!r} has shape {values.shape} for {n} replies")
    return ScoredReplies(scores, predictions, str(scored.version))


class ReplyScorer(Protocol):
    """Scores the candidate replies of a conversation page for a viewer."""

    @property
    def version(self) -> str:
        """The version of the model that scores (what /healthz reports for replies)."""
        ...

    async def score(self, viewer_id: int, root_id: int, candidates: pd.DataFrame) -> ScoredReplies:
        """candidates: [N rows] with CANDIDATE_COLUMNS (tweet_id, author_id, in_network: the
        viewer follows the author, in_reply_to_tweet_id, created_at UTC, depth: 1 for a direct
        reply to the root) -> ScoredReplies in their row order. `root_id` is the conversation's
        root (also on the page of a reply clicked, whose replies the candidates are). Raises on
        any failure; the caller falls back to a heuristic order."""
        ...
