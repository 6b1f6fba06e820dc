"""The ranker's feature contract: which columns, in which order, and how they become a matrix.

Training and serving both call :func:`feature_matrix`, so the model sees the same columns in the same
order offline and online. Embedding columns are list-valued (one vector per row) and are expanded.
"""

from __future__ import annotations

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
)
AUTHOR_FEATURES: tuple[str, ...] = (
    "author_follower_count",
    "author_following_count",
    "author_is_verified",
    "author_engagement_rate",
    "author_tweets_window",
)
VIEWER_FEATURES: tuple[str, ...] = ("viewer_following_count", "viewer_engagement_rate")
VIEWER_AUTHOR_FEATURES: tuple[str, ...] = ("va_impressions", "va_engagements")

DENSE_FEATURES: tuple[str, ...] = (
    REQUEST_FEATURES
    + TWEET_FEATURES
    + TWEET_ENGAGEMENT_FEATURES
    + AUTHOR_FEATURES
    + VIEWER_FEATURES
    + VIEWER_AUTHOR_FEATURES
)
# Heavy-tailed counts: the model log-transforms them before standardizing.
LOG_FEATURES: frozenset[str] = frozenset(
    TWEET_ENGAGEMENT_FEATURES
    + ("tweet_length", "tweet_age_hours", "author_follower_count", "author_following_count")
    + ("author_tweets_window", "viewer_following_count", "va_impressions", "va_engagements")
)
EMBEDDING_FEATURES: tuple[str, ...] = ("tweet_embedding", "viewer_embedding")


def feature_names(embedding_dim: int) -> list[str]:
    """Column names of the model input matrix, in order."""
    names = list(DENSE_FEATURES)
    for column in EMBEDDING_FEATURES:
        names += [f"{column}_{i}" for i in range(embedding_dim)]
    return names


def log_mask(embedding_dim: int) -> np.ndarray:
    return np.array([name in LOG_FEATURES for name in feature_names(embedding_dim)])


def stack_embeddings(values: pd.Series, dim: int) -> np.ndarray:
    """A column of vectors (or missing values) -> [N, dim] float32; missing rows are zeros."""
    out = np.zeros((len(values), dim), dtype=np.float32)
    for row, vector in enumerate(values.to_numpy()):
        if vector is not None and not (isinstance(vector, float) and np.isnan(vector)):
            array = np.asarray(vector, dtype=np.float32)
            if array.shape == (dim,):
                out[row] = array
    return out


def feature_matrix(frame: pd.DataFrame, embedding_dim: int) -> np.ndarray:
    """Frame with DENSE_FEATURES and EMBEDDING_FEATURES columns -> model input [N, F] float32.

    Missing dense values stay NaN (the model's normalizer maps them to the mean; LightGBM handles
    them natively).
    """
    missing = [c for c in (*DENSE_FEATURES, *EMBEDDING_FEATURES) if c not in frame.columns]
    if missing:
        raise KeyError(f"feature frame lacks columns {missing}")
    dense = (
        frame[list(DENSE_FEATURES)].astype("float64").to_numpy(dtype=np.float32, na_value=np.nan)
    )
    parts = [dense] + [stack_embeddings(frame[c], embedding_dim) for c in EMBEDDING_FEATURES]
    return np.concatenate(parts, axis=1)


def request_time_features(
    frame: pd.DataFrame, request_time: pd.Series | pd.Timestamp
) -> pd.DataFrame:
    """Values known only at request time, identical offline (impression time) and online (now).

    Needs columns tweet_created_s (seconds since epoch), tweet_language, viewer_language and the
    two embeddings; `in_network` is given by the caller (offline from the follow graph, online from
    the candidate source). Returns a copy with the REQUEST_FEATURES columns filled in.
    """
    out = frame.copy()
    if isinstance(request_time, pd.Series):
        seconds = epoch_seconds(request_time).set_axis(frame.index)
    else:
        seconds = pd.Series(pd.Timestamp(request_time).timestamp(), index=frame.index)
    out["tweet_age_hours"] = np.maximum(0.0, (seconds.to_numpy() - out["tweet_created_s"]) / 3600.0)
    hour = (seconds.to_numpy() // 3600) % 24
    out["hour_of_day"] = hour.astype("float64")
    # 1970-01-01 was a Thursday: shift so that Monday = 0.
    out["day_of_week"] = ((seconds.to_numpy() // 86400 + 3) % 7).astype("float64")
    out["same_language"] = (out["tweet_language"] == out["viewer_language"]).astype("float64")
    out["in_network"] = out["in_network"].astype("float64")
    dim = _embedding_dim(out)
    if dim:
        tweet = stack_embeddings(out["tweet_embedding"], dim)
        viewer = stack_embeddings(out["viewer_embedding"], dim)
        similarity = (tweet * viewer).sum(axis=1)
        known = (np.abs(tweet).sum(axis=1) > 0) & (np.abs(viewer).sum(axis=1) > 0)
        out["viewer_tweet_similarity"] = np.where(known, similarity, np.nan)
    else:
        out["viewer_tweet_similarity"] = np.nan
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
