"""Every replica's view of the live service: tweets posted to any replica and engagements recorded
by any replica, read back from the shared event log and indexed.

:class:`LiveSync` polls ``EventLog.posted_after(seq)`` and ``EventLog.engaged_after(id)`` (on a
background thread every ``serve.live_sync_s``, and on demand) and hands what it read to `apply`,
which runs it where the indexes are read (the engine's worker thread), so a mutation never races a
candidate search: the world index takes the tweets (:meth:`WorldIndex.extend`) and the engaged
impressions (:meth:`WorldIndex.add_engagements`); the tweet index takes the stored embeddings
(only the replica that received a tweet embeds it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.event_log import EventLog
from pipelines.schema import ENGAGEMENTS
from serving.candidates.world_index import WorldIndex, to_ns
from serving.periodic import Periodic

log = logging.getLogger(__name__)

# Runs a mutation of the indexes where they are read; returns when it is done.
Apply = Callable[[Callable[[], None]], None]
# tweet ids [N], unit vectors [N, D], author ids [N] -> added
AddVectors = Callable[[np.ndarray, np.ndarray, np.ndarray], int]


def run_here(mutation: Callable[[], None]) -> None:
    """An Apply for a single-threaded caller (tests, tools): run it now."""
    mutation()


@dataclass(frozen=True)
class Synced:
    """What one poll indexed: new tweets, of them with a vector, and engaged impressions."""

    tweets: int
    vectors: int
    engagements: int


class LiveSync:
    """Brings `index` (and the tweet index, through `add_vectors`) up to the event log.

    Engagements of impressions served at or before the lake's latest moment (``index.now``) are
    in the lake already and are not counted twice.
    """

    def __init__(
        self,
        index: WorldIndex,
        events: EventLog,
        apply: Apply = run_here,
        add_vectors: AddVectors | None = None,
    ) -> None:
        self.index = index
        self.events = events
        self.apply = apply
        self.add_vectors = add_vectors
        self._seq = 0  # the latest posted seq indexed
        self._engagement_id = 0  # the latest engagement id indexed
        self._lake_until = index.now
        self._lock = threading.Lock()
        # A failed poll leaves the replica serving what it indexed; the next one catches up.
        self._periodic = Periodic("feedrank-live-sync", "live sync: poll", self.poll)

    def poll(self) -> Synced:
        """Index what the event log gained since the last poll; safe from any thread but the
        one `apply` runs on."""
        with self._lock:
            posted, vectors = self.events.posted_after(self._seq)
            engaged = self.events.engaged_after(self._engagement_id, ENGAGEMENTS)
            if posted.empty and engaged.empty:
                return Synced(0, 0, 0)
            result: list[Synced] = []
            self.apply(lambda: result.append(self._index(posted, vectors, engaged)))
            if len(posted):
                self._seq = int(posted["seq"].max())
            if len(engaged):
                self._engagement_id = int(engaged["id"].max())
            return result[0]

    def _index(
        self, posted: pd.DataFrame, vectors: list[np.ndarray | None], engaged: pd.DataFrame
    ) -> Synced:
        tweets = self.index.extend(posted) if len(posted) else 0
        embedded = 0
        with_vector = np.flatnonzero([v is not None for v in vectors])
        if self.add_vectors is not None and len(with_vector):
            rows = posted.iloc[with_vector]
            matrix = np.stack([np.asarray(vectors[i]) for i in with_vector]).astype(np.float32)
            embedded = self.add_vectors(
                rows["tweet_id"].to_numpy(np.int64), matrix, rows["author_id"].to_numpy(np.int64)
            )
        live = engaged[engaged["served_at"] > self._lake_until]
        added = self.index.add_engagements(
            live["tweet_id"].to_numpy(np.int64),
            live["viewer_id"].to_numpy(np.int64),
            to_ns(live["at"]),
        )
        return Synced(tweets, embedded, added)

    def start(self, interval_s: float) -> None:
        """Poll every `interval_s` seconds (``serve.live_sync_s``) on a daemon thread until
        :meth:`stop`."""
        self._periodic.start(interval_s)

    def stop(self) -> None:
        self._periodic.stop()
