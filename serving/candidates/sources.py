"""The candidate sources of the home feed (DESIGN section 6), and the generator that runs them.

Five sources, each a class with a ``name`` and ``fetch(ctx, limit)``, best first:

- ``in_network_recent``: followees' tweets since the viewer's last visit, newest first;
- ``in_network_backlog``: followees' tweets from before the last visit the viewer never saw;
- ``resurfaced``: tweets the viewer saw whose engagement grew a lot since;
- ``out_of_network_embedding``: embedding retrieval (`serving.candidates.retrieval`);
- ``out_of_network_trending``: the last 48 h's most engaged tweets, weighted by the viewer's
  hashtag interests.

Only root tweets created at or before ``ctx.now`` are ever candidates. Every source works on tweet
rows of the :class:`WorldIndex` (numpy arrays prepared at load), so a request costs a few ms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from pipelines.config import ServeConfig
from serving.candidates.world_index import TRENDING_WINDOW, WorldIndex, timestamp_ns

CANDIDATE_COLUMNS: tuple[str, ...] = (
    "tweet_id",
    "author_id",
    "in_network",
    "source",
    "original_tweet_id",
)
# viewer id, tweet ids served to the viewer [S] -> [<= k rows] tweet_id, author_id, best first
Retrieve = Callable[[int, np.ndarray], pd.DataFrame]
_NO_ROWS = np.zeros(0, dtype=np.int64)
_HOUR_NS = 3_600 * 10**9
_DAY_NS = 24 * _HOUR_NS


@dataclass(frozen=True)
class FeedContext:
    """Who asks for a feed and when.

    followees: ids the viewer follows, sorted int64 [F]; seen: tweet ids served to the viewer
    before, sorted int64 [S]; last_visit: the viewer's latest served_at (None: never served).
    """

    user_id: int
    now: pd.Timestamp
    last_visit: pd.Timestamp | None
    followees: np.ndarray
    seen: np.ndarray

    @classmethod
    def of(
        cls, index: WorldIndex, user_id: int, extra_seen: np.ndarray | None = None
    ) -> FeedContext:
        """The context at the index's clock; `extra_seen`: tweet ids the live service served
        since the index was built (unioned into ``seen``)."""
        seen = index.seen(user_id)
        if extra_seen is not None and len(extra_seen):
            seen = np.union1d(seen, np.asarray(extra_seen, dtype=np.int64))
        return cls(
            user_id=int(user_id),
            now=index.now,
            last_visit=index.last_visit(user_id),
            followees=index.followees(user_id),
            seen=seen,
        )

    def away_days(self) -> float | None:
        """Days since the last visit (None: never served)."""
        if self.last_visit is None:
            return None
        return float((self.now - self.last_visit) / pd.Timedelta(days=1))


def candidate_frame(
    tweet_ids: np.ndarray, author_ids: np.ndarray, in_network: np.ndarray, sources: np.ndarray
) -> pd.DataFrame:
    """[N rows] CANDIDATE_COLUMNS of original tweets (original_tweet_id = tweet_id)."""
    ids = np.asarray(tweet_ids, dtype=np.int64)
    return pd.DataFrame(
        {
            "tweet_id": ids,
            "author_id": np.asarray(author_ids, dtype=np.int64),
            "in_network": np.asarray(in_network, dtype=bool),
            "source": np.asarray(sources, dtype=object),
            "original_tweet_id": ids.copy(),
        },
        columns=list(CANDIDATE_COLUMNS),
    )


class CandidateSource(ABC):
    """A candidate source over the world index: :meth:`rows` picks tweet rows, :meth:`fetch`
    turns them into a candidate frame."""

    name: ClassVar[str]

    def __init__(self, index: WorldIndex, serve: ServeConfig) -> None:
        self.index = index
        self.serve = serve

    @abstractmethod
    def rows(self, ctx: FeedContext, limit: int) -> np.ndarray:
        """Tweet rows [<= limit] of the index, best first, all servable root tweets."""

    def fetch(self, ctx: FeedContext, limit: int) -> pd.DataFrame:
        """[<= limit rows] CANDIDATE_COLUMNS, best first."""
        rows = self.rows(ctx, limit)
        return self.frame(ctx, rows)

    def frame(self, ctx: FeedContext, rows: np.ndarray) -> pd.DataFrame:
        arrays = self.index.arrays
        authors = arrays.author_id[rows]
        return candidate_frame(
            arrays.tweet_id[rows],
            authors,
            np.isin(authors, ctx.followees),
            np.full(len(rows), self.name, dtype=object),
        )

    def _unseen_not_own(self, ctx: FeedContext, rows: np.ndarray) -> np.ndarray:
        """The rows [k] not by the viewer and not seen, in order."""
        arrays = self.index.arrays
        keep = arrays.author_id[rows] != ctx.user_id
        keep &= ~np.isin(arrays.tweet_id[rows], ctx.seen)
        return rows[keep]

    def _out_of_network(self, ctx: FeedContext, rows: np.ndarray) -> np.ndarray:
        """The rows [k] not by the viewer or a followee and not seen, in order."""
        rows = self._unseen_not_own(ctx, rows)
        return rows[~np.isin(self.index.arrays.author_id[rows], ctx.followees)]


class InNetworkRecent(CandidateSource):
    """Followees' tweets created after the last visit (no visit: within the in-network lookback
    before now), not by the viewer, not seen; newest first."""

    name = "in_network_recent"

    def rows(self, ctx: FeedContext, limit: int) -> np.ndarray:
        if limit <= 0:
            return _NO_ROWS
        now = timestamp_ns(ctx.now)
        if ctx.last_visit is None:
            start = now - self.serve.in_network_lookback_hours * _HOUR_NS
        else:
            start = timestamp_ns(ctx.last_visit) + 1
        rows = self.index.root_rows_by(ctx.followees, start, now)[::-1]  # rows ascend with time
        return self._unseen_not_own(ctx, rows)[:limit]


class InNetworkBacklog(CandidateSource):
    """Followees' tweets the viewer never saw, created at or before the last visit but within
    the backlog lookback before now; none without a last visit; most engaged first, then
    newest."""

    name = "in_network_backlog"

    def rows(self, ctx: FeedContext, limit: int) -> np.ndarray:
        if limit <= 0 or ctx.last_visit is None:
            return _NO_ROWS
        now = timestamp_ns(ctx.now)
        start = now - self.serve.backlog_lookback_hours * _HOUR_NS
        end = min(timestamp_ns(ctx.last_visit), now)
        rows = self._unseen_not_own(ctx, self.index.root_rows_by(ctx.followees, start, end))
        engagements = self.index.engagement_counts(rows, now)
        return rows[np.lexsort((-rows, -engagements))][:limit]


@dataclass(frozen=True)
class Growth:
    """Engagements of tweets [N] before and after the viewer's impression of each."""

    before: np.ndarray
    after: np.ndarray
    followees_before: np.ndarray
    followees_after: np.ndarray


class Resurfaced(CandidateSource):
    """Tweets the viewer saw, created within the backlog lookback, whose engagement grew a lot
    since the viewer's (latest) impression; largest growth first.

    A tweet grew when, counting engagements up to now: those after the impression are at least
    ``resurface_min_new_engagements`` and at least ``resurface_min_growth * (before + 1)``; or
    the viewer's followees engaged at least twice after it, and more than before. Growth is
    ``after / (before + 1)``; ties: more engagements after, then newest.
    """

    name = "resurfaced"

    def rows(self, ctx: FeedContext, limit: int) -> np.ndarray:
        if limit <= 0:
            return _NO_ROWS
        now = timestamp_ns(ctx.now)
        rows, served = self.index.impressions_of(ctx.user_id)
        arrays = self.index.arrays
        created = arrays.created_ns[rows]
        keep = arrays.is_root[rows] & (arrays.author_id[rows] != ctx.user_id)
        keep &= (created <= now) & (created >= now - self.serve.backlog_lookback_hours * _HOUR_NS)
        rows, served = rows[keep], served[keep]
        growth = self.growth(ctx, rows, served, now)
        serve = self.serve
        grew = (growth.after >= serve.resurface_min_new_engagements) & (
            growth.after >= serve.resurface_min_growth * (growth.before + 1)
        )
        grew |= (growth.followees_after >= 2) & (growth.followees_after > growth.followees_before)
        ratio = growth.after / (growth.before + 1.0)
        order = np.lexsort((-rows[grew], -growth.after[grew], -ratio[grew]))
        return rows[grew][order][:limit]

    def growth(self, ctx: FeedContext, rows: np.ndarray, served: np.ndarray, now: int) -> Growth:
        """Engagement counts of `rows` [N] around the viewer's impressions `served` [N] (ns)."""
        owner, times, engagers = self.index.engagements_of(rows)
        counted = times <= now
        after = counted & (times > served[owner])
        before = counted & ~after
        by_followee = np.isin(engagers, ctx.followees)
        n = len(rows)
        return Growth(
            before=np.bincount(owner[before], minlength=n),
            after=np.bincount(owner[after], minlength=n),
            followees_before=np.bincount(owner[before & by_followee], minlength=n),
            followees_after=np.bincount(owner[after & by_followee], minlength=n),
        )


class EmbeddingRetrieval(CandidateSource):
    """Out-of-network tweets from embedding retrieval (`retrieve`, best first): the servable root
    tweets among them not by the viewer or a followee and not seen. None: no candidates."""

    name = "out_of_network_embedding"

    def __init__(self, index: WorldIndex, serve: ServeConfig, retrieve: Retrieve | None) -> None:
        super().__init__(index, serve)
        self.retrieve = retrieve

    def rows(self, ctx: FeedContext, limit: int) -> np.ndarray:
        if limit <= 0 or self.retrieve is None:
            return _NO_ROWS
        found = self.retrieve(ctx.user_id, ctx.seen)
        if found.empty:
            return _NO_ROWS
        rows = self.index.rows_of(found["tweet_id"].to_numpy(np.int64))
        rows = rows[rows >= 0]
        _, first = np.unique(rows, return_index=True)
        rows = rows[np.sort(first)]  # a tweet retrieved twice counts once, at its best rank
        arrays = self.index.arrays
        rows = rows[arrays.is_root[rows] & (arrays.created_ns[rows] <= timestamp_ns(ctx.now))]
        return self._out_of_network(ctx, rows)[:limit]


class TrendingInInterests(CandidateSource):
    """Root tweets of the last 48 h with engagements, not by the viewer or a followee, not seen.

    Score ``engagements * (1 + interest)``: interest is the share of the tweets the viewer
    engaged with that carry any of the candidate's hashtags (0 without history: plain trending).
    Best score first; ties: newest first.
    """

    name = "out_of_network_trending"

    def rows(self, ctx: FeedContext, limit: int) -> np.ndarray:
        if limit <= 0:
            return _NO_ROWS
        now = timestamp_ns(ctx.now)
        window = int(TRENDING_WINDOW / pd.Timedelta(1, "ns"))
        rows = self._out_of_network(ctx, self.index.root_rows_between(now - window, now))
        engagements = self.index.engagement_counts(rows, now)
        rows, engagements = rows[engagements > 0], engagements[engagements > 0]
        score = engagements * (1.0 + self.interest(ctx, rows, now))
        return rows[np.lexsort((-rows, -score))][:limit]

    def interest(self, ctx: FeedContext, rows: np.ndarray, now: int) -> np.ndarray:
        """[N] share of the viewer's engaged tweets sharing a hashtag with each of `rows` [N]."""
        history = self.index.engaged_rows(ctx.user_id, now)
        interest = np.zeros(len(rows))
        if len(history) == 0 or len(rows) == 0:
            return interest
        past_owner, past_tags = self.index.hashtags_of(history)
        tags = np.unique(past_tags)  # [G] the viewer's hashtags
        owner, candidate_tags = self.index.hashtags_of(rows)
        known = np.isin(candidate_tags, tags)
        if not known.any():
            return interest
        past = np.zeros((len(tags), len(history)), dtype=np.float32)  # [G, H]
        past[np.searchsorted(tags, past_tags), past_owner] = 1.0
        carries = np.zeros((len(rows), len(tags)), dtype=np.float32)  # [N, G]
        carries[owner[known], np.searchsorted(tags, candidate_tags[known])] = 1.0
        shares_a_tag = (carries @ past) > 0  # [N, H]
        return np.asarray(shares_a_tag.sum(axis=1) / len(history), dtype=np.float64)


# Priority order of the sources in the candidate list (and of the feed response's counts).
SOURCE_NAMES: tuple[str, ...] = (
    InNetworkRecent.name,
    InNetworkBacklog.name,
    Resurfaced.name,
    EmbeddingRetrieval.name,
    TrendingInInterests.name,
)


class CandidateGenerator:
    """Runs the sources with their quotas into one candidate list (DESIGN section 6).

    Resurfaced, embedding and trending take at most their quotas (``resurface_candidates``,
    ``out_of_network_candidates``, ``trending_candidates``); in-network recent, then backlog,
    fill the rest of the cap: ``max_candidates``, or ``returning_user_max_candidates`` for a
    viewer back after ``returning_user_days``, under which the fixed quotas shrink by the same
    proportion so in-network keeps its share. The list is in SOURCE_NAMES order with no repeated
    tweet id (the first kept).
    """

    def __init__(
        self, index: WorldIndex, serve_cfg: ServeConfig, retrieve: Retrieve | None = None
    ) -> None:
        self.index = index
        self.serve = serve_cfg
        self.recent = InNetworkRecent(index, serve_cfg)
        self.backlog = InNetworkBacklog(index, serve_cfg)
        self.resurfaced = Resurfaced(index, serve_cfg)
        self.embedding = EmbeddingRetrieval(index, serve_cfg, retrieve)
        self.trending = TrendingInInterests(index, serve_cfg)

    def cap(self, ctx: FeedContext) -> int:
        """Most candidates for this viewer."""
        away = ctx.away_days()
        if away is not None and away >= self.serve.returning_user_days:
            return min(self.serve.returning_user_max_candidates, self.serve.max_candidates)
        return self.serve.max_candidates

    def quotas(self, ctx: FeedContext) -> dict[str, int]:
        """The fixed quotas of resurfaced, embedding and trending under this viewer's cap."""
        share = self.cap(ctx) / self.serve.max_candidates
        return {
            Resurfaced.name: int(self.serve.resurface_candidates * share),
            EmbeddingRetrieval.name: int(self.serve.out_of_network_candidates * share),
            TrendingInInterests.name: int(self.serve.trending_candidates * share),
        }

    def generate(self, ctx: FeedContext) -> pd.DataFrame:
        """[<= cap rows] CANDIDATE_COLUMNS, in source priority order."""
        return self.generate_with_counts(ctx)[0]

    def generate_with_counts(self, ctx: FeedContext) -> tuple[pd.DataFrame, dict[str, int]]:
        """The candidates, and how many of them each source gave (every source named)."""
        cap = self.cap(ctx)
        quotas = self.quotas(ctx)
        room = cap
        picked: dict[str, np.ndarray] = {}
        # Fixed quotas first (each within what is left of the cap); in-network fills the rest.
        picked[Resurfaced.name] = self.resurfaced.rows(ctx, min(quotas[Resurfaced.name], room))
        room -= len(picked[Resurfaced.name])
        embedding = self.embedding.rows(ctx, min(quotas[EmbeddingRetrieval.name], room))
        picked[EmbeddingRetrieval.name] = embedding
        room -= len(embedding)
        # Trending skips what retrieval already proposed, so its quota is not spent on repeats.
        quota = min(quotas[TrendingInInterests.name], room)
        trending = self.trending.rows(ctx, quota + len(embedding) if quota > 0 else 0)
        picked[TrendingInInterests.name] = trending[~np.isin(trending, embedding)][:quota]
        room -= len(picked[TrendingInInterests.name])
        picked[InNetworkRecent.name] = self.recent.rows(ctx, room)
        room -= len(picked[InNetworkRecent.name])
        picked[InNetworkBacklog.name] = self.backlog.rows(ctx, room)
        return self._assemble(ctx, picked, cap)

    def _assemble(
        self, ctx: FeedContext, picked: dict[str, np.ndarray], cap: int
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        rows = np.concatenate([picked[name] for name in SOURCE_NAMES]).astype(np.int64)
        names = np.repeat(
            np.array(SOURCE_NAMES, dtype=object), [len(picked[n]) for n in SOURCE_NAMES]
        )
        _, first = np.unique(rows, return_index=True)
        keep = np.sort(first)[:cap]
        rows, names = rows[keep], names[keep]
        arrays = self.index.arrays
        authors = arrays.author_id[rows]
        frame = candidate_frame(
            arrays.tweet_id[rows], authors, np.isin(authors, ctx.followees), names
        )
        counts = {name: int(np.count_nonzero(names == name)) for name in SOURCE_NAMES}
        return frame, counts
