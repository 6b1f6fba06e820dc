"""The tweet index (`pipelines.retrieval`): search, exclusions, additions, on hand-made vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.retrieval.index import TweetIndex
from tests.utils.tweet_vectors import AUTHORS, IDS, QUERY, VECTORS, unit


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
    index.add(np.array([99]), unit(0, 0, 1)[None, :], np.array([7]))  # re-embedded: replaced
    assert len(index) == 6 and index.search(QUERY[None, :], k=1).row(0)[0].tolist() == [11]
    loaded = TweetIndex.load(index.save(tmp_path / "index"))
    assert len(loaded) == 6 and loaded.authors[99] == 7
    assert loaded.search(QUERY[None, :], k=2).row(0)[0].tolist() == [11, 10]
    with pytest.raises(ValueError, match="vectors must be"):
        index.add(np.array([1, 2]), VECTORS[:1], np.array([1, 2]))
    with pytest.raises(FileNotFoundError, match="build-index"):
        TweetIndex.load(tmp_path / "missing")
