"""The in-memory world index that candidate sources read: users, follows, tweets, impressions.

Built once per replica from the raw lake (``cfg.paths.raw``). The world is historical, so the
serving clock :attr:`WorldIndex.now` is the latest ``served_at`` in the lake: "recent" and "seen"
are taken at that instant. Each request is a handful of numpy operations over arrays prepared here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import FeedrankConfig
from pipelines.schema import TABLES, list_partitions, partition_dir

log = logging.getLogger(__name__)

ENGAGEMENTS: tuple[str, ...] = ("fav", "reply", "retweet", "quote")
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


@dataclass(frozen=True)
class CandidateLimits:
    """Sizes of the candidate sources (from ``cfg.serve``)."""

    in_network_lookback: pd.Timedelta
    out_of_network: int
    max_candidates: int

    @classmethod
    def from_config(cls, cfg: FeedrankConfig) -> CandidateLimits:
        return cls(
            in_network_lookback=pd.Timedelta(hours=cfg.serve.in_network_lookback_hours),
            out_of_network=cfg.serve.out_of_network_candidates,
            max_candidates=cfg.serve.max_candidates,
        )


def read_columns(root: Path, table: str, columns: list[str]) -> pd.DataFrame:
    """Read some columns of every partition of a raw table, with their canonical types."""
    schema = TABLES[table]
    wanted = pa.schema([schema.field(name) for name in columns])
    paths = [
        partition_dir(root, table, day) / "part.parquet" for day in list_partitions(root, table)
    ]
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
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    uniques, starts = np.unique(sorted_keys, return_index=True)
    return dict(zip(uniques.tolist(), np.split(order, starts[1:]), strict=True))


def _group_values(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """key -> sorted unique values [k] seen with that key."""
    return {key: np.unique(values[rows]) for key, rows in _group_positions(keys).items()}


class WorldIndex:
    """Read-only index of the world for candidate generation and conversation lookup.

    Build it with :meth:`load` (from the lake) or :meth:`from_frames` (canonical frames, for tests).
    """

    def __init__(
        self,
        users: pd.DataFrame,
        follows: pd.DataFrame,
        tweets: pd.DataFrame,
        impressions: pd.DataFrame,
        limits: CandidateLimits,
    ) -> None:
        """users: user_id; follows: follower_id, followee_id; tweets: the REPLY_COLUMNS plus
        conversation_id; impressions: viewer_id, tweet_id, served_at and the ENGAGEMENTS flags."""
        self.limits = limits
        self._users = frozenset(users["user_id"].astype(np.int64).tolist())
        self._followees = _group_values(
            follows["follower_id"].to_numpy(np.int64), follows["followee_id"].to_numpy(np.int64)
        )
        self._index_tweets(tweets)
        self._index_impressions(impressions)
        self._index_sources()

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def load(cls, cfg: FeedrankConfig) -> WorldIndex:
        """Load from the raw lake of `cfg` (a few seconds for ~30k tweets / 400k impressions)."""
        started = time.perf_counter()
        raw = cfg.paths.raw
        index = cls(
            users=read_columns(raw, "users", ["user_id"]),
            follows=read_columns(raw, "follows", ["follower_id", "followee_id"]),
            tweets=read_columns(raw, "tweets", [*REPLY_COLUMNS, "conversation_id"]),
            impressions=read_columns(
                raw, "impressions", ["viewer_id", "tweet_id", "served_at", *ENGAGEMENTS]
            ),
            limits=CandidateLimits.from_config(cfg),
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
        return cls(users, follows, tweets, impressions, CandidateLimits.from_config(cfg))

    def _index_tweets(self, tweets: pd.DataFrame) -> None:
        frame = tweets.sort_values("created_at", kind="stable").reset_index(drop=True)
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

    def _index_sources(self) -> None:
        """Prepare the per-request candidate pools: recent roots, and trending roots."""
        tweets = self._tweets
        created = tweets["created_at"]
        in_window = (created <= self.now) & self._is_root
        # [T] root tweets posted by `now`: the only ones a feed may serve
        self._servable = in_window.to_numpy()
        lookback = in_window & (created >= self.now - self.limits.in_network_lookback)
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

    # ------------------------------------------------------------------------ candidate sources

    def candidates(self, user_id: int, retrieved: pd.DataFrame | None = None) -> pd.DataFrame:
        """Feed candidates of a user: [N rows] tweet_id, author_id, in_network, source.

        In-network: root tweets of followees created within the lookback before :attr:`now`, not
        yet served to the user, newest first. Out-of-network: the most engaged root tweets of the
        last 48 h (engagement = impressions with a fav, reply, retweet or quote), not by the user
        or a followee and not yet served, at most ``out_of_network`` of them. Out-of-network keeps
        its quota and in-network fills the rest of ``max_candidates``. No duplicates.

        retrieved: out-of-network tweets from embedding retrieval (tweet_id, author_id, best
        first); the root tweets among them posted by then and not by the user or a followee, nor
        served to the user, come first in the out-of-network quota (source
        ``out_of_network_embedding``); trending fills the rest.
        """
        followees = self.followees(user_id)
        seen = self.seen(user_id)
        limits = self.limits

        keep = np.isin(self._recent_authors, followees) & ~np.isin(self._recent_ids, seen)
        keep &= self._recent_authors != user_id
        in_ids, in_authors = self._recent_ids[keep], self._recent_authors[keep]

        excluded_authors = np.append(followees, np.int64(user_id))
        n_out = min(limits.out_of_network, limits.max_candidates)
        ann_ids, ann_authors = self._retrieved(retrieved, excluded_authors, seen, n_out)
        keep = ~np.isin(self._trending_authors, excluded_authors)
        keep &= ~np.isin(self._trending_ids, seen) & ~np.isin(self._trending_ids, ann_ids)
        trend_ids = self._trending_ids[keep][: n_out - len(ann_ids)]
        trend_authors = self._trending_authors[keep][: n_out - len(ann_ids)]
        out_ids = np.concatenate([ann_ids, trend_ids])
        out_authors = np.concatenate([ann_authors, trend_authors])

        n_in = max(limits.max_candidates - len(out_ids), 0)
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
