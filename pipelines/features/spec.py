"""The ranker's feature contract: which columns, in which order, and how they become a matrix.

Training and serving both call :func:`feature_matrix`, so the model sees the same columns in the same
order offline and online. Embedding columns are list-valued (one vector per row) and are expanded.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

# Request-time values: computed from the request (or impression) time and the joined rows.
REQUEST_FEATURES: tuple[str, ...] = (
    "in_network",
    "same_language",
    "tweet_age_hours",
    "hour_of_day",
    "day_of_week",
    "viewer_tweet_similarity",
    "tweet_engagements_decayed",
    "season",
    "days_to_holiday",
    "va_social_similarity",
)
TWEET_FEATURES: tuple[str, ...] = (
    "tweet_length",
    "has_image",
    "has_video",
    "has_url",
    "is_reply",
)
TWEET_ENGAGEMENT_FEATURES: tuple[str, ...] = (
    "tweet_impressions_window",
    "tweet_engagements_window",
    "tweet_favs_window",
    "tweet_replies_window",
    "tweet_retweets_window",
    "tweet_engagements_total",
    "tweet_engagements_1h",
    "tweet_engagements_3d",
    "tweet_engagements_7d",
    "tweet_favs_3d",
    "tweet_replies_3d",
    "tweet_retweets_2h",
)
AUTHOR_FEATURES: tuple[str, ...] = (
    "author_follower_count",
    "author_following_count",
    "author_is_verified",
    "author_engagement_rate",
    "author_tweets_window",
    "author_follower_ratio",
    "author_pagerank",
)
VIEWER_FEATURES: tuple[str, ...] = ("viewer_following_count", "viewer_engagement_rate")
VIEWER_AUTHOR_FEATURES: tuple[str, ...] = (
    "va_impressions",
    "va_engagements",
    "va_common_followees",
)

DENSE_FEATURES: tuple[str, ...] = (
    REQUEST_FEATURES
    + TWEET_FEATURES
    + TWEET_ENGAGEMENT_FEATURES
    + AUTHOR_FEATURES
    + VIEWER_FEATURES
    + VIEWER_AUTHOR_FEATURES
)
# The walking skeleton's feature set (issue 2), kept to measure what the full set adds.
SKELETON_DENSE_FEATURES: tuple[str, ...] = (
    "in_network", "same_language", "tweet_age_hours", "hour_of_day", "day_of_week",
    "viewer_tweet_similarity", "tweet_length", "has_image", "has_video", "has_url", "is_reply",
    "tweet_impressions_window", "tweet_engagements_window", "tweet_favs_window",
    "tweet_replies_window", "tweet_retweets_window", "tweet_engagements_total",
    "author_follower_count", "author_following_count", "author_is_verified",
    "author_engagement_rate", "author_tweets_window", "viewer_following_count",
    "viewer_engagement_rate", "va_impressions", "va_engagements",
)  # fmt: skip
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "full": DENSE_FEATURES,
    "skeleton": SKELETON_DENSE_FEATURES,
}


def dense_features(feature_set: str = "full") -> tuple[str, ...]:
    if feature_set not in FEATURE_SETS:
        raise KeyError(f"unknown feature set {feature_set!r}; known: {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[feature_set]


# Heavy-tailed counts: the model log-transforms them before standardizing.
LOG_FEATURES: frozenset[str] = frozenset(
    TWEET_ENGAGEMENT_FEATURES
    + (
        "tweet_engagements_decayed",
        "tweet_length",
        "tweet_age_hours",
        "author_follower_count",
        "author_following_count",
    )
    + ("author_tweets_window", "viewer_following_count", "va_impressions", "va_engagements")
    + ("author_follower_ratio", "author_pagerank", "va_common_followees")
)
EMBEDDING_FEATURES: tuple[str, ...] = ("tweet_embedding", "viewer_embedding")


def feature_names(embedding_dim: int, feature_set: str = "full") -> list[str]:
    """Column names of the model input matrix, in order."""
    names = list(dense_features(feature_set))
    for column in EMBEDDING_FEATURES:
        names += [f"{column}_{i}" for i in range(embedding_dim)]
    return names


def log_mask(embedding_dim: int, feature_set: str = "full") -> np.ndarray:
    return np.array([name in LOG_FEATURES for name in feature_names(embedding_dim, feature_set)])


def stack_embeddings(values: pd.Series, dim: int) -> np.ndarray:
    """A column of vectors (or missing values) -> [N, dim] float32; missing rows are zeros."""
    out = np.zeros((len(values), dim), dtype=np.float32)
    for row, vector in enumerate(values.to_numpy()):
        if vector is not None and not (isinstance(vector, float) and np.isnan(vector)):
            array = np.asarray(vector, dtype=np.float32)
            if array.shape == (dim,):
                out[row] = array
    return out


def feature_matrix(
    frame: pd.DataFrame, embedding_dim: int, feature_set: str = "full"
) -> np.ndarray:
    """Frame with the set's dense and the EMBEDDING_FEATURES columns -> model input [N, F] float32.

    Missing dense values stay NaN (the model's normalizer maps them to the mean; LightGBM handles
    them natively).
    """
    columns = dense_features(feature_set)
    missing = [c for c in (*columns, *EMBEDDING_FEATURES) if c not in frame.columns]
    if missing:
        raise KeyError(f"feature frame lacks columns {missing}")
    dense = frame[list(columns)].astype("float64").to_numpy(dtype=np.float32, na_value=np.nan)
    parts = [dense] + [stack_embeddings(frame[c], embedding_dim) for c in EMBEDDING_FEATURES]
    return np.concatenate(parts, axis=1)


def request_time_values(inputs: pd.DataFrame) -> pd.DataFrame:
    """The REQUEST_FEATURES from joined rows, `request_time_s` (epoch s) and `viewer_follows_author`.

    This is the body of Feast's `request_time` on-demand feature view, so offline (impression time)
    and online (now) values come from this one function. Needs tweet_created_s, tweet_language,
    viewer_language and the two embeddings. Returns only the REQUEST_FEATURES columns, same index.
    """
    seconds = inputs["request_time_s"].astype("float64").to_numpy()
    out = pd.DataFrame(index=inputs.index)
    created = inputs["tweet_created_s"].astype("float64").to_numpy()
    out["in_network"] = inputs["viewer_follows_author"].astype("float64").to_numpy()
    out["same_language"] = (
        inputs["tweet_language"].astype(object) == inputs["viewer_language"].astype(object)
    ).astype("float64")
    out["tweet_age_hours"] = np.maximum(0.0, (seconds - created) / 3600.0)
    out["hour_of_day"] = ((seconds // 3600) % 24).astype("float64")
    # 1970-01-01 was a Thursday: shift so that Monday = 0.
    out["day_of_week"] = ((seconds // 86400 + 3) % 7).astype("float64")
    # Decay the snapshot's decayed total on to the request time: exact, whatever the snapshot age.
    snapshot = inputs.get("tweet_engagement_snapshot_s", pd.Series(np.nan, index=inputs.index))
    at_snapshot = inputs.get(
        "tweet_engagements_decayed_at_snapshot", pd.Series(np.nan, index=inputs.index)
    )
    elapsed_h = np.maximum(0.0, (seconds - snapshot.astype("float64").to_numpy()) / 3600.0)
    out["tweet_engagements_decayed"] = at_snapshot.astype("float64").to_numpy() * np.exp(
        -elapsed_h / ENGAGEMENT_DECAY_HOURS
    )
    months = pd.to_datetime(seconds, unit="s", utc=True)
    out["season"] = ((months.month.to_numpy() % 12) // 3).astype("float64")
    out["days_to_holiday"] = days_to_next_holiday(seconds)
    out["va_social_similarity"] = _row_dot(
        inputs, "viewer_social_embedding", "author_social_embedding"
    )
    dim = _embedding_dim(inputs)
    if dim:
        tweet = stack_embeddings(inputs["tweet_embedding"], dim)
        viewer = stack_embeddings(inputs["viewer_embedding"], dim)
        similarity = (tweet * viewer).sum(axis=1)
        known = (np.abs(tweet).sum(axis=1) > 0) & (np.abs(viewer).sum(axis=1) > 0)
        out["viewer_tweet_similarity"] = np.where(known, similarity, np.nan).astype("float64")
    else:
        out["viewer_tweet_similarity"] = np.full(len(inputs), np.nan)
    return out[list(REQUEST_FEATURES)]


def request_time_features(
    frame: pd.DataFrame, request_time: pd.Series | pd.Timestamp
) -> pd.DataFrame:
    """`frame` with the REQUEST_FEATURES filled in for the given request time(s).

    A convenience over :func:`request_time_values` for callers holding timestamps; `frame` needs
    `in_network` and the inputs listed there.
    """
    if isinstance(request_time, pd.Series):
        seconds = epoch_seconds(request_time).to_numpy()
    else:
        seconds = np.full(len(frame), pd.Timestamp(request_time).timestamp())
    values = request_time_values(
        frame.assign(request_time_s=seconds, viewer_follows_author=frame["in_network"])
    )
    out = frame.copy()
    for column in REQUEST_FEATURES:
        out[column] = values[column].to_numpy()
    return out


ENGAGEMENT_DECAY_HOURS = 24.0  # must match pipelines.features.batch.ENGAGEMENT_DECAY_HOURS
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


def days_to_next_holiday(seconds: np.ndarray) -> np.ndarray:
    """Days from each time (epoch s, UTC) to the next holiday in HOLIDAYS, capped at the horizon.

    Computed once per distinct day: a request (or a day of impressions) shares one value.
    """
    day_numbers = np.floor(np.asarray(seconds, dtype="float64") / 86400.0)
    finite = np.isfinite(day_numbers)
    out = np.full(len(day_numbers), np.nan)
    unique, inverse = np.unique(day_numbers[finite].astype(np.int64), return_inverse=True)
    values = np.array([_days_to_holiday(EPOCH + timedelta(days=int(d))) for d in unique])
    out[finite] = values[inverse] if len(unique) else np.empty(0)
    return out


def _row_dot(frame: pd.DataFrame, left: str, right: str) -> np.ndarray:
    """Row-wise dot product of two vector columns; NaN where either vector (or column) is missing."""
    out = np.full(len(frame), np.nan)
    if left not in frame.columns or right not in frame.columns:
        return out
    for row, (a, b) in enumerate(zip(frame[left].to_numpy(), frame[right].to_numpy(), strict=True)):
        if a is None or b is None or isinstance(a, float) or isinstance(b, float):
            continue
        a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a_arr.shape == b_arr.shape and a_arr.size:
            out[row] = float(a_arr @ b_arr)
    return out


def epoch_seconds(values: pd.Series) -> pd.Series:
    """Timestamps (any resolution, tz-aware or UTC-naive) -> float seconds since the epoch."""
    stamps = pd.to_datetime(values, utc=True)
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _embedding_dim(frame: pd.DataFrame) -> int:
    for vector in frame.get("tweet_embedding", pd.Series(dtype=object)).to_numpy():
        if vector is not None and not (isinstance(vector, float) and np.isnan(vector)):
            return len(vector)
    return 0
