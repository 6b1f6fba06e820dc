"""The embedding retriever (the viewer's vector from the store, the tweet index searched without
seen or own tweets), and retrieved tweets in the candidates and the feed."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.retrieval.index import TweetIndex
from serving.candidates.retrieval import EmbeddingRetriever
from serving.candidates.world_index import WorldIndex
from tests.utils.fakes import FakeFeatures, fake_arm
from tests.utils.tweet_vectors import AUTHORS, IDS, QUERY, VECTORS
from tests.utils.world import ROOT, make_cfg, tiny_world


def test_embedding_retriever_excludes_what_the_viewer_saw_or_wrote() -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS)
    vectors = {1: QUERY}
    retriever = EmbeddingRetriever(index, vectors.get, k=2)
    got = retriever.retrieve(1, seen=np.array([11]))
    assert got["tweet_id"].tolist() == [12, 13] and got["author_id"].tolist() == [3, 4]
    assert retriever.retrieve(2, seen=np.array([], dtype=np.int64)).empty  # no embedding


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_posted_tweet_is_retrieved_once_added_and_a_known_one_is_left_alone(kind: str) -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS, kind)  # type: ignore[arg-type]
    retriever = EmbeddingRetriever(index, {1: QUERY}.get, k=1)
    best = retriever.retrieve(1, seen=np.array([], dtype=np.int64))["tweet_id"].tolist()
    assert best != [99]
    added = retriever.add(np.array([99, IDS[0]]), np.stack([QUERY, VECTORS[0]]), np.array([7, 1]))
    assert added == 1  # the known id stays as it was (an HNSW index cannot replace it)
    assert retriever.retrieve(1, seen=np.array([], dtype=np.int64))["tweet_id"].tolist() == [99]
    assert retriever.add(np.array([99]), QUERY[None, :], np.array([7])) == 0


def test_a_loaded_retriever_reads_the_store_and_searches_with_the_configured_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    import pipelines.features.store as store_module

    cfg = make_cfg(tmp_path, search_threads=1)
    TweetIndex.build(IDS, VECTORS, AUTHORS).save(cfg.paths.tweet_index)

    class FakeStore:
        def get_online_features(self, features: list[str], entity_rows: list[dict[str, int]]):
            vector = QUERY.tolist() if entity_rows[0]["viewer_id"] == 1 else None
            return types.SimpleNamespace(to_dict=lambda: {"viewer_embedding": [vector]})

    monkeypatch.setattr(store_module, "feature_store", lambda cfg: FakeStore())
    faiss.omp_set_num_threads(2)
    retriever = EmbeddingRetriever.load(cfg)
    assert retriever is not None and faiss.omp_get_max_threads() == 1
    got = retriever.retrieve(1, seen=np.array([11]))
    assert got["tweet_id"].tolist() == [12, 13, 14]  # 11 seen, 10 the viewer's own
    assert retriever.retrieve(2, seen=np.array([], dtype=np.int64)).empty


def test_retrieved_tweets_join_the_out_of_network_quota_first() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    retrieved = pd.DataFrame(
        {
            # 106 eligible; 101 by a followee; 102 seen; 105 the user's own; 202 a reply;
            # 999 unknown to the world
            "tweet_id": [101, 102, 105, 202, 999, 106],
            "author_id": [2, 3, 1, 2, 9, 5],
        }
    )
    candidates = index.candidates(1, retrieved)
    assert candidates["tweet_id"].tolist() == [101, 106, 104]
    assert candidates["source"].tolist() == [
        "in_network",
        "out_of_network_embedding",
        "out_of_network",
    ]
    assert candidates["in_network"].tolist() == [True, False, False]
    capped = WorldIndex.from_frames(make_cfg(out_of_network_candidates=1), **tiny_world())
    assert capped.candidates(1, retrieved)["tweet_id"].tolist() == [101, 106]
    assert ROOT not in candidates["tweet_id"].tolist()  # an older root nobody retrieved


class FixedRetriever:
    """Retrieves the same tweets for everyone; records what it was asked to exclude."""

    def __init__(self, tweets: pd.DataFrame) -> None:
        self.tweets = tweets
        self.seen: list[list[int]] = []

    def retrieve(self, viewer_id: int, seen: np.ndarray) -> pd.DataFrame:
        self.seen.append(seen.tolist())
        return self.tweets

    def add(self, tweet_ids: np.ndarray, vectors: np.ndarray, author_ids: np.ndarray) -> int:
        raise AssertionError("nothing is posted in this test")


def test_the_feed_serves_retrieved_tweets_with_their_source() -> None:
    import asyncio

    from serving.engine.feed import FeedEngine
    from serving.schemas import FeedRequest

    retriever = FixedRetriever(pd.DataFrame({"tweet_id": [106], "author_id": [5]}))
    engine = FeedEngine(
        make_cfg(),
        WorldIndex.from_frames(make_cfg(), **tiny_world()),
        FakeFeatures(),
        {"champion": fake_arm("v1")},
        retriever=retriever,
    )
    try:
        response = asyncio.run(engine.feed(FeedRequest(user_id=1)))
    finally:
        engine.close()
    sources = {item.tweet_id: item.source for item in response.items}
    assert sources == {
        101: "in_network_backlog",
        103: "in_network_backlog",
        106: "out_of_network_embedding",
        104: "out_of_network_trending",
    }
    assert retriever.seen == [[102]]  # what user 1 was already served
