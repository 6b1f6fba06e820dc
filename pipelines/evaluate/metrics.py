"""Offline ranking metrics: ROC-AUC, PR-AUC, log loss, RCE, calibration, regression and NDCG.

All functions take 1-D numpy arrays (``[N]`` labels ``y`` in {0, 1}, probabilities ``p`` in
[0, 1]) and return plain floats. Degenerate inputs, such as a single class, give ``nan`` rather
than an exception, so one empty head does not abort a whole evaluation.

scikit-learn computes every metric it has (AUCs, log loss, the calibration curve, R², RMSE,
MAE); this module fixes their conventions for degenerate inputs. RCE, ECE and the grouped NDCG,
which it lacks, are written here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve as reliability_curve
from sklearn.metrics import (
    average_precision_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.metrics import log_loss as cross_entropy

PROB_EPS = 1e-7


def _pair(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 ``[N]`` arrays of equal length."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y and p differ in length: {y_arr.shape[0]} vs {p_arr.shape[0]}")
    return y_arr, p_arr


def _has_both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and bool(np.any(y > 0.5)) and bool(np.any(y <= 0.5))


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve; nan when ``y`` holds a single class."""
    y_arr, p_arr = _pair(y, p)
    if not _has_both_classes(y_arr):
        return float("nan")
    return float(roc_auc_score(y_arr > 0.5, p_arr))


def pr_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Average precision (area under the step precision-recall curve); nan for a single class."""
    y_arr, p_arr = _pair(y, p)
    if not _has_both_classes(y_arr):
        return float("nan")
    return float(average_precision_score(y_arr > 0.5, p_arr))


def log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Mean binary cross-entropy in nats, with ``p`` clipped to [1e-7, 1 - 1e-7]; nan if empty.

    The clip bounds the loss of a confident mistake at ``-ln(1e-7)`` = 16.1 nats per row
    (scikit-learn alone clips at machine epsilon, 36 nats), so one saturated prediction does not
    dominate a head's loss.
    """
    y_arr, p_arr = _pair(y, p)
    if y_arr.size == 0:
        return float("nan")
    clipped = np.clip(p_arr, PROB_EPS, 1.0 - PROB_EPS)
    # labels: a single-class y is still a binary problem.
    return float(cross_entropy(y_arr, y_proba=clipped, labels=[0, 1]))


def rce(y: ArrayLike, p: ArrayLike) -> float:
    """Relative cross-entropy: ``100 * (1 - CE(model) / CE(constant at the mean label of y))``.

    0 means no better than always predicting the base rate, 100 a perfect predictor, negative
    worse than the constant. nan when the constant's CE is 0 (a single class).
    """
    y_arr, p_arr = _pair(y, p)
    if y_arr.size == 0:
        return float("nan")
    base_rate = float(y_arr.mean())
    # At a base rate of exactly 0 or 1 the constant's CE is only the clipping epsilon.
    if not 0.0 < base_rate < 1.0:
        return float("nan")
    baseline = log_loss(y_arr, np.full_like(y_arr, base_rate))
    return 100.0 * (1.0 - log_loss(y_arr, p_arr) / baseline)


def calibration_curve(
    y: ArrayLike, p: ArrayLike, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability diagram data over ``bins`` equal-width bins of [0, 1].

    Returns ``(mean_p, mean_y, count)``, each ``[K]`` for the K non-empty bins in increasing p.
    The bins are scikit-learn's ``calibration_curve(strategy="uniform")``: the first is
    ``[0, 1/bins]``, the others ``(lo, hi]``, so p = 0 falls in the first bin and p = 1 in the
    last. ``p`` is clipped to [0, 1] first (calibrated probabilities can round an ulp past 1).
    """
    y_arr, p_arr = _pair(y, p)
    if y_arr.size == 0:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    p_arr = np.clip(p_arr, 0.0, 1.0)
    mean_y, mean_p = reliability_curve(y_arr, p_arr, n_bins=bins, strategy="uniform", pos_label=1)
    # The library gives no counts: the same binning as its own, on the same edges.
    edges = np.linspace(0.0, 1.0, bins + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], p_arr), minlength=bins)
    return mean_p, mean_y, count[count > 0]


def expected_calibration_error(y: ArrayLike, p: ArrayLike, bins: int = 10) -> float:
    """ECE = sum over equal-width bins of ``(n_b / N) * |mean(y_b) - mean(p_b)|``; nan if empty."""
    mean_p, mean_y, count = calibration_curve(y, p, bins)
    if count.sum() == 0:
        return float("nan")
    return float(np.sum(count * np.abs(mean_y - mean_p)) / count.sum())


def _discounts(size: int, k: int) -> np.ndarray:
    """``[size]`` DCG discounts ``1 / log2(rank + 1)`` for 1-based ranks, 0 beyond rank k."""
    ranks = np.arange(1, size + 1, dtype=np.float64)
    discounts: np.ndarray = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    return discounts


def ndcg_at_k(gains: ArrayLike, scores: ArrayLike, k: int) -> float:
    """NDCG@k of one list: DCG of the list ordered by ``scores`` over the DCG of the ideal order.

    ``DCG = sum_{rank <= k} gain / log2(rank + 1)``, ranks from 1, highest score first; ties keep
    the input order. nan when every gain is 0 (the ideal DCG is 0).
    """
    gain_arr, score_arr = _pair(gains, scores)
    discount = _discounts(gain_arr.size, k)
    ideal = float(np.sum(np.sort(gain_arr)[::-1] * discount))
    if ideal <= 0.0:
        return float("nan")
    order = np.argsort(-score_arr, kind="stable")
    return float(np.sum(gain_arr[order] * discount)) / ideal


def _group_dcg(codes: np.ndarray, values: np.ndarray, sort_key: np.ndarray, k: int) -> np.ndarray:
    """``[G]`` DCG@k per group of ``values`` ordered by descending ``sort_key`` within the group."""
    order = np.lexsort((-sort_key, codes))  # by group, then by key descending, stable
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, sorted_codes.size])
    rank = np.arange(sorted_codes.size) - np.repeat(starts, sizes) + 1  # 1-based within group
    discount = np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0)
    return np.bincount(sorted_codes, weights=values[order] * discount, minlength=codes.max() + 1)


def ndcg_per_group(group_ids: ArrayLike, gains: ArrayLike, scores: ArrayLike, k: int) -> np.ndarray:
    """NDCG@k of every group (e.g. feed request), ``[G]`` in order of first appearance; NaN for a
    group whose ideal DCG is 0.

    Args:
        group_ids: ``[N]`` group of each row (any hashable dtype).
        gains: ``[N]`` relevance of each row.
        scores: ``[N]`` model score of each row; higher ranks first, ties keep input order.
        k: cut-off rank.
    """
    gain_arr, score_arr = _pair(gains, scores)
    codes, _ = pd.factorize(np.asarray(group_ids).ravel())
    if codes.shape != gain_arr.shape:
        raise ValueError(f"group_ids has {codes.size} rows, gains {gain_arr.size}")
    if codes.size == 0:
        return np.empty(0)
    dcg = _group_dcg(codes, gain_arr, score_arr, k)
    ideal = _group_dcg(codes, gain_arr, gain_arr, k)
    out = np.full(len(ideal), np.nan)
    valid = ideal > 0.0
    out[valid] = dcg[valid] / ideal[valid]
    return out


def mean_ndcg_at_k(group_ids: ArrayLike, gains: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Mean NDCG@k over groups (e.g. feed requests), skipping groups whose ideal DCG is 0.

    Returns nan when no group has a positive gain. Equals the mean of :func:`ndcg_at_k` per group
    (arguments as :func:`ndcg_per_group`).
    """
    values = ndcg_per_group(group_ids, gains, scores, k)
    valid = ~np.isnan(values)
    return float(np.mean(values[valid])) if valid.any() else float("nan")


def head_metrics(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """All per-head metrics of one prediction.

    Keys: roc_auc, pr_auc, rce (%), log_loss (nats), ece, positive_rate (mean label).
    """
    y_arr, p_arr = _pair(y, p)
    return {
        "roc_auc": roc_auc(y_arr, p_arr),
        "pr_auc": pr_auc(y_arr, p_arr),
        "rce": rce(y_arr, p_arr),
        "log_loss": log_loss(y_arr, p_arr),
        "ece": expected_calibration_error(y_arr, p_arr),
        "positive_rate": float(y_arr.mean()) if y_arr.size else float("nan"),
    }


def regression_metrics(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """Metrics of a regression head (e.g. `dwell_time`, log seconds).

    Keys: r2 (``1 - MSE / Var(y)``, 0 = no better than predicting the mean, nan for constant y),
    rmse, mae, mean_label.
    """
    y_arr, p_arr = _pair(y, p)
    if y_arr.size == 0:
        return {
            "r2": float("nan"),
            "rmse": float("nan"),
            "mae": float("nan"),
            "mean_label": float("nan"),
        }
    # scikit-learn scores a constant label 0 or 1; no prediction explains a variance of 0.
    constant = float(np.var(y_arr)) == 0.0
    return {
        "r2": float("nan") if constant else float(r2_score(y_arr, p_arr)),
        "rmse": float(root_mean_squared_error(y_arr, p_arr)),
        "mae": float(mean_absolute_error(y_arr, p_arr)),
        "mean_label": float(y_arr.mean()),
    }


def relative_score(y: ArrayLike, p: ArrayLike, regression: bool = False) -> float:
    """The per-head "better than a constant" score the gate bounds: RCE (%) for a binary head,
    ``100 * R²`` for a regression head (its squared-error analogue)."""
    if regression:
        return 100.0 * regression_metrics(y, p)["r2"]
    return rce(y, p)
