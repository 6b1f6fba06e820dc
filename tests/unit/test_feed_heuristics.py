"""The feed's heuristics on hand-made scored frames: discounts of negative scores, out-of-network
scaling, "show fewer" fatigue, author diversity and the repetition penalty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ServeConfig
from serving.heuristics import (
    apply_heuristics,
    author_diversity,
    discount,
    fatigue_factor,
    feedback_fatigue,
    out_of_network_scaling,
    repetition_penalty,
)

NOW = pd.Timestamp("2026-03-10 12:00", tz="UTC")
DAY = pd.Timedelta(days=1)


def scored(scores: list[float], authors: list[int], in_network: list[bool]) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame(
        {
            "tweet_id": np.arange(1, n + 1, dtype=np.int64),
            "author_id": np.asarray(authors, dtype=np.int64),
            "in_network": in_network,
            "source": ["in_network_recent"] * n,
            "score": np.asarray(scores, dtype=np.float64),
        }
    )


def test_a_discount_always_moves_a_score_down() -> None:
    assert discount(np.array([2.0, -2.0, 0.0]), 0.5).tolist() == [1.0, -4.0, 0.0]
    assert discount(np.array([2.0, -2.0]), np.array([0.25, 0.25])).tolist() == [0.5, -8.0]
    assert discount(np.array([-3.0]), 1.0).tolist() == [-3.0]
    # Composable: a then b is a * b, for either sign.
    scores = np.array([1.5, -1.5])
    assert discount(discount(scores, 0.5), 0.4) == pytest.approx(discount(scores, 0.2))
    with pytest.raises(ValueError, match="positive"):
        discount(np.array([1.0]), 0.0)


def test_out_of_network_scaling_discounts_only_out_of_network() -> None:
    frame = scored([1.0, -1.0, 2.0], [1, 2, 3], [True, False, False])
    out = out_of_network_scaling(frame, 0.75)
    assert out["score"].tolist() == pytest.approx([1.0, -1.0 / 0.75, 1.5])
    assert out["heuristic_factor"].tolist() == [1.0, 0.75, 0.75]
    assert frame["score"].tolist() == [1.0, -1.0, 2.0]  # the input is left alone


def test_fatigue_recovers_linearly_after_show_fewer() -> None:
    days = np.array([-1.0, 0.0, 3.5, 7.0, 10.5, 14.0, 28.0])
    assert fatigue_factor(days, 0.2, 14.0) == pytest.approx([0.2, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    frame = scored([1.0, 1.0, -1.0, 1.0, 1.0], [7, 8, 8, 9, 10], [True] * 5)
    show_fewer = {7: NOW - 7 * DAY, 8: NOW, 9: NOW - 20 * DAY}
    out = feedback_fatigue(frame, show_fewer, NOW, min_factor=0.2, recovery_days=14.0)
    assert out["heuristic_factor"].tolist() == pytest.approx([0.6, 0.2, 0.2, 1.0, 1.0])
    assert out["score"].tolist() == pytest.approx([0.6, 0.2, -5.0, 1.0, 1.0])
    assert feedback_fatigue(frame, {}, NOW, 0.2, 14.0)["score"].tolist() == frame["score"].tolist()


def test_author_diversity_decays_each_further_tweet_of_an_author_down_to_the_floor() -> None:
    # Score order: 10 (A), 9 (A), 8 (B), 7 (A), 6 (A), -1 (A); given shuffled.
    frame = scored([7.0, 10.0, 6.0, 8.0, 9.0, -1.0], [1, 1, 1, 2, 1, 1], [True] * 6)
    out = author_diversity(frame, decay=0.5, floor=0.25)
    assert out["heuristic_factor"].tolist() == [0.25, 1.0, 0.25, 1.0, 0.5, 0.25]
    assert out["score"].tolist() == pytest.approx([1.75, 10.0, 1.5, 8.0, 4.5, -4.0])
    ties = author_diversity(scored([1.0, 1.0], [3, 3], [True, True]), decay=0.5, floor=0.1)
    assert ties["heuristic_factor"].tolist() == [1.0, 0.5]  # ties: the earlier row first


def test_the_repetition_penalty_moves_a_repeated_tweet_exactly_three_places_down() -> None:
    frame = scored([6.0, 5.0, 4.0, 3.0, 2.0, 1.0], [1, 2, 3, 4, 5, 6], [True] * 6)

    def order(repeated: set[int], positions: int = 3) -> list[int]:
        return repetition_penalty(frame, repeated, positions)["tweet_id"].tolist()

    assert order({1}) == [2, 3, 4, 1, 5, 6]
    assert order({1, 2}) == [3, 4, 5, 1, 2, 6]
    assert order({2, 4}) == [1, 3, 5, 6, 2, 4]  # 2 to place 4; 4 would be 6, past the end
    assert order({5}) == [1, 2, 3, 4, 6, 5]  # near the end: to the end
    assert order({1}, positions=0) == [1, 2, 3, 4, 5, 6]
    assert order(set()) == [1, 2, 3, 4, 5, 6]
    moved = repetition_penalty(frame, np.array([3]), 3)
    assert moved["tweet_id"].tolist() == [1, 2, 4, 5, 6, 3]
    assert moved["score"].tolist() == [6.0, 5.0, 3.0, 2.0, 1.0, 4.0]  # scores are kept


def test_apply_heuristics_in_order_then_the_repetition_penalty() -> None:
    frame = scored(
        [1.0, 0.9, 1.2, 0.8, 0.7, -0.2, 0.6],
        [10, 10, 20, 30, 40, 50, 60],
        [True, True, False, True, True, False, True],
    )
    out = apply_heuristics(
        frame, ServeConfig(), NOW, show_fewer={30: NOW - 7 * DAY}, repeated=np.array([7])
    )
    # out of network x0.75: 3 -> 0.9, 6 -> -0.2667; fatigue x0.6: 4 -> 0.48; diversity: 2 is
    # author 10's second (x0.5) -> 0.45; sorted 1, 3, 5, 7, 4, 2, 6; then 7 moves 3 places down.
    assert out["tweet_id"].tolist() == [1, 3, 5, 4, 2, 6, 7]
    expected = {1: 1.0, 3: 0.9, 5: 0.7, 4: 0.48, 2: 0.45, 6: -0.2 / 0.75, 7: 0.6}
    assert out["score"].tolist() == pytest.approx([expected[t] for t in out["tweet_id"]])
    factors = {1: 1.0, 3: 0.75, 5: 1.0, 4: 0.6, 2: 0.5, 6: 0.75, 7: 1.0}
    assert out["heuristic_factor"].tolist() == pytest.approx([factors[t] for t in out["tweet_id"]])
    assert list(out.index) == list(range(7))


def test_apply_heuristics_equals_the_chained_frame_functions() -> None:
    rng = np.random.default_rng(5)
    n = 400
    frame = scored(
        (rng.normal(size=n) * 3).tolist(),
        rng.integers(1, 40, n).tolist(),
        (rng.random(n) < 0.4).tolist(),
    )
    cfg = ServeConfig()
    show_fewer = {3: NOW - 2 * DAY, 7: NOW - 20 * DAY, 11: NOW}
    repeated = frame["tweet_id"].to_numpy()[rng.integers(0, n, 30)]
    chained = frame.assign(heuristic_factor=1.0)
    chained = out_of_network_scaling(chained, cfg.out_of_network_scale)
    chained = feedback_fatigue(
        chained, show_fewer, NOW, cfg.fatigue_min_factor, cfg.fatigue_recovery_days
    )
    chained = author_diversity(chained, cfg.author_diversity_decay, cfg.author_diversity_floor)
    order = np.argsort(-chained["score"].to_numpy(), kind="stable")
    chained = repetition_penalty(
        chained.iloc[order].reset_index(drop=True), repeated, cfg.repetition_penalty_positions
    )
    pd.testing.assert_frame_equal(apply_heuristics(frame, cfg, NOW, show_fewer, repeated), chained)
