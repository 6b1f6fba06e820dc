"""Per-tree ranking metrics, macro-averaged over trees with bootstrap intervals.

A tree is *evaluable* when it has at least two candidates and some candidate's thread gains
replies after the cut (otherwise every order is equally right). On each evaluable tree:

- **NDCG@k** with gain = the ``gain`` label (log1p of new descendants), computed by
  ``sklearn.metrics.ndcg_score``: tied scores share the average of their positions' discounts,
  so a model that cannot tell candidates apart gets the expected value of a random order among
  them, not a lucky one.
- **Capped recall@k**: the relevant candidates are those whose thread gains at least one reply
  after the cut (gain > 0); recall = relevant in the top k / min(k, relevant), so a perfect order
  scores 1 even when more than k threads grow. Ties at the cut-off count as a random order among
  them (each tied candidate fills the remaining places with equal chance).

The macro-average over trees and its percentile interval come from ``scipy.stats.bootstrap``
(resampling trees); :func:`paired_difference` resamples the per-tree differences of two models.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import ndcg_score


def evaluable(candidates: pd.DataFrame, min_candidates: int = 2) -> pd.Index:
    """Trees with at least `min_candidates` candidates and some gain."""
    grouped = candidates.groupby("tree")
    sizes, best = grouped.size(), grouped["gain"].max()
    return sizes.index[(sizes >= max(min_candidates, 2)) & (best > 0)]


def ndcg_at(gains: np.ndarray, scores: np.ndarray, k: int) -> float:
    """NDCG@k of one tree's ranking (see the module docstring)."""
    return float(ndcg_score(gains[None, :], scores[None, :], k=k))


def capped_recall_at(gains: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Capped recall@k of one tree's ranking, expected over random tie-breaking."""
    relevant = gains > 0
    wanted = min(k, int(relevant.sum()))
    if wanted == 0:
        return float("nan")
    values, inverse = np.unique(-scores, return_inverse=True)  # best score first
    group_size = np.bincount(inverse, minlength=len(values))
    group_relevant = np.bincount(inverse, weights=relevant, minlength=len(values))
    before = np.cumsum(group_size) - group_size  # places taken by better-scored groups
    places = np.clip(k - before, 0, group_size)  # how many of each group make the top k
    found = float((group_relevant * places / group_size).sum())
    return found / wanted


def per_tree(candidates: pd.DataFrame, scores: np.ndarray, trees: pd.Index, k: int) -> pd.DataFrame:
    """``ndcg`` and ``recall`` of each tree in `trees` (index), ranking its candidates by
    `scores` (``[N]``, aligned with `candidates`' rows)."""
    frame = candidates[["tree", "gain"]].assign(score=np.asarray(scores, dtype=np.float64))
    frame = frame[frame["tree"].isin(trees)]
    rows = {}
    for tree, part in frame.groupby("tree", sort=False):
        gains, ranked = part["gain"].to_numpy(), part["score"].to_numpy()
        rows[tree] = (ndcg_at(gains, ranked, k), capped_recall_at(gains, ranked, k))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ndcg", "recall"]).reindex(trees)


def bootstrap_mean(values: np.ndarray, samples: int, confidence: float, seed: int) -> list[float]:
    """``[low, high]`` percentile interval of the mean of `values` (resampled with scipy)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return [float("nan"), float("nan")]
    result = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=samples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def summarize(
    scores: pd.DataFrame, samples: int, confidence: float, seed: int
) -> dict[str, float | list[float] | int]:
    """``{"ndcg10", "ci", "recall10", "trees"}`` of a model's per-tree metrics: means over trees,
    the NDCG mean's bootstrap interval, and the number of trees."""
    return {
        "ndcg10": float(scores["ndcg"].mean()),
        "ci": bootstrap_mean(scores["ndcg"].to_numpy(), samples, confidence, seed),
        "recall10": float(scores["recall"].mean()),
        "trees": int(len(scores)),
    }


def paired_difference(
    per_model: Mapping[str, pd.DataFrame],
    model: str,
    baseline: str,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, float | list[float]]:
    """Mean per-tree NDCG difference `model` - `baseline` on the same trees, and its interval."""
    difference = (per_model[model]["ndcg"] - per_model[baseline]["ndcg"]).to_numpy()
    return {
        "ndcg10_gain": float(difference.mean()),
        "ci": bootstrap_mean(difference, samples, confidence, seed),
    }
