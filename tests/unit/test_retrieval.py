"""The tweet index and the out-of-network embedding source, on hand-made vectors."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.retrieval.index import TweetIndex
from serving.retrieval import EmbeddingRetriever
from serving.world_index import WorldIndex
from tests.unit.test_serving_app import ROOT, make_cfg, tiny_world


def _unit(*vector: float) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    return array / np.linalg.norm(array)


# Tweets 10..14 by authors 1..5; angles chosen so that the order to QUERY is 11, 10, 12, 13, 14.
VECTORS = np.stack(
    [_unit(1, 0.5, 0), _unit(1, 0.1, 0), _unit(0.5, 1, 0), _unit(0, 1, 0.2), _unit(-1, 0, 1)]
)
IDS = np.array([10, 11, 12, 13, 14])
AUTHORS = np.array([1, 2, 3, 4, 5])
QUERY = _unit(1, 0, 0)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_the_index_returns_the_exact_nearest_neighbours(kind: str) -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS, kind)  # type: ignore[arg-type]
    found = index.search(QUERY[None, :], k=3)
    ids, scores = found.row(0)
    assert ids.tolist() == [11, 10, 12]
    expected = VECTORS[[1, 0, 2]] @ QUERY
    assert scores == pytest.approx(expected, abs=1e-6)
    brute = IDS[np.argsort(-(VECTORS @ QUERY))].tolist()
    assert index.search(QUERY[None, :], k=5).row(0)[0].tolist() == brute


def test_retrieval_never_returns_seen_or_own_tweets_and_still_fills_k() -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS)
    found = index.search(QUERY[None, :], k=3, exclude=[{11}], exclude_authors=[1])
    # 11 was seen, 10 is the viewer's own (author 1): the next three are 12, 13, 14
    assert found.row(0)[0].tolist() == [12, 13, 14]
    short = index.search(QUERY[None, :], k=5, exclude=[{11, 12}], exclude_authors=[1])
    assert short.row(0)[0].tolist() == [13, 14]  # only two tweets are left
    assert short.tweet_ids[0, 2:].tolist() == [-1, -1, -1]


def test_exclusions_given_as_arrays_work_as_sets() -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS)
    as_set = index.search(QUERY[None, :], k=3, exclude=[{11, 13}], exclude_authors=[2])
    as_array = index.search(QUERY[None, :], k=3, exclude=[np.array([13, 11])], exclude_authors=[2])
    assert as_array.row(0)[0].tolist() == as_set.row(0)[0].tolist() == [10, 12, 14]


def test_author_of_looks_up_every_tweet_and_follows_additions() -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS)
    assert index.author_of(np.array([14, 10, 77, 12])).tolist() == [5, 1, -1, 3]
    index.add(np.array([77]), QUERY[None, :], np.array([9]))
    assert index.author_of(np.array([77, 11])).tolist() == [9, 2]
    assert TweetIndex.empty(3).author_of(np.array([1, 2])).tolist() == [-1, -1]


def test_a_fresh_tweet_is_retrievable_once_added_and_the_index_round_trips(
    tmp_path: Path,
) -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS)
    index.add(np.array([99]), QUERY[None, :], np.array([7]))
    assert index.search(QUERY[None, :], k=1).row(0)[0].tolist() == [99]
    index.add(np.array([99]), _unit(0, 0, 1)[None, :], np.array([7]))  # re-embedded: replaced
    assert len(index) == 6 and index.search(QUERY[None, :], k=1).row(0)[0].tolist() == [11]
    loaded = TweetIndex.load(index.save(tmp_path / "index"))
    assert len(loaded) == 6 and loaded.authors[99] == 7
    assert loaded.search(QUERY[None, :], k=2).row(0)[0].tolist() == [11, 10]
    with pytest.raises(ValueError, match="vectors must be"):
        index.add(np.array([1, 2]), VECTORS[:1], np.array([1, 2]))
    with pytest.raises(FileNotFoundError, match="build-index"):
        TweetIndex.load(tmp_path / "missing")


def test_embedding_retriever_excludes_what_the_viewer_saw_or_wrote() -> None:
    index = TweetIndex.build(IDS, VECTORS, AUTHORS)
    vectors = {1: QUERY}
    retriever = EmbeddingRetriever(index, vectors.get, k=2)
    got = retriever.retrieve(1, seen=np.array([11]))
    assert got["tweet_id"].tolist() == [12, 13] and got["author_id"].tolist() == [3, 4]
    assert retriever.retrieve(2, seen=np.array([], dtype=np.int64)).empty  # no embedding


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


def test_the_feed_serves_retrieved_tweets_with_their_source() -> None:
    import asyncio

    from serving.engine import FeedEngine
    from serving.schemas import FeedRequest
    from tests.unit.test_serving_app import FakeFeatures, fake_arm

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
