"""Candidate sources of a conversation page on a generated conversation: the recent-replies
cache, the top replies of large conversations by the search-model score, the replies below a
reply clicked, and the ancestor store (the chain above a reply, the repair of holes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ConversationConfig
from serving.candidates.world_index import WorldIndex, timestamp_ns
from serving.conversation.ancestors import AncestorStore
from serving.conversation.sources import Caps, below_focal, fetch, replies_below, search_scores
from tests.unit.serving.conversation_world import (
    BIG_ROOT,
    conversation_cfg,
    conversation_frames,
    conversation_index,
)
from tests.utils.world import NOW

N_REPLIES = 300
NOW_NS = timestamp_ns(NOW)


@pytest.fixture(scope="module")
def index() -> WorldIndex:
    return conversation_index(conversation_cfg(), conversation_frames(N_REPLIES))


def _ids(index: WorldIndex, rows: np.ndarray) -> list[int]:
    return index.arrays.tweet_id[rows].tolist()


def _parents(index: WorldIndex) -> dict[int, int]:
    rows = index.conversation_rows(BIG_ROOT)
    return dict(zip(_ids(index, rows), index.arrays.parent_id[rows].tolist(), strict=True))


def test_the_recent_replies_cache_holds_the_newest_replies_newest_first(index: WorldIndex) -> None:
    store = AncestorStore(index)
    fetched = fetch(index, store, BIG_ROOT, NOW_NS, Caps(recent=50, top=0), ConversationConfig())
    recent = fetched.rows[fetched.source == "recent_replies"]
    assert _ids(index, recent) == list(range(BIG_ROOT + N_REPLIES, BIG_ROOT + N_REPLIES - 50, -1))
    assert fetched.counts["recent_replies"] == 50 and fetched.counts["top_replies"] == 0


def test_a_conversation_the_cache_holds_whole_fetches_no_top_replies(index: WorldIndex) -> None:
    store = AncestorStore(index)
    fetched = fetch(
        index, store, BIG_ROOT, NOW_NS, Caps(recent=N_REPLIES, top=80), ConversationConfig()
    )
    assert fetched.counts == {"recent_replies": N_REPLIES, "top_replies": 0, "ancestors": 0}


def test_larger_conversations_add_the_best_older_replies_by_the_search_score(
    index: WorldIndex,
) -> None:
    cfg = ConversationConfig()
    fetched = fetch(index, AncestorStore(index), BIG_ROOT, NOW_NS, Caps(recent=100, top=40), cfg)
    top = fetched.rows[fetched.source == "top_replies"]
    assert fetched.counts["top_replies"] == len(top) == 40
    everything = index.conversation_rows(BIG_ROOT)
    scores = pd.Series(search_scores(index, everything, NOW_NS, cfg), index=everything)
    older = everything[: N_REPLIES - 100]
    assert set(top) <= set(older)  # never a reply the recent cache holds
    assert scores[top].min() >= scores[np.setdiff1d(older, top)].max()
    assert scores[top].is_monotonic_decreasing


def test_the_search_score_grows_with_direct_replies_and_recency() -> None:
    cfg = conversation_cfg()
    frames = conversation_frames(4)
    # 1 and 2 answer the root at the same time; 3 and 4 answer 1
    tweets = frames["tweets"]
    tweets["in_reply_to_tweet_id"] = [None, BIG_ROOT, BIG_ROOT, BIG_ROOT + 1, BIG_ROOT + 1]
    tweets.loc[2, "created_at"] = tweets.loc[1, "created_at"]
    index = conversation_index(cfg, frames)
    rows = index.conversation_rows(BIG_ROOT)
    scores = search_scores(index, rows, NOW_NS, cfg.conversation)
    assert scores[0] > scores[1]  # same age, two direct replies against none
    assert scores[3] > scores[2]  # no replies either, newer


def test_a_reply_clicked_gets_only_the_replies_below_it(index: WorldIndex) -> None:
    parents = _parents(index)
    focal = max(
        parents.values(),
        key=lambda p: sum(v == p for v in parents.values()) if p != BIG_ROOT else -1,
    )
    below = set(_ids(index, replies_below(index, focal, NOW_NS)))
    expected = set()
    for tweet in parents:
        up = parents[tweet]
        while up != BIG_ROOT and up != focal:
            up = parents[up]
        if up == focal:
            expected.add(tweet)
    assert below == expected and below


def test_below_focal_climbs_chains_of_any_depth() -> None:
    ids = np.array([2, 3, 4, 5, 6])
    parents = np.array([1, 2, 3, 4, 99])
    assert below_focal(ids, parents, 2).tolist() == [False, True, True, True, False]
    assert below_focal(ids, parents, 1).tolist() == [True, True, True, True, False]


def test_replies_created_after_now_are_not_candidates(index: WorldIndex) -> None:
    earlier = timestamp_ns(NOW - pd.Timedelta(minutes=100))
    rows = replies_below(index, BIG_ROOT, earlier)
    everything = index.conversation_rows(BIG_ROOT)
    posted_by_then = everything[index.arrays.created_ns[everything] <= earlier]
    assert rows.tolist() == posted_by_then.tolist()
    assert 0 < len(rows) < N_REPLIES


def test_the_ancestor_store_gives_the_chain_above_a_reply_root_first(index: WorldIndex) -> None:
    parents = _parents(index)
    deepest = max(parents, key=lambda t: len(_chain(parents, t)))
    chain = AncestorStore(index).chain(deepest)
    assert _ids(index, chain) == _chain(parents, deepest)
    assert _ids(index, chain)[0] == BIG_ROOT and len(chain) >= 3
    assert AncestorStore(index).chain(BIG_ROOT).tolist() == []


def _chain(parents: dict[int, int], tweet: int) -> list[int]:
    above = []
    while tweet != BIG_ROOT:
        tweet = parents[tweet]
        above.append(tweet)
    return above[::-1]


def test_ancestor_repair_fetches_the_missing_chain_once(index: WorldIndex) -> None:
    parents = _parents(index)
    store = AncestorStore(index)
    deep = sorted(parents, key=lambda t: len(_chain(parents, t)))[-3:]
    rows = index.rows_of(np.array(deep))
    added = store.repair(rows, BIG_ROOT)
    added_ids = _ids(index, added)
    assert len(added_ids) == len(set(added_ids))
    assert not set(added_ids) & set(deep)
    needed = {a for t in deep for a in _chain(parents, t)} - {BIG_ROOT} - set(deep)
    assert set(added_ids) == needed
    # below a reply clicked, the repair stops at that reply
    focal = _chain(parents, deep[-1])[1]
    assert focal not in _ids(index, store.repair(index.rows_of(np.array([deep[-1]])), focal))


def test_a_small_cache_is_repaired_into_one_tree_below_the_root(index: WorldIndex) -> None:
    fetched = fetch(
        index, AncestorStore(index), BIG_ROOT, NOW_NS, Caps(recent=30, top=0), ConversationConfig()
    )
    ids = set(_ids(index, fetched.rows))
    parents = index.arrays.parent_id[fetched.rows]
    assert all(p == BIG_ROOT or p in ids for p in parents.tolist())
    assert fetched.counts["ancestors"] == len(fetched.rows) - 30 > 0
    assert len(ids) == len(fetched.rows)


def test_fetch_knows_which_replies_the_root_author_answered() -> None:
    cfg = conversation_cfg()
    frames = conversation_frames(3)
    tweets = frames["tweets"]
    tweets["in_reply_to_tweet_id"] = [None, BIG_ROOT, BIG_ROOT, BIG_ROOT + 1]
    tweets.loc[3, "author_id"] = 1  # the root author answers reply 1
    index = conversation_index(cfg, frames)
    fetched = fetch(index, AncestorStore(index), BIG_ROOT, NOW_NS, Caps(10, 0), cfg.conversation)
    assert fetched.author_replied.tolist() == [BIG_ROOT + 1]


def test_on_a_reply_s_page_the_root_author_s_answers_count_not_the_clicked_reply_author_s() -> None:
    cfg = conversation_cfg()
    frames = conversation_frames(5)
    tweets = frames["tweets"]
    # root <- 1 (by user 7) <- 2 <- 3 (by user 7, the clicked reply's author) and 2 <- 4, 3 <- 5
    tweets["in_reply_to_tweet_id"] = [
        None,
        BIG_ROOT,
        BIG_ROOT + 1,
        BIG_ROOT + 2,
        BIG_ROOT + 2,
        BIG_ROOT + 3,
    ]
    tweets["author_id"] = [1, 7, 8, 7, 9, 1]  # the root author (1) answers reply 3
    index = conversation_index(cfg, frames)
    fetched = fetch(
        index, AncestorStore(index), BIG_ROOT + 1, NOW_NS, Caps(10, 0), cfg.conversation
    )
    assert fetched.author_replied.tolist() == [BIG_ROOT + 3]


def test_the_world_index_knows_verified_accounts_and_parent_links_after_growing(
    index: WorldIndex,
) -> None:
    assert index.verified(np.array([1, 2, 3, 4, 5, 999])).tolist() == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    grown = conversation_index(conversation_cfg(), conversation_frames(3))
    posted = pd.DataFrame(
        {
            "tweet_id": [BIG_ROOT + 10],
            "author_id": [7],
            "in_reply_to_tweet_id": [BIG_ROOT + 2],
            "created_at": [NOW],
            "toxicity": [0.25],
            "text": ["new"],
            "conversation_id": [BIG_ROOT],
        }
    )
    assert grown.extend(posted) == 1
    row = grown.rows_of(np.array([BIG_ROOT + 10]))
    assert grown.arrays.parent_id[row].tolist() == [BIG_ROOT + 2]
    assert grown.arrays.toxicity[row].tolist() == [0.25]
    assert _ids(grown, grown.conversation_rows(BIG_ROOT))[-1] == BIG_ROOT + 10
    assert (
        AncestorStore(grown).chain(BIG_ROOT + 10)[-1] == grown.rows_of(np.array([BIG_ROOT + 2]))[0]
    )
