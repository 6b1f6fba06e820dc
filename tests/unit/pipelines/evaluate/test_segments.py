"""Unit tests of the evaluation's segments and its logistic-regression baseline, on hand-made data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig, RankerConfig
from pipelines.evaluate.metrics import rce, roc_auc
from pipelines.evaluate.offline import (
    MIN_SEGMENT_ROWS,
    flatten_metrics,
    origin_ndcg,
    segment_masks,
    segment_metrics,
)
from pipelines.models.masknet import FeatureNormalizer
from pipelines.schema import HEADS
from pipelines.train.baselines import fit_logreg, predict_logreg, standardize

NAN = float("nan")


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Training rows per viewer: 1 -> 25, 2 -> 5, 3 -> 40, 4 -> 21, 6 -> 20 (5 never trained).
    # Per-viewer counts sorted [5, 20, 21, 25, 40]: the 75th percentile is 25.
    train = pd.DataFrame({"viewer_id": np.repeat([1, 2, 3, 4, 6], [25, 5, 40, 21, 20])})
    # Followers 1..9 and 100 (median 5.5, 90th percentile 18.1) and one missing.
    test = pd.DataFrame(
        {
            "viewer_id": [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5],
            "author_follower_count": [1, 2, 3, 4, 5, 6, 7, 8, 9, 100, NAN],
            "in_network": [1.0, 0.0, 1.0, 0.0, NAN, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
            "served": [False] * 6 + [True] * 5,
        }
    )
    return test, train


def _rows(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask).tolist()


def test_segment_masks_on_hand_made_rows() -> None:
    test, train = _frames()
    masks = segment_masks(test, train)

    assert set(masks) == {
        "new_viewers",
        "long_history_viewers",
        "small_authors",
        "large_authors",
        "in_network",
        "out_of_network",
        "served",
        "organic",
    }
    for mask in masks.values():
        assert mask.dtype == bool and mask.shape == (len(test),)
    # <= 20 training rows: viewer 2 (5), viewer 5 (none), viewer 6 (exactly 20); not 4 (21).
    assert _rows(masks["new_viewers"]) == [1, 4, 5, 7, 10]
    # >= 25 training rows: viewers 1 and 3.
    assert _rows(masks["long_history_viewers"]) == [0, 2, 6, 8]
    # Below the median 5.5; at or above 18.1; the missing count is in neither.
    assert _rows(masks["small_authors"]) == [0, 1, 2, 3, 4]
    assert _rows(masks["large_authors"]) == [9]
    # A missing in_network flag is in neither side.
    assert _rows(masks["in_network"]) == [0, 2, 5, 6, 9]
    assert _rows(masks["out_of_network"]) == [1, 3, 7, 8, 10]
    # The live service served the last five; the world's logging policy the first six.
    assert _rows(masks["served"]) == [6, 7, 8, 9, 10]
    assert _rows(masks["organic"]) == [0, 1, 2, 3, 4, 5]


def test_segment_metrics_skips_small_segments_and_one_class_heads() -> None:
    rng = np.random.default_rng(0)
    n = 200
    labels = np.stack([rng.random(n) < 0.3, np.zeros(n, dtype=bool)], axis=1).astype(np.float32)
    p_fav = np.clip(0.3 + 0.4 * (labels[:, 0] - 0.3) + rng.normal(0, 0.1, n), 0.01, 0.99)
    predictions = {"ranker": {"fav": p_fav, "reply": np.full(n, 0.1)}}
    big = np.arange(n) < 120
    small = np.arange(n) < MIN_SEGMENT_ROWS - 1
    segments = segment_metrics(["fav", "reply"], labels, predictions, {"big": big, "small": small})

    assert segments["big"]["rows"] == 120
    assert segments["small"]["rows"] == MIN_SEGMENT_ROWS - 1
    # reply has no positives anywhere: no metric rather than NaN; the small segment has none.
    assert set(segments["big"]["models"]["ranker"]) == {"fav"}
    assert segments["small"]["models"]["ranker"] == {}
    fav = segments["big"]["models"]["ranker"]["fav"]
    assert fav["rce"] == pytest.approx(rce(labels[big, 0], p_fav[big]))
    assert fav["roc_auc"] == pytest.approx(roc_auc(labels[big, 0], p_fav[big]))


def test_flatten_metrics_names_segment_metrics() -> None:
    results = {
        "models": {"ranker": {"fav": {"rce": 5.0}}},
        "ndcg": {"ranker": 0.4},
        "segments": {
            "new_viewers": {
                "rows": 812,
                "models": {
                    "ranker": {"fav": {"rce": 3.0, "roc_auc": 0.7}},
                    "logreg": {"fav": {"rce": 1.5, "roc_auc": 0.65}},
                },
            },
            "large_authors": {"rows": 10, "models": {"ranker": {}, "logreg": {}}},
        },
    }
    flat = flatten_metrics(results)
    assert flat == {
        "ranker_rce_fav": 5.0,
        "ranker_ndcg": 0.4,
        "segment_rows_new_viewers": 812.0,
        "ranker_rce_fav_new_viewers": 3.0,
        "ranker_roc_auc_fav_new_viewers": 0.7,
        "logreg_rce_fav_new_viewers": 1.5,
        "logreg_roc_auc_fav_new_viewers": 0.65,
        "segment_rows_large_authors": 10.0,
    }


def test_logreg_features_log_impute_and_scale_by_hand() -> None:
    x = np.array([[0.0, 1.0], [math.e - 1.0, 3.0], [NAN, NAN]])
    standardizer = FeatureNormalizer.fit(x, np.array([True, False]))
    # Column 0 -> log1p -> [0, 1] (mean 0.5, std 0.5); column 1 [1, 3] (mean 2, std 1).
    np.testing.assert_allclose(standardizer.mean.numpy(), [0.5, 2.0])
    np.testing.assert_allclose(standardizer.std.numpy(), [0.5, 1.0])
    out = standardize(standardizer, np.array([[-(math.e - 1.0), NAN], [np.inf, 4.0]]))
    # sign-preserving log: -(e - 1) -> -1 -> (-1 - 0.5) / 0.5; missing and inf -> the mean (0).
    np.testing.assert_allclose(out, [[-3.0, 0.0], [0.0, 2.0]], atol=1e-6)


def _logreg_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` [n, 4] (raw scales, 10% NaN in one column) and ``y`` [n, 8] in HEADS order:
    fav depends on x0 and x1 only; report never happens; the rest are coin flips."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 1] *= 1e4  # a raw count scale: standardization must handle it
    fav = (x[:, 0] + x[:, 1] / 1e4 + 0.3 * rng.normal(size=n)) > 0.5
    x[rng.random(n) < 0.1, 2] = np.nan
    y = (rng.random((n, len(HEADS))) < 0.2).astype(np.float32)
    y[:, HEADS.index("fav")] = fav
    y[:, HEADS.index("report")] = 0.0
    return x.astype(np.float32), y


def test_logreg_learns_a_separable_head_and_survives_nan_and_one_class() -> None:
    cfg = FeedrankConfig(ranker=RankerConfig(lgbm_max_rows=1000))
    x_train, y_train = _logreg_problem(3000, seed=0)
    x_test, y_test = _logreg_problem(2000, seed=1)
    x_test[:5] = np.nan  # a row with nothing known still gets a probability

    baseline = fit_logreg(cfg, x_train, y_train)
    predicted = predict_logreg(baseline, x_test)

    assert set(predicted) == set(cfg.ranker.heads)
    for head, p in predicted.items():
        assert p.shape == (len(x_test),)
        assert np.all(np.isfinite(p))
        if head in cfg.ranker.binary_heads:  # probabilities; dwell_time is a ridge regression
            assert np.all((p >= 0) & (p <= 1))
    dwell_time = y_test[:, HEADS.index("dwell_time")]
    assert abs(predicted["dwell_time"].mean() - dwell_time.mean()) < 0.05
    fav = y_test[:, HEADS.index("fav")]
    assert roc_auc(fav, predicted["fav"]) > 0.9
    assert rce(fav, predicted["fav"]) > 20.0  # far better than the base-rate constant
    # A head with one training class predicts its training rate.
    np.testing.assert_array_equal(predicted["report"], 0.0)


def test_evaluation_keeps_to_impressions_the_truth_covers() -> None:
    from pipelines.evaluate.offline import with_truth

    truth = pd.DataFrame({"impression_id": [1, 2, 3]})
    served_live = 10**12 + 1  # an impression the live service served: no truth
    assert with_truth(truth, np.array([3, served_live, 1])).tolist() == [True, False, True]
    assert with_truth(truth.iloc[:0], np.array([served_live])).tolist() == [True]  # no truth


def test_blended_ndcg_is_reported_on_served_and_organic_rows_apart() -> None:
    cfg = FeedrankConfig()
    rng = np.random.default_rng(1)
    n = 2 * MIN_SEGMENT_ROWS + 20  # 12 requests of 10 items: the first 6 served, the others not
    requests = np.repeat(np.arange(n // 10), 10)
    served = requests < n // 20
    truth = {head: rng.random(n) for head in cfg.ranker.heads}
    # A ranker that knows the truth on the served rows and ranks the organic ones backwards.
    ranker = {head: np.where(served, p, 1.0 - p) for head, p in truth.items()}
    masks = {"served": served, "organic": ~served}

    by_origin = origin_ndcg(cfg, requests, truth, {"ranker": ranker, "oracle": truth}, masks)

    assert by_origin["served"]["ranker"] == pytest.approx(1.0)
    assert by_origin["organic"]["ranker"] < by_origin["organic"]["oracle"] == pytest.approx(1.0)
    flat = flatten_metrics({"models": {}, "ndcg": {}, "ndcg_by_origin": by_origin})
    assert flat["ranker_ndcg_served"] == pytest.approx(1.0)
    assert flat["ranker_ndcg_organic"] == by_origin["organic"]["ranker"]


def test_an_origin_with_too_few_rows_gets_no_ndcg() -> None:
    cfg = FeedrankConfig()
    n = MIN_SEGMENT_ROWS + 10
    requests = np.repeat(np.arange(n // 10 + 1), 10)[:n]
    truth = {head: np.linspace(0, 1, n) for head in cfg.ranker.heads}
    masks = {"served": np.zeros(n, dtype=bool), "organic": np.ones(n, dtype=bool)}
    assert set(origin_ndcg(cfg, requests, truth, {"oracle": truth}, masks)) == {"organic"}
