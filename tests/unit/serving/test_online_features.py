"""The pure parts of serving's online features, checked against Feast's own encoders and pandas."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import types
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.features.cache import RowCache
from serving.features.columns import ViewColumns
from serving.features.keys import (
    VALUE_TYPE_INT32,
    VALUE_TYPE_INT64,
    VALUE_TYPE_STRING,
    KeyEncoder,
    decode_entity_key,
    encode_entity_key,
)
from serving.features.on_demand import on_demand_column
from serving.features.plan import ViewPlan
from serving.features.readers import Row, SqliteRows
from serving.features.values import column_kind, decode_value, frame_column
from tests.utils.fakes import Clock


def _feast_key(values: dict[str, Any], value_fields: dict[str, str]) -> bytes:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    proto = EntityKey(
        join_keys=list(values),
        entity_values=[Value(**{value_fields[k]: v}) for k, v in values.items()],
    )
    return serialize_entity_key(proto, entity_key_serialization_version=3)


@pytest.mark.parametrize("tweet_id", [0, 1, 255, 1_000_123, 2**40 + 7, -3, 2**63 - 1, -(2**63)])
def test_one_int64_key_is_encoded_as_feast_encodes_it(tweet_id: int) -> None:
    expected = _feast_key({"tweet_id": tweet_id}, {"tweet_id": "int64_val"})
    assert encode_entity_key({"tweet_id": tweet_id}, {"tweet_id": VALUE_TYPE_INT64}) == expected
    assert KeyEncoder(["tweet_id"], [VALUE_TYPE_INT64])(tweet_id) == expected


def test_composite_keys_are_sorted_by_join_key_as_feast_sorts_them() -> None:
    # The view lists viewer before author; Feast (and the encoder) sort the names.
    expected = _feast_key(
        {"viewer_id": 7, "author_id": 123456}, {"viewer_id": "int64_val", "author_id": "int64_val"}
    )
    encoder = KeyEncoder(["viewer_id", "author_id"], [VALUE_TYPE_INT64, VALUE_TYPE_INT64])
    assert encoder((7, 123456)) == expected
    assert expected.startswith(b"\x02\x00\x00\x00")  # two join keys


def test_string_and_int32_keys_are_encoded_as_feast_encodes_them() -> None:
    values = {"lang": "pt-BR", "bucket": -4}
    expected = _feast_key(values, {"lang": "string_val", "bucket": "int32_val"})
    types = {"lang": VALUE_TYPE_STRING, "bucket": VALUE_TYPE_INT32}
    assert encode_entity_key(values, types) == expected
    assert KeyEncoder(["lang", "bucket"], [VALUE_TYPE_STRING, VALUE_TYPE_INT32])(("pt-BR", -4)) == (
        expected
    )


def test_unsupported_entity_types_are_refused() -> None:
    with pytest.raises(NotImplementedError):
        KeyEncoder(["when"], [6])  # ValueType.UNIX_TIMESTAMP


def _values() -> list[Any]:
    from feast.protos.feast.types.Value_pb2 import Value

    embedding = Value()
    embedding.float_list_val.val.extend(np.linspace(-1, 1, 64, dtype=np.float32).tolist())
    empty_list = Value()
    empty_list.float_list_val.SetInParent()
    doubles = Value()
    doubles.double_list_val.val.extend([0.5, -2.0])
    ints = Value()
    ints.int64_list_val.val.extend([1, -2, 2**40])
    return [
        Value(),  # null
        Value(double_val=0.0),
        Value(double_val=-1.5),
        Value(double_val=float("inf")),
        Value(double_val=0.1 + 0.2),
        Value(int64_val=0),
        Value(int64_val=127),
        Value(int64_val=128),
        Value(int64_val=2**40 + 3),
        Value(int64_val=-5),
        Value(int64_val=-(2**63)),
        Value(int32_val=-7),
        Value(int32_val=300),
        Value(float_val=0.1),
        Value(bool_val=True),
        Value(bool_val=False),
        Value(string_val=""),
        Value(string_val="en"),
        Value(string_val="héllo wörld " * 20),  # a two-byte length
        Value(unix_timestamp_val=1_700_000_000),  # handed to Feast
        embedding,
        empty_list,
        doubles,
        ints,
    ]


@pytest.mark.parametrize("index", range(len(_values())))
def test_values_decode_as_the_sdk_converts_them(index: int) -> None:
    from feast.type_map import feast_value_type_to_python_type

    value = _values()[index]
    blob = value.SerializeToString()
    expected = feast_value_type_to_python_type(value)
    got = decode_value(blob)
    if value.WhichOneof("val") == "float_list_val":
        # float lists come back as float32 arrays of the same values (stacked without copying)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert got.tolist() == expected
        return
    if value.WhichOneof("val") == "int64_list_val":
        # id lists come back as read-only int64 arrays of the same values
        assert isinstance(got, np.ndarray) and got.dtype == np.int64
        assert not got.flags.writeable
        assert got.tolist() == expected
        return
    assert type(got) is type(expected)
    assert got == expected


def test_nan_double_decodes_to_nan() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    assert math.isnan(decode_value(Value(double_val=float("nan")).SerializeToString()))
    assert decode_value(None) is None


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, 3], "number"),
        ([1, None, 3], "number"),
        ([None, None], "number"),
        ([0.5, None], "number"),
        ([1.0, 2.0], "number"),
        ([1, 2.5], "number"),
        ([2**70, 1], "number"),
        ([True, False], "bool"),
        ([True, None], "bool"),
        (["en", None], "other"),
        ([[0.1, 0.2], None], "other"),
    ],
)
def test_frame_columns_are_typed_as_pandas_types_the_lists(values: list[Any], kind: str) -> None:
    expected = pd.DataFrame({"x": values})
    got = pd.DataFrame({"x": frame_column(list(values), kind)})
    pd.testing.assert_frame_equal(got, expected)


def test_column_kinds_follow_feast_value_types() -> None:
    from feast.value_type import ValueType

    assert column_kind(ValueType.INT64.value) == "number"
    assert column_kind(ValueType.FLOAT.value) == "number"
    assert column_kind(ValueType.BOOL.value) == "bool"
    assert column_kind(ValueType.STRING.value) == "other"
    assert column_kind(ValueType.FLOAT_LIST.value) == "vector"  # framed as "other"
    assert column_kind(ValueType.INT64_LIST.value) == "other"


@pytest.mark.parametrize(
    ("values", "value_type"),
    [
        (np.array([1.5, np.nan, np.inf, -0.0]), "DOUBLE"),
        (np.array([np.nan, np.nan]), "DOUBLE"),
        (np.array([0.1, np.nan], dtype=np.float64), "FLOAT"),
        (np.array([1, 2], dtype=np.int64), "DOUBLE"),
        (np.array([3, -4], dtype=np.int64), "INT64"),
        (np.array(["a", None], dtype=object), "STRING"),
    ],
)
def test_on_demand_columns_match_the_sdk_round_trip(values: np.ndarray, value_type: str) -> None:
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
    from feast.value_type import ValueType

    vt = ValueType[value_type]
    expected = [
        feast_value_type_to_python_type(p) for p in python_values_to_proto_values(values, vt)
    ]
    pd.testing.assert_frame_equal(
        pd.DataFrame({"x": on_demand_column(values, vt.value)}), pd.DataFrame({"x": expected})
    )


# ----------------------------------------------------------------------------------- cache


def _view(name: str = "author_stats", features: tuple[str, ...] = ("followers",)) -> ViewPlan:
    return ViewPlan(
        name=name,
        table=None,
        join_keys=("author_id",),
        request_columns=("author_id",),
        features=features,
        kinds=("number",) * len(features),
        encoder=KeyEncoder(["author_id"], [VALUE_TYPE_INT64]),
    )


class FakeStore:
    """A store whose rows can change; counts the keys each read asks for."""

    def __init__(self, rows: dict[Hashable, Row]) -> None:
        self.rows = rows
        self.reads: list[list[Hashable]] = []

    def read(self, view: ViewPlan, keys: Sequence[Hashable]) -> dict[Hashable, Row | None]:
        self.reads.append(sorted(keys, key=str))
        return {key: self.rows.get(key) for key in keys}

    def close(self) -> None:
        pass


def test_cache_serves_rows_for_ttl_seconds_then_rereads() -> None:
    store, clock, view = FakeStore({1: (10,), 2: (20,)}), Clock(), _view()
    cache = RowCache(store, ttl_s=30, max_keys=100, clock=clock)
    assert cache.rows(view, [1, 2, 3, 1]) == [(10,), (20,), (None,), (10,)]
    assert store.reads == [[1, 2, 3]]  # duplicates read once; the unknown key too

    store.rows[1] = (11,)
    clock.now += 30  # exactly ttl_s old: still served
    assert cache.rows(view, [1, 3]) == [(10,), (None,)]
    assert len(store.reads) == 1

    clock.now += 0.5
    assert cache.rows(view, [2, 1]) == [(20,), (11,)]
    assert store.reads[-1] == [1, 2]
    assert cache.stats.hits == 1 + 2 and cache.stats.misses == 3 + 2


def test_absent_keys_are_cached_as_absent_until_they_expire() -> None:
    store, clock, view = FakeStore({}), Clock(), _view()
    cache = RowCache(store, ttl_s=10, max_keys=100, clock=clock)
    assert cache.rows(view, [5]) == [(None,)]
    store.rows[5] = (50,)  # materialized after the first read
    assert cache.rows(view, [5]) == [(None,)]
    clock.now += 11
    assert cache.rows(view, [5]) == [(50,)]


def test_cached_columns_never_read_the_store_and_serve_stale_rows() -> None:
    store, clock, view = FakeStore({1: (10,), 2: (20,)}), Clock(), _view()
    cache = RowCache(store, ttl_s=5, max_keys=100, clock=clock)
    columns, held = cache.cached_columns(view, [1, 2])
    assert held == 0 and np.isnan(columns[0]).all()  # nothing cached yet: all missing
    cache.columns(view, [1])
    clock.now += 60  # far past the TTL: the degraded path still serves the stale row
    columns, held = cache.cached_columns(view, [1, 2, 1])
    assert held == 2 and len(store.reads) == 1
    assert columns[0][0] == 10 and np.isnan(columns[0][1]) and columns[0][2] == 10


def test_batch_only_rows_keep_the_longer_ttl_but_absent_and_pushed_rows_do_not() -> None:
    store, clock = FakeStore({1: (10,)}), Clock()
    batch_view = _view()  # no push source: rows change only at materialization
    pushed_view = dataclasses.replace(
        _view("tweet_engagement"), table=types.SimpleNamespace(stream_source="push")
    )
    cache = RowCache(store, ttl_s=10, max_keys=100, clock=clock, batch_ttl_s=100)
    cache.rows(batch_view, [1, 2])
    cache.rows(pushed_view, [1])
    assert len(store.reads) == 2
    clock.now += 50
    store.rows[1], store.rows[2] = (11,), (20,)
    assert cache.rows(batch_view, [1]) == [(10,)]  # present, batch-only: held for 100 s
    assert len(store.reads) == 2
    assert cache.rows(batch_view, [2]) == [(20,)]  # absent rows re-read after 10 s
    assert cache.rows(pushed_view, [1]) == [(11,)]  # pushed counts re-read after 10 s
    clock.now += 51
    assert cache.rows(batch_view, [1]) == [(11,)]
    with pytest.raises(ValueError, match="batch_ttl_s"):
        RowCache(store, ttl_s=10, max_keys=100, batch_ttl_s=5)


def test_zero_ttl_reads_the_store_every_time() -> None:
    store, view = FakeStore({1: (10,)}), _view()
    cache = RowCache(store, ttl_s=0, max_keys=100)
    for _ in range(3):
        assert cache.rows(view, [1, 2]) == [(10,), (None,)]
    assert len(store.reads) == 3


def test_cache_holds_at_most_max_keys_per_view_dropping_the_oldest() -> None:
    store, clock = FakeStore({k: (k,) for k in range(10)}), Clock()
    authors, tweets = _view("author_stats"), _view("tweet_content")
    cache = RowCache(store, ttl_s=60, max_keys=3, clock=clock)
    cache.rows(authors, [0, 1])
    clock.now += 1
    assert cache.rows(authors, [2, 3]) == [(2,), (3,)]
    cache.rows(tweets, [7])  # another view has its own budget
    store.reads.clear()
    cache.rows(authors, [1, 2, 3])  # 0 was dropped, 1 is still held
    assert store.reads == []
    cache.rows(authors, [0])
    assert store.reads == [[0]]


def test_cache_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        RowCache(FakeStore({}), ttl_s=-1, max_keys=10)
    with pytest.raises(ValueError):
        RowCache(FakeStore({}), ttl_s=1, max_keys=0)


# ---------------------------------------------------------------------------------- sqlite


@pytest.mark.parametrize(
    ("values", "types", "join_keys", "expected"),
    [
        ({"tweet_id": 2**40 + 7}, [VALUE_TYPE_INT64], ("tweet_id",), 2**40 + 7),
        ({"tweet_id": -3}, [VALUE_TYPE_INT64], ("tweet_id",), -3),
        # join keys in the view's order, not Feast's sorted order
        (
            {"viewer_id": 5, "author_id": 9},
            [VALUE_TYPE_INT64, VALUE_TYPE_INT64],
            ("viewer_id", "author_id"),
            (5, 9),
        ),
        (
            {"lang": "fr", "shard": -2},
            [VALUE_TYPE_STRING, VALUE_TYPE_INT32],
            ("shard", "lang"),
            (-2, "fr"),
        ),
    ],
)
def test_entity_keys_decode_back_to_cache_keys(
    values: dict[str, Any], types: list[int], join_keys: tuple[str, ...], expected: Any
) -> None:
    encoder = KeyEncoder(list(values), types)
    blob = encoder(tuple(values.values()) if len(values) > 1 else next(iter(values.values())))
    assert decode_entity_key(blob, join_keys) == expected


def test_a_replicated_view_is_served_from_memory_and_lacks_what_the_table_lacks() -> None:
    store = FakeStore({1: (10,), 2: (20,)})
    cache = RowCache(store, ttl_s=30.0, max_keys=1, clock=Clock())
    view = _view()
    cache.install(ViewColumns.replica(view, {1: (10,), 2: (20,)}, now=0.0))
    # Long past any TTL, over max_keys: still no read, nothing dropped; 99 is absent.
    cache.clock.now += 10_000  # type: ignore[attr-defined]
    (followers,) = cache.columns(view, [2, 99, 1, 2])
    np.testing.assert_array_equal(followers, [20.0, np.nan, 10.0, 20.0])
    assert store.reads == []
    cache.update(view, {2: (21,), 3: (30,)}, now=1.0)
    assert cache.rows(view, [2, 3, 99]) == [(21,), (30,), (None,)]
    cached, held = cache.cached_columns(view, [3, 99])
    np.testing.assert_array_equal(cached[0], [30.0, np.nan])
    assert store.reads == [] and cache.replicated == {"author_stats"}
    with pytest.raises(KeyError, match="not replicated"):
        cache.update(_view("tweet_stats"), {1: (1,)}, now=2.0)


def _feast_table(path: Path, rows: dict[int, dict[str, Any]], event_ts: int = 0) -> None:
    """A table laid out as Feast's sqlite online store writes it (see feast sqlite.py)."""
    from feast.protos.feast.types.Value_pb2 import Value

    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS proj_author_stats (entity_key BLOB, feature_name TEXT, value BLOB, "
            "value_text TEXT, vector_value BLOB, event_ts timestamp, created_ts timestamp, "
            "PRIMARY KEY(entity_key, feature_name))"
        )
        for author_id, features in rows.items():
            key = _feast_key({"author_id": author_id}, {"author_id": "int64_val"})
            for name, value in features.items():
                field = "int64_val" if isinstance(value, int) else "string_val"
                blob = Value(**{field: value}).SerializeToString()
                conn.execute(
                    "INSERT INTO proj_author_stats VALUES (?, ?, ?, NULL, NULL, ?, NULL)",
                    (key, name, blob, event_ts),
                )


def test_sqlite_rows_reads_feast_tables_in_padded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    _feast_table(
        path,
        {
            1: {"followers": 10, "language": "en"},
            2: {"followers": 20},  # a row that lacks one feature
            3: {"followers": 30, "language": "fr", "dropped": 1},  # a feature not requested
            4: {"followers": 40, "language": "de"},
            5: {"followers": 50, "language": "es"},
        },
    )
    view = _view(features=("followers", "language"))
    reader = SqliteRows(path, {"author_stats": "proj_author_stats"}, chunk=2)
    rows = reader.read(view, [5, 1, 2, 3, 99])
    assert rows == {
        5: (50, "es"),
        1: (10, "en"),
        2: (20, None),
        3: (30, "fr"),
        99: None,
    }
    with pytest.raises(sqlite3.OperationalError):  # the connection is read-only
        reader._conn.execute("DELETE FROM proj_author_stats")
    reader.close()


def test_sqlite_scan_reads_whole_tables_or_rows_written_after_an_event_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "online.db"
    _feast_table(path, {1: {"followers": 10, "language": "en"}, 2: {"followers": 20}}, 100)
    view = _view(features=("followers", "language"))
    reader = SqliteRows(path, {"author_stats": "proj_author_stats"})
    rows, latest = reader.scan(view)
    assert rows == {1: (10, "en"), 2: (20, None)} and latest == 100
    version = reader.data_version()
    assert reader.data_version() == version  # no write in between
    _feast_table(path, {3: {"followers": 30, "language": "fr"}}, 250)
    assert reader.data_version() != version  # another connection committed
    assert reader.scan(view, since_event_ts=100) == ({3: (30, "fr")}, 250)
    assert reader.scan(view, since_event_ts=250) == ({}, None)
    # With a range of event times too (the clock's window of pushed rows): those rows again.
    assert reader.scan(view, since_event_ts=250, between_s=(90, 100)) == (
        {1: (10, "en"), 2: (20, None)},
        100,
    )
    reader.close()


@pytest.mark.parametrize(
    "keys",
    [
        [7, 3, 7, 99, 3] * 20,  # repeated ints (a feed request's viewer, its authors)
        [(1, 2), (1, 3), (1, 2), (2**31 - 1, 5), (1, 99)] * 20,  # repeated pairs
        [7, 3, 7.5, 99] * 20,  # a float among ints: looked up one by one, not rounded
        [(1, 2), (-1, 3)] * 40,  # a negative pair
        ["a", "b", "a"] * 30,
    ],
)
def test_slots_of_repeated_keys_are_the_slots_of_each_key(keys: list[Hashable]) -> None:
    view = _view()
    held = ViewColumns(view)
    distinct = list(dict.fromkeys(k for k in keys if k not in (99, (1, 99))))
    held.store({key: (float(i),) for i, key in enumerate(distinct)}, now=0.0)
    expected = [held.index.get(key, -1) for key in keys]
    assert held.slots(keys).tolist() == expected


@pytest.mark.parametrize("pairs", [False, True])
def test_a_replicas_code_index_finds_the_slots_the_dict_finds(pairs: bool) -> None:
    rng = np.random.default_rng(3)

    def key(i: int) -> Hashable:
        return (i % 7, i) if pairs else i * 11 - 500  # negative ints too

    view = _view()
    held = ViewColumns.replica(view, {key(i): (float(i),) for i in range(3000)}, now=0.0)
    assert held._codes is not None and held._codes[3] == 3001  # the absent slot is not indexed
    wanted = [key(int(i)) for i in rng.integers(0, 3500, 1500)]  # ~1/7 absent from the table

    def by_dict(keys: list[Hashable]) -> list[int]:
        return [held.index.get(k, -1) for k in keys]

    assert held.slots(wanted).tolist() == by_dict(wanted)
    # Keys stored after the index are found through the dict, and a rebuild takes them in.
    held.store({key(i): (float(i),) for i in range(3000, 3100)}, now=1.0)
    assert held._codes[3] == 3001 and held.slots(wanted).tolist() == by_dict(wanted)
    held.store({key(i): (float(i),) for i in range(3100, 4200)}, now=2.0)
    assert held.slots(wanted).tolist() == by_dict(wanted)
    assert held._codes[3] == len(held.keys) == 4201  # over the threshold: rebuilt
    # Keys of another width never match a code of this index.
    other = [(1, 2)] * 70 if not pairs else list(range(70))
    assert held.slots(other).tolist() == [-1] * 70


def _vector_view() -> ViewPlan:
    return ViewPlan(
        name="tweet_embedding",
        table=None,
        join_keys=("tweet_id",),
        request_columns=("tweet_id",),
        features=("embedding", "length"),
        kinds=("vector", "number"),
        encoder=KeyEncoder(["tweet_id"], [VALUE_TYPE_INT64]),
    )


def test_vector_features_are_gathered_as_matrices_with_nan_rows_where_missing() -> None:
    held = ViewColumns(_vector_view(), capacity=2)
    vector = np.array([0.5, 0.25], dtype=np.float32)
    # key 1 has no vector yet (no matrix either) when the first one comes
    held.store({1: (None, 3), 2: (vector, 4), 3: (np.array([np.nan, 1.0]), 5)}, now=0.0)
    held.store({4: (vector * 2, 6), 5: None}, now=1.0)  # grows past the capacity; 5 is absent
    assert len(held.loaded_at) == 8  # grown twice, doubling
    known = {2: (vector, 4), 4: (vector * 2, 6), 1: (None, 3), 5: None}
    held.store(known, now=2.0)  # 5 held + 4 rows > 8, but all 4 keys are held already
    assert len(held.loaded_at) == 8  # no growth for keys already held
    slots = held.slots([2, 1, 4, 3, 5, 2])
    matrix, lengths = held.gather(slots)
    assert matrix.dtype == np.float32 and matrix.shape == (6, 2)
    np.testing.assert_array_equal(matrix[[0, 2, 5]], [vector, vector * 2, vector])
    assert np.isnan(matrix[[1, 4]]).all()
    np.testing.assert_array_equal(matrix[3], [np.nan, 1.0])  # present, with a NaN element
    assert lengths[:4].tolist() == [4, 3, 6, 5]
    # Dropping old keys keeps each vector with its key.
    held.keep_newest(2)
    kept, _ = held.gather(held.slots([4, 5]))
    np.testing.assert_array_equal(kept[0], vector * 2)
    assert np.isnan(kept[1]).all()


def test_a_vector_feature_of_two_lengths_is_gathered_as_objects() -> None:
    held = ViewColumns(_vector_view())
    held.store({1: (np.ones(2, dtype=np.float32), 1), 2: (np.ones(3, dtype=np.float32), 2)}, 0.0)
    column, _ = held.gather(held.slots([1, 2]))
    assert column.dtype == object and [len(v) for v in column] == [2, 3]
    held.store({3: (np.ones(2, dtype=np.float32), 3)}, 1.0)
    assert held.gather(held.slots([3]))[0].dtype == object


def test_cached_columns_mark_unread_keys_missing_in_vector_matrices() -> None:
    view = _vector_view()
    cache = RowCache(FakeStore({7: (np.ones(2, dtype=np.float32), 1)}), ttl_s=60, max_keys=10)
    cache.columns(view, [7])
    (matrix, lengths), held = cache.cached_columns(view, [7, 8])
    assert held == 1 and matrix.dtype == np.float32 and matrix.shape == (2, 2)
    np.testing.assert_array_equal(matrix[0], [1.0, 1.0])
    assert np.isnan(matrix[1]).all() and np.isnan(lengths[1])
