"""Experiment arms: stable per user, close to the configured share, reshuffled by a new salt."""

from __future__ import annotations

import numpy as np
import pytest

from serving.policy.experiments import arm_bucket, assign_arm


def test_assign_arm_is_stable_and_close_to_the_share() -> None:
    users = range(1, 10_001)
    first = [assign_arm(u, 0.3) for u in users]
    again = [assign_arm(u, 0.3) for u in users]
    assert first == again
    share = first.count("challenger") / len(first)
    assert share == pytest.approx(0.3, abs=0.02)


def test_assign_arm_without_challenger_or_share_is_champion() -> None:
    assert {assign_arm(u, 1.0, has_challenger=False) for u in range(1, 500)} == {"champion"}
    assert {assign_arm(u, 0.0) for u in range(1, 500)} == {"champion"}
    assert {assign_arm(u, 1.0) for u in range(1, 500)} == {"challenger"}


def test_arm_bucket_is_uniform_in_unit_interval_and_salted() -> None:
    buckets = np.array([arm_bucket(u) for u in range(1, 10_001)])
    assert buckets.min() >= 0.0 and buckets.max() < 1.0
    assert np.histogram(buckets, bins=10, range=(0, 1))[0].min() > 850
    other = np.array([arm_bucket(u, salt="feedrank-exp-2") for u in range(1, 10_001)])
    # A new salt reshuffles: the two draws are unrelated.
    assert abs(np.corrcoef(buckets, other)[0, 1]) < 0.05
