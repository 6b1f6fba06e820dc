"""Whole views held in memory (:class:`FeatureReplica`), so requests never wait on the store, and
kept current by a sync thread that reads the rows written since the last sync.

Rows are found by event time. A materialization writes rows up to its end, which may lie after
the simulated clock's now, while pushes (fresh counts, new tweets' embeddings) carry event times at
the clock's now, whole seconds in the store, and many share one second while the clock stands
still. So besides the rows after the latest event time synced, a sync of a view with a push source
reads the rows whose event time lies between the clock's now at the previous sync and now: every
row pushed since, whichever replica pushed it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from serving.features.cache import RowCache
from serving.features.columns import ViewColumns
from serving.features.plan import ServicePlan
from serving.features.readers import RowReader, SqliteRows
from serving.periodic import Periodic

log = logging.getLogger(__name__)


class FeatureReplica:
    """Loads the views of `plan` whole into `cache` and syncs them with the store.

    max_keys: the largest view (keys) held whole; larger ones keep the per-key cache. Only the
    sqlite online store can be scanned; with another store nothing is replicated. `lock` is the
    one that guards `cache` for the requests. pushed_views: the views with a push source;
    live_clock: the simulated clock's now (None while no clock is set), which bounds the rows
    of those views a sync reads again (see the module's docstring).
    """

    def __init__(
        self,
        plan: ServicePlan,
        reader: RowReader,
        cache: RowCache,
        lock: threading.Lock,
        max_keys: int,
        pushed_views: frozenset[str] = frozenset(),
        live_clock: Callable[[], pd.Timestamp | None] | None = None,
    ) -> None:
        self.plan = plan
        self.reader = reader
        self.cache = cache
        self.max_keys = max_keys
        self.pushed_views = pushed_views
        self.live_clock = live_clock
        self._live_since: int | None = None  # the clock's now (epoch s) at the last sync
        self._lock = lock
        # The latest event time synced per view.
        self._watermarks: dict[str, Any] = {}
        self._synced_version: int | None = None  # the store's data_version at the last sync
        # One sync or replicate at a time (the sync thread, and the engagement pusher after a
        # push): an older scan applied after a newer one would put stale rows back.
        self._syncing = threading.Lock()
        self._periodic = Periodic(
            "feedrank-feature-sync", "online feature replica: sync", self._tick
        )
        self._full_every_s = 0.0
        self._last_full = time.monotonic()

    def replicate(self) -> dict[str, int]:
        """Load whole views into memory: every view whose table holds at most `max_keys` keys.
        Returns the keys held per replicated view. Call :meth:`sync` (or :meth:`start_sync`) to
        keep the replica current; calling this again reloads every view whole.
        """
        reader = self.reader
        if not isinstance(reader, SqliteRows):
            log.info("online store %s cannot be scanned: no replica", type(reader).__name__)
            return {}
        with self._syncing:
            return self._replicate(reader)

    def _replicate(self, reader: SqliteRows) -> dict[str, int]:
        held: dict[str, int] = {}
        started = time.perf_counter()
        self._synced_version = reader.data_version()
        self._live_since = self._clock_s()
        for view in self.plan.views:
            rows, latest = reader.scan(view)
            if len(rows) > self.max_keys:
                log.info(
                    "view %s holds %d keys > %d: not replicated",
                    view.name,
                    len(rows),
                    self.max_keys,
                )
                continue
            columns = ViewColumns.replica(view, rows, self.cache.clock())
            with self._lock:
                self.cache.install(columns)
                self._watermarks[view.name] = latest
            held[view.name] = len(rows)
        log.info(
            "online features: %d views (%d keys) replicated in memory in %.1f s",
            len(held),
            sum(held.values()),
            time.perf_counter() - started,
        )
        return held

    def sync(self) -> int:
        """Bring replicated views up to the store: rows written with an event time after the
        latest one synced (pushed counts, new tweets' embeddings, a new materialization).
        Returns how many rows changed. Scans nothing when no write was committed since the last
        sync. A write whose event time is not after that (a backfill of older rows) shows at
        the next :meth:`replicate`. Safe from several threads (one sync runs at a time)."""
        reader = self.reader
        if not self.cache.replicated or not isinstance(reader, SqliteRows):
            return 0
        with self._syncing:
            return self._sync(reader)

    def _clock_s(self) -> int | None:
        """The simulated clock's now in whole epoch seconds (None: no clock)."""
        now = self.live_clock() if self.live_clock is not None else None
        return None if now is None else int(pd.Timestamp(now).timestamp())

    def _sync(self, reader: SqliteRows) -> int:
        changed = 0
        version = reader.data_version()
        if version == self._synced_version:
            return 0  # nothing committed since the last sync: no scan
        self._synced_version = version
        now_s = self._clock_s()
        since_s = now_s if self._live_since is None else self._live_since
        live = None if now_s is None or since_s is None else (min(since_s, now_s), now_s + 1)
        self._live_since = now_s
        for view in self.plan.views:
            if view.name not in self.cache.replicated:
                continue
            watermark = self._watermarks.get(view.name)
            between = live if view.name in self.pushed_views else None
            rows, latest = reader.scan(view, watermark, between)
            if not rows:
                continue
            with self._lock:
                self.cache.update(view, rows, self.cache.clock())
                if latest is not None and (watermark is None or latest > watermark):
                    self._watermarks[view.name] = latest
            changed += len(rows)
        return changed

    def start_sync(self, interval_s: float, full_every_s: float) -> None:
        """Run :meth:`sync` every `interval_s` seconds and a whole :meth:`replicate` every
        `full_every_s` (0: never) on a daemon thread, until :meth:`stop`."""
        self._full_every_s = full_every_s
        self._last_full = time.monotonic()
        self._periodic.start(interval_s)

    def _tick(self) -> None:
        """One turn of the sync thread: a whole reload when one is due, else a sync."""
        if self._full_every_s and time.monotonic() - self._last_full >= self._full_every_s:
            self.replicate()
            self._last_full = time.monotonic()
        else:
            self.sync()

    def stop(self) -> None:
        """Stop the sync thread (waiting up to 30 s for a sync in progress)."""
        self._periodic.stop()
