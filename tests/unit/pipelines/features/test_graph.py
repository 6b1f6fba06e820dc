"""Follow-graph features on hand-made graphs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.features.graph import common_followees, follow_matrix, pagerank, social_embeddings


def graph(edges: list[tuple[int, int]], users: list[int]):
    follows = pd.DataFrame(edges, columns=["follower_id", "followee_id"])
    return follow_matrix(follows, np.array(users))


def test_pagerank_favours_the_followed_and_sums_to_one() -> None:
    # everyone follows 1; 1 follows 2
    adjacency = graph([(2, 1), (3, 1), (4, 1), (1, 2)], [1, 2, 3, 4])
    rank = pagerank(adjacency)
    assert rank.sum() == pytest.approx(1.0)
    assert rank[0] > rank[1] > rank[2] == pytest.approx(rank[3])


def test_pagerank_of_a_symmetric_cycle_is_uniform() -> None:
    rank = pagerank(graph([(1, 2), (2, 3), (3, 1)], [1, 2, 3]))
    np.testing.assert_allclose(rank, [1 / 3] * 3)


def test_common_followees_by_hand() -> None:
    adjacency = graph([(1, 3), (1, 4), (2, 3), (2, 4), (2, 5)], [1, 2, 3, 4, 5])
    assert common_followees(adjacency, np.array([0]), np.array([1])).tolist() == [2]


def test_social_embeddings_place_similar_followers_together() -> None:
    # users 1-3 follow 10-12; users 4-6 follow 13-15
    edges = [(f, t) for f in (1, 2, 3) for t in (10, 11, 12)] + [
        (f, t) for f in (4, 5, 6) for t in (13, 14, 15)
    ]
    users = [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15]
    follower, followee = social_embeddings(graph(edges, users), dim=4)
    assert follower.shape == (12, 4)
    same = follower[0] @ followee[6]  # user 1 vs account 10 (in its community)
    other = follower[0] @ followee[9]  # user 1 vs account 13
    assert same > other + 0.5
