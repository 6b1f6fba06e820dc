"""The in-memory world index that candidate sources read: users, follows, tweets, impressions.

Built once per replica from the raw lake (``cfg.paths.raw``); :attr:`WorldIndex.now` is the lake's
latest ``served_at`` (the serving clock's fallback when no simulated clock is set). Each request is a
handful of numpy operations over arrays prepared here.

The index lives: :meth:`WorldIndex.extend` appends tweets posted to the service and
:meth:`WorldIndex.add_engagements` adds engagements recorded by it. Posted tweets arrive in clock
order, so the time-sorted tweet rows only grow at the end: every row number handed out stays valid,
and a request does the same work as before (the same searchsorted lookups over longer arrays). A
tweet whose creation time is older than the newest indexed one is indexed at that newest time (when
it reached the index), so the rows stay sorted. The writers (one thread at a time: the engine's
worker, which also runs the candidate sources) build the new arrays first and publish the lookup
maps last, so a reader on another thread never holds a row the arrays lack.

Besides the frames, the index keeps columnar arrays for the candidate sources
(`serving.candidates.sources`), all in tweet-row order (rows sorted by ``created_at``), times as
int64 nanoseconds since the epoch: root tweets by author, per-tweet engagements sorted by time with
their engagers, per (viewer, tweet) the latest ``served_at``, per viewer the tweets engaged with,
and per tweet its hashtag ids.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import FeedrankConfig, ServeConfig
from pipelines.schema import ENGAGEMENTS, PART_FILE, TABLES, list_partitions, partition_dir

log = logging.getLogger(__name__)

TRENDING_WINDOW = pd.Timedelta(hours=48)
CANDIDATE_COLUMNS: tuple[str, ...] = ("tweet_id", "author_id", "in_network", "source")
REPLY_COLUMNS: tuple[str, ...] = (
    "tweet_id",
    "author_id",
    "in_reply_to_tweet_id",
    "created_at",
    "toxicity",
    "text",
)
_NO_PARENT = -1  # in_reply_to_tweet_id of a root in the int64 arrays
_NO_ROWS = np.zeros(0, dtype=np.int64)


def read_columns(root: Path, table: str, columns: list[str]) -> pd.DataFrame:
    """Read some columns of every partition of a raw table, with their canonical types."""
    schema = TABLES[table]
    wanted = pa.schema([schema.field(name) for name in columns])
    paths = [partition_dir(root, table, day) / PART_FILE for day in list_partitions(root, table)]
    frames = [
        pq.read_table(path, columns=columns, schema=schema).to_pandas()
        for path in paths
        if path.exists()
    ]
    if not frames:
        return wanted.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)


def _group_positions(keys: np.ndarray) -> dict[int, np.ndarray]:
    """key -> row positions [k] holding that key, for an int64 key array [N]."""
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    uniques, starts = np.unique(sorted_keys, return_index=True)
    return dict(zip(uniques.tolist(), np.split(order, starts[1:]), strict=True))


def _group_values(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """key -> sorted unique values [k] seen with that key."""
    return {key: np.unique(values[rows]) for key, rows in _group_positions(keys).items()}


def to_ns(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """UTC timestamps [N] -> int64 nanoseconds since the epoch [N] (naive ones are taken as UTC)."""
    return np.asarray(pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8)


def timestamp_ns(at: pd.Timestamp) -> int:
    """One timestamp -> int64 nanoseconds since the epoch (a naive one is taken as UTC)."""
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.as_unit("ns").value)


def gather_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the ranges ``[starts[i], ends[i])``: (owner i [M], position [M]) per element."""
    lengths = np.maximum(ends - starts, 0)
    owner = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths  # where each range begins in the output
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - first[owner] + starts[owner]
    return owner, positions


def _csr(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Offsets [n_keys + 1] of each key's run in a sorted int64 key array [N] (keys in [0, n_keys))."""
    return np.searchsorted(keys, np.arange(n_keys + 1, dtype=np.int64), side="left")


@dataclass(frozen=True)
class TweetArrays:
    """Per tweet row [T] (rows sorted by ``created_at``): what candidate sources read."""

    tweet_id: np.ndarray  # int64
    author_id: np.ndarray  # int64
    created_ns: np.ndarray  # int64 nanoseconds since the epoch, ascending
    is_root: np.ndarray  # bool: not a reply
    parent_id: np.ndarray  # int64: in_reply_to_tweet_id, -1 for a root
    toxicity: np.ndarray  # float64: the health label in [0, 1]


@dataclass(frozen=True)
class _ViewerRows:
    """Per viewer, a run of (tweet row, time) pairs: CSR over the sorted viewer ids [V]."""

    viewers: np.ndarray  # [V] int64, sorted
    offsets: np.ndarray  # [V + 1]
    rows: np.ndarray  # [N] tweet rows, ascending within a viewer
    times_ns: np.ndarray  # [N]

    @classmethod
    def build(
        cls, viewers: np.ndarray, rows: np.ndarray, times_ns: np.ndarray, latest: bool
    ) -> _ViewerRows:
        """One pair per (viewer, row): its latest time if `latest`, else its earliest."""
        order = np.lexsort((times_ns if latest else -times_ns, rows, viewers))
        viewers, rows, times_ns = viewers[order], rows[order], times_ns[order]
        last = np.ones(len(rows), dtype=bool)  # the last of each (viewer, row) run
        last[:-1] = (viewers[1:] != viewers[:-1]) | (rows[1:] != rows[:-1])
        viewers, rows, times_ns = viewers[last], rows[last], times_ns[last]
        uniques, starts = np.unique(viewers, return_index=True)
        offsets = np.append(starts, len(viewers)).astype(np.int64)
        return cls(uniques, offsets, rows, times_ns)

    def of(self, viewer_id: int) -> tuple[np.ndarray, np.ndarray]:
        at = int(np.searchsorted(self.viewers, viewer_id))
        if at == len(self.viewers) or self.viewers[at] != viewer_id:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        span = slice(self.offsets[at], self.offsets[at + 1])
        return self.rows[span], self.times_ns[span]


@dataclass(frozen=True)
class _Engagements:
    """Every engagement the index knows (lake and live), published as one object so a reader
    never mixes two versions: per tweet row a CSR run by time, and per viewer the engaged rows.

    An engagement is an impression with a fav, reply, retweet or quote, at the impression's
    served_at (lake) or at the first such action (live).
    """

    rows: np.ndarray  # [E] tweet rows, ascending
    times: np.ndarray  # [E] ns, ascending within a row
    users: np.ndarray  # [E] engager ids
    offsets: np.ndarray  # [T + 1] CSR over tweet rows
    last: int  # the latest time (int64 min when none)
    engaged: _ViewerRows  # per viewer: (row, first engagement time)

    @classmethod
    def build(
        cls, rows: np.ndarray, users: np.ndarray, times: np.ndarray, n_tweets: int
    ) -> _Engagements:
        order = np.lexsort((times, rows))
        rows, users, times = rows[order], users[order], times[order]
        return cls(
            rows=rows,
            times=times,
            users=users,
            offsets=_csr(rows, n_tweets),
            last=int(times.max()) if len(times) else int(np.iinfo(np.int64).min),
            engaged=_ViewerRows.build(users, rows, times, latest=False),
        )

    def grown(self, n_tweets: int) -> _Engagements:
        """The same engagements over `n_tweets` rows (appended rows have none)."""
        extra = n_tweets + 1 - len(self.offsets)
        offsets = np.concatenate([self.offsets, np.full(extra, self.offsets[-1], np.int64)])
        return _Engagements(self.rows, self.times, self.users, offsets, self.last, self.engaged)

    def with_events(
        self, rows: np.ndarray, users: np.ndarray, times: np.ndarray, n_tweets: int
    ) -> _Engagements:
        """These engagements plus more (tweet rows, engager ids, ns; each [K])."""
        return _Engagements.build(
            np.concatenate([self.rows, rows]),
            np.concatenate([self.users, users]),
            np.concatenate([self.times, times]),
            n_tweets,
        )


class WorldIndex:
    """Index of the world for candidate generation and conversation lookup; it grows with the
    live service's tweets and engagements (:meth:`extend`, :meth:`add_engagements`).

    Build it with :meth:`load` (from the lake) or :meth:`from_frames` (canonical frames, for tests).
    """

    def __init__(
        self,
        users: pd.DataFrame,
        follows: pd.DataFrame,
        tweets: pd.DataFrame,
        impressions: pd.DataFrame,
        serve: ServeConfig,
    ) -> None:
        """users: user_id (and optionally is_verified); follows: follower_id, followee_id;
        tweets: the REPLY_COLUMNS plus
        conversation_id (and optionally hashtags, a list per tweet); impressions: viewer_id,
        tweet_id, served_at and the ENGAGEMENTS flags."""
        self.serve = serve
        self._users = frozenset(users["user_id"].astype(np.int64).tolist())
        verified = users["is_verified"].fillna(False) if "is_verified" in users else None
        self._verified = np.sort(
            users["user_id"].to_numpy(np.int64)[verified.to_numpy(bool)]
            if verified is not None
            else np.zeros(0, dtype=np.int64)
        )
        self._followees = _group_values(
            follows["follower_id"].to_numpy(np.int64), follows["followee_id"].to_numpy(np.int64)
        )
        self._index_tweets(tweets)
        self._index_impressions(impressions)
        self._index_sources()
        self._index_engagements(impressions)

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def load(cls, cfg: FeedrankConfig) -> WorldIndex:
        """Load from the raw lake of `cfg` (a few seconds for ~30k tweets / 400k impressions)."""
        started = time.perf_counter()
        raw = cfg.paths.raw
        index = cls(
            users=read_columns(raw, "users", ["user_id", "is_verified"]),
            follows=read_columns(raw, "follows", ["follower_id", "followee_id"]),
            tweets=read_columns(raw, "tweets", [*REPLY_COLUMNS, "conversation_id", "hashtags"]),
            impressions=read_columns(
                raw, "impressions", ["viewer_id", "tweet_id", "served_at", *ENGAGEMENTS]
            ),
            serve=cfg.serve,
        )
        log.info(
            "world index: %d users, %d tweets, now=%s, built in %.2f s",
            len(index._users),
            len(index._tweets),
            index.now,
            time.perf_counter() - started,
        )
        return index

    @classmethod
    def from_frames(
        cls,
        cfg: FeedrankConfig,
        users: pd.DataFrame,
        follows: pd.DataFrame,
        tweets: pd.DataFrame,
        impressions: pd.DataFrame,
    ) -> WorldIndex:
        return cls(users, follows, tweets, impressions, cfg.serve)

    def _index_tweets(self, tweets: pd.DataFrame) -> None:
        frame = tweets.sort_values("created_at", kind="stable").reset_index(drop=True)
        hashtags = frame.pop("hashtags") if "hashtags" in frame.columns else None
        parent = frame["in_reply_to_tweet_id"]
        frame["in_reply_to_tweet_id"] = parent.fillna(_NO_PARENT).astype(np.int64)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        self._tweets = frame
        self._tweet_rows = pd.Index(frame["tweet_id"].to_numpy(np.int64))
        if not self._tweet_rows.is_unique:
            raise ValueError("tweets has duplicate tweet_id values")
        self._is_root = frame["in_reply_to_tweet_id"].to_numpy() == _NO_PARENT
        replies = np.flatnonzero(~self._is_root)
        self._replies_of = {
            conv: replies[rows]
            for conv, rows in _group_positions(
                frame["conversation_id"].to_numpy(np.int64)[replies]
            ).items()
        }
        self.arrays = TweetArrays(
            tweet_id=frame["tweet_id"].to_numpy(np.int64),
            author_id=frame["author_id"].to_numpy(np.int64),
            created_ns=to_ns(frame["created_at"]),
            is_root=self._is_root,
            parent_id=frame["in_reply_to_tweet_id"].to_numpy(np.int64),
            toxicity=frame["toxicity"].to_numpy(np.float64),
        )
        self._index_authors()
        self._index_hashtags(hashtags)

    def _index_authors(self) -> None:
        """Root rows sorted by (author, row), keyed ``author rank * (T + 1) + row``, so that one
        searchsorted finds an author's roots within a row (time) range."""
        roots = np.flatnonzero(self._is_root)
        authors = self.arrays.author_id[roots]
        self._root_authors = np.unique(authors)  # [A] sorted
        self._key_stride = len(self._is_root) + 1
        order = np.argsort(authors, kind="stable")  # rows stay ascending within an author
        self._author_rows = roots[order]
        ranks = np.searchsorted(self._root_authors, authors[order])
        self._author_keys = ranks * self._key_stride + self._author_rows

    def _index_hashtags(self, hashtags: pd.Series | None) -> None:
        """Hashtag ids per tweet row as CSR: offsets [T + 1], ids [H]."""
        n_tweets = len(self._is_root)
        if hashtags is None:
            self._tag_vocabulary: dict[str, int] = {}
            self._tag_offsets = np.zeros(n_tweets + 1, dtype=np.int64)
            self._tag_ids = np.zeros(0, dtype=np.int64)
            return
        lists = [() if tags is None else tags for tags in hashtags.tolist()]
        lengths = np.fromiter((len(tags) for tags in lists), dtype=np.int64, count=n_tweets)
        flat = np.array(list(chain.from_iterable(lists)), dtype=str)
        vocabulary, ids = np.unique(flat, return_inverse=True)
        self._tag_vocabulary = {str(tag): i for i, tag in enumerate(vocabulary.tolist())}
        self._tag_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._tag_ids = ids.astype(np.int64).reshape(-1)

    def _index_impressions(self, impressions: pd.DataFrame) -> None:
        viewers = impressions["viewer_id"].to_numpy(np.int64)
        tweet_ids = impressions["tweet_id"].to_numpy(np.int64)
        served = pd.to_datetime(impressions["served_at"], utc=True)
        if len(served):
            self.now: pd.Timestamp = served.max()
        elif len(self._tweets):
            self.now = self._tweets["created_at"].max()
        else:
            self.now = pd.Timestamp.now(tz="UTC")
        self._seen = _group_values(viewers, tweet_ids)
        self._last_visit = served.groupby(viewers).max().to_dict()
        engaged = np.zeros(len(impressions), dtype=bool)
        for action in ENGAGEMENTS:
            engaged |= impressions[action].fillna(False).to_numpy(bool)
        counts = pd.Series(engaged.astype(np.int64)).groupby(tweet_ids).sum()
        self._engagements = counts[counts > 0]

    def _index_engagements(self, impressions: pd.DataFrame) -> None:
        """Engagements per tweet (CSR over rows, by time), and per viewer the latest impression
        and the engaged tweets. An engagement is an impression with a fav, reply, retweet or
        quote, at that impression's served_at."""
        rows = self._tweet_rows.get_indexer(impressions["tweet_id"].to_numpy(np.int64))
        viewers = impressions["viewer_id"].to_numpy(np.int64)
        served = to_ns(impressions["served_at"])
        engaged = np.zeros(len(impressions), dtype=bool)
        for action in ENGAGEMENTS:
            engaged |= impressions[action].fillna(False).to_numpy(bool)
        known = rows >= 0
        rows, viewers, served, engaged = rows[known], viewers[known], served[known], engaged[known]

        self._eng = _Engagements.build(
            rows[engaged], viewers[engaged], served[engaged], len(self._is_root)
        )
        self._impressions = _ViewerRows.build(viewers, rows, served, latest=True)

    def _index_sources(self) -> None:
        """Prepare the per-request candidate pools: recent roots, and trending roots."""
        tweets = self._tweets
        created = tweets["created_at"]
        in_window = (created <= self.now) & self._is_root
        # [T] root tweets posted by `now`: the only ones a feed may serve
        self._servable = in_window.to_numpy()
        since = self.now - pd.Timedelta(hours=self.serve.in_network_lookback_hours)
        lookback = in_window & (created >= since)
        # Newest first, so the in-network source can cut at the cap without another sort.
        recent = tweets.loc[lookback, ["tweet_id", "author_id"]].iloc[::-1]
        self._recent_ids = recent["tweet_id"].to_numpy(np.int64)
        self._recent_authors = recent["author_id"].to_numpy(np.int64)

        trending = tweets.loc[
            in_window & (created >= self.now - TRENDING_WINDOW),
            ["tweet_id", "author_id", "created_at"],
        ]
        trending = trending.assign(
            engagements=self._engagements.reindex(trending["tweet_id"]).fillna(0).to_numpy()
        )
        trending = trending[trending["engagements"] > 0].sort_values(
            ["engagements", "created_at"], ascending=[False, False], kind="stable"
        )
        self._trending_ids = trending["tweet_id"].to_numpy(np.int64)
        self._trending_authors = trending["author_id"].to_numpy(np.int64)

    # ------------------------------------------------------------------------------ live growth

    def extend(self, tweets: pd.DataFrame) -> int:
        """Append tweets posted to the live service; returns how many were new.

        tweets: the REPLY_COLUMNS plus conversation_id and hashtags (a list per tweet), with
        ``in_reply_to_tweet_id`` null for a root (other columns are ignored; a missing required
        one is a ValueError naming it). Ids already indexed are skipped. New rows go at
        the end in creation order; one created before the newest indexed tweet is indexed at that
        newest time. Costs O(T) (the arrays are copied once per call), never per request.
        """
        missing = [c for c in (*REPLY_COLUMNS, "conversation_id") if c not in tweets.columns]
        if missing:
            raise ValueError(f"tweets to index lack columns {missing}")
        frame = tweets.drop_duplicates("tweet_id")
        frame = frame.loc[~frame["tweet_id"].isin(self._tweet_rows)]
        if frame.empty:
            return 0
        frame = frame.assign(created_at=pd.to_datetime(frame["created_at"], utc=True))
        frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
        hashtags = frame["hashtags"] if "hashtags" in frame.columns else None
        parent = pd.to_numeric(frame["in_reply_to_tweet_id"]).astype("Float64")
        frame["in_reply_to_tweet_id"] = parent.fillna(_NO_PARENT).astype(np.int64)
        frame = frame.reindex(columns=self._tweets.columns)  # columns it never reads: missing
        first = len(self._tweets)
        new_rows = np.arange(first, first + len(frame), dtype=np.int64)
        is_root = frame["in_reply_to_tweet_id"].to_numpy() == _NO_PARENT
        newest = self.arrays.created_ns[-1] if first else np.iinfo(np.int64).min
        created = np.maximum.accumulate(np.maximum(to_ns(frame["created_at"]), newest))
        # The arrays first: every row of the old maps is valid in them.
        self._tweets = pd.concat([self._tweets, frame], ignore_index=True)
        self._is_root = np.concatenate([self._is_root, is_root])
        self._servable = np.concatenate([self._servable, is_root])
        self.arrays = TweetArrays(
            tweet_id=np.concatenate([self.arrays.tweet_id, frame["tweet_id"].to_numpy(np.int64)]),
            author_id=np.concatenate(
                [self.arrays.author_id, frame["author_id"].to_numpy(np.int64)]
            ),
            created_ns=np.concatenate([self.arrays.created_ns, created]),
            is_root=self._is_root,
            parent_id=np.concatenate(
                [self.arrays.parent_id, frame["in_reply_to_tweet_id"].to_numpy(np.int64)]
            ),
            toxicity=np.concatenate([self.arrays.toxicity, frame["toxicity"].to_numpy(np.float64)]),
        )
        self._append_hashtags(hashtags, len(frame))
        self._eng = self._eng.grown(len(self._tweets))
        self._index_authors()
        # Then the maps that hand out the new rows.
        conversations = frame["conversation_id"].to_numpy(np.int64)
        for conv, rows in _group_positions(conversations[~is_root]).items():
            replies = new_rows[~is_root][rows]
            self._replies_of[conv] = np.append(self._replies_of.get(conv, _NO_ROWS), replies)
        self._tweet_rows = self._tweet_rows.append(pd.Index(frame["tweet_id"].to_numpy(np.int64)))
        return len(frame)

    def _append_hashtags(self, hashtags: pd.Series | None, count: int) -> None:
        """Hashtag ids of `count` appended rows (new hashtags get new ids)."""
        lists = [()] * count if hashtags is None else [tags or () for tags in hashtags.tolist()]
        vocabulary = self._tag_vocabulary
        ids = [vocabulary.setdefault(str(tag), len(vocabulary)) for tags in lists for tag in tags]
        lengths = np.fromiter((len(tags) for tags in lists), dtype=np.int64, count=count)
        self._tag_ids = np.concatenate([self._tag_ids, np.asarray(ids, dtype=np.int64)])
        self._tag_offsets = np.concatenate(
            [self._tag_offsets, self._tag_offsets[-1] + np.cumsum(lengths)]
        )

    def add_engagements(
        self, tweet_ids: np.ndarray, viewer_ids: np.ndarray, at_ns: np.ndarray
    ) -> int:
        """Count live engagements (tweet ids, engager ids, times in ns; each [K], one per
        engaged impression) in the engagement-based sources; tweets not indexed are skipped.
        Returns how many were added. Costs O(E log E) once per call, never per request."""
        rows = self.rows_of(tweet_ids)
        known = rows >= 0
        if not known.any():
            return 0
        self._eng = self._eng.with_events(
            rows[known],
            np.asarray(viewer_ids, dtype=np.int64)[known],
            np.asarray(at_ns, dtype=np.int64)[known],
            len(self._tweets),
        )
        return int(known.sum())

    # ---------------------------------------------------------------------------------- lookups

    def has_user(self, user_id: int) -> bool:
        return int(user_id) in self._users

    def has_tweet(self, tweet_id: int) -> bool:
        return int(tweet_id) in self._tweet_rows

    def is_root(self, tweet_id: int) -> bool:
        """True for a tweet that starts a conversation (False for replies and unknown ids)."""
        return self.has_tweet(tweet_id) and bool(self._is_root[self._row(tweet_id)])

    def followees(self, user_id: int) -> np.ndarray:
        """Ids [k] the user follows, sorted."""
        return self._followees.get(int(user_id), np.zeros(0, dtype=np.int64))

    def seen(self, user_id: int) -> np.ndarray:
        """Tweet ids [k] already served to the user, sorted."""
        return self._seen.get(int(user_id), np.zeros(0, dtype=np.int64))

    def last_visit(self, user_id: int) -> pd.Timestamp | None:
        """The user's latest served_at, or None for a user never served."""
        return self._last_visit.get(int(user_id))

    def tweet(self, tweet_id: int) -> pd.Series:
        """One row of the tweets index (REPLY_COLUMNS plus conversation_id); KeyError if unknown."""
        return self._tweets.iloc[self._row(tweet_id)]

    def verified(self, user_ids: np.ndarray) -> np.ndarray:
        """Whether each of the user ids [N] is a verified account (bool [N])."""
        return np.isin(np.asarray(user_ids, dtype=np.int64), self._verified)

    def conversation_rows(self, root_tweet_id: int) -> np.ndarray:
        """Tweet rows [k] of every reply of a conversation, ascending (oldest first): index
        them into :attr:`arrays`. Empty for an unknown id or a conversation without replies."""
        return self._replies_of.get(int(root_tweet_id), _NO_ROWS)

    def conversation_sizes(self) -> pd.Series:
        """Reply count per conversation root id, for conversations with at least one reply."""
        sizes = {root: len(rows) for root, rows in self._replies_of.items()}
        return pd.Series(sizes, dtype=np.int64).rename_axis("conversation_id")

    def _row(self, tweet_id: int) -> int:
        return int(self._tweet_rows.get_loc(int(tweet_id)))

    @property
    def n_users(self) -> int:
        return len(self._users)

    @property
    def n_tweets(self) -> int:
        return len(self._tweets)

    # ------------------------------------------------------------- columnar lookups (by tweet row)

    def rows_of(self, tweet_ids: np.ndarray) -> np.ndarray:
        """Tweet rows [N] of tweet ids [N] (-1 for an unknown id)."""
        return np.asarray(self._tweet_rows.get_indexer(np.asarray(tweet_ids, dtype=np.int64)))

    def created_at(self, tweet_ids: np.ndarray) -> np.ndarray:
        """Creation times [N] of tweet ids [N], int64 ns since the epoch; KeyError if unknown."""
        rows = self.rows_of(tweet_ids)
        if (rows < 0).any():
            raise KeyError(f"unknown tweet ids {np.asarray(tweet_ids)[rows < 0][:5].tolist()}")
        return self.arrays.created_ns[rows]

    def root_rows_between(self, start_ns: int, end_ns: int) -> np.ndarray:
        """Rows [k] of root tweets created in [start_ns, end_ns], ascending (oldest first)."""
        created = self.arrays.created_ns
        lo = int(np.searchsorted(created, start_ns, side="left"))
        hi = int(np.searchsorted(created, end_ns, side="right"))
        return lo + np.flatnonzero(self._is_root[lo:hi])

    def root_rows_by(self, authors: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
        """Rows [k] of root tweets by any of `authors` created in [start_ns, end_ns], ascending."""
        created = self.arrays.created_ns
        lo = int(np.searchsorted(created, start_ns, side="left"))
        hi = int(np.searchsorted(created, end_ns, side="right"))
        authors = np.asarray(authors, dtype=np.int64)
        ranks = np.searchsorted(self._root_authors, authors)
        known = ranks < len(self._root_authors)
        known[known] = self._root_authors[ranks[known]] == authors[known]
        if lo >= hi or not known.any():
            return np.zeros(0, dtype=np.int64)
        base = np.unique(ranks[known]) * self._key_stride
        starts = np.searchsorted(self._author_keys, base + lo, side="left")
        ends = np.searchsorted(self._author_keys, base + hi, side="left")
        _, positions = gather_ranges(starts, ends)
        return np.sort(self._author_rows[positions])

    def engagements_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Engagements of tweet rows [N]: (owner index into `rows`, time ns, engager id), each
        [E], by owner then time."""
        eng = self._eng
        owner, positions = gather_ranges(eng.offsets[rows], eng.offsets[rows + 1])
        return owner, eng.times[positions], eng.users[positions]

    def engagement_counts(self, rows: np.ndarray, until_ns: int) -> np.ndarray:
        """Engagements [N] of tweet rows [N] at or before `until_ns`."""
        eng = self._eng
        totals = eng.offsets[rows + 1] - eng.offsets[rows]
        if until_ns >= eng.last:
            return totals
        owner, positions = gather_ranges(eng.offsets[rows], eng.offsets[rows + 1])
        return np.bincount(owner[eng.times[positions] <= until_ns], minlength=len(rows))

    def impressions_of(self, viewer_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(tweet rows [k] ascending, latest served_at ns [k]) of what the viewer was served."""
        return self._impressions.of(int(viewer_id))

    def engaged_rows(self, viewer_id: int, until_ns: int) -> np.ndarray:
        """Tweet rows [k], ascending, the viewer engaged with at or before `until_ns`."""
        rows, first_ns = self._eng.engaged.of(int(viewer_id))
        return rows[first_ns <= until_ns]

    def hashtags_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hashtags of tweet rows [N]: (owner index into `rows`, hashtag id), each [H]."""
        owner, positions = gather_ranges(self._tag_offsets[rows], self._tag_offsets[rows + 1])
        return owner, self._tag_ids[positions]

    # ------------------------------------------------------------------------ candidate sources

    def candidates(self, user_id: int, retrieved: pd.DataFrame | None = None) -> pd.DataFrame:
        """Feed candidates of a user: [N rows] tweet_id, author_id, in_network, source.

        In-network: root tweets of followees created within the lookback before :attr:`now`, not
        yet served to the user, newest first. Out-of-network: the most engaged root tweets of the
        last 48 h (engagement = impressions with a fav, reply, retweet or quote), not by the user
        or a followee and not yet served, at most ``serve.out_of_network_candidates`` of them.
        Out-of-network keeps its quota and in-network fills the rest of ``serve.max_candidates``.
        No duplicates.

        retrieved: out-of-network tweets from embedding retrieval (tweet_id, author_id, best
        first); the root tweets among them posted by then and not by the user or a followee, nor
        served to the user, come first in the out-of-network quota (source
        ``out_of_network_embedding``); trending fills the rest.
        """
        followees = self.followees(user_id)
        seen = self.seen(user_id)
        serve = self.serve

        keep = np.isin(self._recent_authors, followees) & ~np.isin(self._recent_ids, seen)
        keep &= self._recent_authors != user_id
        in_ids, in_authors = self._recent_ids[keep], self._recent_authors[keep]

        excluded_authors = np.append(followees, np.int64(user_id))
        n_out = min(serve.out_of_network_candidates, serve.max_candidates)
        ann_ids, ann_authors = self._retrieved(retrieved, excluded_authors, seen, n_out)
        keep = ~np.isin(self._trending_authors, excluded_authors)
        keep &= ~np.isin(self._trending_ids, seen) & ~np.isin(self._trending_ids, ann_ids)
        trend_ids = self._trending_ids[keep][: n_out - len(ann_ids)]
        trend_authors = self._trending_authors[keep][: n_out - len(ann_ids)]
        out_ids = np.concatenate([ann_ids, trend_ids])
        out_authors = np.concatenate([ann_authors, trend_authors])

        n_in = max(serve.max_candidates - len(out_ids), 0)
        in_ids, in_authors = in_ids[:n_in], in_authors[:n_in]
        frame = pd.DataFrame(
            {
                "tweet_id": np.concatenate([in_ids, out_ids]).astype(np.int64),
                "author_id": np.concatenate([in_authors, out_authors]).astype(np.int64),
                "in_network": np.repeat([True, False], [len(in_ids), len(out_ids)]),
                "source": np.repeat(
                    ["in_network", "out_of_network_embedding", "out_of_network"],
                    [len(in_ids), len(ann_ids), len(trend_ids)],
                ),
            },
            columns=list(CANDIDATE_COLUMNS),
        )
        return frame.drop_duplicates("tweet_id", ignore_index=True)

    def _retrieved(
        self,
        retrieved: pd.DataFrame | None,
        excluded_authors: np.ndarray,
        seen: np.ndarray,
        limit: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(tweet ids, authors) of the retrieved tweets eligible as out-of-network candidates."""
        empty = np.zeros(0, dtype=np.int64)
        if retrieved is None or retrieved.empty or limit == 0:
            return empty, empty
        ids = retrieved["tweet_id"].to_numpy(np.int64)
        rows = self._tweet_rows.get_indexer(ids)
        known = rows >= 0
        eligible = np.zeros(len(ids), dtype=bool)
        eligible[known] = self._servable[rows[known]]
        authors = self._tweets["author_id"].to_numpy(np.int64)[np.maximum(rows, 0)]
        eligible &= ~np.isin(authors, excluded_authors) & ~np.isin(ids, seen)
        return ids[eligible][:limit], authors[eligible][:limit]

    def replies(self, root_tweet_id: int) -> pd.DataFrame:
        """Every tweet of the conversation except its root, oldest first: [N rows] REPLY_COLUMNS.

        ``in_reply_to_tweet_id`` is the parent tweet id (int64; the root for direct replies).
        """
        rows = self._replies_of.get(int(root_tweet_id), np.zeros(0, dtype=np.int64))
        return self._tweets.iloc[np.sort(rows)][list(REPLY_COLUMNS)].reset_index(drop=True)
