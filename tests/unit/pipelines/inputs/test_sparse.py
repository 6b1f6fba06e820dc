"""Hashed sparse ids: stable, salted per field, padded with 0, robust to missing values."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from pipelines.config import RankerConfig
from pipelines.inputs.sparse import (
    MAX_NGRAMS,
    SPARSE_FIELDS,
    field_slices,
    sparse_ids,
    sparse_width,
    stable_text_id,
    text_ngram_ids,
)

BUCKETS = 1000
SLICES = field_slices()


def _frame() -> pd.DataFrame:
    """Three rows: fully filled, half missing, and one sharing values with the first."""
    return pd.DataFrame(
        {
            "viewer_id": np.array([7, 8, 7], dtype=np.int64),
            "author_id": np.array([7, 9, 11], dtype=np.int64),
            "tweet_id": np.array([100, 101, 102], dtype=np.int64),
            "viewer_country": ["us", None, "us"],
            "viewer_recent_hashtags": [["ai", "rust"], None, ["rust"]],
            "tweet_ngram_ids": [*text_ngram_ids(["rust is fast"]), np.nan, np.array([], np.int64)],
        }
    )


def test_layout_covers_every_field_once() -> None:
    assert [name for name, _, _ in SPARSE_FIELDS] == list(SLICES)
    assert SLICES["hashtags"].stop - SLICES["hashtags"].start == 5
    assert SLICES["ngrams"].stop - SLICES["ngrams"].start == MAX_NGRAMS
    assert SLICES["ngrams"].stop == sparse_width()


def _splitmix64_reference(value: int) -> int:
    """SplitMix64 in plain Python integers, to check the vectorized numpy version against."""
    mask = 2**64 - 1
    z = (value + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_ids_are_stable_in_range_and_int64() -> None:
    first, second = sparse_ids(_frame(), BUCKETS), sparse_ids(_frame(), BUCKETS)
    assert first.shape == (3, sparse_width()) and first.dtype == np.int64
    np.testing.assert_array_equal(first, second)
    assert first.min() >= 0 and first.max() < BUCKETS
    # Pinned: a change of hash would silently scramble every trained embedding table.
    assert sparse_ids(_frame(), 2**15)[0, :6].tolist() == [24947, 19907, 3802, 26155, 7473, 16891]


def test_ids_are_salted_splitmix64_of_the_value() -> None:
    salt = _splitmix64_reference(stable_text_id("viewer"))
    expected = _splitmix64_reference(7 ^ salt) % (BUCKETS - 1) + 1
    assert sparse_ids(_frame(), BUCKETS)[0, SLICES["viewer"]][0] == expected
    negative = _frame().assign(viewer_id=np.array([-5, 8, 7], dtype=np.int64))
    expected = _splitmix64_reference(((-5) % 2**64) ^ salt) % (BUCKETS - 1) + 1
    assert sparse_ids(negative, BUCKETS)[0, 0] == expected


def test_the_same_value_differs_across_fields_and_matches_within_one() -> None:
    ids = sparse_ids(_frame(), 2**20)
    viewer, author = ids[0, SLICES["viewer"]][0], ids[0, SLICES["author"]][0]
    assert viewer != author  # both are the raw id 7, salted by their field
    assert ids[0, SLICES["viewer"]][0] == ids[2, SLICES["viewer"]][0]
    assert ids[0, SLICES["country"]][0] == ids[2, SLICES["country"]][0]
    # "rust" is the 2nd recent hashtag of row 0 and the 1st of row 2: same id, same table row.
    assert ids[0, SLICES["hashtags"]][1] == ids[2, SLICES["hashtags"]][0]


def test_missing_values_and_unused_slots_are_padding() -> None:
    ids = sparse_ids(_frame(), BUCKETS)
    tags, grams = ids[:, SLICES["hashtags"]], ids[:, SLICES["ngrams"]]
    assert (tags[0, :2] > 0).all() and (tags[0, 2:] == 0).all()
    assert (tags[1] == 0).all() and ids[1, SLICES["country"]][0] == 0
    n_grams = len(text_ngram_ids(["rust is fast"])[0])  # 3 unigrams + 2 bigrams
    assert (grams[0, :n_grams] > 0).all() and (grams[0, n_grams:] == 0).all()
    assert (grams[1] == 0).all() and (grams[2] == 0).all()
    # Present values never land on the padding id.
    assert (ids[:, : SLICES["country"].stop][[0, 2]] > 0).all()


def test_long_lists_keep_their_first_values() -> None:
    frame = _frame()
    frame["viewer_recent_hashtags"] = [[f"t{i}" for i in range(9)], ["t0"], []]
    frame["tweet_ngram_ids"] = [np.arange(1, 40), None, None]
    ids = sparse_ids(frame, 2**20)
    tags, grams = ids[:, SLICES["hashtags"]], ids[:, SLICES["ngrams"]]
    assert (tags[0] > 0).all() and len(set(tags[0].tolist())) == 5
    assert tags[0, 0] == tags[1, 0]
    first_grams = frame.assign(tweet_ngram_ids=[np.arange(1, MAX_NGRAMS + 1), None, None])
    np.testing.assert_array_equal(grams, sparse_ids(first_grams, 2**20)[:, SLICES["ngrams"]])
    assert (grams[1:] == 0).all()  # nothing spills over from the long row


def test_list_columns_as_arrays_or_python_lists_give_the_same_ids() -> None:
    frame = _frame()
    as_arrays = frame.assign(
        viewer_recent_hashtags=[np.array(["ai", "rust"], dtype=object), None, np.array(["rust"])],
    )
    as_lists = frame.assign(
        tweet_ngram_ids=[frame["tweet_ngram_ids"][0].tolist(), None, []],
    )
    expected = sparse_ids(frame, BUCKETS)
    np.testing.assert_array_equal(sparse_ids(as_arrays, BUCKETS), expected)
    np.testing.assert_array_equal(sparse_ids(as_lists, BUCKETS), expected)


def test_missing_columns_are_named() -> None:
    frame = _frame().drop(columns=["viewer_country", "tweet_ngram_ids"])
    with pytest.raises(KeyError, match="viewer_country.*tweet_ngram_ids"):
        sparse_ids(frame, BUCKETS)


def test_too_few_buckets_are_rejected() -> None:
    with pytest.raises(ValueError, match="buckets"):
        sparse_ids(_frame(), 1)
    with pytest.raises(ValidationError, match="sparse_buckets"):
        RankerConfig(sparse_buckets=1)


def test_only_the_full_feature_set_with_a_table_uses_sparse() -> None:
    assert RankerConfig().uses_sparse
    assert not RankerConfig(feature_set="skeleton").uses_sparse
    assert not RankerConfig(sparse_buckets=0).uses_sparse


def test_a_few_thousand_rows_hash_in_milliseconds() -> None:
    rng = np.random.default_rng(0)
    n = 1500
    frame = pd.DataFrame(
        {
            "viewer_id": np.full(n, 3, dtype=np.int64),
            "author_id": rng.integers(0, 500, n),
            "tweet_id": rng.integers(0, 10**6, n),
            "viewer_country": rng.choice(["us", "fr", "jp"], n),
            "viewer_recent_hashtags": [["ai", "ml", "rust", "go", "gpu"]] * n,
            "tweet_ngram_ids": list(rng.integers(1, 2**31, size=(n, MAX_NGRAMS))),
        }
    )
    sparse_ids(frame, 2**15)
    started = time.perf_counter()
    ids = sparse_ids(frame, 2**15)
    assert time.perf_counter() - started < 0.1  # ~5 ms on a laptop core; generous for CI
    assert (ids > 0).all()


def test_one_list_shared_by_every_row_gives_the_ids_of_separate_copies() -> None:
    shared_tags = [f"t{i}" for i in range(7)]  # longer than the field's slots
    shared_grams = [5, 0, 9]  # a 0 is padding
    frame = _frame()
    shared = frame.assign(
        viewer_recent_hashtags=[shared_tags] * 3, tweet_ngram_ids=[shared_grams] * 3
    )
    copies = frame.assign(
        viewer_recent_hashtags=[list(shared_tags) for _ in range(3)],
        tweet_ngram_ids=[np.array(shared_grams) for _ in range(3)],
    )
    np.testing.assert_array_equal(sparse_ids(shared, BUCKETS), sparse_ids(copies, BUCKETS))


def test_id_lists_with_a_missing_value_fall_back_to_per_value_conversion() -> None:
    frame = _frame().assign(tweet_ngram_ids=[[3, None, 4], [3, 4], None])
    ids = sparse_ids(frame, BUCKETS)[:, SLICES["ngrams"]]
    # The None keeps its slot, as padding; 3 and 4 hash as in the row without it.
    assert ids[0][0] == ids[1][0] and ids[0][1] == 0 and ids[0][2] == ids[1][1] > 0
    assert (ids[0][3:] == 0).all() and (ids[2] == 0).all()
