"""Follow-graph features: reputation (PageRank) and social embeddings (truncated SVD)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.linalg import svds

SOCIAL_DIM = 16


def follow_matrix(follows: pd.DataFrame, user_ids: np.ndarray) -> sparse.csr_matrix:
    """[N, N] 0/1 matrix, row = follower, column = followee, in the order of user_ids."""
    position = pd.Series(np.arange(len(user_ids)), index=user_ids)
    rows = position.reindex(follows["follower_id"]).to_numpy()
    cols = position.reindex(follows["followee_id"]).to_numpy()
    keep = ~(np.isnan(rows) | np.isnan(cols))
    data = np.ones(int(keep.sum()))
    n = len(user_ids)
    return sparse.csr_matrix((data, (rows[keep].astype(int), cols[keep].astype(int))), shape=(n, n))


def pagerank(adjacency: sparse.csr_matrix, damping: float = 0.85, tol: float = 1e-10) -> np.ndarray:
    """PageRank of every node of a follow graph (rank flows from follower to followee); sums to 1.

    Users who follow nobody spread their rank uniformly (the usual dangling-node fix).
    """
    n = adjacency.shape[0]
    out_degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inverse = np.divide(1.0, out_degree, out=np.zeros(n), where=out_degree > 0)
    transition = sparse.diags(inverse) @ adjacency  # row-stochastic where out_degree > 0
    rank = np.full(n, 1.0 / n)
    for _ in range(200):
        dangling = rank[out_degree == 0].sum()
        updated = (1 - damping) / n + damping * (transition.T @ rank + dangling / n)
        if np.abs(updated - rank).sum() < tol:
            return updated
        rank = updated
    return rank


def social_embeddings(
    adjacency: sparse.csr_matrix, dim: int = SOCIAL_DIM
) -> tuple[np.ndarray, np.ndarray]:
    """(as-follower [N, dim], as-followee [N, dim]) unit vectors from a truncated SVD of the graph.

    A viewer's follower-side vector against an author's followee-side vector scores how well the
    author fits the viewer's following pattern.
    """
    k = min(dim, min(adjacency.shape) - 1)
    left, singular, right = svds(adjacency.astype(np.float64), k=k, random_state=0)
    scale = np.sqrt(singular)
    follower = left * scale
    followee = right.T * scale
    if k < dim:
        follower = np.pad(follower, ((0, 0), (0, dim - k)))
        followee = np.pad(followee, ((0, 0), (0, dim - k)))

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return unit(follower), unit(followee)


def common_followees(
    adjacency: sparse.csr_matrix, viewer_rows: np.ndarray, author_rows: np.ndarray
) -> np.ndarray:
    """Accounts both the viewer and the author follow, per (viewer, author) pair."""
    return np.asarray(adjacency[viewer_rows].multiply(adjacency[author_rows]).sum(axis=1)).ravel()
