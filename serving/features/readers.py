"""Readers of one view's latest rows for many keys: Feast's sqlite online tables read with plain
queries (:class:`SqliteRows`, which can also scan a whole table for a replica), and any other
online store through the Feast provider (:class:`FeastRows`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from serving.features.keys import ENTITY_KEY_SERIALIZATION_VERSION, decode_entity_key
from serving.features.plan import ServicePlan, ViewPlan
from serving.features.values import decode_value

# Keys per query: one prepared statement per view (the last chunk is padded with a repeated key).
SQLITE_CHUNK = 512


Row = tuple[Any, ...]


class RowReader(Protocol):
    """Reads the latest rows of one view for many keys: cache key -> row, or None when absent."""

    def read(self, view: ViewPlan, keys: Sequence[Hashable]) -> dict[Hashable, Row | None]: ...

    def close(self) -> None: ...


class SqliteRows:
    """Feast's sqlite online tables, read with plain queries (read-only connection).

    A table holds one row per (entity_key, feature_name) with the serialized `Value` in `value`.
    """

    def __init__(self, path: Path, tables: Mapping[str, str], chunk: int = SQLITE_CHUNK) -> None:
        self.path = Path(path)
        self.tables = dict(tables)
        self.chunk = chunk
        self._conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            timeout=30.0,
        )
        self._conn.execute("PRAGMA query_only = 1")
        self._watch: sqlite3.Connection | None = None
        self._sql = {
            view: f'SELECT entity_key, feature_name, value FROM "{table}" '
            f"WHERE entity_key IN ({','.join('?' * chunk)})"
            for view, table in tables.items()
        }

    def read(self, view: ViewPlan, keys: Sequence[Hashable]) -> dict[Hashable, Row | None]:
        encoded = {view.encoder(key): key for key in keys}
        position = {name: i for i, name in enumerate(view.features)}
        found: dict[bytes, list[Any]] = {}
        sql = self._sql[view.name]
        blobs = list(encoded)
        for start in range(0, len(blobs), self.chunk):
            batch = blobs[start : start + self.chunk]
            batch += [batch[-1]] * (self.chunk - len(batch))  # same statement, IN ignores repeats
            _fold_values(self._conn.execute(sql, batch), position, view.missing, found)
        rows: dict[Hashable, Row | None] = dict.fromkeys(keys)
        for entity_key, row in found.items():
            rows[encoded[entity_key]] = tuple(row)
        return rows

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the store (sqlite's
        `PRAGMA data_version`, on a connection kept for this): equal values mean no writes."""
        if self._watch is None:
            self._watch = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                check_same_thread=False,
                timeout=30.0,
            )
        return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def scan(
        self,
        view: ViewPlan,
        since_event_ts: Any = None,
        between_s: tuple[int, int] | None = None,
    ) -> tuple[dict[Hashable, Row | None], Any]:
        """Every row of the view, or those written with an event time after `since_event_ts`
        (and also, with `between_s`, those with an event time in that closed range of epoch
        seconds); and the latest event time among them (None when there are none).

        Runs on a connection of its own, so a replica's sync never shares one with requests.
        """
        position = {name: i for i, name in enumerate(view.features)}
        sql = f'SELECT entity_key, feature_name, value, event_ts FROM "{self.tables[view.name]}"'
        where, parameters = _scan_filter(since_event_ts, between_s)
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            result = conn.execute(sql + where, parameters).fetchall()
        finally:
            conn.close()
        found: dict[bytes, list[Any]] = {}
        _fold_values((r[:3] for r in result), position, view.missing, found)
        latest = max((r[3] for r in result if r[3] is not None), default=None)
        join_keys = view.join_keys
        rows: dict[Hashable, Row | None] = {
            decode_entity_key(entity_key, join_keys): tuple(row)
            for entity_key, row in found.items()
        }
        return rows, latest

    def close(self) -> None:
        self._conn.close()
        if self._watch is not None:
            self._watch.close()


def _scan_filter(
    since_event_ts: Any, between_s: tuple[int, int] | None
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause of a scan and its parameters (no watermark: every row)."""
    if since_event_ts is None:
        return "", ()
    if between_s is None:
        return " WHERE event_ts > ?", (since_event_ts,)
    return " WHERE event_ts > ? OR (event_ts >= ? AND event_ts <= ?)", (since_event_ts, *between_s)


def _fold_values(
    result: Iterable[tuple[bytes, str, bytes]],
    position: Mapping[str, int],
    missing: tuple[None, ...],
    found: dict[bytes, list[Any]],
) -> None:
    """Decode (entity_key, feature_name, value) rows of a Feast table into one list per key in
    `found` (features at `position`; others skipped; a feature without a row stays None)."""
    for entity_key, feature_name, value in result:
        slot = position.get(feature_name)
        if slot is None:
            continue
        row = found.get(entity_key)
        if row is None:
            row = found[entity_key] = list(missing)
        row[slot] = decode_value(value)


class FeastRows:
    """Any Feast online store (redis, ...) through the provider's `online_read`."""

    def __init__(self, store: Any) -> None:
        from feast.infra.provider import get_provider

        self.config = store.config
        self.provider = get_provider(store.config)

    def read(self, view: ViewPlan, keys: Sequence[Hashable]) -> dict[Hashable, Row | None]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
        from feast.value_type import ValueType

        unique = list(dict.fromkeys(keys))
        columns = list(zip(*(k if isinstance(k, tuple) else (k,) for k in unique), strict=True))
        protos = [
            python_values_to_proto_values(list(values), ValueType(view.encoder.value_types[name]))
            for name, values in zip(view.join_keys, columns, strict=True)
        ]
        entity_keys = [
            EntityKey(join_keys=list(view.join_keys), entity_values=list(values))
            for values in zip(*protos, strict=True)
        ]
        read = self.provider.online_read(
            config=self.config,
            table=view.table,
            entity_keys=entity_keys,
            requested_features=list(view.features),
        )
        rows: dict[Hashable, Row | None] = {}
        for key, (_, values) in zip(unique, read, strict=True):
            if values is None:
                rows[key] = None
                continue
            rows[key] = tuple(
                feast_value_type_to_python_type(values[f]) if f in values else None
                for f in view.features
            )
        return rows

    def close(self) -> None:
        pass


def open_reader(store: Any, plan: ServicePlan) -> RowReader:
    """The reader of the service's views in `store` (a feast.FeatureStore): plain queries of its
    tables for the sqlite online store, the provider's `online_read` for any other."""
    config = store.config
    if config.online_store.type != "sqlite":
        return FeastRows(store)
    if config.entity_key_serialization_version != ENTITY_KEY_SERIALIZATION_VERSION:
        raise NotImplementedError(
            f"entity keys are encoded here as version {ENTITY_KEY_SERIALIZATION_VERSION}, the "
            f"store uses {config.entity_key_serialization_version}"
        )
    from feast.infra.online_stores.helpers import compute_table_id

    versioned = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    tables = {v.name: compute_table_id(store.project, v.table, versioned) for v in plan.views}
    path = Path(config.online_store.path)
    if not path.is_absolute() and config.repo_path:
        path = Path(config.repo_path) / path
    return SqliteRows(path, tables)
