"""Sparse features: hashed ids and text n-grams that the ranker embeds itself.

Ids are hashed with a stable 64-bit hash (never Python's per-process ``hash``), so the same tweet,
author or word maps to the same id offline and online, in every process.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from pipelines.inputs.spec import LIST_LIKE, FeatureTable, flat_ids, row_count

# Hashed text ids live in [1, TEXT_ID_SPACE); 0 is reserved for padding.
TEXT_ID_SPACE = 2**31 - 1
# Unigrams and bigrams kept per tweet (first occurrences, in text order).
MAX_NGRAMS = 24
_TOKEN = re.compile(r"[#@]?\w+")


def stable_text_id(text: str) -> int:
    """A string -> an id in [1, TEXT_ID_SPACE), the same in every process (CRC-32 based)."""
    return zlib.crc32(text.encode("utf8")) % (TEXT_ID_SPACE - 1) + 1


def text_ngrams(text: str, max_ngrams: int = MAX_NGRAMS) -> list[str]:
    """Lower-cased unigrams then bigrams of a tweet text, unique, at most `max_ngrams`."""
    tokens = _TOKEN.findall(text.lower())
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
    return list(dict.fromkeys(grams))[:max_ngrams]


def text_ngram_ids(texts: Iterable[str], max_ngrams: int = MAX_NGRAMS) -> list[np.ndarray]:
    """Each text -> int64 ids of its unigrams and bigrams ([<= max_ngrams], 0 never appears)."""
    return [
        np.array([stable_text_id(g) for g in text_ngrams(str(t), max_ngrams)], dtype=np.int64)
        for t in texts
    ]


def hashtag_lists(hashtags: pd.Series) -> list[list[str]]:
    """The tweets table's hashtags column (lists, arrays or missing) -> lists of lower-case tags."""
    out: list[list[str]] = []
    for value in hashtags.to_numpy():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append([])
        else:
            out.append([str(tag).lower().lstrip("#") for tag in value])
    return out


# The ranker's sparse inputs, in column order of :func:`sparse_ids`: (field, frame column, slots).
# A field's slots hold its values in the column's order; unused slots are padding.
SPARSE_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("viewer", "viewer_id", 1),
    ("author", "author_id", 1),
    ("tweet", "tweet_id", 1),
    ("country", "viewer_country", 1),
    ("hashtags", "viewer_recent_hashtags", 5),
    ("ngrams", "tweet_ngram_ids", MAX_NGRAMS),
)
# Hashed sparse ids are in [1, buckets); 0 is padding: a missing value or an unused slot.
PADDING_ID = 0
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)

_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """``[...]`` integers -> ``[...]`` uint64, the SplitMix64 mix of each (wrapping arithmetic).

    Stable across processes and platforms (unlike Python's ``hash``), and vectorized.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(values).astype(np.uint64) + _GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def field_slots() -> tuple[int, ...]:
    """Slots per sparse field, in SPARSE_FIELDS order (what :class:`SparseEmbedder` pools over)."""
    return tuple(slots for _, _, slots in SPARSE_FIELDS)


def field_slices() -> dict[str, slice]:
    """Field name -> its columns in the ``[N, S]`` matrix of :func:`sparse_ids`."""
    out: dict[str, slice] = {}
    start = 0
    for name, _, slots in SPARSE_FIELDS:
        out[name] = slice(start, start + slots)
        start += slots
    return out


def sparse_width() -> int:
    """S, the total slots of all sparse fields."""
    return sum(field_slots())


def _field_salt(name: str) -> np.uint64:
    # Salting by field keeps e.g. viewer 7 and author 7 on different ids of the shared table.
    return np.uint64(splitmix64(np.array([stable_text_id(name)], dtype=np.int64))[0])


def _to_int64(values: np.ndarray) -> np.ndarray:
    """Present values ``[K]`` (integers, or strings) -> int64 ``[K]``; strings via stable_text_id."""
    if values.dtype.kind in "iubf":
        return values.astype(np.int64)
    codes, uniques = pd.factorize(values)  # hash each distinct string once
    table = np.array(
        [stable_text_id(v) if isinstance(v, str) else int(v) for v in uniques], dtype=np.int64
    )
    return table[codes]


def _scalar_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-value-a-row column -> (rows, slots, int64 values) of its present values."""
    present = column.notna().to_numpy()
    rows = np.flatnonzero(present)
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column[present].to_numpy(dtype=np.int64)
    else:
        values = _to_int64(column.to_numpy()[present])
    return rows, np.zeros(len(rows), dtype=np.int64), values


def _integral(lists: list[Any]) -> bool:
    """Whether the lists hold integer ids (their first value is an int), not strings."""
    for values in lists:
        if len(values):
            first = values[0]
            return isinstance(first, int | np.integer) and not isinstance(first, bool)
    return True


def _list_values(column: pd.Series, slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A list-valued column (lists, arrays or missing) -> (rows, slots, int64 values).

    Keeps the first `slots` values of each row; anything not list-like (None, NaN) has none.
    """
    items = column.to_numpy()
    first = items[0] if len(items) > 1 else None
    if isinstance(first, LIST_LIKE) and all(value is first for value in items):
        # One list on every row (the viewer's, in a feed request): converted once.
        rows, slot, values = _list_values(pd.Series([first], dtype=object), slots)
        n = len(items)
        return np.repeat(np.arange(n), len(values)), np.tile(slot, n), np.tile(values, n)
    lists = [value if isinstance(value, LIST_LIKE) else () for value in items]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    total = int(lengths.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    flat = flat_ids(lists, total) if _integral(lists) else None
    if flat is None:  # strings, or a None among ids: per value below
        filled = [values for values in lists if len(values)]
        flat = np.fromiter(chain.from_iterable(filled), dtype=object, count=total)
    rows = np.repeat(np.arange(len(lists)), lengths)
    slot = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    kept = slot < slots  # truncating after the concat is cheaper than slicing every row
    if flat.dtype == object:  # Python lists (strings, or ids as a store returns them)
        kept &= pd.notna(flat)
    rows, slot, flat = rows[kept], slot[kept], flat[kept]
    if flat.dtype == object and pd.api.types.infer_dtype(flat) == "integer":
        flat = flat.astype(np.int64)
    values = _to_int64(flat)
    if flat.dtype.kind in "iu":  # hashed text ids reserve 0 for padding
        nonzero = values != PADDING_ID
        rows, slot, values = rows[nonzero], slot[nonzero], values[nonzero]
    return rows, slot, values


def sparse_ids(frame: FeatureTable, buckets: int) -> np.ndarray:
    """Rows with the SPARSE_FIELDS columns (a frame, or columns) -> hashed ids ``[N, S]`` int64
    in [0, buckets).

    Every value is hashed with SplitMix64, salted by its field, into [1, buckets); 0 marks a
    missing value or an unused slot. Column ``j`` belongs to the field :func:`field_slices` says.
    Integer columns hash their ids; strings go through :func:`stable_text_id` first.

    Raises:
        KeyError: the frame lacks some SPARSE_FIELDS columns (all of them are named).
        ValueError: ``buckets < 2``, which leaves no room for an id beside the padding.
    """
    missing = [column for _, column, _ in SPARSE_FIELDS if column not in frame]
    if missing:
        raise KeyError(f"sparse features need frame columns {missing}")
    if buckets < 2:
        raise ValueError(f"buckets must be >= 2 (0 is padding); got {buckets}")
    ids = np.zeros((row_count(frame), sparse_width()), dtype=np.int64)
    for (name, column, slots), where in zip(SPARSE_FIELDS, field_slices().values(), strict=True):
        series = frame[column]
        if not isinstance(series, pd.Series):  # columns: an array
            series = pd.Series(series, copy=False)
        rows, slot, values = _scalar_values(series) if slots == 1 else _list_values(series, slots)
        hashed = splitmix64(values.astype(np.uint64) ^ _field_salt(name))
        ids[rows, where.start + slot] = (hashed % np.uint64(buckets - 1)).astype(np.int64) + 1
    return ids
