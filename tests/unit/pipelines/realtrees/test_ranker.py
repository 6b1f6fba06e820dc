"""The conversation ranker: the feed ranker's model, a listwise loss over whole trees, and it
learns an order that random scores do not have."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.config import TreesConfig
from pipelines.models.masknet import ParallelMaskNet
from pipelines.realtrees.baselines import random_order
from pipelines.realtrees.metrics import evaluable, per_tree
from pipelines.realtrees.protocol import FEATURES
from pipelines.realtrees.ranker import listwise_loss, train_ranker, tree_batches


def test_the_listwise_loss_is_the_cross_entropy_of_each_trees_softmax_by_hand() -> None:
    scores = torch.tensor([0.0, math.log(3.0), 5.0, 5.0])
    gains = torch.tensor([1.0, 1.0, 2.0, 0.0])
    groups = torch.tensor([0, 0, 1, 1])
    # Tree 0: softmax (1/4, 3/4), target (1/2, 1/2). Tree 1: softmax (1/2, 1/2), target (1, 0).
    tree0 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    tree1 = -math.log(0.5)
    assert float(listwise_loss(scores, gains, groups)) == pytest.approx((tree0 + tree1) / 2)


def test_batches_hold_whole_trees_and_cover_every_row_once() -> None:
    sizes = np.array([3, 1, 4, 2, 5])
    starts = np.cumsum(sizes) - sizes
    batches = tree_batches(starts, sizes, 4, np.random.default_rng(0))
    rows = np.concatenate([index for index, _ in batches])
    assert sorted(rows.tolist()) == list(range(int(sizes.sum())))
    tree_of_row = np.repeat(np.arange(len(sizes)), sizes)
    for index, groups in batches:
        for group in np.unique(groups):
            members = index[groups == group]
            (tree,) = np.unique(tree_of_row[members])
            assert len(members) == sizes[tree]


def synthetic_trees(trees: int, seed: int) -> pd.DataFrame:
    """Candidates whose gain grows with recent growth and shrinks with age (plus noise)."""
    rng = np.random.default_rng(seed)
    n = 12
    rows = pd.DataFrame(rng.random((trees * n, len(FEATURES))) * 5, columns=list(FEATURES))
    rows["tree"] = np.repeat(np.arange(trees) + seed * 10_000, n)
    rows["post"] = np.arange(len(rows)) + seed * 1_000_000
    signal = rows["recent_descendants"] - 0.5 * rows["reply_age_s"]
    rows["gain"] = np.log1p(np.maximum(signal + rng.normal(0, 0.5, len(rows)), 0))
    rows["root_reply"] = (rng.random(len(rows)) < 0.1).astype(float)
    return rows


def test_the_ranker_learns_an_order_that_beats_random_on_held_out_trees() -> None:
    small = {"num_blocks": 1, "mask_hidden_dim": 16, "block_dim": 16, "mlp_dims": [16]}
    knobs = {**small, "tower_dim": 8, "epochs": 3, "batch_size": 128, "threads": 1}
    cfg = TreesConfig.model_validate({"ranker": knobs})
    trained = train_ranker(cfg, synthetic_trees(150, 1), synthetic_trees(40, 2))
    assert isinstance(trained.model, ParallelMaskNet)
    assert set(trained.model.heads) == {"gain", "root_reply"}
    test = synthetic_trees(100, 3)
    trees = evaluable(test)
    ranker = per_tree(test, trained.score(test), trees, 10)["ndcg"].mean()
    chance = per_tree(test, random_order(0)(test), trees, 10)["ndcg"].mean()
    assert ranker > chance + 0.1
    assert len(trained.history) == 3 and 0 <= trained.best_epoch < 3


def test_training_without_an_evaluable_validation_tree_is_an_error() -> None:
    validation = synthetic_trees(5, 2).assign(gain=0.0)
    with pytest.raises(ValueError, match="evaluable validation"):
        train_ranker(TreesConfig(), synthetic_trees(20, 1), validation)
