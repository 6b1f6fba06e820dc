"""The feed score: a weighted blend of head probabilities, shared by evaluation and serving."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def blend_scores(predictions: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Score = sum over heads of weight * probability.

    predictions: head -> probabilities [N]; weights: head -> weight (heads without a weight count 0).
    A weight for a head that is missing from `predictions` is an error, not a silent zero.
    """
    missing = [head for head in weights if head not in predictions]
    if missing:
        raise KeyError(f"blend weights name heads without predictions: {missing}")
    size = len(next(iter(predictions.values()))) if predictions else 0
    score = np.zeros(size, dtype=np.float64)
    for head, weight in weights.items():
        score += weight * np.asarray(predictions[head], dtype=np.float64)
    return score
