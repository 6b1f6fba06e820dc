"""The feed's heuristics on hand-made scored frames: discounts of negative scores, out-of-network
scaling, "show fewer" fatigue, author diversity and the repetition penalty, each alone (the others
neutral) and all together."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ServeConfig
from serving.policy.heuristics import (
    apply_heuristics,
    discount,
    fatigue_factor,
    repetition_penalty,
)

NOW = pd.Timestamp("2026-03-10 12:00", tz="UTC")
DAY = pd.Timedelta(days=1)
NOTHING_SEEN = np.zeros(0, dtype=np.int64)


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


def only(**heuristic: float) -> ServeConfig:
    """A config whose heuristics are all neutral (factor 1, no repetition penalty) but those
    given."""
    neutral = {
        "out_of_network_scale": 1.0,
        "author_diversity_decay": 1.0,
        "repetition_penalty_positions": 0,
    }
    return ServeConfig(**{**neutral, **heuristic})


def by_tweet(out: pd.DataFrame, column: str, tweet_ids: list[int]) -> list[float]:
    return out.set_index("tweet_id").loc[tweet_ids, column].tolist()


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
    out = apply_heuristics(frame, only(out_of_network_scale=0.75), NOW, {}, NOTHING_SEEN)
    assert out["tweet_id"].tolist() == [3, 1, 2]
    assert by_tweet(out, "score", [1, 2, 3]) == pytest.approx([1.0, -1.0 / 0.75, 1.5])
    assert by_tweet(out, "heuristic_factor", [1, 2, 3]) == [1.0, 0.75, 0.75]
    assert frame["score"].tolist() == [1.0, -1.0, 2.0]  # the input is left alone


def test_fatigue_recovers_linearly_after_show_fewer() -> None:
    days = np.array([-1.0, 0.0, 3.5, 7.0, 10.5, 14.0, 28.0])
    assert fatigue_factor(days, 0.2, 14.0) == pytest.approx([0.2, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    frame = scored([1.0, 1.0, -1.0, 1.0, 1.0], [7, 8, 8, 9, 10], [True] * 5)
    show_fewer = {7: NOW - 7 * DAY, 8: NOW, 9: NOW - 20 * DAY}
    cfg = only(fatigue_min_factor=0.2, fatigue_recovery_days=14.0)
    out = apply_heuristics(frame, cfg, NOW, show_fewer, NOTHING_SEEN)
    tweets = [1, 2, 3, 4, 5]
    assert by_tweet(out, "heuristic_factor", tweets) == pytest.approx([0.6, 0.2, 0.2, 1.0, 1.0])
    assert by_tweet(out, "score", tweets) == pytest.approx([0.6, 0.2, -5.0, 1.0, 1.0])
    assert out["tweet_id"].tolist() == [4, 5, 1, 2, 3]
    unasked = apply_heuristics(frame, cfg, NOW, {}, NOTHING_SEEN)
    assert by_tweet(unasked, "score", tweets) == frame["score"].tolist()


def test_author_diversity_decays_each_further_tweet_of_an_author_down_to_the_floor() -> None:
    # Score order: 10 (A), 9 (A), 8 (B), 7 (A), 6 (A), -1 (A); given shuffled.
    frame = scored([7.0, 10.0, 6.0, 8.0, 9.0, -1.0], [1, 1, 1, 2, 1, 1], [True] * 6)
    cfg = only(author_diversity_decay=0.5, author_diversity_floor=0.25)
    out = apply_heuristics(frame, cfg, NOW, {}, NOTHING_SEEN)
    tweets = [1, 2, 3, 4, 5, 6]
    assert by_tweet(out, "heuristic_factor", tweets) == [0.25, 1.0, 0.25, 1.0, 0.5, 0.25]
    assert by_tweet(out, "score", tweets) == pytest.approx([1.75, 10.0, 1.5, 8.0, 4.5, -4.0])
    assert out["tweet_id"].tolist() == [2, 4, 5, 1, 3, 6]
    cfg = only(author_diversity_decay=0.5, author_diversity_floor=0.1)
    ties = apply_heuristics(scored([1.0, 1.0], [3, 3], [True, True]), cfg, NOW, {}, NOTHING_SEEN)
    assert ties["heuristic_factor"].tolist() == [1.0, 0.5]  # ties: the earlier row first


def test_the_page_is_in_score_order_and_ties_keep_the_candidate_order() -> None:
    frame = scored([0.2, 0.5, 0.2, 0.5], [1, 2, 3, 4], [True] * 4)
    out = apply_heuristics(frame.assign(tweet_id=[5, 3, 9, 1]), only(), NOW, {}, NOTHING_SEEN)
    assert out["tweet_id"].tolist() == [3, 1, 5, 9]


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


def test_on_a_random_feed_the_discounts_compose_as_computed_row_by_row() -> None:
    rng = np.random.default_rng(5)
    n = 400
    frame = scored(
        (rng.normal(size=n) * 3).tolist(),
        rng.integers(1, 40, n).tolist(),
        (rng.random(n) < 0.4).tolist(),
    )
    cfg = ServeConfig()
    show_fewer = {3: NOW - 2 * DAY, 7: NOW - 20 * DAY, 11: NOW}
    # One row at a time: out of network and fatigue, then each author's k-th tweet by that score.
    factor: dict[int, float] = {}
    score: dict[int, float] = {}
    for row in frame.itertuples():
        f = 1.0 if row.in_network else cfg.out_of_network_scale
        if row.author_id in show_fewer:
            days = (NOW - show_fewer[row.author_id]) / DAY
            recovered = min(max(days / cfg.fatigue_recovery_days, 0.0), 1.0)
            f *= cfg.fatigue_min_factor + (1.0 - cfg.fatigue_min_factor) * recovered
        factor[row.tweet_id] = f
        score[row.tweet_id] = row.score * f if row.score >= 0 else row.score / f
    author = dict(zip(frame["tweet_id"], frame["author_id"], strict=True))
    earlier: Counter[int] = Counter()
    for tweet_id in sorted(score, key=lambda t: -score[t]):  # stable: ids are in row order
        f = max(cfg.author_diversity_floor, cfg.author_diversity_decay ** earlier[author[tweet_id]])
        earlier[author[tweet_id]] += 1
        factor[tweet_id] *= f
        score[tweet_id] = score[tweet_id] * f if score[tweet_id] >= 0 else score[tweet_id] / f
    order = sorted(score, key=lambda t: -score[t])

    out = apply_heuristics(frame, cfg, NOW, show_fewer, NOTHING_SEEN)
    assert out["tweet_id"].tolist() == order
    assert out["score"].tolist() == pytest.approx([score[t] for t in order])
    assert out["heuristic_factor"].tolist() == pytest.approx([factor[t] for t in order])
    # A repeated tweet then moves down the page the heuristics ordered.
    repeated = frame["tweet_id"].to_numpy()[rng.integers(0, n, 30)]
    pd.testing.assert_frame_equal(
        apply_heuristics(frame, cfg, NOW, show_fewer, repeated),
        repetition_penalty(out, repeated, cfg.repetition_penalty_positions),
    )
