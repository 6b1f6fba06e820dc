"""Retrieval evaluation: metrics against hand-computed values, scorers on hand-made corpora."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from pipelines.config import FeedrankConfig
from pipelines.retrieval.evaluate import (
    history_profiles,
    measure_retrieval,
    ndcg_at_k,
    popularity_scores,
    rank_by_scores,
    recall_at_k,
    retrieval_metrics,
    retrieval_report,
    tfidf_scores,
    tfidf_vectors,
)
from tests.utils.lake import write_impressions, write_static


def test_recall_counts_relevant_in_top_k_only():
    retrieved = [5, 1, 9, 2, -1]
    assert recall_at_k(retrieved, {1, 2, 7}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(retrieved, {1, 2, 7}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, {1, 2, 7}, 10) == pytest.approx(2 / 3)  # pads never count
    assert recall_at_k(np.array([7, 2, 1]), {1, 2, 7}, 3) == 1.0


def test_recall_and_ndcg_refuse_empty_relevant():
    with pytest.raises(ValueError):
        recall_at_k([1, 2], set(), 2)
    with pytest.raises(ValueError):
        ndcg_at_k([1, 2], set(), 2)


def test_ndcg_single_relevant_at_rank_three():
    # DCG = 1/log2(4) = 0.5; one relevant item -> ideal = 1/log2(2) = 1.
    assert ndcg_at_k([10, 11, 12, 13], {12}, 5) == pytest.approx(0.5)
    assert ndcg_at_k([10, 11, 12, 13], {12}, 2) == 0.0  # cut off before rank 3


def test_ndcg_ideal_uses_min_of_k_and_relevant_count():
    # Hits at ranks 1 and 3, 2 relevant < k = 5: ideal = 1 + 1/log2(3).
    expected = (1 + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([1, 8, 2, 9, 7], {1, 2}, 5) == pytest.approx(expected)
    # 4 relevant, k = 2: ideal is the 2 top slots only, so two hits at the top are perfect.
    assert ndcg_at_k([1, 2, 8], {1, 2, 3, 4}, 2) == pytest.approx(1.0)
    # Relevant at rank 3 with k = 3 and 4 relevant: 0.5 / (1 + 1/log2(3) + 0.5).
    assert ndcg_at_k([8, 9, 3], {1, 2, 3, 4}, 3) == pytest.approx(
        0.5 / (1 + 1 / math.log2(3) + 0.5)
    )


def test_ndcg_skips_pads_without_shifting_ranks_of_real_ids():
    assert ndcg_at_k(np.array([4, 5, -1, -1]), {5}, 4) == pytest.approx(1 / math.log2(3))


def test_retrieval_metrics_averages_over_viewers():
    retrieved = {"m": np.array([[1, 2], [3, -1]])}
    metrics = retrieval_metrics(retrieved, [{2}, {4, 3}], ks=(1, 2))
    assert metrics["m_recall_at_1"] == pytest.approx((0.0 + 0.5) / 2)
    assert metrics["m_recall_at_2"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["m_ndcg_at_1"] == pytest.approx((0.0 + 1.0) / 2)
    second = 1.0 / (1 + 1 / math.log2(3))  # one hit at rank 1 of 2 relevant, k = 2
    assert metrics["m_ndcg_at_2"] == pytest.approx((1 / math.log2(3) + second) / 2)


def test_history_profiles_normalized_mean_dense_and_sparse():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    profiles = history_profiles([[0, 1], [2, 2, 1], []], vectors)
    root_half = 1 / math.sqrt(2)
    np.testing.assert_allclose(profiles[0], [root_half, root_half], rtol=1e-6)
    np.testing.assert_allclose(profiles[1], np.array([2.0, 1.0]) / math.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(profiles[2], [0.0, 0.0])
    sparse_profiles = history_profiles([[0, 1]], sparse.csr_matrix(vectors))
    assert sparse.issparse(sparse_profiles)
    np.testing.assert_allclose(sparse_profiles.toarray()[0], [root_half, root_half], rtol=1e-6)


def test_rank_by_scores_excludes_seen_and_own_tweets_and_pads():
    tweet_ids = np.array([10, 11, 12, 13])
    authors = np.array([1, 2, 3, 2])
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    ranked = rank_by_scores(scores, tweet_ids, authors, 3, [{10}, set()], [3, 2])
    np.testing.assert_array_equal(ranked[0], [11, 13, -1])  # 10 seen, 12 own
    np.testing.assert_array_equal(ranked[1], [12, 10, -1])  # 11 and 13 own


def test_popularity_ranks_by_engagement_count_before_split():
    corpus = np.array([10, 11, 12, 13])
    counts = popularity_scores(corpus, np.array([12, 11, 12, 12, 11, 13, 99]))
    np.testing.assert_array_equal(counts, [0, 2, 3, 1])
    scores = np.broadcast_to(counts, (2, 4))
    ranked = rank_by_scores(scores, corpus, np.array([1, 1, 2, 3]), 4, [set(), {11}], [3, 2])
    np.testing.assert_array_equal(ranked[0], [12, 11, 10, -1])  # 13 is the viewer's own
    np.testing.assert_array_equal(ranked[1], [13, 10, -1, -1])  # 11 seen, 12 own


def test_tfidf_retrieves_the_tweets_sharing_the_viewers_words():
    corpus = [
        "sourdough bread baking tips",
        "football match tonight",
        "bread flour and sourdough starter",
        "election results tonight",
    ]
    history = ["my sourdough starter died", "football again"]
    vectors = tfidf_vectors(corpus, corpus + history)
    assert vectors.shape[0] == 6
    profiles = history_profiles([[4], [5], [4, 5]], vectors)
    scores = tfidf_scores(profiles, vectors[:4])
    assert scores.shape == (3, 4)
    ids = np.array([100, 101, 102, 103])
    ranked = rank_by_scores(scores, ids, np.zeros(4, dtype=np.int64), 2, [set()] * 3, [-1] * 3)
    np.testing.assert_array_equal(ranked[0], [102, 100])  # "sourdough starter" beats "sourdough"
    assert ranked[1][0] == 101
    assert set(ranked[2]) == {101, 102}
    # Rows are unit length, so a tweet scores 1 against itself.
    np.testing.assert_allclose(tfidf_scores(vectors[:1], vectors[:4])[0, 0], 1.0)


def test_report_has_one_row_per_method_and_columns_per_k():
    metrics = {
        "viewers": 3.0,
        "corpus_tweets": 10.0,
        "a_recall_at_5": 0.5,
        "a_ndcg_at_5": 0.25,
        "a_recall_at_50": 0.75,
        "a_ndcg_at_50": 0.3,
        "b_recall_at_5": 0.1,
        "b_ndcg_at_5": 0.05,
        "b_recall_at_50": 0.2,
        "b_ndcg_at_50": 0.1,
        "a_seconds": 1.0,
    }
    text = retrieval_report(metrics)
    assert "| method | recall@5 | recall@50 | ndcg@5 | ndcg@50 |" in text
    assert "| a | 0.5000 | 0.7500 | 0.2500 | 0.3000 |" in text
    assert "| b | 0.1000 | 0.2000 | 0.0500 | 0.1000 |" in text
    assert "Viewers: 3." in text


def test_held_out_days_without_a_reachable_engagement_measure_nothing_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    cfg = FeedrankConfig()
    write_static(cfg, "2026-03-02")
    for day in [f"2026-03-0{d}" for d in range(2, 8)]:
        write_impressions(cfg, day)  # nobody engages with anything

    with caplog.at_level(logging.WARNING, logger="pipelines.retrieval.evaluate"):
        metrics = measure_retrieval(cfg)

    assert metrics == {"viewers": 0.0, "corpus_tweets": 2.0}
    assert "nothing to measure" in caplog.text
    assert "Viewers: 0." in retrieval_report(metrics)
