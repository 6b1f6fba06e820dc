"""The per-key cache in front of a reader: decoded rows per view, each served for at most a TTL,
and views installed whole by the replica (:mod:`serving.features.replica`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving.features.columns import ViewColumns
from serving.features.plan import ViewPlan
from serving.features.readers import Row, RowReader


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    store_reads: int = 0


class RowCache:
    """Decoded values per view and key, each at most `ttl_s` seconds old (0 disables caching).

    Keys absent from the store are cached as absent. Holds at most `max_keys` keys per view,
    dropping the longest-held first. Not thread-safe: the owner serializes calls.

    batch_ttl_s: a longer age limit for rows of views that only batch materialization writes
    (no push source): they change once a materialization, so a viewer's or a tweet's row read
    once serves the next requests too. Absent keys and pushed views keep `ttl_s`, so a new row
    or a pushed count shows within `ttl_s`. None: `ttl_s` for all.
    """

    def __init__(
        self,
        reader: RowReader,
        ttl_s: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
        batch_ttl_s: float | None = None,
    ) -> None:
        if ttl_s < 0 or max_keys < 1 or (batch_ttl_s is not None and batch_ttl_s < ttl_s):
            raise ValueError("cache ttl_s must be >= 0, batch_ttl_s >= ttl_s and max_keys >= 1")
        self.batch_ttl_s = batch_ttl_s
        self.reader = reader
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self.clock = clock
        self.stats = CacheStats()
        self._views: dict[str, ViewColumns] = {}
        # Views held whole (see `install`): served from memory, never read per request.
        self._replicated: set[str] = set()

    def columns(self, view: ViewPlan, keys: Sequence[Hashable]) -> list[np.ndarray]:
        """One column per feature of `view` (in its order) for `keys`; missing where absent
        (columns as :meth:`ViewColumns.gather` types them)."""
        held, slots = self._lookup(view, keys)
        columns = held.gather(slots)
        self._bound(held)
        return columns

    def rows(self, view: ViewPlan, keys: Sequence[Hashable]) -> list[Row]:
        """One row per key (the view's `missing` row where the store has none), in order."""
        held, slots = self._lookup(view, keys)
        rows = [held.row(int(slot)) for slot in slots]
        self._bound(held)
        return rows

    def _lookup(self, view: ViewPlan, keys: Sequence[Hashable]) -> tuple[ViewColumns, np.ndarray]:
        """The view's held columns and the slot of every key, reading stale and unknown keys."""
        now = self.clock()
        held = self._views.get(view.name)
        if held is not None and view.name in self._replicated:
            slots = held.slots(keys)
            slots[slots < 0] = 0  # the absent row
            self.stats.hits += len(keys)
            return held, slots
        if held is None or self.ttl_s == 0:
            held = self._views[view.name] = ViewColumns(view, capacity=max(16, len(keys)))
        slots = held.slots(keys)
        stale = slots < 0
        if self.ttl_s > 0:
            known = np.maximum(slots, 0)
            limit = np.where(held.present[known], self._present_ttl(view), self.ttl_s)
            stale |= held.loaded_at[known] < now - limit
        stale_keys = list(dict.fromkeys(k for k, s in zip(keys, stale, strict=True) if s))
        if stale_keys:
            self.stats.store_reads += 1
            held.store(self.reader.read(view, stale_keys), now)
            slots = held.slots(keys)
        self.stats.misses += len(stale_keys)
        self.stats.hits += len(keys) - len(stale_keys)
        return held, slots

    def cached_columns(
        self, view: ViewPlan, keys: Sequence[Hashable]
    ) -> tuple[list[np.ndarray], int]:
        """Like :meth:`columns` without touching the store (the degraded path when it is slow or
        down): held values whatever their age, missing values for keys never read. Also returns
        how many of the keys were held."""
        held = self._views.get(view.name)
        if held is None or not held.keys:
            return [np.full(len(keys), np.nan) for _ in view.kinds], 0
        slots = held.slots(keys)
        known = slots >= 0
        columns = held.gather(np.where(known, slots, 0))
        if known.all():
            return columns, len(keys)
        out: list[np.ndarray] = []
        for column in columns:
            values = np.asarray(column)
            if values.ndim == 2:  # a vector matrix (a fresh gather): NaN rows for keys never read
                values[~known] = np.nan
            elif values.dtype.kind in "biuf":
                values = values.astype(np.float64)
                values[~known] = np.nan
            else:
                values = values.astype(object)
                values[~known] = None
            out.append(values)
        return out, int(known.sum())

    def _present_ttl(self, view: ViewPlan) -> float:
        pushed = getattr(view.table, "stream_source", None) is not None
        return self.ttl_s if self.batch_ttl_s is None or pushed else self.batch_ttl_s

    def _bound(self, held: ViewColumns) -> None:
        if len(held.keys) > self.max_keys and held.view.name not in self._replicated:
            held.keep_newest(self.max_keys)

    def install(self, held: ViewColumns) -> None:
        """Serve the view from `held` (built by :meth:`ViewColumns.replica` from its whole table)
        until the next install: no per-request reads, no TTL, keys it lacks are absent. Kept
        current by :meth:`update`."""
        self._views[held.view.name] = held
        self._replicated.add(held.view.name)

    def update(self, view: ViewPlan, rows: Mapping[Hashable, Row | None], now: float) -> None:
        """Write rows changed in the store into a replicated view."""
        if view.name not in self._replicated:
            raise KeyError(f"view {view.name} is not replicated")
        self._views[view.name].store(rows, now)

    @property
    def replicated(self) -> frozenset[str]:
        return frozenset(self._replicated)
