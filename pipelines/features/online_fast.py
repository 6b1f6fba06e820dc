"""Fast online hydration: Feast's own online rows, read directly, behind a bounded-staleness cache.

`FeatureStore.get_online_features` turns every value into protobuf messages and back, per request,
in Python: for one feed request (1500 candidates, the full `ranker_v1` service, ~30k stored values)
it costs several times a plain read of the same rows, and far more than the 20 ms a ranking
request can spend on features (`benchmarks/online_features.py` measures all three paths).
:class:`FastOnlineFeatures` serves the values of :class:`~pipelines.features.online.OnlineFeatures`
as columns (name -> array, vectors as [N, D] matrices; :func:`frame_of` gives the SDK's frame), by

- resolving the feature service once (views, join keys, on-demand views) from the Feast registry;
- reading the sqlite online store's tables directly: one prepared, fixed-size ``IN`` query per
  view and chunk, entity keys encoded as Feast encodes them (:func:`encode_entity_key`), values
  decoded by hand (:func:`decode_value`); other online stores (redis) are read through the Feast
  provider's `online_read`, which skips the SDK's per-request planning but not its decoding;
- caching each entity's decoded row in process for at most `cache_ttl_s` seconds, so a tweet or an
  author shared by many requests is read once per TTL. Served values are those Feast materialized
  (or pushed), at most `cache_ttl_s` old; keys absent from the store are cached as absent too;
- running each on-demand view's columns function (`spec.ON_DEMAND_COLUMNS`, the function its
  Feast pandas transformation wraps) on the view's declared inputs, outputs typed as Feast stores
  them, so request-time features match the SDK's to the bit; a view without one runs its own
  transformation on a frame (:func:`run_on_demand`).

Column order: entity columns (tweet_id, author_id, viewer_id), then each view's features in the
order the service declares, then on-demand outputs. Feast orders features within a view by a Python
set (so by string hash, per process); consumers select columns by name.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.features.spec import LIST_LIKE, ON_DEMAND_COLUMNS, present_rows
from pipelines.features.store import feature_service_name, feature_store

log = logging.getLogger(__name__)

# Hydrated features: name -> [N] values, or [N, D] float32 for a vector feature (rows of NaN where
# missing; a vector feature with no vector held, as in `hydrate_default`, is a [N] column of
# missing values); `frame_of` turns them into the frame the Feast SDK returns.
FeatureColumns = dict[str, np.ndarray]

ENTITY_KEY_SERIALIZATION_VERSION = 3
# Feast's ValueType numbers (feast.value_type.ValueType) of the entity value types encoded here.
VALUE_TYPE_BYTES, VALUE_TYPE_STRING, VALUE_TYPE_INT32, VALUE_TYPE_INT64 = 1, 2, 3, 4
# Keys per query: one prepared statement per view (the last chunk is padded with a repeated key).
SQLITE_CHUNK = 512
# Batch views change daily; pushed engagement counts reach requests within this many seconds.
DEFAULT_CACHE_TTL_S = 30.0
# Per view. A cached 64-d embedding is ~2.1 KB (a list of Python floats), a scalar row ~0.5 KB.
DEFAULT_MAX_CACHED_KEYS = 100_000
# Views with more keys than this stay on the per-key cache rather than a whole-table replica.
DEFAULT_REPLICA_MAX_KEYS = 2_000_000

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_I32 = struct.Struct("<i")
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_ENCODED_VALUE_TYPES = (VALUE_TYPE_BYTES, VALUE_TYPE_STRING, VALUE_TYPE_INT32, VALUE_TYPE_INT64)

# ------------------------------------------------------------------------------ entity keys


def entity_key_prefix(join_keys: Sequence[str]) -> bytes:
    """The join-key part of Feast's v3 entity key: count, then (STRING, length, utf-8) per key.

    `join_keys` must be sorted (Feast sorts them before encoding).
    """
    out = [_U32.pack(len(join_keys))]
    for name in join_keys:
        encoded = name.encode("utf8")
        out += [_U32.pack(VALUE_TYPE_STRING), _U32.pack(len(encoded)), encoded]
    return b"".join(out)


def encode_entity_value(value: Any, value_type: int) -> bytes:
    """One entity value as Feast's v3 key writes it: (type, length, payload)."""
    if value_type == VALUE_TYPE_INT64:
        payload = _I64.pack(int(value))
    elif value_type == VALUE_TYPE_INT32:
        payload = _I32.pack(int(value))
    elif value_type == VALUE_TYPE_STRING:
        payload = str(value).encode("utf8")
    elif value_type == VALUE_TYPE_BYTES:
        payload = bytes(value)
    else:
        raise NotImplementedError(f"entity value type {value_type} is not encoded here")
    return _U32.pack(value_type) + _U32.pack(len(payload)) + payload


def encode_entity_key(values: Mapping[str, Any], value_types: Mapping[str, int]) -> bytes:
    """`feast.infra.key_encoding_utils.serialize_entity_key`, version 3, for scalar entity values.

    values: join key -> value (int for INT64/INT32, str, bytes); value_types: join key -> Feast
    ValueType number. Keys are sorted by name, as Feast sorts them.
    """
    names = sorted(values)
    return entity_key_prefix(names) + b"".join(
        encode_entity_value(values[name], value_types[name]) for name in names
    )


class KeyEncoder:
    """Encodes one view's entity values (in its join key order) into Feast's sqlite key bytes."""

    def __init__(self, join_keys: Sequence[str], value_types: Sequence[int]) -> None:
        self.join_keys = tuple(join_keys)
        self.value_types = dict(zip(join_keys, value_types, strict=True))
        unsupported = sorted(set(value_types) - set(_ENCODED_VALUE_TYPES))
        if unsupported:
            raise NotImplementedError(f"entity value types {unsupported} are not encoded here")
        self._single_int64 = len(join_keys) == 1 and value_types[0] == VALUE_TYPE_INT64
        # For one INT64 key the bytes are a constant head and the 8-byte little-endian value.
        self._head = entity_key_prefix(self.join_keys) + _U32.pack(VALUE_TYPE_INT64) + _U32.pack(8)

    def __call__(self, key: Hashable) -> bytes:
        """key: the value itself for a one-key view, else a tuple in `join_keys` order."""
        if self._single_int64:
            return self._head + _I64.pack(key)  # type: ignore[arg-type]
        values = key if isinstance(key, tuple) else (key,)
        return encode_entity_key(dict(zip(self.join_keys, values, strict=True)), self.value_types)


def decode_entity_key(blob: bytes, join_keys: Sequence[str]) -> Hashable:
    """Feast's v3 sqlite key bytes -> the cache key (:meth:`ViewPlan.keys`): the value itself for
    a one-key view, else a tuple in `join_keys` order. The inverse of :class:`KeyEncoder`."""
    (count,) = _U32.unpack_from(blob, 0)
    pos = 4
    names = []
    for _ in range(count):
        (length,) = _U32.unpack_from(blob, pos + 4)
        names.append(blob[pos + 8 : pos + 8 + length].decode("utf8"))
        pos += 8 + length
    values: dict[str, Any] = {}
    for name in names:
        (value_type,) = _U32.unpack_from(blob, pos)
        (length,) = _U32.unpack_from(blob, pos + 4)
        payload = blob[pos + 8 : pos + 8 + length]
        pos += 8 + length
        if value_type == VALUE_TYPE_INT64:
            values[name] = _I64.unpack(payload)[0]
        elif value_type == VALUE_TYPE_INT32:
            values[name] = _I32.unpack(payload)[0]
        elif value_type == VALUE_TYPE_STRING:
            values[name] = payload.decode("utf8")
        elif value_type == VALUE_TYPE_BYTES:
            values[name] = payload
        else:
            raise NotImplementedError(f"entity value type {value_type} is not decoded here")
    if len(join_keys) == 1:
        return values[join_keys[0]]
    return tuple(values[name] for name in join_keys)


# ----------------------------------------------------------------------------------- values


def _varint(blob: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at `pos` -> (value, position after it)."""
    result = shift = 0
    while True:
        byte = blob[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_generic(blob: bytes) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(Value.FromString(blob))


def decode_value(blob: bytes | None) -> Any:
    """A serialized feast `Value` -> the Python value `OnlineResponse.to_dict` gives for it.

    Hand-decodes the scalar types and float lists (a tag byte, then the payload; ~5x faster than
    parsing the message) and hands anything else to Feast's own conversion. A float list comes
    back as a float32 array holding the SDK's values (the SDK gives a list), an int64 list as an
    int64 array.
    """
    if not blob:
        return None  # an empty message is Feast's null
    tag = blob[0]
    if tag == 0x29:  # double_val (field 5, fixed64)
        return _DOUBLE.unpack_from(blob, 1)[0]
    if tag == 0x20:  # int64_val (field 4, varint)
        return _signed64(_varint(blob, 1)[0])
    if tag == 0x12:  # string_val (field 2, length-delimited)
        length, start = _varint(blob, 1)
        return blob[start : start + length].decode("utf8")
    if tag == 0x35:  # float_val (field 6, fixed32): Python widens the float32
        return _FLOAT.unpack_from(blob, 1)[0]
    if tag == 0x18:  # int32_val (field 3, varint; negatives are sign-extended to 64 bits)
        return _signed64(_varint(blob, 1)[0])
    if tag == 0x38:  # bool_val (field 7, varint)
        return _varint(blob, 1)[0] != 0
    if tag == 0x72:  # int64_list_val (field 14): ids, as an array (concatenated per request)
        ids = np.array(_decode_generic(blob), dtype=np.int64)
        ids.flags.writeable = False  # shared by every request that gathers this row
        return ids
    if tag == 0x82 and len(blob) > 2 and blob[1] == 0x01:  # float_list_val (field 16)
        floats = _decode_float_list(blob)
        if floats is not None:
            return floats
    return _decode_generic(blob)


def _decode_float_list(blob: bytes) -> np.ndarray | None:
    """float_list_val whose FloatList is one packed field -> a read-only float32 array [D] (the
    ranker stacks vectors, and stacking arrays is ~10x faster than lists of Python floats); None
    for any other layout."""
    length, start = _varint(blob, 2)
    if start + length != len(blob):
        return None
    if length == 0:
        return np.empty(0, dtype=np.float32)
    if blob[start] != 0x0A:
        return None
    packed, data = _varint(blob, start + 1)
    if data + packed != len(blob) or packed % 4:
        return None
    # The wire is little-endian; "<f4" reads it so on any machine.
    return np.frombuffer(blob, dtype="<f4", offset=data).astype(np.float32, copy=False)


def frame_column(values: list[Any], kind: str) -> np.ndarray | list[Any]:
    """A column of Feast Python values as `pd.DataFrame` would type it, built directly.

    kind: "number", "bool", "vector" or "other" (a vector is framed as "other"). pandas types
    python ints int64, floats float64, numbers with a None float64 (None -> NaN) and anything else
    object; a typed array (an object array for "other") is several times faster to frame than the
    list.
    """
    if not values:
        return values
    nulls = values.count(None) if kind != "other" else 0
    if kind == "number" and nulls < len(values):
        typed = np.array(values, dtype=np.float64 if nulls else None)  # None -> NaN
        if typed.dtype.kind in "if":
            return typed
    if kind == "bool" and nulls == 0:
        return np.array(values, dtype=bool)
    return object_column(values)


def object_column(values: list[Any]) -> np.ndarray:
    """[N] object array holding `values` as they are (lists and arrays stay one element each)."""
    return np.fromiter(values, dtype=object, count=len(values))


def on_demand_column(values: np.ndarray, value_type: int) -> np.ndarray | list[Any]:
    """An on-demand output [N] as the SDK's frame holds it: through a feast `Value` and back.

    Floats keep their value (FLOAT is rounded to float32) and NaN becomes a null, so a column of
    NaN only is an object column of None; other types go through Feast's own conversion.
    """
    floats = on_demand_floats(values, value_type)
    if floats is not None:
        return [None] * len(floats) if np.isnan(floats).all() else floats
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
    from feast.value_type import ValueType

    # Feast hands the array itself to this conversion, so it is given the same here.
    protos = python_values_to_proto_values(cast(list[Any], values), ValueType(value_type))
    return frame_column(
        [feast_value_type_to_python_type(p) for p in protos], column_kind(value_type)
    )


def on_demand_floats(values: np.ndarray, value_type: int) -> np.ndarray | None:
    """A numeric on-demand output of a float type as Feast stores it (float64; FLOAT rounded to
    float32), NaN kept; None for any other output."""
    from feast.value_type import ValueType

    if value_type not in (ValueType.DOUBLE.value, ValueType.FLOAT.value):
        return None
    if values.dtype.kind not in "fiu":
        return None
    floats = values.astype(np.float64)
    if value_type == ValueType.FLOAT.value:
        floats = floats.astype(np.float32).astype(np.float64)
    return floats


def column_kind(value_type: int) -> str:
    """How :func:`frame_column` types a feature of this Feast ValueType number; "vector" (a
    float32 list) is framed as "other" but held as a matrix too (see :class:`ViewColumns`)."""
    from feast.value_type import ValueType

    kinds = {
        ValueType.INT64.value: "number",
        ValueType.INT32.value: "number",
        ValueType.DOUBLE.value: "number",
        ValueType.FLOAT.value: "number",
        ValueType.BOOL.value: "bool",
        ValueType.FLOAT_LIST.value: "vector",
    }
    return kinds.get(value_type, "other")


# ------------------------------------------------------------------------------ the service


@dataclass(frozen=True)
class ViewPlan:
    """One feature view of the service: what to read and how its rows are keyed.

    join_keys: the view's join keys, in the order its cache keys hold them; request_columns: the
    hydrate columns that carry them (Feast's join_key_map may rename); features: names, in order.
    """

    name: str
    table: Any  # feast.FeatureView
    join_keys: tuple[str, ...]
    request_columns: tuple[str, ...]
    features: tuple[str, ...]
    kinds: tuple[str, ...]
    encoder: KeyEncoder
    missing: tuple[None, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "missing", (None,) * len(self.features))

    def keys(self, columns: Mapping[str, list[Any]]) -> list[Hashable]:
        """Cache keys, one per request row: the value itself for a one-key view, else a tuple."""
        if len(self.request_columns) == 1:
            return columns[self.request_columns[0]]
        return list(zip(*(columns[c] for c in self.request_columns), strict=True))


@dataclass(frozen=True)
class OnDemandPlan:
    """One on-demand view: its Feast object, what it reads, what it returns (name, ValueType)."""

    view: Any  # feast.OnDemandFeatureView
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ServicePlan:
    views: tuple[ViewPlan, ...]
    on_demand: tuple[OnDemandPlan, ...]


def plan_service(store: Any, service: Any, request_columns: Sequence[str]) -> ServicePlan:
    """Resolve a feature service against the registry into what hydration reads and computes.

    store: a feast.FeatureStore; service: a feast.FeatureService; request_columns: the entity and
    request-data columns every hydrate call provides.
    """
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    projections = service.feature_view_projections
    views = [
        _plan_view(store.get_feature_view(p.name), p, request_columns)
        for p in projections
        if p.name not in odfv_names
    ]
    on_demand = [
        _plan_on_demand(store.get_on_demand_feature_view(p.name), p, views, request_columns)
        for p in projections
        if p.name in odfv_names
    ]
    names = [f for view in views for f in view.features]
    names += [name for plan in on_demand for name, _ in plan.outputs]
    duplicated = sorted(
        {n for n in names if names.count(n) > 1} | (set(names) & {*request_columns})
    )
    if duplicated:
        raise ValueError(f"feature names {duplicated} are not unique in service {service.name}")
    return ServicePlan(views=tuple(views), on_demand=tuple(on_demand))


def _plan_view(table: Any, projection: Any, request_columns: Sequence[str]) -> ViewPlan:
    join_keys = tuple(column.name for column in table.entity_columns)
    value_types = [column.dtype.to_value_type().value for column in table.entity_columns]
    mapped = tuple(projection.join_key_map.get(key, key) for key in join_keys)
    lacking = sorted(set(mapped) - set(request_columns))
    if lacking:
        raise ValueError(f"view {table.name} is keyed by {lacking}, which hydrate lacks")
    return ViewPlan(
        name=table.name,
        table=table,
        join_keys=join_keys,
        request_columns=mapped,
        features=tuple(f.name for f in projection.features),
        kinds=tuple(column_kind(f.dtype.to_value_type().value) for f in projection.features),
        encoder=KeyEncoder(join_keys, value_types),
    )


def _plan_on_demand(
    odfv: Any, projection: Any, views: Sequence[ViewPlan], request_columns: Sequence[str]
) -> OnDemandPlan:
    """The SDK gives a pandas on-demand view the entity columns, the request data and the features
    of its declared sources (no others); the same inputs are handed over here."""
    if odfv.mode != "pandas" or odfv.aggregations or odfv.write_to_online_store:
        raise NotImplementedError(f"on-demand view {odfv.name}: only pandas transforms are run")
    sources = {p.name for p in odfv.source_feature_view_projections.values()}
    known = {view.name for view in views}
    if not sources <= known:
        # The SDK would read them and drop them from its answer; not done here.
        missing = sorted(sources - known)
        raise ValueError(f"on-demand view {odfv.name} reads views {missing} the service lacks")
    request_fields = [f.name for s in odfv.source_request_sources.values() for f in s.schema]
    lacking = sorted(set(request_fields) - set(request_columns))
    if lacking:
        raise ValueError(f"on-demand view {odfv.name} needs request data {lacking}")
    inputs = [c for c in request_columns if c in request_fields or c in _entity_columns(views)]
    inputs += [f for view in views if view.name in sources for f in view.features]
    outputs = tuple((f.name, f.dtype.to_value_type().value) for f in projection.features)
    return OnDemandPlan(view=odfv, inputs=tuple(inputs), outputs=outputs)


def _entity_columns(views: Iterable[ViewPlan]) -> set[str]:
    return {column for view in views for column in view.request_columns}


# ------------------------------------------------------------------------------- the stores


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
        self, view: ViewPlan, since_event_ts: Any = None
    ) -> tuple[dict[Hashable, Row | None], Any]:
        """Every row of the view (or those written with an event time after
        `since_event_ts`) and the latest event time among them (None when there are none).

        Runs on a connection of its own, so a replica's sync never shares one with requests.
        """
        position = {name: i for i, name in enumerate(view.features)}
        sql = f'SELECT entity_key, feature_name, value, event_ts FROM "{self.tables[view.name]}"'
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            if since_event_ts is None:
                result = conn.execute(sql).fetchall()
            else:
                result = conn.execute(sql + " WHERE event_ts > ?", (since_event_ts,)).fetchall()
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


# -------------------------------------------------------------------------------- the cache


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    store_reads: int = 0


# The key of the slot a replicated view holds for keys its table lacks (never a real key).
_ABSENT: Hashable = object()


def _key_codes(keys: Sequence[Hashable]) -> tuple[np.ndarray, int] | None:
    """([N] int64 code of each key, key width): an int key is its own code (width 1), a pair of
    non-negative 32-bit ints is packed into one (width 2); None for any other keys."""
    if not keys:
        return None
    first = keys[0]
    if type(first) is not int and not (type(first) is tuple and len(first) == 2):
        return None
    try:
        values = np.array(keys)
    except (TypeError, ValueError, OverflowError):
        return None
    if values.dtype.kind != "i":  # a float, a string, a mix: looked up one by one
        return None
    if values.shape == (len(keys),):
        return values.astype(np.int64), 1
    if values.shape == (len(keys), 2) and values.min() >= 0 and values.max() < 2**31:
        return (values[:, 0].astype(np.int64) << 32) | values[:, 1], 2
    return None


def _distinct(keys: Sequence[Hashable]) -> tuple[list[int], np.ndarray, np.ndarray, int] | None:
    """(the position of each distinct key's first occurrence, [N] which distinct key each
    position holds, [D] the distinct keys' codes, key width; see `_key_codes`) for int keys or
    pairs of non-negative 32-bit ints; None for other keys or a short list (not worth it)."""
    if len(keys) < 64:
        return None
    coded = _key_codes(keys)
    if coded is None:
        return None
    codes, width = coded
    distinct, firsts, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return firsts.tolist(), inverse.reshape(-1), distinct, width


class ViewColumns:
    """One view's cached values held column-wise, so a request gathers each feature for all its
    keys with one numpy take instead of transposing rows in Python.

    Slot `i` holds one key: when it was loaded, whether the store had it, and each feature's
    value. "number" features live in a float64 array (plus a null mask; a feature whose values are
    Python ints comes back int64, as pandas types a list of ints); the others in object arrays.
    "vector" features are also held as a float32 matrix [slots, D] (a NaN row where the vector is
    missing), which `gather` hands out whole; a feature whose vectors come in two lengths loses its
    matrix and is gathered as objects, as the frame holds it.
    """

    def __init__(self, view: ViewPlan, capacity: int = 1024) -> None:
        self.view = view
        self.index: dict[Hashable, int] = {}
        self.keys: list[Hashable] = []
        self.loaded_at = np.zeros(capacity)
        self.present = np.zeros(capacity, dtype=bool)
        self.numeric = [kind == "number" for kind in view.kinds]
        self.integral = [False] * len(view.features)
        self.values = [self._empty(i, capacity) for i in range(len(view.features))]
        self.nulls = [np.ones(capacity, dtype=bool) for _ in view.features]
        self.vector = [kind == "vector" for kind in view.kinds]
        self.dense: dict[int, np.ndarray] = {}  # vector feature -> [capacity, D] float32
        self.ragged: set[int] = set()  # vector features seen with two lengths: no matrix
        # (sorted key codes, their slots, key width, keys held when built): see index_codes.
        self._codes: tuple[np.ndarray, np.ndarray, int, int] | None = None

    @classmethod
    def replica(
        cls, view: ViewPlan, rows: Mapping[Hashable, Row | None], now: float
    ) -> ViewColumns:
        """Columns holding exactly `rows` (a whole table), with slot 0 an absent row: a key the
        table lacks maps there."""
        held = cls(view, capacity=len(rows) + 1)
        held.store({_ABSENT: None}, now)
        held.store(rows, now)
        held.index_codes()
        return held

    def _empty(self, feature: int, capacity: int) -> np.ndarray:
        if self.numeric[feature]:
            return np.zeros(capacity, dtype=np.float64)
        return np.full(capacity, None, dtype=object)

    def _grow(self, needed: int) -> None:
        capacity = len(self.loaded_at)
        if needed <= capacity:
            return
        size = max(needed, 2 * capacity)

        def grown(array: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(size, fill, dtype=array.dtype)
            out[:capacity] = array
            return out

        self.loaded_at = grown(self.loaded_at, 0.0)
        self.present = grown(self.present, False)
        self.values = [grown(v, 0.0 if v.dtype != object else None) for v in self.values]
        self.nulls = [grown(n, True) for n in self.nulls]
        for feature, matrix in self.dense.items():
            wider = np.full((size, matrix.shape[1]), np.nan, dtype=np.float32)
            wider[:capacity] = matrix
            self.dense[feature] = wider

    def slots(self, keys: Sequence[Hashable]) -> np.ndarray:
        """[N] slot of each key, -1 where the key is not held.

        Each distinct key is looked up once: a feed request repeats its viewer on every row and
        an author on several. With a code index (see `index_codes`), int and pair keys are
        found by one binary search; only keys it cannot answer go through the dict."""
        get = self.index.get
        distinct = _distinct(keys)
        if distinct is None:
            return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        firsts, inverse, codes, width = distinct
        coded = self._coded_slots(codes, width)
        if coded is None:
            found = np.fromiter(
                (get(keys[i], -1) for i in firsts), dtype=np.int64, count=len(firsts)
            )
        else:
            found, unsure = coded
            for i in np.flatnonzero(unsure).tolist():
                found[i] = get(keys[firsts[i]], -1)
        return found[inverse]

    def index_codes(self) -> bool:
        """Sort the codes of the held keys (`_key_codes`) for `slots`; False when the keys have
        none (strings, floats, a mix). Keys stored later are found through the dict until the
        index is extended, which `slots` does once they are more than 5% of it."""
        if self._codes is not None:  # extend: code only the keys stored since
            sorted_codes, sorted_slots, width, indexed = self._codes
            if indexed == len(self.keys):
                return True
            added = _key_codes(self.keys[indexed:])
            if added is not None and added[1] == width:
                codes = np.concatenate([sorted_codes, added[0]])
                slots = np.concatenate([sorted_slots, np.arange(indexed, len(self.keys))])
                order = np.argsort(codes, kind="stable")
                self._codes = (codes[order], slots[order], width, len(self.keys))
                return True
        keys = self.keys[1:] if self.keys and self.keys[0] is _ABSENT else self.keys
        offset = len(self.keys) - len(keys)
        coded = _key_codes(keys)
        if coded is None:
            self._codes = None
            return False
        codes, width = coded
        order = np.argsort(codes, kind="stable")
        self._codes = (codes[order], order + offset, width, len(self.keys))
        return True

    def _coded_slots(self, codes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(slot of each code, -1 where not indexed; which codes the dict must still answer), or
        None without a usable index."""
        if self._codes is None or self._codes[2] != width:
            return None
        indexed = self._codes[3]
        if len(self.keys) - indexed > max(1024, indexed // 20) and not self.index_codes():
            return None
        assert self._codes is not None
        sorted_codes, sorted_slots, _, indexed = self._codes
        if not len(sorted_codes):
            return None
        at = np.minimum(np.searchsorted(sorted_codes, codes), len(sorted_codes) - 1)
        hit = sorted_codes[at] == codes
        found = np.where(hit, sorted_slots[at], -1)
        # Keys stored since the index was built are only in the dict.
        unsure = ~hit if len(self.keys) > indexed else np.zeros(len(codes), dtype=bool)
        return found, unsure

    def store(self, rows: Mapping[Hashable, Row | None], now: float) -> None:
        """Write freshly read rows (None: the store has no such key) as loaded at `now`."""
        index = self.index
        self._grow(len(self.keys) + sum(1 for key in rows if key not in index))
        for key, row in rows.items():
            slot = self.index.get(key)
            if slot is None:
                slot = self.index[key] = len(self.keys)
                self.keys.append(key)
            self.loaded_at[slot] = now
            self.present[slot] = row is not None
            for feature, value in enumerate(row if row is not None else self.view.missing):
                self.nulls[feature][slot] = value is None
                if self.vector[feature]:
                    self._store_vector(feature, slot, value)
                if value is None:
                    self.values[feature][slot] = 0.0 if self.numeric[feature] else None
                    continue
                if self.numeric[feature] and type(value) is int:
                    self.integral[feature] = True
                self.values[feature][slot] = value

    def _store_vector(self, feature: int, slot: int, value: Any) -> None:
        if feature in self.ragged:
            return
        matrix = self.dense.get(feature)
        is_vector = isinstance(value, LIST_LIKE) and len(value) > 0
        if matrix is None:
            if not is_vector:
                return  # no matrix yet: every slot so far is missing
            width = len(value)
            matrix = np.full((len(self.loaded_at), width), np.nan, dtype=np.float32)
            self.dense[feature] = matrix
        if not is_vector:
            matrix[slot] = np.nan
        elif len(value) == matrix.shape[1]:
            matrix[slot] = value
        else:  # vectors of two lengths: no matrix; gathered one object per row from now on
            del self.dense[feature]
            self.ragged.add(feature)
            log.warning(
                "view %s: feature %s holds vectors of lengths %d and %d; served as objects",
                self.view.name,
                self.view.features[feature],
                matrix.shape[1],
                len(value),
            )

    def row(self, slot: int) -> Row:
        """The values of one slot as the reader returned them (None where null)."""
        out = []
        for feature, values in enumerate(self.values):
            value = values[slot]
            if self.nulls[feature][slot]:
                value = None
            elif self.numeric[feature]:
                value = int(value) if self.integral[feature] else float(value)
            out.append(value)
        return tuple(out)

    def keep_newest(self, count: int) -> None:
        """Drop all but the `count` most recently loaded keys (ties: the later-added is newer)."""
        held = len(self.keys)
        order = np.argsort(self.loaded_at[:held], kind="stable")[held - count :]
        order.sort()
        self.keys = [self.keys[i] for i in order]
        self.index = {key: slot for slot, key in enumerate(self.keys)}
        self._codes = None  # slots moved
        self.loaded_at[:count] = self.loaded_at[order]
        self.present[:count] = self.present[order]
        for feature in range(len(self.values)):
            self.values[feature][:count] = self.values[feature][order]
            self.nulls[feature][:count] = self.nulls[feature][order]
        for matrix in self.dense.values():
            matrix[:count] = matrix[order]

    def gather(self, slots: np.ndarray) -> list[np.ndarray]:
        """One column per feature for these slots, typed as `pd.DataFrame` types the SDK's lists:
        numbers int64 or float64 (float64 with NaN where some are null, an all-null column holds
        None), bools bool where none is null, anything else object. A vector feature held as a
        matrix comes as its [N, D] float32 rows (NaN rows where missing); one seen with two
        lengths, as one object per row."""
        columns: list[np.ndarray] = []
        for feature, kind in enumerate(self.view.kinds):
            if feature in self.dense:
                columns.append(self.dense[feature][slots])
                continue
            nulls = self.nulls[feature][slots]
            values = self.values[feature][slots]
            if len(slots) and nulls.all():
                columns.append(np.full(len(slots), None, dtype=object))
            elif self.numeric[feature]:
                if nulls.any():
                    values[nulls] = np.nan
                elif self.integral[feature]:
                    values = values.astype(np.int64)
                columns.append(values)
            elif kind == "bool" and not nulls.any():
                columns.append(values.astype(bool))
            else:
                columns.append(values)
        return columns


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

    def clear(self) -> None:
        self._views.clear()
        self._replicated.clear()


# ------------------------------------------------------------------------------- hydration


class FastOnlineFeatures:
    """`OnlineFeatures`' values as columns (:data:`FeatureColumns`), read directly and cached.

    cache_ttl_s: how long a decoded row may be served before it is read again (seconds; 0 reads
    the store on every request); max_cached_keys: per view; clock: monotonic seconds (tests pass a
    fake); replica_max_keys: the largest view :meth:`replicate` holds whole. The service is
    resolved once, here: a `feast apply` that changes it needs a new instance. Id-list values
    (int64 arrays) in returned columns are shared with the cache: read-only.
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
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        max_cached_keys: int = DEFAULT_MAX_CACHED_KEYS,
        clock: Callable[[], float] = time.monotonic,
        batch_ttl_s: float | None = None,
        replica_max_keys: int = DEFAULT_REPLICA_MAX_KEYS,
    ) -> None:
        self.cfg = cfg
        self.replica_max_keys = replica_max_keys
        store = feature_store(cfg)
        self.service = store.get_feature_service(feature_service_name(cfg))
        self.plan = plan_service(store, self.service, self.REQUEST_COLUMNS)
        self.reader = _reader(store, self.plan)
        self.cache = RowCache(
            self.reader, cache_ttl_s, max_cached_keys, clock, batch_ttl_s=batch_ttl_s
        )
        self._lock = threading.Lock()
        # Seconds the last hydrate spent reading rows and in on-demand views.
        self.last_timings: dict[str, float] = {}
        # The replica (see `replicate`): the latest event time synced per view, and its thread.
        self._watermarks: dict[str, Any] = {}
        self._synced_version: int | None = None  # the store's data_version at the last sync
        self._sync_stop = threading.Event()
        self._sync_thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ replica

    def replicate(self) -> dict[str, int]:
        """Load whole views into memory, so requests never wait on the store: every view whose
        table holds at most `replica_max_keys` keys (larger ones keep the per-key cache). Returns the
        keys held per replicated view. Only the sqlite online store can be scanned; with
        another store nothing is replicated. Call :meth:`sync` (or :meth:`start_sync`) to keep
        the replica current; calling this again reloads every view whole.
        """
        reader = self.reader
        if not isinstance(reader, SqliteRows):
            log.info("online store %s cannot be scanned: no replica", type(reader).__name__)
            return {}
        held: dict[str, int] = {}
        started = time.perf_counter()
        self._synced_version = reader.data_version()
        for view in self.plan.views:
            rows, latest = reader.scan(view)
            if len(rows) > self.replica_max_keys:
                log.info(
                    "view %s holds %d keys > %d: not replicated",
                    view.name,
                    len(rows),
                    self.replica_max_keys,
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
        the next :meth:`replicate`."""
        changed = 0
        reader = self.reader
        if not self.cache.replicated or not isinstance(reader, SqliteRows):
            return 0
        version = reader.data_version()
        if version == self._synced_version:
            return 0  # nothing committed since the last sync: no scan
        self._synced_version = version
        for view in self.plan.views:
            if view.name not in self.cache.replicated:
                continue
            watermark = self._watermarks.get(view.name)
            rows, latest = reader.scan(view, watermark)
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
        `full_every_s` (0: never) on a daemon thread, until :meth:`close`."""
        if self._sync_thread is not None:
            return
        if interval_s <= 0:
            raise ValueError("the replica's sync interval must be > 0 seconds")

        def loop() -> None:
            last_full = time.monotonic()
            while not self._sync_stop.wait(interval_s):
                try:
                    if full_every_s and time.monotonic() - last_full >= full_every_s:
                        self.replicate()
                        last_full = time.monotonic()
                    else:
                        self.sync()
                except Exception as exc:  # the replica keeps serving what it holds
                    log.warning("online feature replica: sync failed (%r)", exc)

        self._sync_thread = threading.Thread(target=loop, name="feedrank-feature-sync", daemon=True)
        self._sync_thread.start()

    @classmethod
    def for_serving(cls, cfg: FeedrankConfig) -> FastOnlineFeatures:
        """The online features of a serving replica, as `serve` configures them: the per-key
        cache, and with `serve.feature_replica` the views held in memory and synced."""
        features = cls(
            cfg,
            batch_ttl_s=cfg.serve.batch_feature_ttl_s,
            replica_max_keys=cfg.serve.feature_replica_max_keys,
        )
        if cfg.serve.feature_replica:
            features.replicate()
            features.start_sync(cfg.serve.feature_sync_interval_s, cfg.serve.feature_full_sync_s)
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

    def clear_cache(self) -> None:
        with self._lock:
            self.cache.clear()

    def close(self) -> None:
        self._sync_stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=30)
        self.reader.close()


def _request_data(request: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    """The request-data columns (request_time_s, viewer_follows_author) as typed arrays."""
    return {
        "request_time_s": np.asarray(request["request_time_s"], dtype=np.float64),
        "viewer_follows_author": np.asarray(request["viewer_follows_author"], dtype=np.int64),
    }


def _reader(store: Any, plan: ServicePlan) -> RowReader:
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


def run_on_demand(
    plan: OnDemandPlan, columns: Mapping[str, np.ndarray | list[Any]]
) -> dict[str, np.ndarray | list[Any]]:
    """Run one on-demand view's own pandas transformation on its inputs, each output through a
    feast `Value` and back, as the SDK does.

    The SDK goes pandas -> arrow -> pandas around the same function (`transform_arrow`); the
    frame handed over here holds the same values typed as that round trip types them (numbers
    with nulls as float64 with NaN, vectors as arrays), without the two conversions, which cost
    more than the transformation itself.
    """
    frame = pd.DataFrame({name: _framed(columns[name]) for name in plan.inputs})
    result = plan.view.feature_transformation.transform(frame)
    return {
        name: on_demand_column(result[name].to_numpy(), value_type)
        for name, value_type in plan.outputs
    }


def run_on_demand_columns(
    plan: OnDemandPlan, columns: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One on-demand view over columns: the function its pandas transformation wraps
    (`spec.ON_DEMAND_COLUMNS`), called on the columns without a frame, outputs typed as the
    view declares them; a view without such a function runs its own transformation
    (:func:`run_on_demand`) on a frame of the columns."""
    function = ON_DEMAND_COLUMNS.get(plan.view.name)
    if function is None:
        return {name: np.asarray(values) for name, values in run_on_demand(plan, columns).items()}
    result = function({name: columns[name] for name in plan.inputs})  # what Feast would give it
    out: dict[str, np.ndarray] = {}
    for name, value_type in plan.outputs:
        floats = on_demand_floats(result[name], value_type)  # NaN stays NaN: `frame_of` frames it
        out[name] = (
            floats if floats is not None else np.asarray(on_demand_column(result[name], value_type))
        )
    return out


def _framed(values: np.ndarray | list[Any]) -> np.ndarray | list[Any]:
    """A column as the SDK's frame holds it: a vector matrix [N, D] becomes one array per row
    (None for a NaN row), a column of NaN only a column of None."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        present = present_rows(values)
        return object_column(
            [row if keep else None for row, keep in zip(values, present, strict=True)]
        )
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and np.isnan(values).all():
        return np.full(len(values), None, dtype=object)  # as the SDK frames an all-null column
    return values


def frame_of(columns: FeatureColumns) -> pd.DataFrame:
    """Hydrated columns as the frame `OnlineFeatures.hydrate` returns (vectors one per row)."""
    return pd.DataFrame({name: _framed(values) for name, values in columns.items()})


def feature_frame_differences(got: pd.DataFrame, expected: pd.DataFrame) -> list[str]:
    """Columns whose values differ between two hydrated frames, compared by value: a vector as a
    list or as an array is the same vector, NaN equals NaN and None, numbers compare exactly.
    Columns in one frame only are reported too; column order is ignored."""
    differing = sorted(set(got.columns) ^ set(expected.columns))
    if len(got) != len(expected):
        return ["<row count>", *differing]
    for name in [c for c in expected.columns if c in got.columns]:
        if not all(
            _same_value(a, b)
            for a, b in zip(got[name].to_numpy(), expected[name].to_numpy(), strict=True)
        ):
            differing.append(name)
    return differing


def _same_value(a: Any, b: Any) -> bool:
    a_seq = isinstance(a, list | tuple | np.ndarray)
    b_seq = isinstance(b, list | tuple | np.ndarray)
    if a_seq or b_seq:
        if not (a_seq and b_seq) or len(a) != len(b):
            return False
        return all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    a_null = a is None or (isinstance(a, float) and np.isnan(a))
    b_null = b is None or (isinstance(b, float) and np.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    return bool(a == b)
