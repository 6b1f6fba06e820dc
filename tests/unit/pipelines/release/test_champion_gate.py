"""The promotion gate against the champion: per-request NDCG, the bootstrap interval, RCE drops."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import PromoteConfig
from pipelines.evaluate.metrics import ndcg_per_group
from pipelines.release.gates import bootstrap_interval, compare_predictions

WEIGHTS = {"fav": 1.0, "reply": 10.0}
GATE = PromoteConfig(min_ndcg_gain=0.0, max_rce_drop=1.0, bootstrap_samples=500, ndcg_k=3)


def test_ndcg_per_group_by_hand() -> None:
    requests = np.array([7, 7, 7, 9, 9, 5])
    gains = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.8, 0.3])
    values = ndcg_per_group(requests, gains, scores, k=3)
    # request 7: the relevant row is ranked 2nd -> 1/log2(3); request 9: 2nd as well; 5: no gain
    assert values[:2] == pytest.approx([1 / np.log2(3), 1 / np.log2(3)])
    assert np.isnan(values[2])


def test_bootstrap_interval_brackets_the_mean() -> None:
    assert bootstrap_interval(np.full(50, 0.2), 200, 0.95, seed=0) == pytest.approx((0.2, 0.2))
    values = np.random.default_rng(0).normal(0.1, 1.0, size=2000)
    low, high = bootstrap_interval(values, 500, 0.95, seed=1)
    assert low < values.mean() < high and high - low == pytest.approx(4 * 1 / np.sqrt(2000), 0.2)


def test_the_library_bootstrap_matches_a_percentile_bootstrap_by_hand() -> None:
    """scipy's percentile bootstrap gives the interval of resampled means read off by hand."""
    values = np.random.default_rng(3).exponential(0.3, size=400) - 0.25  # skewed, like NDCG gains
    resamples = np.random.default_rng(4).integers(0, len(values), size=(4000, len(values)))
    by_hand = np.percentile(values[resamples].mean(axis=1), [2.5, 97.5])
    low, high = bootstrap_interval(values, 4000, 0.95, seed=5)
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(low - by_hand[0]) < 0.1 * standard_error
    assert abs(high - by_hand[1]) < 0.1 * standard_error


def _world(n_requests: int = 300, size: int = 10, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    requests = np.repeat(np.arange(n_requests), size)
    p_true = {
        "fav": rng.uniform(0.02, 0.4, requests.size),
        "reply": rng.uniform(0, 0.05, requests.size),
    }
    labels = {h: (rng.uniform(size=requests.size) < p).astype(float) for h, p in p_true.items()}
    noise = {h: np.clip(p + rng.normal(0, 0.15, p.size), 0.001, 0.999) for h, p in p_true.items()}
    return requests, labels, p_true, noise


def test_a_better_challenger_passes_and_a_worse_or_equal_one_does_not() -> None:
    requests, labels, truth, noisy = _world()
    better = compare_predictions(requests, labels, truth, noisy, WEIGHTS, GATE)
    assert better.promote and better.ndcg_gain_low > 0 and better.ndcg_gain > 0
    worse = compare_predictions(requests, labels, noisy, truth, WEIGHTS, GATE)
    assert not worse.promote and worse.ndcg_gain_high < 0
    assert any("lower end must exceed" in r and r.endswith("no") for r in worse.reasons)
    same = compare_predictions(requests, labels, truth, truth, WEIGHTS, GATE)
    assert not same.promote and same.ndcg_gain == 0.0  # no evidence of a gain: keep the champion


def test_a_head_losing_too_much_rce_blocks_promotion() -> None:
    requests, labels, truth, _ = _world()
    # Same ranking (a monotone distortion of reply keeps every order) but badly calibrated reply.
    distorted = {"fav": truth["fav"] * 1.0, "reply": np.clip(truth["reply"] * 6.0, 0, 0.999)}
    lenient = GATE.model_copy(update={"min_ndcg_gain": -1.0})
    result = compare_predictions(requests, labels, distorted, truth, WEIGHTS, lenient)
    assert result.rce_drop["reply"] > 1.0 and not result.promote
    assert any("RCE of reply drops" in r for r in result.reasons)


def test_a_worse_regression_head_is_bounded_by_its_r2() -> None:
    requests, labels, truth, _ = _world()
    rng = np.random.default_rng(5)
    mean_log_dwell = rng.normal(1.0, 0.5, requests.size)
    labels = {**labels, "dwell_time": mean_log_dwell + rng.normal(0, 0.5, requests.size)}
    champion = {**truth, "dwell_time": mean_log_dwell}
    challenger = {**truth, "dwell_time": np.full(requests.size, mean_log_dwell.mean())}
    lenient = GATE.model_copy(update={"min_ndcg_gain": -1.0})
    result = compare_predictions(requests, labels, challenger, champion, WEIGHTS, lenient)
    # the champion explains about half the variance (R² ~ 0.5), the constant none: ~50 points
    assert result.rce_drop["dwell_time"] == pytest.approx(50.0, abs=8.0)
    assert not result.promote and any("dwell_time drops" in r for r in result.reasons)
