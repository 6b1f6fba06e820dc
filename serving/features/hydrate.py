"""Hydration (:class:`FastOnlineFeatures`): a feed request's candidates -> the feature service's
values as columns, from the cache or the replica, with the request-time views computed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipelines.clock import ClockNotSetError, ClockReader, SimClock
from pipelines.config import FeedrankConfig
from pipelines.features.store import feature_service_name, feature_store
from pipelines.inputs.catalog import VIEWS
from serving.features.cache import RowCache
from serving.features.frames import FeatureColumns
from serving.features.on_demand import run_on_demand_columns
from serving.features.plan import plan_service
from serving.features.readers import open_reader
from serving.features.replica import FeatureReplica


class FastOnlineFeatures:
    """`OnlineFeatures`' values as columns (:data:`FeatureColumns`), read directly and cached.

    The cache's settings come from ``cfg.serve``: ``feature_cache_ttl_s`` (how long a decoded row
    may be served before it is read again; `cache_ttl_s` overrides it, 0 reads the store on every
    request), ``feature_cache_max_keys`` (per view) and ``feature_replica_max_keys`` (the largest
    view :attr:`replica` holds whole). batch_ttl_s: the longer age limit of batch-only views (see
    :class:`RowCache`; None: the TTL for all); clock: monotonic seconds (tests pass a fake). The
    service is resolved once, here: a `feast apply` that changes it needs a new instance.
    Id-list values (int64 arrays) in returned columns are shared with the cache: read-only.
    One instance per serving replica; the cache is guarded by a lock.
    """

    # The entity and request-data columns hydrate provides, as OnlineFeatures does.
    REQUEST_COLUMNS = (
        "tweet_id",
        "author_id",
        "viewer_id",
        "request_time_s",
        "viewer_follows_author",
    )

    def __init__(
        self,
        cfg: FeedrankConfig,
        *,
        cache_ttl_s: float | None = None,
        batch_ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        serve = cfg.serve
        store = feature_store(cfg)
        self.service = store.get_feature_service(feature_service_name(cfg))
        self.plan = plan_service(store, self.service, self.REQUEST_COLUMNS)
        self.reader = open_reader(store, self.plan)
        ttl_s = serve.feature_cache_ttl_s if cache_ttl_s is None else cache_ttl_s
        self.cache = RowCache(
            self.reader, ttl_s, serve.feature_cache_max_keys, clock, batch_ttl_s=batch_ttl_s
        )
        self._lock = threading.Lock()
        self.replica = FeatureReplica(
            self.plan,
            self.reader,
            self.cache,
            self._lock,
            serve.feature_replica_max_keys,
            pushed_views=frozenset(view.name for view in VIEWS if view.push is not None),
            live_clock=_simulated_now(cfg),
        )
        # Seconds the last hydrate spent reading rows and in on-demand views.
        self.last_timings: dict[str, float] = {}

    @classmethod
    def for_serving(cls, cfg: FeedrankConfig) -> FastOnlineFeatures:
        """The online features of a serving replica, as `serve` configures them: the per-key
        cache, and with `serve.feature_replica` the views held in memory and synced."""
        features = cls(cfg, batch_ttl_s=cfg.serve.batch_feature_ttl_s)
        if cfg.serve.feature_replica:
            features.replica.replicate()
            features.replica.start_sync(
                cfg.serve.feature_sync_interval_s, cfg.serve.feature_full_sync_s
            )
        return features

    def hydrate(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> FeatureColumns:
        """candidates (tweet_id, author_id, in_network) -> the service's features as columns,
        one row per candidate, same order: what the ranker takes (`frame_of` makes the frame
        `OnlineFeatures.hydrate` returns, with the same values).

        Keys missing from the store come back as missing values (the model maps them to defaults).
        """
        request = self._request(viewer_id, candidates, now)
        columns = self._entity_columns(request)
        started = time.perf_counter()
        with self._lock:
            for view in self.plan.views:
                gathered = self.cache.columns(view, view.keys(request))
                columns.update(zip(view.features, gathered, strict=True))
        return self._finish(request, columns, started)

    def hydrate_cached(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp, wait_s: float = 0.005
    ) -> tuple[FeatureColumns, float]:
        """:meth:`hydrate` from the cache alone, for when the store is slow or down: cached rows
        whatever their age, missing values (model defaults) for keys never read. Returns the
        columns and the share of (view, key) lookups that were cached.

        Raises TimeoutError when the cache is held for more than `wait_s` (a store read in
        progress that may hang): the caller then falls back to default features.
        """
        request = self._request(viewer_id, candidates, now)
        columns = self._entity_columns(request)
        started = time.perf_counter()
        if not self._lock.acquire(timeout=wait_s):
            raise TimeoutError("the feature cache is busy with a store read")
        try:
            found = wanted = 0
            for view in self.plan.views:
                keys = view.keys(request)
                gathered, held = self.cache.cached_columns(view, keys)
                columns.update(zip(view.features, gathered, strict=True))
                found, wanted = found + held, wanted + len(keys)
        finally:
            self._lock.release()
        return self._finish(request, columns, started), found / max(wanted, 1)

    def hydrate_default(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> FeatureColumns:
        """Every stored feature missing (the model's defaults), request-time values computed: the
        last resort when neither the store nor the cache can answer."""
        request = self._request(viewer_id, candidates, now)
        columns = self._entity_columns(request)
        for view in self.plan.views:
            columns.update({name: np.full(len(candidates), np.nan) for name in view.features})
        return self._finish(request, columns, time.perf_counter())

    def _request(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> dict[str, list[Any]]:
        if candidates.empty:
            raise ValueError("no candidates to hydrate")
        n = len(candidates)
        request: dict[str, list[Any]] = {
            "tweet_id": candidates["tweet_id"].astype("int64").tolist(),
            "author_id": candidates["author_id"].astype("int64").tolist(),
            "viewer_id": [int(viewer_id)] * n,
            "request_time_s": [pd.Timestamp(now).timestamp()] * n,
            "viewer_follows_author": candidates["in_network"].astype("int64").tolist(),
        }
        return request

    @staticmethod
    def _entity_columns(request: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
        return {
            name: np.array(request[name], dtype=np.int64)
            for name in ("tweet_id", "author_id", "viewer_id")
        }

    def _finish(
        self,
        request: Mapping[str, list[Any]],
        columns: dict[str, np.ndarray],
        started: float,
    ) -> FeatureColumns:
        """Runs the on-demand views over the gathered columns."""
        read = time.perf_counter()
        inputs = {**columns, **_request_data(request)}
        for plan in self.plan.on_demand:
            outputs = run_on_demand_columns(plan, inputs)
            columns.update(outputs)
            inputs.update(outputs)
        self.last_timings = {"read_s": read - started, "on_demand_s": time.perf_counter() - read}
        return columns

    def close(self) -> None:
        self.replica.stop()
        self.reader.close()


def _request_data(request: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    """The request-data columns (request_time_s, viewer_follows_author) as typed arrays."""
    return {
        "request_time_s": np.asarray(request["request_time_s"], dtype=np.float64),
        "viewer_follows_author": np.asarray(request["viewer_follows_author"], dtype=np.int64),
    }


def _simulated_now(cfg: FeedrankConfig) -> Callable[[], pd.Timestamp | None]:
    """The simulated clock's now, or None while no clock is set."""
    reader = ClockReader(SimClock.of(cfg))

    def now() -> pd.Timestamp | None:
        try:
            return reader()
        except ClockNotSetError:
            return None

    return now
