"""Which trees train, validate and test: a split by tree, and a split in time.

By tree: each tree draws a seeded uniform number; the first ``test_share`` of the unit interval
is test, the next ``validation_share`` of what remains is validation (where the ranker picks its
epoch), the rest trains. A tree's candidates stay together.

In time: trees are ordered by their root's time; the latest ``time_test_share`` are test, and a
tree trains only if its last post is strictly before the first test root, so no training label
was observed after a test conversation began. Validation is the latest ``validation_share`` of
those training trees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRAIN, VALIDATION, TEST = "train", "validation", "test"


def split_by_tree(
    trees: pd.Index, test_share: float, validation_share: float, seed: int
) -> pd.Series:
    """``train`` / ``validation`` / ``test`` per tree (index: tree), a seeded draw."""
    draw = np.random.default_rng(seed).random(len(trees))
    validation_edge = test_share + (1.0 - test_share) * validation_share
    labels = np.where(draw < test_share, TEST, np.where(draw < validation_edge, VALIDATION, TRAIN))
    return pd.Series(labels, index=trees, name="split")


def split_by_time(posts: pd.DataFrame, test_share: float, validation_share: float) -> pd.Series:
    """``train`` / ``validation`` / ``test`` per tree of a repaired frame, in time (module
    docstring); trees that end after the test period begins and are not test are left out."""
    spans = posts.groupby("tree")["at_s"].agg(["min", "max"]).sort_values("min", kind="stable")
    first_test = int(len(spans) * (1.0 - test_share))
    test_start = spans["min"].iloc[first_test]
    is_test = np.arange(len(spans)) >= first_test
    trains = (~is_test) & (spans["max"].to_numpy() < test_start)
    train_rows = np.flatnonzero(trains)
    validation_rows = train_rows[int(len(train_rows) * (1.0 - validation_share)) :]
    labels = np.full(len(spans), "", dtype=object)
    labels[trains] = TRAIN
    labels[validation_rows] = VALIDATION
    labels[is_test] = TEST
    out = pd.Series(labels, index=spans.index, name="split")
    return out[out != ""]
