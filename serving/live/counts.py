"""Engagement counts pushed to the online store within seconds of the action.

:class:`TweetHistory` holds the lake's history of every tweet (impression times, engagement actions
with their times) as the batch features read it. :class:`EngagementPusher` takes the tweets whose
counts moved (an engagement recorded, an impression served), and on a background thread, in batches
per tweet, recomputes their `tweet_engagement` features at the clock's now from that history plus
the live rows of the event log (`pipelines.features.freshness.tweet_engagement_at`, the batch
definition) and pushes them through the Feast push source. A request only adds ids to a set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog
from pipelines.schema import ENGAGEMENTS
from serving.candidates.world_index import gather_ranges, read_columns
from serving.periodic import Periodic

log = logging.getLogger(__name__)

# Online counts as of a moment: the push frame (PUSH_COLUMNS rows) -> rows pushed.
Push = Callable[[pd.DataFrame], int]
Clock = Callable[[], pd.Timestamp]
EVENT_COLUMNS = ("viewer_id", "tweet_id", "action", "at")


def _read_impressions(cfg: FeedrankConfig) -> pd.DataFrame:
    """The lake's impressions: viewer_id, tweet_id, served_at and every engagement flag and time."""
    actions = [*ENGAGEMENTS, *(f"{action}_at" for action in ENGAGEMENTS)]
    return read_columns(
        cfg.paths.raw, "impressions", ["viewer_id", "tweet_id", "served_at", *actions]
    )


def _events_of(impressions: pd.DataFrame) -> pd.DataFrame:
    """One row per engagement action of the impressions (EVENT_COLUMNS), as the batch features
    read them."""
    from pipelines.features.batch import engagement_events

    no_authors = pd.DataFrame({"tweet_id": np.zeros(0, np.int64), "author_id": np.zeros(0)})
    return engagement_events(impressions, no_authors)[list(EVENT_COLUMNS)]


@dataclass(frozen=True)
class TweetHistory:
    """The lake's impressions (tweet_id, served_at) and engagement events (EVENT_COLUMNS) sorted
    by tweet, and `until`: the lake's latest served_at. Event-log rows served after `until` are
    live; those served before it are in the lake (exported before this replica loaded it)."""

    impressions: pd.DataFrame
    events: pd.DataFrame
    until: pd.Timestamp

    @classmethod
    def from_impressions(cls, impressions: pd.DataFrame) -> TweetHistory:
        """impressions: viewer_id, tweet_id, served_at, the ENGAGEMENTS flags and their
        ``<action>_at`` times (the lake's columns)."""
        served = pd.to_datetime(impressions["served_at"], utc=True)
        until = served.max() if len(served) else pd.Timestamp(0, tz="UTC")
        views = pd.DataFrame(
            {"tweet_id": impressions["tweet_id"].to_numpy(np.int64), "served_at": served}
        )
        events = _events_of(impressions)
        return cls(
            views.sort_values("tweet_id", kind="stable").reset_index(drop=True),
            events.sort_values("tweet_id", kind="stable").reset_index(drop=True),
            pd.Timestamp(until),
        )

    @classmethod
    def load(cls, cfg: FeedrankConfig) -> TweetHistory:
        return cls.from_impressions(_read_impressions(cfg))

    def of(self, tweet_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(impressions, events) of these tweets: the rows of each tweet, by binary search."""
        return _slice(self.impressions, tweet_ids), _slice(self.events, tweet_ids)


def _slice(frame: pd.DataFrame, tweet_ids: np.ndarray) -> pd.DataFrame:
    keys = frame["tweet_id"].to_numpy(np.int64)
    ids = np.unique(np.asarray(tweet_ids, dtype=np.int64))
    starts = np.searchsorted(keys, ids, side="left")
    ends = np.searchsorted(keys, ids, side="right")
    _, rows = gather_ranges(starts, ends)
    return frame.iloc[rows]


class EngagementPusher:
    """Recomputes and pushes the engagement counts of the tweets marked since its last flush.

    history: the lake's; events: the live event log; clock: the serving clock (the counts are
    taken at its now); push: writes a push frame to the online store; after_push: called after
    each push (the replica's feature sync, so this replica sees the rows at once). Event times
    pushed by one pusher strictly increase (a microsecond apart at one clock time), so a replica
    syncing rows "written after the latest event time it holds" never skips one.
    """

    def __init__(
        self,
        history: TweetHistory,
        events: EventLog,
        clock: Clock,
        push: Push,
        after_push: Callable[[], object] | None = None,
        batch: int = 500,
    ) -> None:
        self.history = history
        self.events = events
        self.clock = clock
        self.push = push
        self.after_push = after_push
        self.batch = batch
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last_stamp: pd.Timestamp | None = None
        # The tweets of a failed flush stay marked: the next flush retries them.
        self._periodic = Periodic("feedrank-count-push", "engagement counts: push", self.flush)
        self.pushed = 0

    @classmethod
    def for_serving(
        cls,
        cfg: FeedrankConfig,
        events: EventLog,
        clock: Clock,
        after_push: Callable[[], object] | None = None,
    ) -> EngagementPusher:
        from pipelines.features.freshness import push_tweet_engagement

        def push(frame: pd.DataFrame) -> int:
            return push_tweet_engagement(cfg, frame)

        return cls(TweetHistory.load(cfg), events, clock, push, after_push)

    def mark(self, tweet_ids: Iterable[int]) -> None:
        """Note that these tweets' counts moved (cheap: the request path calls it)."""
        with self._lock:
            self._pending.update(int(t) for t in tweet_ids)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Recompute and push the counts of every marked tweet; returns the rows pushed. A
        failed push puts its tweets back, so the next flush tries them again."""
        pushed = 0
        with self._flushing:
            while True:
                with self._lock:
                    ids = sorted(self._pending)[: self.batch]
                    self._pending.difference_update(ids)
                if not ids:
                    return pushed
                try:
                    pushed += self.push(self.counts(np.asarray(ids, dtype=np.int64)))
                except Exception:
                    self.mark(ids)
                    raise
                self.pushed += len(ids)
                if self.after_push is not None:
                    self.after_push()

    def counts(self, tweet_ids: np.ndarray) -> pd.DataFrame:
        """The push frame of these tweets [N] at the clock's now (lake history plus live)."""
        from pipelines.features.freshness import tweet_engagement_at

        now = self._stamp(self.clock())
        lake_views, lake_events = self.history.of(tweet_ids)
        live_views, live_events = self.events.tweet_activity(
            tweet_ids.tolist(), served_after=self.history.until
        )
        live_events = live_events[live_events["action"].isin(ENGAGEMENTS)]
        impressions = pd.concat(
            [lake_views, live_views[["tweet_id", "served_at"]]], ignore_index=True
        )
        events = pd.concat(
            [lake_events, live_events[list(EVENT_COLUMNS)]], ignore_index=True
        ).sort_values("at", kind="stable")
        return tweet_engagement_at(tweet_ids, impressions, events, now)

    def _stamp(self, now: pd.Timestamp) -> pd.Timestamp:
        """`now`, or a microsecond after the last stamp when the clock has not moved past it."""
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + pd.Timedelta(microseconds=1)
        self._last_stamp = now
        return now

    def start(self, interval_s: float) -> None:
        """Flush every `interval_s` seconds on a daemon thread until :meth:`stop`."""
        self._periodic.start(interval_s)

    def stop(self) -> None:
        """Stop the thread, then one last flush of what is marked."""
        self._periodic.stop()
        try:
            self.flush()
        except Exception as exc:
            log.warning("engagement counts: the last push failed (%r)", exc)
        try:
            self.flush()
        except Exception as exc:
            log.warning("engagement counts: the last push failed (%r)", exc)
