"""Batch features: the Feast sources, computed from the raw lake.

Every table carries an ``event_timestamp`` at which its values became known, so Feast's point-in-time
join never hands a training row anything from its future:
- ``tweet_content``: static tweet attributes, known when the tweet is posted.
- ``tweet_engagement``: windowed counts, a row at each hour boundary where a count changes.
- ``author_stats``, ``viewer_stats``: daily snapshots at the end of each day (and one at the start).
- ``viewer_author``: cumulative counts per pair, a row at the end of each day the pair was active.
Engagements count at the time of the action (``fav_at``, ...), impressions at ``served_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.features import graph
from pipelines.features.training_set import split_boundary
from pipelines.inputs import spec
from pipelines.inputs.catalog import ENGAGEMENT_DECAY_HOURS
from pipelines.inputs.sparse import hashtag_lists, text_ngram_ids
from pipelines.inputs.spec import HASHTAG_DIM, epoch_seconds
from pipelines.lake import LakeSpan, lake_span
from pipelines.schema import ENGAGEMENTS, read_table

log = logging.getLogger(__name__)

RATE_PRIOR_STRENGTH = 50.0  # pseudo-impressions pulling small samples toward the global rate


def write_feature_table(cfg: FeedrankConfig, name: str, table: pd.DataFrame) -> Path:
    """Write a Feast source; event times as microsecond UTC (the offline store casts from that)."""
    table = table.assign(
        event_timestamp=pd.to_datetime(table["event_timestamp"], utc=True).astype(
            "datetime64[us, UTC]"
        )
    )
    path = cfg.paths.feature_table(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    log.info("features: %s written (%d rows)", name, len(table))
    return path


def engagement_events(impressions: pd.DataFrame, tweets: pd.DataFrame) -> pd.DataFrame:
    """One row per engagement action: viewer_id, tweet_id, author_id, action, at (timestamp)."""
    frames = []
    for action in ENGAGEMENTS:
        done = impressions[impressions[action]]
        frames.append(
            pd.DataFrame(
                {
                    "viewer_id": done["viewer_id"].to_numpy(),
                    "tweet_id": done["tweet_id"].to_numpy(),
                    "action": action,
                    "at": done[f"{action}_at"].to_numpy(),
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    authors = tweets.set_index("tweet_id")["author_id"]
    events["author_id"] = authors.reindex(events["tweet_id"]).to_numpy()
    return events.sort_values("at", kind="stable").reset_index(drop=True)


def hashtag_idf(tags: list[list[str]]) -> dict[str, float]:
    """Smoothed inverse document frequency of each hashtag over the given tweets' tag lists."""
    documents = len(tags)
    frequency: dict[str, int] = {}
    for tweet_tags in tags:
        for tag in set(tweet_tags):
            frequency[tag] = frequency.get(tag, 0) + 1
    return {tag: float(np.log((1 + documents) / (1 + n)) + 1.0) for tag, n in frequency.items()}


def hashtag_vectors(tags: list[list[str]], idf: dict[str, float]) -> np.ndarray:
    """Tag lists -> [N, HASHTAG_DIM] TF-IDF vectors in hashed buckets (not normalized).

    A tag the IDF never saw gets the largest known weight (it is rarer than any seen tag).
    """
    unseen = max(idf.values(), default=1.0)
    out = np.zeros((len(tags), HASHTAG_DIM), dtype=np.float32)
    for row, tweet_tags in enumerate(tags):
        for tag in tweet_tags:
            out[row, spec.hashtag_bucket(tag)] += idf.get(tag, unseen)
    return out


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero. [N, D] -> [N, D] float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def tweet_content(tweets: pd.DataFrame, idf: dict[str, float] | None = None) -> pd.DataFrame:
    """Static tweet attributes, its hashed hashtag TF-IDF vector and its text n-gram ids.

    idf: hashtag IDF (default: over these tweets).
    """
    tags = hashtag_lists(tweets["hashtags"])
    vectors = unit_rows(hashtag_vectors(tags, hashtag_idf(tags) if idf is None else idf))
    return pd.DataFrame(
        {
            "tweet_id": tweets["tweet_id"],
            "event_timestamp": tweets["created_at"],
            "tweet_length": tweets["text"].str.len().astype("int64"),
            "has_image": tweets["has_image"].astype("int64"),
            "has_video": tweets["has_video"].astype("int64"),
            "has_url": tweets["has_url"].astype("int64"),
            "is_reply": tweets["in_reply_to_tweet_id"].notna().astype("int64"),
            "tweet_toxicity": tweets["toxicity"].astype("float64"),
            "tweet_language": tweets["language"],
            "tweet_created_s": epoch_seconds(tweets["created_at"]),
            "tweet_hashtag_vector": list(vectors),
            "tweet_ngram_ids": text_ngram_ids(tweets["text"]),
        }
    )


def windowed_counts(
    keys: np.ndarray,
    hours: np.ndarray,
    counts: np.ndarray,
    windows: Sequence[int],
    decay_hours: float | None = None,
) -> pd.DataFrame:
    """Trailing-window sums at every hour boundary where one of a key's window sums changes.

    keys [E] int64, hours [E] int64 (hour index of each event), counts [E, C]. A snapshot at
    boundary t (the end of hour t-1) sums events with hour in [t - w, t - 1] for each window w.
    Sums change only at event hour + 1 (an event enters) and event hour + 1 + w (it leaves), so only
    those boundaries get a row. Returns columns key, boundary, w<w>_<i> for each window and count
    column, total_<i> (all events before t) and, with decay_hours, decayed_<i> = sum of
    exp(-(t - event hour) / decay_hours) over events before t.
    """
    frame = pd.DataFrame(counts, columns=[f"c{i}" for i in range(counts.shape[1])])
    frame["key"], frame["hour"] = keys, hours
    per_hour = frame.groupby(["key", "hour"], sort=True).sum().reset_index()
    key_arr = per_hour["key"].to_numpy()
    hour_arr = per_hour["hour"].to_numpy()
    values = per_hour[[c for c in per_hour.columns if c.startswith("c")]].to_numpy(dtype=np.float64)
    sums = _KeyHourSums(key_arr, hour_arr, values, max(windows))
    boundaries = pd.DataFrame(
        {
            "key": np.concatenate([key_arr] * (len(windows) + 1)),
            "boundary": np.concatenate([hour_arr + 1] + [hour_arr + 1 + w for w in windows]),
        }
    ).drop_duplicates()
    bk, bt = boundaries["key"].to_numpy(), boundaries["boundary"].to_numpy()
    total = sums.up_to(bk, bt - 1)
    out = boundaries.reset_index(drop=True)
    for i in range(values.shape[1]):
        out[f"total_{i}"] = total[:, i]
    for window in windows:
        windowed = total - sums.up_to(bk, bt - 1 - window)
        for i in range(values.shape[1]):
            out[f"w{window}_{i}"] = windowed[:, i]
    if decay_hours:
        # sum_e c_e * exp(-(t - h_e)/tau) = exp(-(t - offset)/tau) * sum_e c_e * exp((h_e - offset)/tau)
        grow = np.exp((hour_arr - sums.offset) / decay_hours)[:, None] * values
        grown = _KeyHourSums(key_arr, hour_arr, grow, max(windows)).up_to(bk, bt - 1)
        decayed = grown * np.exp(-(bt - sums.offset) / decay_hours)[:, None]
        for i in range(values.shape[1]):
            out[f"decayed_{i}"] = decayed[:, i]
    return out


class _KeyHourSums:
    """Per-key running sums of ``values`` (``[E, C]``) over rows sorted by (key, hour), looked up
    at any (key, hour).

    Each (key, hour) maps to one integer code, ``key * span + hour - offset``, increasing in the
    rows' order; ``span`` leaves room for hours up to ``longest`` (the longest window) and more
    on either side, so no lookup hour of a key reaches the next key's codes.
    """

    def __init__(
        self, keys: np.ndarray, hours: np.ndarray, values: np.ndarray, longest: int
    ) -> None:
        self.span = int(hours.max() - hours.min() + 2 * longest + 10) if len(hours) else 1
        self.offset = int(hours.min()) - longest - 5 if len(hours) else 0
        self.codes = keys * self.span + (hours - self.offset)
        # A leading zero row, so a lookup before a key's first event yields 0.
        self.cumulative = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])

    def up_to(self, keys: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """``[Q, C]``: the sum of the values over the rows of each query's key with hour <= the
        query's hour."""
        cumulative = self.cumulative
        position = np.searchsorted(self.codes, keys * self.span + (hours - self.offset), "right")
        first = np.searchsorted(self.codes, keys * self.span, side="left")
        # rows before this key's first row belong to other keys: subtract them
        return cumulative[position] - cumulative[first]


# Windows of the tweet engagement counts, in hours.
TWEET_WINDOWS = (1, 2, 24, 72, 168)
# Engagers of a tweet kept for the viewer's-network counts: the trailing window and the most kept.
NETWORK_WINDOW_HOURS = 72
MAX_RECENT_ENGAGERS = 256


def recent_actors(
    row_keys: np.ndarray,
    row_boundaries: np.ndarray,
    event_keys: np.ndarray,
    event_hours: np.ndarray,
    actors: np.ndarray,
    window_hours: int = NETWORK_WINDOW_HOURS,
    cap: int = MAX_RECENT_ENGAGERS,
) -> list[np.ndarray]:
    """Per row (key, boundary hour): distinct actors of the key's events in hours
    [boundary - window_hours, boundary - 1], most recent first, at most `cap`.

    event_keys, event_hours, actors: [E] int64 arrays; returns one int64 array per row.
    """
    order = np.lexsort((event_hours, event_keys))
    keys, hours, who = event_keys[order], event_hours[order], actors[order]
    # Rows of one key are contiguous and sorted by hour, so a window is a slice.
    lo = np.zeros(len(row_keys), dtype=np.int64)
    hi = np.zeros(len(row_keys), dtype=np.int64)
    starts = np.searchsorted(keys, row_keys, side="left")
    ends = np.searchsorted(keys, row_keys, side="right")
    for i in np.flatnonzero(ends > starts):
        segment = hours[starts[i] : ends[i]]
        lo[i] = starts[i] + np.searchsorted(segment, row_boundaries[i] - window_hours, "left")
        hi[i] = starts[i] + np.searchsorted(segment, row_boundaries[i] - 1, "right")
    empty = np.empty(0, dtype=np.int64)
    out: list[np.ndarray] = []
    for a, b in zip(lo, hi, strict=True):
        if b <= a:
            out.append(empty)
            continue
        recent = who[a:b][::-1]
        _, first = np.unique(recent, return_index=True)
        out.append(recent[np.sort(first)][:cap].astype(np.int64))
    return out


def tweet_engagement(impressions: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per tweet: impressions and engagements over several trailing windows, per action too.

    A row at each hour boundary where some count changes; `tweet_engagements_decayed_at_snapshot`
    is the time-decayed total at that boundary (the request-time view decays it on to the request time
    using `tweet_engagement_snapshot_s`).
    """
    served_hours = (epoch_seconds(impressions["served_at"]) // 3600).astype("int64").to_numpy()
    event_hours = (epoch_seconds(events["at"]) // 3600).astype("int64").to_numpy()
    action = events["action"].to_numpy()
    kinds = np.zeros((len(impressions) + len(events), 5))
    kinds[: len(impressions), 0] = 1.0
    tail = kinds[len(impressions) :]
    tail[:, 1] = 1.0
    tail[:, 2] = action == "fav"
    tail[:, 3] = action == "reply"
    tail[:, 4] = action == "retweet"
    keys = np.concatenate([impressions["tweet_id"].to_numpy(), events["tweet_id"].to_numpy()])
    hours = np.concatenate([served_hours, event_hours])
    counts = windowed_counts(
        keys.astype(np.int64), hours, kinds, TWEET_WINDOWS, decay_hours=ENGAGEMENT_DECAY_HOURS
    )
    row_keys = counts["key"].to_numpy(dtype=np.int64)
    row_boundaries = counts["boundary"].to_numpy(dtype=np.int64)
    event_tweets = events["tweet_id"].to_numpy(dtype=np.int64)
    engagers = events["viewer_id"].to_numpy(dtype=np.int64)
    favs = action == "fav"
    table = pd.DataFrame(
        {
            "tweet_id": counts["key"].astype("int64"),
            "event_timestamp": pd.to_datetime(counts["boundary"] * 3600, unit="s", utc=True),
            "tweet_impressions_window": counts["w24_0"],
            "tweet_engagements_window": counts["w24_1"],
            "tweet_favs_window": counts["w24_2"],
            "tweet_replies_window": counts["w24_3"],
            "tweet_retweets_window": counts["w24_4"],
            "tweet_engagements_total": counts["total_1"],
            "tweet_engagements_1h": counts["w1_1"],
            "tweet_engagements_3d": counts["w72_1"],
            "tweet_engagements_7d": counts["w168_1"],
            "tweet_favs_3d": counts["w72_2"],
            "tweet_replies_3d": counts["w72_3"],
            "tweet_retweets_2h": counts["w2_4"],
            "tweet_engagements_decayed_at_snapshot": counts["decayed_1"],
            "tweet_engagement_snapshot_s": counts["boundary"].astype("float64") * 3600.0,
        }
    )
    table["tweet_recent_engagers"] = recent_actors(
        row_keys, row_boundaries, event_tweets, event_hours, engagers
    )
    table["tweet_recent_favers"] = recent_actors(
        row_keys, row_boundaries, event_tweets[favs], event_hours[favs], engagers[favs]
    )
    return table


def _daily_matrix(
    ids: pd.Series, stamps: pd.Series, index: pd.Index, days: pd.DatetimeIndex
) -> np.ndarray:
    """Counts per (id, day) as a dense [len(index), len(days)] matrix."""
    day = pd.to_datetime(stamps, utc=True).dt.floor("D")
    counts = pd.crosstab(ids.to_numpy(), day.to_numpy())
    counts.columns = pd.to_datetime(counts.columns, utc=True)
    return counts.reindex(index=index, columns=days, fill_value=0).to_numpy(dtype=np.float64)


def _trailing(matrix: np.ndarray, window: int) -> np.ndarray:
    """Sum over the trailing `window` columns, inclusive of the current one."""
    cumulative = np.cumsum(matrix, axis=1)
    shifted = np.zeros_like(cumulative)
    shifted[:, window:] = cumulative[:, :-window]
    return cumulative - shifted


@dataclass
class _Snapshots:
    """Per-user values at every snapshot of :func:`daily_user_stats`, as long feature tables.

    Snapshot 0 is the world's start (nothing observed yet); snapshot d + 1 the end of day d.
    """

    ids: pd.Index  # [U] user ids, the rows of every [U, S] matrix
    stamps: list[pd.Timestamp]  # [S] snapshot times

    def with_start(self, matrix: np.ndarray, initial: float = 0.0) -> np.ndarray:
        """``[U, D]`` per-day values -> ``[U, D + 1]``, ``initial`` at the world's start."""
        return np.hstack([np.full((len(self.ids), 1), initial), matrix])

    def constant(self, values: np.ndarray) -> np.ndarray:
        """``[U]`` values that do not change -> ``[U, S]``."""
        return values[:, None] * np.ones((len(self.ids), len(self.stamps)))

    def long_frame(self, key: str, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """One row per (user, snapshot): ``key``, ``event_timestamp`` and each ``[U, S]`` column."""
        n_snapshots = len(self.stamps)
        frame = pd.DataFrame(
            {
                key: np.repeat(self.ids.to_numpy(), n_snapshots),
                "event_timestamp": pd.DatetimeIndex(self.stamps).take(
                    np.tile(np.arange(n_snapshots), len(self.ids))
                ),
            }
        )
        for name, values in columns.items():
            frame[name] = values.reshape(-1)
        return frame


def daily_user_stats(
    cfg: FeedrankConfig,
    span: LakeSpan,
    users: pd.DataFrame,
    impressions: pd.DataFrame,
    events: pd.DataFrame,
    tweets: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """author_stats and viewer_stats: a snapshot at the start and at the end of every day of
    the lake's `span`."""
    window = cfg.features.engagement_window_days
    start = span.start
    days = pd.date_range(start, periods=span.days, freq="D", tz="UTC")
    ids = pd.Index(users["user_id"].to_numpy())
    authors = tweets.set_index("tweet_id")["author_id"]
    impression_authors = authors.reindex(impressions["tweet_id"]).reset_index(drop=True)

    def trailing(who: pd.Series, when: pd.Series, days_back: int = window) -> np.ndarray:
        return _trailing(_daily_matrix(who, when, ids, days), days_back)

    global_rate = len(events) / max(len(impressions), 1)
    snapshots = _Snapshots(ids, [start] + [day + timedelta(days=1) for day in days])

    def engagement_rate(who: pd.Series, when: pd.Series, viewed_by: pd.Series) -> np.ndarray:
        """Engagements over impressions in the trailing window, smoothed to the global rate."""
        engaged = snapshots.with_start(trailing(who, when))
        views = snapshots.with_start(trailing(viewed_by, impressions["served_at"]))
        return (engaged + RATE_PRIOR_STRENGTH * global_rate) / (views + RATE_PRIOR_STRENGTH)

    static = users.set_index("user_id").reindex(ids)
    author_stats = snapshots.long_frame(
        "author_id",
        {
            "author_follower_count": snapshots.constant(static["follower_count"].to_numpy()),
            "author_following_count": snapshots.constant(static["following_count"].to_numpy()),
            "author_is_verified": snapshots.constant(
                static["is_verified"].astype(float).to_numpy()
            ),
            "author_engagement_rate": engagement_rate(
                events["author_id"], events["at"], impression_authors
            ),
            "author_tweets_window": snapshots.with_start(
                trailing(tweets["author_id"], tweets["created_at"], 7)
            ),
        },
    )
    following = static["following_count"].to_numpy(dtype=np.float64)
    followers = static["follower_count"].to_numpy(dtype=np.float64)
    author_stats["author_follower_ratio"] = np.repeat(
        followers / np.maximum(following, 1.0), len(snapshots.stamps)
    )
    viewer_stats = snapshots.long_frame(
        "viewer_id",
        {
            "viewer_following_count": snapshots.constant(static["following_count"].to_numpy()),
            "viewer_engagement_rate": engagement_rate(
                events["viewer_id"], events["at"], impressions["viewer_id"]
            ),
        },
    )
    viewer_stats["viewer_language"] = np.repeat(
        static["language"].to_numpy(), len(snapshots.stamps)
    )
    viewer_stats["viewer_country"] = np.repeat(static["country"].to_numpy(), len(snapshots.stamps))
    for frame in (author_stats, viewer_stats):
        for column in frame.columns:
            if column.endswith(("_count", "_window")):
                frame[column] = frame[column].astype("int64")
    return author_stats, viewer_stats


RECENT_HASHTAGS = 5  # the viewer's last engaged hashtags kept as a context feature


def hashtag_profiles(
    span: LakeSpan,
    users: pd.DataFrame,
    tweets: pd.DataFrame,
    events: pd.DataFrame,
    tweet_vectors: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hashtag profiles at the same snapshots as :func:`daily_user_stats`.

    tweet_vectors: [T, HASHTAG_DIM] unnormalized TF-IDF vectors of `tweets`, row-aligned. Author:
    the sum over tweets posted before each snapshot (unit length), and the count of those tweets.
    Viewer: the sum over tweets engaged with before it (unit length), and the last RECENT_HASHTAGS
    distinct hashtags engaged with, most recent first.
    """
    stamps = span.midnights()
    ids = users["user_id"].to_numpy()
    position = pd.Series(np.arange(len(ids)), index=ids)
    tweet_row = pd.Series(np.arange(len(tweets)), index=tweets["tweet_id"].to_numpy())
    tags = hashtag_lists(tweets["hashtags"])
    author_rows = position.reindex(tweets["author_id"]).to_numpy()
    created = epoch_seconds(tweets["created_at"]).to_numpy()
    engaged_rows = tweet_row.reindex(events["tweet_id"]).to_numpy()
    viewer_rows = position.reindex(events["viewer_id"]).to_numpy()
    known = ~(np.isnan(engaged_rows) | np.isnan(viewer_rows))
    engaged_rows, viewer_rows = engaged_rows[known].astype(int), viewer_rows[known].astype(int)
    engaged_at = epoch_seconds(events["at"]).to_numpy()[known]
    author_frames, viewer_frames = [], []
    for stamp in stamps:
        posted = (created < stamp.timestamp()) & ~np.isnan(author_rows)
        author_frames.append(
            _author_hashtags(ids, stamp, author_rows[posted].astype(int), tweet_vectors[posted])
        )
        before = engaged_at < stamp.timestamp()
        viewer_sum = np.zeros((len(ids), HASHTAG_DIM))
        np.add.at(viewer_sum, viewer_rows[before], tweet_vectors[engaged_rows[before]])
        viewer_frames.append(
            pd.DataFrame(
                {
                    "viewer_id": ids,
                    "event_timestamp": stamp,
                    "viewer_hashtag_vector": list(unit_rows(viewer_sum)),
                    "viewer_recent_hashtags": _recent_hashtags(
                        len(ids), viewer_rows[before], engaged_rows[before], tags
                    ),
                }
            )
        )
    return pd.concat(author_frames, ignore_index=True), pd.concat(viewer_frames, ignore_index=True)


def _author_hashtags(
    ids: np.ndarray, stamp: pd.Timestamp, author_rows: np.ndarray, vectors: np.ndarray
) -> pd.DataFrame:
    """Every author's hashtag profile at ``stamp`` from the tweets posted before it: the unit sum
    of their ``[P, HASHTAG_DIM]`` vectors and their count (``author_rows``: ``[P]`` row in ids)."""
    author_sum = np.zeros((len(ids), HASHTAG_DIM))
    np.add.at(author_sum, author_rows, vectors)
    return pd.DataFrame(
        {
            "author_id": ids,
            "event_timestamp": stamp,
            "author_hashtag_vector": list(unit_rows(author_sum)),
            "author_tweets_total": np.bincount(author_rows, minlength=len(ids)).astype("int64"),
        }
    )


def _recent_hashtags(
    users: int, viewer_rows: np.ndarray, tweet_rows: np.ndarray, tags: Sequence[Sequence[str]]
) -> list[list[str]]:
    """Each viewer's last RECENT_HASHTAGS distinct hashtags, most recent first, from its
    engagements (``[E]`` viewer row and tweet row each, oldest first)."""
    recent: list[list[str]] = [[] for _ in range(users)]
    # Walk engagements newest first; stop filling a viewer at RECENT_HASHTAGS tags.
    for viewer, row in zip(viewer_rows[::-1], tweet_rows[::-1], strict=True):
        held = recent[viewer]
        if len(held) < RECENT_HASHTAGS:
            for tag in tags[row]:
                if tag not in held and len(held) < RECENT_HASHTAGS:
                    held.append(tag)
    return recent


def viewer_author(
    impressions: pd.DataFrame, events: pd.DataFrame, tweets: pd.DataFrame
) -> pd.DataFrame:
    """Cumulative impressions and engagements per (viewer, author), snapshot at each active day's end."""
    authors = tweets.set_index("tweet_id")["author_id"]
    views = pd.DataFrame(
        {
            "viewer_id": impressions["viewer_id"].to_numpy(),
            "author_id": authors.reindex(impressions["tweet_id"]).to_numpy(),
            "day": pd.to_datetime(impressions["served_at"], utc=True).dt.floor("D").to_numpy(),
            "views": 1,
            "engagements": 0,
        }
    )
    views["tweet_id"] = impressions["tweet_id"].to_numpy()
    engaged = pd.DataFrame(
        {
            "viewer_id": events["viewer_id"].to_numpy(),
            "author_id": events["author_id"].to_numpy(),
            "day": pd.to_datetime(events["at"], utc=True).dt.floor("D").to_numpy(),
            "views": 0,
            "engagements": 1,
            "tweet_id": events["tweet_id"].to_numpy(),
        }
    )
    # Distinct tweets: counted on the day a tweet was first seen / first engaged with.
    views["seen_tweets"] = ~views.duplicated(["viewer_id", "tweet_id"])
    views["engaged_tweets"] = False
    engaged["seen_tweets"] = False
    engaged["engaged_tweets"] = ~engaged.duplicated(["viewer_id", "tweet_id"])
    columns = ["views", "engagements", "seen_tweets", "engaged_tweets"]
    daily = (
        pd.concat([views, engaged], ignore_index=True)
        .groupby(["viewer_id", "author_id", "day"], sort=True)[columns]
        .sum()
        .groupby(level=["viewer_id", "author_id"])
        .cumsum()
        .reset_index()
    )
    return pd.DataFrame(
        {
            "viewer_id": daily["viewer_id"].astype("int64"),
            "author_id": daily["author_id"].astype("int64"),
            "event_timestamp": pd.to_datetime(daily["day"], utc=True) + timedelta(days=1),
            "va_impressions": daily["views"].astype("int64"),
            "va_engagements": daily["engagements"].astype("int64"),
            "va_engaged_tweets": daily["engaged_tweets"].astype("int64"),
            # History here is shorter than 3 months, so "all time" is the 3-month share.
            "va_engaged_share": daily["engaged_tweets"] / np.maximum(daily["seen_tweets"], 1),
        }
    )


def graph_tables(
    span: LakeSpan, users: pd.DataFrame, follows: pd.DataFrame, pairs: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Follow-graph features: author reputation, social vectors, common followees per pair.

    The follow graph is a snapshot known before the world starts, so its rows are stamped then.
    """
    ids = users["user_id"].to_numpy()
    adjacency = graph.follow_matrix(follows, ids)
    as_follower, as_followee = graph.social_embeddings(adjacency)
    known = span.start - pd.Timedelta(days=1)
    position = pd.Series(np.arange(len(ids)), index=ids)
    viewer_rows = position.reindex(pairs["viewer_id"]).to_numpy()
    author_rows = position.reindex(pairs["author_id"]).to_numpy()
    common = graph.common_followees(adjacency, viewer_rows, author_rows)
    return {
        "author_graph": pd.DataFrame(
            {
                "author_id": ids,
                "event_timestamp": known,
                "author_pagerank": graph.pagerank(adjacency) * len(ids),  # 1 = average user
                "author_social_embedding": list(as_followee),
            }
        ),
        "viewer_graph": pd.DataFrame(
            {
                "viewer_id": ids,
                "event_timestamp": known,
                "viewer_social_embedding": list(as_follower),
                "viewer_followees": [
                    ids[adjacency.indices[a:b]].astype(np.int64)
                    for a, b in zip(adjacency.indptr[:-1], adjacency.indptr[1:], strict=True)
                ],
            }
        ),
        "viewer_author_graph": pd.DataFrame(
            {
                "viewer_id": pairs["viewer_id"].to_numpy(),
                "author_id": pairs["author_id"].to_numpy(),
                "event_timestamp": known,
                "va_common_followees": common.astype("int64"),
            }
        ),
    }


def compute_batch_features(cfg: FeedrankConfig) -> dict[str, int]:
    """Compute every non-embedding feature table from the validated lake; returns row counts."""
    raw = cfg.paths.raw
    users = read_table(raw, "users")
    tweets = read_table(raw, "tweets")
    impressions = read_table(raw, "impressions")
    follows = read_table(raw, "follows")
    events = engagement_events(impressions, tweets)
    span = lake_span(cfg)
    author_stats, viewer_stats = daily_user_stats(cfg, span, users, impressions, events, tweets)
    # Hashtag IDF from the tweets posted before the held-out days only.
    tags = hashtag_lists(tweets["hashtags"])
    before_split = (pd.to_datetime(tweets["created_at"], utc=True) < split_boundary(cfg)).to_numpy()
    idf = hashtag_idf([t for t, keep in zip(tags, before_split, strict=True) if keep])
    author_tags, viewer_tags = hashtag_profiles(
        span, users, tweets, events, hashtag_vectors(tags, idf)
    )
    keys = ["event_timestamp"]
    author_stats = author_stats.merge(author_tags, on=["author_id", *keys], validate="one_to_one")
    viewer_stats = viewer_stats.merge(viewer_tags, on=["viewer_id", *keys], validate="one_to_one")
    pairs = viewer_author(impressions, events, tweets)
    tables = {
        "tweet_content": tweet_content(tweets, idf),
        "tweet_engagement": tweet_engagement(impressions, events),
        "author_stats": author_stats,
        "viewer_stats": viewer_stats,
        "viewer_author": pairs,
        **graph_tables(span, users, follows, pairs[["viewer_id", "author_id"]].drop_duplicates()),
    }
    for name, table in tables.items():
        write_feature_table(cfg, name, table)
    return {name: len(table) for name, table in tables.items()}
