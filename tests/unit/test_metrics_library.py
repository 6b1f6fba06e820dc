"""The scikit-learn metrics agree with the hand-written ones they replace, on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from pipelines.evaluate.metrics import PROB_EPS, calibration_curve, log_loss, regression_metrics


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(float)
    p = rng.random(500)
    extremes = p.copy()
    extremes[:50] = 0.0
    extremes[50:100] = 1.0
    return [(y, p), (y, extremes), (np.ones(200), p[:200]), (np.zeros(200), extremes[:200])]


@pytest.mark.parametrize("case", range(4))
def test_library_log_loss_equals_the_hand_written_one(case: int) -> None:
    y, p = _cases()[case]
    ours = log_loss(y, p)
    theirs = sk_log_loss(y, y_proba=np.clip(p, PROB_EPS, 1 - PROB_EPS), labels=[0, 1])
    assert theirs == pytest.approx(ours, rel=1e-12)


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("bins", [2, 10, 7])
def test_library_calibration_curve_equals_the_hand_written_one(case: int, bins: int) -> None:
    y, p = _cases()[case]
    mean_p, mean_y, count = calibration_curve(y, p, bins)
    prob_true, prob_pred = sk_calibration_curve(y, p, n_bins=bins, strategy="uniform")
    np.testing.assert_allclose(prob_pred, mean_p, rtol=1e-12)
    np.testing.assert_allclose(prob_true, mean_y, rtol=1e-12)
    edges = np.linspace(0.0, 1.0, bins + 1)
    filled = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    np.testing.assert_array_equal(filled[filled > 0], count)


@pytest.mark.parametrize("case", range(4))
def test_library_regression_metrics_equal_the_hand_written_ones(case: int) -> None:
    y, p = _cases()[case]
    y = y + np.random.default_rng(case).normal(size=len(y))  # a real-valued label
    ours = regression_metrics(y, p)
    assert r2_score(y, p) == pytest.approx(ours["r2"], rel=1e-12)
    assert np.sqrt(mean_squared_error(y, p)) == pytest.approx(ours["rmse"], rel=1e-12)
    assert mean_absolute_error(y, p) == pytest.approx(ours["mae"], rel=1e-12)
    constant = regression_metrics(np.ones(5), p[:5])
    assert np.isnan(constant["r2"])
