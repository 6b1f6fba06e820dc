"""The offline protocol on hand-made trees: the cut, the candidates, the labels, and no leakage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.realtrees.protocol import FEATURES, candidate_table, cut_points
from pipelines.realtrees.rekey import Rekeyer
from pipelines.realtrees.repair import rekey_posts, repair_trees

from .handmade import Post, chain_of_replies, raw_posts, source_id

REKEYER = Rekeyer(bytes(range(32)), "twitter")
WINDOWS = (0.2, 0.05)


def trees_of(trees: dict[str, list[Post]]) -> pd.DataFrame:
    posts, _ = repair_trees(rekey_posts(raw_posts(trees), REKEYER))
    return posts


def lake_id(tree: str, post: str) -> int:
    return REKEYER.one("post", source_id(tree, post))


def cut_at(posts: pd.DataFrame, minutes: dict[str, float]) -> pd.DataFrame:
    """:func:`cut_points` of `posts` with each named tree cut `minutes` after its root."""
    cuts = cut_points(posts, 0.5)
    for tree, minute in minutes.items():
        root = lake_id(tree, "root")
        cuts.loc[root, "cut_s"] = cuts.loc[root, "root_at_s"] + int(minute * 60)
    return cuts


def table(trees: dict[str, list[Post]], minutes: dict[str, float]) -> pd.DataFrame:
    """Candidates of `trees`, each named tree cut `minutes` after its root (the others at half)."""
    posts = trees_of(trees)
    return candidate_table(posts, cut_at(posts, minutes), WINDOWS).set_index("post")


def test_the_cut_is_the_arrival_of_half_of_the_replies_and_candidates_are_the_replies_before_it() -> (
    None
):
    posts = trees_of({"t": chain_of_replies(1, 10)})  # replies at minutes 1..10
    cut = cut_points(posts, 0.5).iloc[0]
    root_s = int(posts.loc[posts["depth"] == 0, "at_s"].iloc[0])
    assert cut["cut_s"] - root_s == 6 * 60  # ceil(0.5 * 10) = reply #5 (0-based), at minute 6
    candidates = candidate_table(posts, cut_points(posts, 0.5), WINDOWS)
    assert candidates["post"].tolist() == [lake_id("t", f"r{i}") for i in range(5)]
    assert candidates["arrival_rank"].tolist() == [0, 1, 2, 3, 4]
    early = candidate_table(posts, cut_points(posts, 0.2), WINDOWS)
    assert len(early) == 2  # ceil(0.2 * 10) = reply #2, at minute 3


def test_the_cut_counts_nested_replies_too() -> None:
    tree = chain_of_replies(1, 2) + [("a", "r0", 5, 1.5), ("b", "a", 6, 1.7)]  # 4 replies
    posts = trees_of({"t": tree})
    root_s = int(posts.loc[posts["depth"] == 0, "at_s"].iloc[0])
    assert cut_points(posts, 0.5).iloc[0]["cut_s"] - root_s == int(1.7 * 60)  # reply #2: b


def test_replies_sharing_the_cut_second_count_as_after_it() -> None:
    tree = [("root", None, 1, 0.0), ("a", "root", 2, 1.0), ("b", "root", 3, 2.0)]
    tree += [("c", "root", 4, 2.0), ("d", "root", 5, 3.0)]  # c arrives in b's second
    posts = trees_of({"t": tree})
    candidates = candidate_table(posts, cut_points(posts, 0.5), WINDOWS)  # cut at reply #2, b
    assert candidates["post"].tolist() == [lake_id("t", "a")]  # c shares b's second: after


def test_only_top_level_replies_present_at_the_cut_are_candidates() -> None:
    tree = chain_of_replies(1, 4)  # r0..r3 at minutes 1..4
    tree += [("deep", "r0", 9, 1.5)]  # a nested reply before the cut: not a candidate
    candidates = table({"t": tree}, {"t": 3.5})
    assert lake_id("t", "deep") not in candidates.index
    assert set(candidates.index) <= {lake_id("t", f"r{i}") for i in range(4)}


def conversation() -> list[Post]:
    """Root by author 1; r0..r5 at minutes 1..6 (cut at minute 4: r0, r1, r2 present).
    r0's thread: one reply before minute 4, three at or after it (one by the root's author)."""
    tree = chain_of_replies(1, 6)
    tree += [
        ("r0a", "r0", 50, 2.5),  # before the cut
        ("r0b", "r0", 51, 4.0),  # at the cut: after
        ("r0c", "r0b", 1, 5.0),  # the root's author, after
        ("r0d", "r0", 52, 7.0),
        ("r1a", "r1", 53, 8.0),
    ]
    return tree


def test_labels_are_what_each_thread_gains_at_or_after_the_cut() -> None:
    candidates = table({"t": conversation()}, {"t": 4.0})
    assert len(candidates) == 3
    r0, r1, r2 = (lake_id("t", f"r{i}") for i in range(3))
    assert candidates.loc[r0, "gain"] == pytest.approx(math.log1p(3))
    assert candidates.loc[r0, "root_reply"] == 1.0
    assert candidates.loc[r1, "gain"] == pytest.approx(math.log1p(1))
    assert candidates.loc[r1, "root_reply"] == 0.0
    assert candidates.loc[r2, "gain"] == 0.0
    assert candidates.loc[r0, "descendants"] == 1 and candidates.loc[r1, "descendants"] == 0


def test_no_feature_sees_a_post_at_or_after_the_cut() -> None:
    base = conversation()
    minutes = {"t": 4.0, "other": 3.0}
    before = table({"t": base, "other": chain_of_replies(60, 4, first_minute=0.5)}, minutes)
    # The future changes a lot: many replies under every candidate, by the root's author and by
    # the candidates' authors, more top-level replies, and posts by the same authors elsewhere.
    future: list[Post] = [(f"f{i}", f"r{i % 3}", [1, 100, 101][i % 3], 4.0 + i) for i in range(30)]
    future += [(f"g{i}", "root", 100 + i % 3, 4.0 + i / 7) for i in range(12)]
    elsewhere = chain_of_replies(60, 4, first_minute=0.5) + [
        (f"e{i}", "root", 100 + i % 3, 4.0 + i) for i in range(9)
    ]
    after = table({"t": base + future, "other": elsewhere}, minutes)
    t_candidates = [lake_id("t", f"r{i}") for i in range(3)]
    features = list(FEATURES)
    pd.testing.assert_frame_equal(
        before.loc[t_candidates, features], after.loc[t_candidates, features]
    )
    assert (after.loc[t_candidates, "gain"] > before.loc[t_candidates, "gain"]).all()


def test_author_history_counts_only_other_trees_strictly_before_the_cut() -> None:
    # Author 100 writes r0 of "t" (minute 1; cut of "t" at minute 4). In "past" they post at
    # minutes 2 and 3.9 and get one reply at 3.5 and one at 4.5; in "later" they post at 5.
    past = [
        ("root", None, 7, 0.0),
        ("p1", "root", 100, 2.0),
        ("p2", "root", 100, 3.9),
        ("q1", "p1", 8, 3.5),
        ("q2", "p1", 9, 4.5),
        ("x", "root", 10, 10.0),
    ]
    later = [("root", None, 11, 4.5), ("l1", "root", 100, 5.0), ("l2", "root", 12, 6.0)]
    trees = {"t": chain_of_replies(1, 6), "past": past, "later": later}
    candidates = table(trees, {"t": 4.0, "past": 9.0, "later": 5.5})
    r0 = candidates.loc[lake_id("t", "r0")]
    assert r0["author_prior_posts"] == 2  # p1, p2; not l1 (after the cut), not r0 itself
    assert r0["author_prior_replies_received"] == 1  # q1; q2 comes after the cut
    assert r0["author_tree_posts"] == 0


def test_the_ranks_within_a_tree_put_the_largest_thread_first() -> None:
    tree = chain_of_replies(1, 6)
    tree += [("a1", "r1", 50, 2.5), ("a2", "r1", 51, 2.6), ("b1", "r2", 52, 3.1)]
    candidates = table({"t": tree}, {"t": 3.5})
    r0, r1, r2 = (lake_id("t", f"r{i}") for i in range(3))
    assert candidates.loc[r1, "descendants_rank_share"] == 0.0
    assert candidates.loc[r2, "descendants_rank_share"] == 0.5
    assert candidates.loc[r0, "descendants_rank_share"] == 1.0
    assert candidates.loc[r1, "descendants_share_of_max"] == 1.0
    assert np.isfinite(candidates[list(FEATURES)].drop(columns=["thread_toxicity"])).all().all()
