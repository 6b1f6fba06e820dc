"""Per-tree metrics on known rankings, the bootstrap, and the splits of trees."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.realtrees.metrics import (
    bootstrap_mean,
    capped_recall_at,
    evaluable,
    ndcg_at,
    paired_difference,
    per_tree,
    summarize,
)
from pipelines.realtrees.splits import TEST, TRAIN, VALIDATION, split_by_time, split_by_tree


def test_ndcg_of_a_known_ranking_by_hand() -> None:
    gains = np.array([0.0, 2.0, 1.0])
    assert ndcg_at(gains, np.array([0.0, 2.0, 1.0]), 10) == pytest.approx(1.0)
    # Order: gain 0, then 1, then 2. DCG = 0/log2(2) + 1/log2(3) + 2/log2(4); IDCG = 2 + 1/log2(3).
    dcg = 1 / math.log2(3) + 2 / 2
    idcg = 2 + 1 / math.log2(3)
    assert ndcg_at(gains, np.array([3.0, 1.0, 2.0]), 10) == pytest.approx(dcg / idcg)


def test_ndcg_averages_over_tied_scores_as_a_random_order_would() -> None:
    gains = np.array([1.0, 0.0])
    # Both orders are equally likely: (1 + 1/log2(3)) / 2 over an ideal DCG of 1.
    assert ndcg_at(gains, np.zeros(2), 10) == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_capped_recall_divides_by_the_smaller_of_k_and_the_relevant() -> None:
    gains = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert capped_recall_at(gains, scores, 2) == pytest.approx(1.0)  # 2 of min(2, 3)
    assert capped_recall_at(gains, scores, 3) == pytest.approx(2 / 3)
    assert math.isnan(capped_recall_at(np.zeros(3), scores[:3], 2))


def test_capped_recall_counts_ties_at_the_cut_off_as_a_random_order() -> None:
    gains = np.array([1.0, 0.0, 0.0])
    # One place for three tied candidates, one relevant: found with chance 1/3.
    assert capped_recall_at(gains, np.zeros(3), 1) == pytest.approx(1 / 3)


def candidates_of(trees: dict[int, list[float]]) -> pd.DataFrame:
    rows = [(tree, gain) for tree, gains in trees.items() for gain in gains]
    return pd.DataFrame(rows, columns=["tree", "gain"])


def test_a_tree_is_evaluable_with_two_candidates_and_some_gain() -> None:
    candidates = candidates_of({1: [0.0, 1.0], 2: [1.0], 3: [0.0, 0.0], 4: [1.0] * 20 + [0.0]})
    assert list(evaluable(candidates)) == [1, 4]
    assert list(evaluable(candidates, 20)) == [4]


def test_per_tree_metrics_rank_each_tree_by_its_own_scores() -> None:
    candidates = candidates_of({1: [0.0, 1.0], 2: [1.0, 0.0]})
    perfect = per_tree(candidates, np.array([0.0, 1.0, 1.0, 0.0]), pd.Index([1, 2]), 10)
    assert perfect["ndcg"].tolist() == [1.0, 1.0] and perfect["recall"].tolist() == [1.0, 1.0]
    summary = summarize(perfect, 200, 0.95, 0)
    assert summary["ndcg10"] == 1.0 and summary["trees"] == 2


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_trees() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.random(30), rng.random(3000)
    low, high = bootstrap_mean(few, 500, 0.95, 1)
    assert low < few.mean() < high
    wide_low, wide_high = bootstrap_mean(many, 500, 0.95, 1)
    assert wide_high - wide_low < high - low


def test_the_paired_difference_is_the_mean_per_tree_gain() -> None:
    a = pd.DataFrame({"ndcg": [0.9, 0.8, 0.7, 0.6]})
    b = pd.DataFrame({"ndcg": [0.8, 0.7, 0.6, 0.5]})
    out = paired_difference({"a": a, "b": b}, "a", "b", 200, 0.95, 0)
    assert out["ndcg10_gain"] == pytest.approx(0.1)
    assert out["ci"] == pytest.approx([0.1, 0.1])


def test_the_tree_split_is_seeded_disjoint_and_near_its_shares() -> None:
    trees = pd.Index(np.arange(10_000))
    split = split_by_tree(trees, 0.2, 0.25, 3)
    assert split.equals(split_by_tree(trees, 0.2, 0.25, 3))
    shares = split.value_counts(normalize=True)
    assert shares[TEST] == pytest.approx(0.2, abs=0.02)
    assert shares[VALIDATION] == pytest.approx(0.8 * 0.25, abs=0.02)
    assert shares[TRAIN] == pytest.approx(0.6, abs=0.02)


def test_the_time_split_trains_only_on_trees_that_ended_before_the_test_trees_began() -> None:
    # Tree i starts at 100 * i and lasts 150 s: each overlaps the next.
    posts = pd.DataFrame(
        {
            "tree": np.repeat(np.arange(10), 2),
            "at_s": np.ravel([[100 * i, 100 * i + 150] for i in range(10)]),
        }
    )
    split = split_by_time(posts, 0.2, 0.25)
    assert list(split[split == TEST].index) == [8, 9]
    assert 7 not in split.index  # ends at 850, after test tree 8 begins at 800
    learned = split[split.isin([TRAIN, VALIDATION])].index
    assert list(learned) == [0, 1, 2, 3, 4, 5, 6]
    assert list(split[split == VALIDATION].index) == [5, 6]
