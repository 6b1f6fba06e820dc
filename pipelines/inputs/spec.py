"""The ranker's feature contract: which columns, in which order, and how they become a matrix.

Training and serving both call :func:`feature_matrix`, so the model sees the same columns in the same
order offline and online. Rows come as a frame or as columns (:data:`FeatureTable`); an embedding
column holds one vector per row (lists or arrays, or a [N, D] matrix with NaN rows where missing)
and is expanded.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from itertools import chain
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from pipelines.inputs import catalog
from pipelines.inputs.catalog import ENGAGEMENT_DECAY_HOURS

# Feature rows as a frame, or as columns: name -> [N] array, or [N, D] float matrix for a vector
# feature (a row of NaN where the vector is missing). Serving hands columns to the model without
# building frames; training and Feast's on-demand views hand frames. Every function here that
# takes inputs takes either.
FeatureTable: TypeAlias = pd.DataFrame | Mapping[str, np.ndarray]
# What a list-valued cell holds (a tuple, not `list | tuple | ...`, which is built anew on every
# isinstance call; these run per row).
LIST_LIKE = (list, tuple, np.ndarray)


def _names(fields: Iterable[catalog.Feature]) -> tuple[str, ...]:
    return tuple(field.name for field in fields)


# The ranker's inputs, derived from the feature catalog (each field's group, position and flags are
# stated there). Request-time values: computed from the request (or impression) time and the
# joined rows (the `request_time` on-demand view).
REQUEST_FEATURES: tuple[str, ...] = _names(catalog.dense_group("request"))
TWEET_FEATURES: tuple[str, ...] = _names(catalog.dense_group("tweet"))
TWEET_ENGAGEMENT_FEATURES: tuple[str, ...] = _names(catalog.dense_group("tweet_engagement"))
# Request-time affinities between the viewer, the author and the tweet (the `request_affinity`
# on-demand view).
AFFINITY_FEATURES: tuple[str, ...] = _names(catalog.dense_group("affinity"))
AUTHOR_FEATURES: tuple[str, ...] = _names(catalog.dense_group("author"))
VIEWER_FEATURES: tuple[str, ...] = _names(catalog.dense_group("viewer"))
VIEWER_AUTHOR_FEATURES: tuple[str, ...] = _names(catalog.dense_group("viewer_author"))

# Where a candidate reply stands in its conversation (the `conversation` on-demand view): the
# conversation ranker's inputs beyond the feed ranker's.
CONVERSATION_FEATURES: tuple[str, ...] = _names(catalog.dense_group("conversation"))

DENSE_FEATURES: tuple[str, ...] = _names(catalog.dense_inputs())
# A reduced feature set, kept to measure what the full set adds.
SKELETON_DENSE_FEATURES: tuple[str, ...] = _names(f for f in catalog.dense_inputs() if f.skeleton)
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "full": DENSE_FEATURES,
    "skeleton": SKELETON_DENSE_FEATURES,
    # The full design without anything read from the text (the encoder's value).
    "no_text": _names(f for f in catalog.dense_inputs() if not f.reads_text),
    # The conversation ranker's: the full design and the reply's conversation context.
    "conversation": _names(catalog.conversation_dense_inputs()),
}


def dense_features(feature_set: str = "full") -> tuple[str, ...]:
    if feature_set not in FEATURE_SETS:
        raise KeyError(f"unknown feature set {feature_set!r}; known: {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[feature_set]


# Heavy-tailed counts: the model log-transforms them before standardizing.
LOG_FEATURES: frozenset[str] = frozenset(_names(f for f in catalog.all_fields() if f.log))
EMBEDDING_FEATURES: tuple[str, ...] = _names(catalog.vector_inputs())
TEXT_FREE_SETS = frozenset({"no_text"})


def embedding_features(feature_set: str = "full") -> tuple[str, ...]:
    """The vector columns a feature set feeds the model (none for a text-free set)."""
    return () if feature_set in TEXT_FREE_SETS else EMBEDDING_FEATURES


# Hashed buckets of the hashtag TF-IDF vectors (viewer, author and tweet profiles).
HASHTAG_DIM = 32


def hashtag_bucket(tag: str) -> int:
    """A lower-case hashtag -> its bucket in [0, HASHTAG_DIM), the same in every process."""
    return zlib.crc32(tag.encode("utf8")) % HASHTAG_DIM


def feature_names(embedding_dim: int, feature_set: str = "full") -> list[str]:
    """Column names of the model input matrix, in order."""
    names = list(dense_features(feature_set))
    for column in embedding_features(feature_set):
        names += [f"{column}_{i}" for i in range(embedding_dim)]
    return names


def log_mask(embedding_dim: int, feature_set: str = "full") -> np.ndarray:
    return np.array([name in LOG_FEATURES for name in feature_names(embedding_dim, feature_set)])


def stack_embeddings(values: pd.Series | np.ndarray, dim: int) -> np.ndarray:
    """A column of vectors (or missing values) -> [N, dim] float32; missing rows are zeros."""
    return stack_vectors(values, dim)[0]


def _array(values: pd.Series | np.ndarray) -> np.ndarray:
    return values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)


def present_rows(matrix: np.ndarray) -> np.ndarray:
    """[N] bool: the rows of a [N, D] vector matrix that hold a vector (a missing one is NaN only)."""
    return ~np.isnan(matrix).all(axis=1)


def stack_vectors(values: pd.Series | np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A column of vectors -> ([N, dim] float32, [N] bool present).

    The column holds vectors (lists or arrays) and missing values, or is already a [N, D]
    matrix with rows of NaN only for missing vectors. Missing rows, and vectors of another length, are
    zeros and not present."""
    items = _array(values)
    if items.ndim == 2:
        if items.shape[1] != dim:
            return np.zeros((len(items), dim), dtype=np.float32), np.zeros(len(items), dtype=bool)
        present = present_rows(items)
        matrix = items.astype(np.float32, copy=False)
        if not present.all():
            matrix = np.where(present[:, None], matrix, np.float32(0.0))
        return matrix, present
    if len(items):
        first = items[0]
        if (
            isinstance(first, LIST_LIKE) and len(first) == dim and all(v is first for v in items)
        ):  # one vector on every row (the viewer's, in a feed request): stacked once
            row = np.asarray(first, dtype=np.float32).reshape(1, dim)
            return np.repeat(row, len(items), axis=0), np.ones(len(items), dtype=bool)
        try:  # the common case, every row a vector of this length: one C-level stack
            stacked = np.array(items.tolist(), dtype=np.float32)
        except (TypeError, ValueError):
            stacked = None
        if stacked is not None and stacked.shape == (len(items), dim):
            return stacked, np.ones(len(items), dtype=bool)
    present = np.fromiter(
        (isinstance(v, LIST_LIKE) and len(v) == dim for v in items),
        dtype=bool,
        count=len(items),
    )
    out = np.zeros((len(items), dim), dtype=np.float32)
    if present.any():
        out[present] = np.array(items[present].tolist(), dtype=np.float32)
    return out, present


def row_count(inputs: FeatureTable) -> int:
    """Rows of a frame, or of columns (raises ValueError naming a column of another length)."""
    if isinstance(inputs, pd.DataFrame):
        return len(inputs.index)
    lengths = {name: len(values) for name, values in inputs.items()}
    count = next(iter(lengths.values()), 0)
    odd = sorted(name for name, length in lengths.items() if length != count)
    if odd:
        raise ValueError(f"feature columns {odd} do not have the {count} rows of the others")
    return count


def _floats(inputs: FeatureTable, column: str) -> np.ndarray:
    """[N] float64 values of a column (non-numbers and missing values NaN; all NaN when the
    column is absent)."""
    if column not in inputs:
        return np.full(row_count(inputs), np.nan)
    values = _array(inputs[column])
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)


def feature_matrix(
    frame: FeatureTable, embedding_dim: int, feature_set: str = "full"
) -> np.ndarray:
    """Rows with the set's dense and the EMBEDDING_FEATURES columns (a frame, or columns) ->
    model input [N, F] float32.

    Missing dense values stay NaN (the model's normalizer maps them to the mean; LightGBM handles
    them natively).
    """
    columns = dense_features(feature_set)
    vectors = embedding_features(feature_set)
    missing = [c for c in (*columns, *vectors) if c not in frame]
    if missing:
        raise KeyError(f"feature frame lacks columns {missing}")
    n = row_count(frame)
    out = np.empty((n, len(columns) + embedding_dim * len(vectors)), dtype=np.float32)
    if isinstance(frame, pd.DataFrame):
        out[:, : len(columns)] = (
            frame[list(columns)].astype("float64").to_numpy(dtype=np.float32, na_value=np.nan)
        )
    else:
        for j, column in enumerate(columns):
            out[:, j] = _floats(frame, column)
    for k, column in enumerate(vectors):
        start = len(columns) + k * embedding_dim
        out[:, start : start + embedding_dim] = stack_embeddings(frame[column], embedding_dim)
    return out


def request_time_values(inputs: pd.DataFrame) -> pd.DataFrame:
    """The body of Feast's `request_time` on-demand feature view: :func:`request_time_columns`
    of a frame, as a frame (REQUEST_FEATURES columns, same index)."""
    return pd.DataFrame(request_time_columns(inputs), index=inputs.index)


def request_time_columns(inputs: FeatureTable) -> dict[str, np.ndarray]:
    """The REQUEST_FEATURES from joined rows, `request_time_s` (epoch s) and `viewer_follows_author`.

    Offline (impression time, through the `request_time` view) and online (now, on serving's
    columns) values come from this one function. Needs tweet_created_s, tweet_language,
    viewer_language, the tweet's engagement snapshot, the social embeddings and the two text
    embeddings. Returns [N] float64 per REQUEST_FEATURES name, in order.
    """
    seconds = _floats(inputs, "request_time_s")
    out: dict[str, np.ndarray] = {}
    created = _floats(inputs, "tweet_created_s")
    out["in_network"] = _floats(inputs, "viewer_follows_author")
    tweet_language = _array(inputs["tweet_language"]).astype(object, copy=False)
    viewer_language = _array(inputs["viewer_language"]).astype(object, copy=False)
    # A missing language matches nothing, not even another missing one.
    out["same_language"] = (
        (tweet_language == viewer_language) & pd.notna(tweet_language) & pd.notna(viewer_language)
    ).astype("float64")
    out["tweet_age_hours"] = np.maximum(0.0, (seconds - created) / 3600.0)
    out["hour_of_day"] = ((seconds // 3600) % 24).astype("float64")
    # 1970-01-01 was a Thursday: shift so that Monday = 0.
    out["day_of_week"] = ((seconds // 86400 + 3) % 7).astype("float64")
    # Decay the snapshot's decayed total on to the request time: exact, whatever the snapshot age.
    snapshot = _floats(inputs, "tweet_engagement_snapshot_s")
    at_snapshot = _floats(inputs, "tweet_engagements_decayed_at_snapshot")
    elapsed_h = np.maximum(0.0, (seconds - snapshot) / 3600.0)
    out["tweet_engagements_decayed"] = at_snapshot * np.exp(-elapsed_h / ENGAGEMENT_DECAY_HOURS)
    out["season"] = season_of(seconds)
    out["days_to_holiday"] = days_to_next_holiday(seconds)
    out["va_social_similarity"] = _row_dot(
        inputs, "viewer_social_embedding", "author_social_embedding"
    )
    dim = _vector_dim(inputs["tweet_embedding"]) if "tweet_embedding" in inputs else 0
    if dim:
        tweet = stack_embeddings(inputs["tweet_embedding"], dim)
        viewer = stack_embeddings(inputs["viewer_embedding"], dim)
        similarity = (tweet * viewer).sum(axis=1)
        known = (np.abs(tweet).sum(axis=1) > 0) & (np.abs(viewer).sum(axis=1) > 0)
        out["viewer_tweet_similarity"] = np.where(known, similarity, np.nan).astype("float64")
    else:
        out["viewer_tweet_similarity"] = np.full(len(seconds), np.nan)
    return {name: out[name] for name in REQUEST_FEATURES}


# Major holidays as (month, day); "approaching a holiday" is the days until the next one, capped.
HOLIDAYS: tuple[tuple[int, int], ...] = ((1, 1), (2, 14), (7, 4), (10, 31), (11, 26), (12, 25))
HOLIDAY_HORIZON_DAYS = 60.0
EPOCH = date(1970, 1, 1)


def _days_to_holiday(day: date) -> float:
    best = HOLIDAY_HORIZON_DAYS
    for year in (day.year, day.year + 1):
        for month, dom in HOLIDAYS:
            days = (date(year, month, dom) - day).days
            if 0 <= days < best:
                best = float(days)
    return best


def season_of(seconds: np.ndarray) -> np.ndarray:
    """Meteorological season of each time (epoch s, UTC): 0 winter (Dec-Feb), 1 spring, 2
    summer, 3 autumn; NaN where the time is. Computed once per distinct day."""
    return _per_day(seconds, lambda day: float((day.month % 12) // 3))


def days_to_next_holiday(seconds: np.ndarray) -> np.ndarray:
    """Days from each time (epoch s, UTC) to the next holiday in HOLIDAYS, capped at the horizon.

    Computed once per distinct day: a request (or a day of impressions) shares one value.
    """
    return _per_day(seconds, _days_to_holiday)


def _per_day(seconds: np.ndarray, value: Callable[[date], float]) -> np.ndarray:
    """`value(day)` for the UTC day of each time (epoch s), called once per distinct day."""
    day_numbers = np.floor(np.asarray(seconds, dtype="float64") / 86400.0)
    finite = np.isfinite(day_numbers)
    out = np.full(len(day_numbers), np.nan)
    unique, inverse = np.unique(day_numbers[finite].astype(np.int64), return_inverse=True)
    values = np.array([value(EPOCH + timedelta(days=int(d))) for d in unique])
    out[finite] = values[inverse] if len(unique) else np.empty(0)
    return out


def _row_dot(frame: FeatureTable, left: str, right: str) -> np.ndarray:
    """Row-wise dot product of two vector columns; NaN where either vector (or column) is missing."""
    out = np.full(row_count(frame), np.nan)
    if left not in frame or right not in frame:
        return out
    dim = _vector_dim(frame[left])
    if not dim or _vector_dim(frame[right]) != dim:
        return out
    (a, a_known), (b, b_known) = stack_vectors(frame[left], dim), stack_vectors(frame[right], dim)
    known = a_known & b_known
    out[known] = (a[known].astype(np.float64) * b[known]).sum(axis=1)
    return out


def _vector_dim(values: pd.Series | np.ndarray) -> int:
    """The length of the column's vectors: a matrix's width, else the first vector's; 0 for a
    column without any (callers find a matrix's missing rows when they stack it)."""
    items = _array(values)
    if items.ndim == 2:
        return int(items.shape[1])
    for vector in items:
        if isinstance(vector, LIST_LIKE) and len(vector):
            return len(vector)
    return 0


_NO_IDS = np.empty(0, dtype=np.int64)


def flat_ids(lists: Sequence[Any], total: int) -> np.ndarray | None:
    """Id lists (arrays or lists; empty ones too) holding `total` ids -> those ids concatenated
    [total] int64; None when some value is not an integer (a None, a string).

    Int arrays, as serving's rows hold them, are joined without per-id Python; Python lists of
    ints, as a store or a frame holds them, are read in one pass.
    """
    filled = [values for values in lists if len(values)]
    if not filled:
        return _NO_IDS
    if all(isinstance(values, np.ndarray) and values.dtype.kind in "iu" for values in filled):
        return np.concatenate(filled).astype(np.int64, copy=False)
    try:
        return np.fromiter(chain.from_iterable(filled), dtype=np.int64, count=total)
    except (TypeError, ValueError, OverflowError):
        return None


def _id_lists(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Id lists (or missing values) [N] -> (lengths [N], all ids concatenated [sum(lengths)])."""
    lists = [v if isinstance(v, LIST_LIKE) else _NO_IDS for v in values]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    total = int(lengths.sum())
    flat = flat_ids(lists, total)
    if flat is None:
        raise ValueError("id lists hold a value that is not an integer id")
    return lengths, flat


def network_counts(inputs: FeatureTable, actors: str) -> np.ndarray:
    """[N] how many ids of the `actors` list column are among the row's `viewer_followees`.

    Rows are grouped by viewer (one group for a feed request), each group by one `isin` over the
    concatenated lists. NaN where the viewer's followees are unknown.
    """
    n = row_count(inputs)
    out = np.full(n, np.nan)
    if actors not in inputs or "viewer_followees" not in inputs:
        return out
    actor_lists = _array(inputs[actors])
    followees = _array(inputs["viewer_followees"])
    known = np.fromiter((isinstance(v, LIST_LIKE) for v in followees), dtype=bool, count=n)
    viewers = _array(inputs["viewer_id"]) if "viewer_id" in inputs else np.arange(n)
    for viewer in np.unique(viewers[known]):
        rows = np.flatnonzero(known & (viewers == viewer))
        lengths, ids = _id_lists(actor_lists[rows])
        follow_set = np.asarray(followees[rows[0]], dtype=np.int64)
        hits = np.isin(ids, follow_set)
        owner = np.repeat(np.arange(len(rows)), lengths)
        out[rows] = np.bincount(owner, weights=hits, minlength=len(rows))
    return out


def topic_rate(inputs: FeatureTable, column: str = "author_topic_rates") -> np.ndarray:
    """[N] a per-topic rate vector picked at the tweet's topic: ``inputs[column][tweet_topic]``
    (the author's or the viewer's engagement rate on the tweet's topic); NaN where unknown."""
    out = np.full(row_count(inputs), np.nan)
    if column not in inputs or "tweet_topic" not in inputs:
        return out
    topics = _floats(inputs, "tweet_topic")
    k = _vector_dim(inputs[column])
    if not k:
        return out
    rates, known = stack_vectors(inputs[column], k)
    known &= np.isfinite(topics) & (topics >= 0) & (topics < k)
    rows = np.flatnonzero(known)
    out[rows] = rates[rows, topics[rows].astype(np.int64)]
    return out


def affinity_values(inputs: pd.DataFrame) -> pd.DataFrame:
    """The body of Feast's `request_affinity` on-demand feature view: :func:`affinity_columns`
    of a frame, as a frame (AFFINITY_FEATURES columns, same index)."""
    return pd.DataFrame(affinity_columns(inputs), index=inputs.index)


def affinity_columns(inputs: FeatureTable) -> dict[str, np.ndarray]:
    """The AFFINITY_FEATURES from joined rows, offline (the `request_affinity` view) and online.

    Needs the hashtag vectors of viewer, author and tweet, the viewer and author content
    embeddings, author_topic_rates, viewer_topic_rates and tweet_topic, the tweet's recent
    engager and faver lists, the viewer's followees (and viewer_id), va_engaged_tweets,
    author_tweets_total and viewer_engagement_rate. Missing inputs give NaN (the model maps them
    to defaults). Returns [N] float64 per AFFINITY_FEATURES name, in order.
    """
    out: dict[str, np.ndarray] = {}
    out["va_hashtag_similarity"] = _row_dot(
        inputs, "viewer_hashtag_vector", "author_hashtag_vector"
    )
    out["vt_hashtag_similarity"] = _row_dot(inputs, "viewer_hashtag_vector", "tweet_hashtag_vector")
    out["va_content_similarity"] = _row_dot(inputs, "viewer_embedding", "author_content_embedding")
    out["author_topic_engagement_rate"] = topic_rate(inputs)
    out["tweet_network_engagements_3d"] = network_counts(inputs, "tweet_recent_engagers")
    out["tweet_network_favs_3d"] = network_counts(inputs, "tweet_recent_favers")
    engaged = _floats(inputs, "va_engaged_tweets")
    posted = _floats(inputs, "author_tweets_total")
    # A pair the viewer never saw has engaged with none of the author's tweets.
    norm = np.nan_to_num(engaged, nan=0.0) / np.maximum(posted, 1.0)
    out["va_engaged_tweets_norm"] = np.where(np.isnan(posted), np.nan, norm)
    viewer_topic = topic_rate(inputs, "viewer_topic_rates")
    out["viewer_topic_engagement_rate"] = viewer_topic
    viewer_rate = _floats(inputs, "viewer_engagement_rate")
    out["viewer_topic_lift"] = viewer_topic / np.maximum(viewer_rate, 1e-3)
    return {name: out[name] for name in AFFINITY_FEATURES}


def conversation_values(inputs: pd.DataFrame) -> pd.DataFrame:
    """The body of Feast's `conversation` on-demand feature view: :func:`conversation_columns`
    of a frame, as a frame (CONVERSATION_FEATURES columns, same index)."""
    return pd.DataFrame(conversation_columns(inputs), index=inputs.index)


def conversation_columns(inputs: FeatureTable) -> dict[str, np.ndarray]:
    """The CONVERSATION_FEATURES from the `conversation_context` request data (the columns of
    `pipelines.conversation.context.conversation_context` and the two follow relations of the
    reply's author and the root's), offline and online. Ages become hours; a missing value stays
    NaN (the model maps it to its default). Returns [N] float64 per name, in order."""
    size = _floats(inputs, "conversation_size")
    descendants = _floats(inputs, "reply_descendants")
    out = {
        "conv_reply_depth": _floats(inputs, "reply_depth"),
        "conv_root_author_replied": _floats(inputs, "root_author_replied"),
        "conv_is_root_author": _floats(inputs, "is_root_author"),
        "conv_reply_descendants": descendants,
        "conv_size": size,
        "conv_age_hours": _floats(inputs, "conversation_age_s") / 3600.0,
        "conv_reply_age_hours": _floats(inputs, "reply_age_s") / 3600.0,
        "conv_replier_follows_root_author": _floats(inputs, "replier_follows_root_author"),
        "conv_root_author_follows_replier": _floats(inputs, "root_author_follows_replier"),
        "conv_descendant_share": descendants / np.maximum(size, 1.0),
    }
    return {name: out[name] for name in CONVERSATION_FEATURES}


# The on-demand views whose transformation is one of the functions above, by view name: the
# Feast views (feature_repo/definitions.py) wrap them for frames, serving calls them on columns
# (a test checks each pair agrees).
ON_DEMAND_COLUMNS: dict[str, Callable[[FeatureTable], dict[str, np.ndarray]]] = {
    "request_time": request_time_columns,
    "request_affinity": affinity_columns,
    "conversation": conversation_columns,
}


def epoch_seconds(values: pd.Series) -> pd.Series:
    """Timestamps (any resolution, tz-aware or UTC-naive) -> float seconds since the epoch."""
    stamps = pd.to_datetime(values, utc=True)
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
