"""Repairing hand-made trees: times that precede their parent, missing parents, cycles."""

from __future__ import annotations

import pandas as pd

from pipelines.realtrees.rekey import Rekeyer
from pipelines.realtrees.repair import rekey_posts, repair_trees

from .handmade import START, chain_of_replies, raw_posts, source_id

REKEYER = Rekeyer(bytes(range(32)), "twitter")


def repaired(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    posts, report = repair_trees(rekey_posts(raw, REKEYER))
    return posts, report.as_dict()


def at_minutes(posts: pd.DataFrame) -> list[float]:
    return ((posts["at"] - START) / pd.Timedelta(minutes=1)).tolist()


def test_a_reply_never_precedes_its_parent_the_running_maximum_down_the_chain() -> None:
    # root 10, a 5 (before the root), b (child of a) 7, c (child of b) 20, d (child of a) 12
    tree = [
        ("root", None, 1, 10.0),
        ("a", "root", 2, 5.0),
        ("b", "a", 3, 7.0),
        ("c", "b", 4, 20.0),
        ("d", "a", 5, 12.0),
    ]
    posts, report = repaired(raw_posts({"t": tree}))
    by_post = dict(zip(posts["post"], at_minutes(posts), strict=True))
    ids = {name: REKEYER.one("post", source_id("t", name)) for name, *_ in tree}
    assert by_post[ids["a"]] == 10.0 and by_post[ids["b"]] == 10.0  # lifted to the root's time
    assert by_post[ids["c"]] == 20.0 and by_post[ids["d"]] == 12.0  # already later: unchanged
    assert report["posts_with_repaired_time"] == 2
    created = ((posts["created_at"] - START) / pd.Timedelta(minutes=1)).tolist()
    assert sorted(created) == [5.0, 7.0, 10.0, 12.0, 20.0]  # the source time is kept beside


def test_depth_and_top_level_ancestor_follow_the_parent_links() -> None:
    tree = [("root", None, 1, 0.0), ("a", "root", 2, 1.0), ("b", "a", 3, 2.0), ("c", "b", 4, 3.0)]
    posts, _ = repaired(raw_posts({"t": tree}))
    a = REKEYER.one("post", source_id("t", "a"))
    assert posts["depth"].tolist() == [0, 1, 2, 3]
    assert posts["top"].tolist() == [-1, a, a, a]
    assert (posts["tree"] == REKEYER.one("post", source_id("t", "root"))).all()


def test_posts_under_a_missing_parent_are_dropped_and_counted() -> None:
    tree = [
        ("root", None, 1, 0.0),
        ("a", "root", 2, 1.0),
        ("x", "gone", 3, 2.0),
        ("y", "x", 4, 3.0),
    ]
    raw = raw_posts({"t": tree})
    posts, report = repaired(raw)
    assert len(posts) == 2
    assert report["posts_dropped_unreachable"] == 2
    assert report["trees_with_unreachable_posts"] == 1


def test_a_parent_cycle_is_unreachable_from_the_root_and_dropped() -> None:
    tree = [("root", None, 1, 0.0), ("a", "root", 2, 1.0), ("p", "q", 3, 2.0), ("q", "p", 4, 3.0)]
    posts, report = repaired(raw_posts({"t": tree}))
    assert len(posts) == 2
    assert report["posts_dropped_unreachable"] == 2


def test_trees_without_one_root_or_without_replies_are_dropped_and_counted() -> None:
    two_roots = [("r1", None, 1, 0.0), ("r2", None, 2, 0.0), ("a", "r1", 3, 1.0)]
    lonely = [("root", None, 1, 0.0)]
    raw = raw_posts({"good": chain_of_replies(1, 2), "lonely": lonely})
    bad = raw_posts({"two": [p for p in two_roots if p[1] is None or p[0] == "a"]})
    bad.loc[bad["parent_id"].isna(), "tree_id"] = source_id("two", "r1")
    posts, report = repaired(pd.concat([raw, bad], ignore_index=True))
    assert report["trees_dropped_without_one_root"] == 1
    assert report["trees_dropped_without_replies"] == 1
    assert report["trees_out"] == 1 and posts["tree"].nunique() == 1
