"""The heuristics and the logistic regression that the conversation ranker must beat.

Every scorer maps a candidate table (:func:`pipelines.realtrees.protocol.candidate_table`) to
``[N]`` scores, higher = shown first; ties are left as ties (the metrics average over them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipelines.realtrees.protocol import FEATURES

# The logistic regression's 11 features: the thread so far, the reply, its author.
LOGREG_FEATURES: tuple[str, ...] = (
    "descendants",
    "children",
    "recent_descendants",
    "last_activity_age_s",
    "reply_age_s",
    "arrival_share",
    "root_author_replies",
    "is_root_author",
    "toxicity",
    "text_length",
    "author_prior_posts",
)


def most_replies(candidates: pd.DataFrame) -> np.ndarray:
    """Descendants so far: the thread that grew most so far goes first."""
    return candidates["descendants"].to_numpy(dtype=np.float64)


def chronological(candidates: pd.DataFrame) -> np.ndarray:
    """Oldest reply first."""
    return -candidates["at_s"].to_numpy(dtype=np.float64)


def reverse_chronological(candidates: pd.DataFrame) -> np.ndarray:
    """Newest reply first."""
    return candidates["at_s"].to_numpy(dtype=np.float64)


def random_order(seed: int) -> Callable[[pd.DataFrame], np.ndarray]:
    """A seeded random order (no ties)."""

    def score(candidates: pd.DataFrame) -> np.ndarray:
        return np.random.default_rng(seed).random(len(candidates))

    return score


def _logreg_inputs(candidates: pd.DataFrame) -> np.ndarray:
    """``[N, 11]`` features, heavy-tailed counts log1p'd, unknown toxicity as 0."""
    values = candidates[list(LOGREG_FEATURES)].to_numpy(dtype=np.float64)
    logged = [FEATURES[name] for name in LOGREG_FEATURES]
    values[:, logged] = np.log1p(np.maximum(values[:, logged], 0.0))
    return np.nan_to_num(values, nan=0.0)


def fit_logreg(train: pd.DataFrame, max_iter: int, seed: int) -> Pipeline:
    """Logistic regression on :data:`LOGREG_FEATURES` for "the thread gains a reply after the
    cut" (gain > 0), standardized; its probability is the score."""
    model = make_pipeline(
        FunctionTransformer(_logreg_inputs),
        StandardScaler(),
        LogisticRegression(max_iter=max_iter, random_state=seed),
    )
    model.fit(train, (train["gain"].to_numpy() > 0).astype(np.int64))
    return model


def logreg_scorer(model: Pipeline) -> Callable[[pd.DataFrame], np.ndarray]:
    def score(candidates: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(candidates)[:, 1], dtype=np.float64)

    return score
