"""Unit tests of the offline metrics, each against arithmetic worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.evaluate.metrics import (
    calibration_curve,
    expected_calibration_error,
    head_metrics,
    log_loss,
    mean_ndcg_at_k,
    ndcg_at_k,
    pr_auc,
    rce,
    regression_metrics,
    relative_score,
    roc_auc,
)


def test_roc_auc_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # Positive/negative pairs (pos, neg): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, 0.1) ok,
    # (0.8, 0.4) ok -> 3 of 4 pairs ordered correctly.
    assert roc_auc(y, p) == pytest.approx(0.75)


def test_pr_auc_is_average_precision_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # Ranked by p: 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg).
    # Precision at each positive: 1/1 at rank 1, 2/3 at rank 3; recall steps 0.5 each.
    # AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
    assert pr_auc(y, p) == pytest.approx(5 / 6)


def test_aucs_are_nan_for_a_single_class() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(pr_auc([0, 0, 0], [0.2, 0.5, 0.9]))
    assert math.isnan(rce([0, 0, 0], [0.2, 0.5, 0.9]))


def test_log_loss_by_hand_and_clipping() -> None:
    # -(ln 0.8 + ln(1 - 0.4)) / 2 = -(ln 0.8 + ln 0.6) / 2
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    # p = 0 for a positive is clipped to 1e-7: loss = -ln(1e-7) = 16.118..., finite.
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))
    # p = 1 for a negative likewise: -ln(1 - (1 - 1e-7)) = -ln(1e-7); right answers at 0 and 1
    # cost -ln(1 - 1e-7) ~ 1e-7 each. Mean over the four rows: (2 * 16.118 + 2 * 1e-7) / 4.
    expected = (-2 * math.log(1e-7) - 2 * math.log(1 - 1e-7)) / 4
    assert log_loss([0, 1, 1, 0], [1.0, 0.0, 1.0, 0.0]) == pytest.approx(expected)


def test_log_loss_of_a_single_class_label_is_still_binary() -> None:
    # Every label 1: -(ln 0.9 + ln 0.5) / 2; every label 0: -(ln 0.1 + ln 0.5) / 2.
    assert log_loss([1, 1], [0.9, 0.5]) == pytest.approx(-(math.log(0.9) + math.log(0.5)) / 2)
    assert log_loss([0, 0], [0.9, 0.5]) == pytest.approx(-(math.log(0.1) + math.log(0.5)) / 2)
    assert math.isnan(log_loss([], []))


def test_rce_of_the_true_rate_constant_is_zero() -> None:
    y = np.array([1, 0, 0, 0])
    # The constant at the base rate 0.25 is the reference itself: CE ratio 1 -> RCE 0.
    assert rce(y, np.full(4, 0.25)) == pytest.approx(0.0, abs=1e-9)


def test_rce_by_hand() -> None:
    y = np.array([1, 0])
    p = np.array([0.8, 0.4])
    # Reference CE at base rate 0.5: ln 2 = 0.693147.
    # Model CE: -(ln 0.8 + ln 0.6) / 2 = (0.223144 + 0.510826) / 2 = 0.366985.
    # RCE = 100 * (1 - 0.366985 / 0.693147) = 47.055...
    expected = 100 * (1 - (-(math.log(0.8) + math.log(0.6)) / 2) / math.log(2))
    assert rce(y, p) == pytest.approx(expected)
    assert rce(y, p) == pytest.approx(47.055, abs=1e-3)


def test_rce_of_a_perfect_predictor_is_close_to_100() -> None:
    y = np.array([1, 0, 0, 1, 0])
    # Model CE = -ln(1 - 1e-7) ~ 1e-7 after clipping, so RCE = 100 * (1 - ~1.5e-7).
    assert rce(y, y.astype(float)) == pytest.approx(100.0, abs=1e-4)
    # A worse-than-constant predictor has negative RCE.
    assert rce(y, 1.0 - y.astype(float) * 0.9) < 0


def test_ndcg_by_hand() -> None:
    gains = np.array([3.0, 2.0, 0.0, 1.0])
    scores = np.array([0.1, 0.9, 0.5, 0.3])
    # Order by score: items 1 (gain 2), 2 (gain 0), 3 (gain 1), 0 (gain 3).
    # DCG@3 = 2/log2(2) + 0/log2(3) + 1/log2(4) = 2 + 0 + 0.5 = 2.5
    # Ideal order of gains 3, 2, 1: IDCG@3 = 3/1 + 2/log2(3) + 1/2 = 3 + 1.261860 + 0.5 = 4.761860
    # NDCG@3 = 2.5 / 4.761860 = 0.525005
    idcg = 3 + 2 / math.log2(3) + 0.5
    assert ndcg_at_k(gains, scores, k=3) == pytest.approx(2.5 / idcg)
    assert ndcg_at_k(gains, scores, k=3) == pytest.approx(0.525005, abs=1e-6)
    # Perfect order -> 1; all-zero gains -> nan (nothing to rank).
    assert ndcg_at_k(gains, gains, k=3) == pytest.approx(1.0)
    assert math.isnan(ndcg_at_k(np.zeros(3), np.array([0.3, 0.2, 0.1]), k=3))


def test_mean_ndcg_over_groups_by_hand() -> None:
    groups = np.array(["b", "a", "b", "a", "c", "c"])
    gains = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    scores = np.array([0.9, 0.2, 0.1, 0.8, 0.5, 0.4])
    # group a: scores (0.2 -> gain 1, 0.8 -> gain 0): gain 1 ranked 2nd -> 1/log2(3) = 0.630930.
    # group b: scores (0.9 -> gain 0, 0.1 -> gain 1): same, 0.630930.
    # group c: no positive gain -> skipped. Mean = 0.630930.
    assert mean_ndcg_at_k(groups, gains, scores, k=10) == pytest.approx(1 / math.log2(3))
    # With k = 1 the relevant items fall outside the cut-off in both groups -> 0.
    assert mean_ndcg_at_k(groups, gains, scores, k=1) == pytest.approx(0.0)
    assert math.isnan(mean_ndcg_at_k(groups, np.zeros(6), scores, k=10))


def test_mean_ndcg_equals_mean_of_per_group_ndcg() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, size=600)
    gains = rng.integers(0, 3, size=600).astype(float) * (rng.random(600) < 0.3)
    scores = np.round(rng.random(600), 1)  # rounded so that ties occur
    per_group = [ndcg_at_k(gains[groups == g], scores[groups == g], k=5) for g in np.unique(groups)]
    expected = np.nanmean(per_group)
    assert mean_ndcg_at_k(groups, gains, scores, k=5) == pytest.approx(expected)


def test_expected_calibration_error_by_hand() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.8, 0.9])
    # bins=2: [0, 0.5) holds p 0.1, 0.3 (y 0, 1): |mean y 0.5 - mean p 0.2| = 0.3, weight 2/4;
    # [0.5, 1] holds p 0.8, 0.9 (y 1, 1): |1 - 0.85| = 0.15, weight 2/4.
    # ECE = 0.5 * 0.3 + 0.5 * 0.15 = 0.225
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.225)
    mean_p, mean_y, count = calibration_curve(y, p, bins=2)
    np.testing.assert_allclose(mean_p, [0.2, 0.85])
    np.testing.assert_allclose(mean_y, [0.5, 1.0])
    np.testing.assert_array_equal(count, [2, 2])
    # p = 1.0 lands in the last bin rather than off the end.
    assert expected_calibration_error([1], [1.0], bins=10) == pytest.approx(0.0)


def test_calibration_bins_hold_their_upper_edge_and_skip_empty_bins() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.85])
    # bins=4 on [0, 1]: [0, .25] holds 0.0, 0.25 (y 0, 1); (.25, .5] holds 0.5 (y 0);
    # (.5, .75] holds 0.75 (y 1); (.75, 1] holds 1.0, 0.85 (y 1, 0). No bin is empty.
    mean_p, mean_y, count = calibration_curve(y, p, bins=4)
    np.testing.assert_allclose(mean_p, [0.125, 0.5, 0.75, 0.925])
    np.testing.assert_allclose(mean_y, [0.5, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(count, [2, 1, 1, 2])
    # ECE = (2 * 0.375 + 1 * 0.5 + 1 * 0.25 + 2 * 0.425) / 6 = 2.35 / 6
    assert expected_calibration_error(y, p, bins=4) == pytest.approx(2.35 / 6)
    # With 10 bins each row has a bin of its own: 6 of the 10 are filled, the 4 empty ones are
    # left out of all three arrays.
    mean_p, mean_y, count = calibration_curve(y, p, bins=10)
    np.testing.assert_allclose(mean_p, [0.0, 0.25, 0.5, 0.75, 0.85, 1.0])
    np.testing.assert_allclose(mean_y, [0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(count, [1, 1, 1, 1, 1, 1])
    # A single-class label and an empty input are no errors.
    np.testing.assert_allclose(calibration_curve(np.ones(2), [0.1, 0.9], bins=2)[1], [1.0, 1.0])
    assert all(part.size == 0 for part in calibration_curve([], [], bins=4))
    assert math.isnan(expected_calibration_error([], [], bins=4))


def test_head_metrics_collects_every_metric() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = head_metrics(y, p)
    assert {"roc_auc", "pr_auc", "rce", "ece", "positive_rate"} <= set(metrics)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["positive_rate"] == pytest.approx(0.5)
    single = head_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(single["roc_auc"]) and math.isnan(single["pr_auc"])


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="length"):
        roc_auc([0, 1], [0.5])


def test_regression_metrics_by_hand() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 4.0])
    values = regression_metrics(y, p)
    # MSE = (0.25 + 0 + 1 + 0) / 4 = 0.3125; Var(y) = 1.25 -> R² = 0.75
    assert values["r2"] == pytest.approx(0.75)
    assert values["rmse"] == pytest.approx(math.sqrt(0.3125))
    assert values["mae"] == pytest.approx(0.375)
    assert values["mean_label"] == pytest.approx(2.5)
    assert regression_metrics(y, np.full(4, 2.5))["r2"] == pytest.approx(0.0)  # the mean
    assert math.isnan(regression_metrics(np.ones(3), np.ones(3))["r2"])  # constant labels
    assert math.isnan(regression_metrics(np.ones(3), np.zeros(3))["r2"])
    assert regression_metrics(np.ones(3), np.zeros(3))["rmse"] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in regression_metrics([], []).values())


def test_relative_score_is_rce_or_100_r2() -> None:
    y = np.array([1.0, 0.0, 0.0, 1.0])
    p = np.array([0.8, 0.3, 0.1, 0.6])
    assert relative_score(y, p) == pytest.approx(rce(y, p))
    values = np.array([1.0, 2.0, 3.0, 4.0])
    guess = np.array([1.5, 2.0, 2.0, 4.0])
    assert relative_score(values, guess, regression=True) == pytest.approx(75.0)
