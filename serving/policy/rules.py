"""Product rules of the home feed as plain functions: blended scores and their head columns.

The conversation page's rules (tree, linearization, product order, sections, ads) live in
`serving.conversation`.

No Ray and no I/O here, so every rule is unit-tested on hand-made frames.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.ranking import blend_scores

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
