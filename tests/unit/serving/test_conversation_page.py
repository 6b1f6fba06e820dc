"""The conversation page's stages as plain functions on hand-made trees: the tree and its holes,
thread scores built bottom up, linearization with its "more replies" counts, product order,
health sections that move whole threads, and ad slots."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import ConversationConfig, SectionThresholds
from serving.conversation.ads import AdsInventory
from serving.conversation.order import GROUPS, product_groups, product_order
from serving.conversation.page import ScoredCandidates, build_page
from serving.conversation.sections import SECTIONS, health_sections
from serving.conversation.tree import TOP_LEVEL, build_tree, linearize, thread_scores

FOCAL = 100
# 1 and 2 answer the focal tweet; 3, 4, 5 answer 1; 6 answers 3; 7 answers 2.
IDS = np.array([1, 2, 3, 4, 5, 6, 7])
PARENTS = np.array([FOCAL, FOCAL, 1, 1, 1, 3, 2])
SCORES = np.array([1.0, 4.0, 2.0, 0.0, 3.0, 6.0, 5.0])


def test_the_tree_knows_each_replys_parent_depth_and_descendants() -> None:
    tree = build_tree(IDS, PARENTS, FOCAL)
    assert tree.parent.tolist() == [TOP_LEVEL, TOP_LEVEL, 0, 0, 0, 2, 1]
    assert tree.depth.tolist() == [1, 1, 2, 2, 2, 3, 2]
    assert tree.descendants.tolist() == [4, 1, 1, 0, 0, 0, 0]
    assert tree.top_level.tolist() == [0, 1]
    assert tree.thread.tolist() == [0, 1, 0, 0, 0, 0, 1]


def test_a_reply_whose_parent_is_missing_or_itself_or_in_a_cycle_hangs_at_the_top() -> None:
    tree = build_tree(np.array([1, 2, 3, 4, 5]), np.array([999, 2, 4, 3, 1]), FOCAL)
    assert tree.parent.tolist() == [TOP_LEVEL, TOP_LEVEL, TOP_LEVEL, TOP_LEVEL, 0]
    assert tree.depth.tolist() == [1, 1, 1, 1, 2]


def test_repeated_candidates_are_an_error_naming_the_repeat() -> None:
    with pytest.raises(ValueError, match="repeat"):
        build_tree(np.array([1, 1]), np.array([FOCAL, FOCAL]), FOCAL)


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (0, SCORES.tolist()),
        (1, [(1 + 2 + 0 + 3) / 4, (4 + 5) / 2, (2 + 6) / 2, 0, 3, 6, 5]),
        (2, [(1 + 2 + 0 + 3 + 6) / 5, (4 + 5) / 2, (2 + 6) / 2, 0, 3, 6, 5]),
    ],
)
def test_thread_scores_average_each_thread_down_to_the_configured_depth(
    depth: int, expected: list[float]
) -> None:
    tree = build_tree(IDS, PARENTS, FOCAL)
    assert thread_scores(tree, SCORES, depth).tolist() == pytest.approx(expected)


def test_linearization_shows_the_best_branches_and_counts_the_collapsed_replies() -> None:
    tree = build_tree(IDS, PARENTS, FOCAL)
    thread = thread_scores(tree, SCORES, 1)
    lin = linearize(tree, thread, shown_depth=2, shown_children=2)
    # under 1: 3 (thread 4) and 5 (3) are shown, 4 (0) collapses; 6 is too deep
    assert lin.shown.tolist() == [True, True, True, False, True, False, True]
    assert lin.more.tolist() == [1, 0, 1, 0, 0, 0, 0]


def test_a_collapsed_branch_counts_all_its_replies_in_the_marker() -> None:
    tree = build_tree(IDS, PARENTS, FOCAL)
    thread = thread_scores(tree, SCORES, 1)
    lin = linearize(tree, thread, shown_depth=3, shown_children=1)
    # under 1 only 3 is shown (with 6); 4 and 5 collapse
    assert lin.shown.tolist() == [True, True, True, False, False, True, True]
    assert lin.more.tolist() == [2, 0, 0, 0, 0, 0, 0]
    lin = linearize(tree, thread, shown_depth=1, shown_children=3)
    assert lin.more.tolist() == [4, 1, 0, 0, 0, 0, 0]  # every branch of 1 collapses, 6 too


def test_product_order_puts_followed_replies_the_author_answered_then_verified_then_the_rest() -> (
    None
):
    followed = np.array([True, True, False, False, True])
    author_replied = np.array([True, False, False, True, True])
    verified = np.array([False, False, True, False, True])
    groups = product_groups(followed, author_replied, verified)
    assert [GROUPS[g] for g in groups] == [
        "followed_and_author_replied",
        "everyone_else",
        "verified",
        "everyone_else",
        "followed_and_author_replied",
    ]
    thread = np.array([0.1, 0.9, 0.2, 0.5, 0.3])
    # the score orders within each group, never across them
    assert product_order(groups, thread).tolist() == [4, 0, 2, 1, 3]


def test_health_sections_read_toxicity_and_the_scorers_negative_and_report() -> None:
    cfg = ConversationConfig(
        low_quality=SectionThresholds(toxicity=0.6, negative=0.3),
        abusive=SectionThresholds(toxicity=0.85, report=0.2),
    )
    toxicity = np.array([0.1, 0.7, 0.9, 0.2, 0.1])
    predictions = {"negative": np.array([0, 0, 0, 0.5, 0]), "report": np.array([0, 0, 0, 0, 0.3])}
    codes = health_sections(toxicity, predictions, cfg)
    assert [SECTIONS[c] for c in codes] == [
        "main",
        "low_quality",
        "abusive",
        "low_quality",
        "abusive",
    ]
    # without the scorer's heads (the heuristic order), toxicity alone decides
    codes = health_sections(toxicity, {}, cfg)
    assert [SECTIONS[c] for c in codes] == ["main", "low_quality", "abusive", "main", "main"]


def test_abusive_thresholds_below_low_quality_are_rejected() -> None:
    with pytest.raises(ValueError, match="abusive.toxicity"):
        ConversationConfig(abusive=SectionThresholds(toxicity=0.5))


def _candidates(toxicity: list[float]) -> ScoredCandidates:
    n = len(IDS)
    return ScoredCandidates(
        ids=IDS,
        authors=IDS + 10,
        source=np.array(["recent_replies"] * n),
        toxicity=np.array(toxicity),
        in_network=np.zeros(n, dtype=bool),
        verified=np.zeros(n, dtype=bool),
        scores=SCORES,
        thread=SCORES,
        predictions={"fav": SCORES / 10},
    )


def test_a_section_moves_whole_threads_by_their_top_reply() -> None:
    # 1 is healthy with a toxic answer (3); 2 is toxic with a healthy answer (7)
    candidates = _candidates([0.0, 0.95, 0.95, 0.0, 0.0, 0.0, 0.0])
    tree = build_tree(IDS, PARENTS, FOCAL)
    lin = linearize(tree, SCORES, shown_depth=3, shown_children=3)
    threads = tree.top_level
    sections = health_sections(candidates.toxicity[threads], {}, ConversationConfig())
    page = build_page(candidates, tree, lin, threads, sections, max_threads=10)
    by_name = {section.name: section for section in page.sections}
    assert [s.name for s in page.sections] == ["main", "low_quality", "abusive"]
    main, abusive = by_name["main"].replies, by_name["abusive"].replies
    assert [n.tweet_id for n in main] == [1]
    assert [n.tweet_id for n in main[0].replies] == [5, 3, 4]  # the toxic 3 stays in context
    assert [n.tweet_id for n in main[0].replies[1].replies] == [6]
    assert [n.tweet_id for n in abusive] == [2] and [n.tweet_id for n in abusive[0].replies] == [7]
    # reading order: sections in order, each thread depth first; positions count in it
    assert IDS[page.shown].tolist() == [1, 5, 3, 6, 4, 2, 7]
    assert page.shown_section == ["main"] * 5 + ["abusive"] * 2
    assert [main[0].position, main[0].replies[0].position, abusive[0].position] == [0, 1, 5]


def test_threads_past_max_threads_collapse_into_the_sections_marker() -> None:
    candidates = _candidates([0.0] * len(IDS))
    tree = build_tree(IDS, PARENTS, FOCAL)
    lin = linearize(tree, SCORES, shown_depth=3, shown_children=3)
    threads = tree.top_level[::-1]  # 2 first
    page = build_page(candidates, tree, lin, threads, np.zeros(2, dtype=np.int64), max_threads=1)
    main = page.sections[0]
    assert [n.tweet_id for n in main.replies] == [2]
    assert main.more_replies == 5  # thread 1: itself and its 4 replies
    assert IDS[page.shown].tolist() == [2, 7]


def test_ad_slots_grow_with_the_replies_shown_up_to_the_max() -> None:
    ads = AdsInventory(ConversationConfig(replies_per_ad=10, max_ads=3))
    assert [ads.slots(shown, main_threads=20) for shown in (0, 9, 10, 25, 1000)] == [0, 0, 1, 2, 3]
    assert ads.slots(1000, main_threads=2) == 2  # never more slots than threads in main
    assert ads.slots(1000, main_threads=0) == 0  # no ad beside low-quality or abusive threads


def test_ads_are_spread_between_main_threads_and_stable_for_a_page() -> None:
    ads = AdsInventory(ConversationConfig(replies_per_ad=10, max_ads=3))
    placed = ads.place(100, main_threads=8, viewer_id=5, focal_id=77)
    assert [p.after_thread for p in placed] == [2, 4, 6]
    assert len({p.ad.ad_id for p in placed}) == 3
    again = ads.place(100, main_threads=8, viewer_id=5, focal_id=77)
    assert [p.ad for p in again] == [p.ad for p in placed]
    assert [p.after_thread for p in ads.place(30, 3, 5, 77)] == [1, 2, 3]


def test_the_ads_inventory_is_generated_from_its_seed() -> None:
    first = AdsInventory(ConversationConfig(ad_seed=1)).ads
    assert AdsInventory(ConversationConfig(ad_seed=1)).ads == first
    assert AdsInventory(ConversationConfig(ad_seed=2)).ads != first
    assert len(first) == ConversationConfig().ad_inventory_size
    assert {ad.advertiser_id for ad in first} <= set(
        range(1, ConversationConfig().ad_advertisers + 1)
    )
