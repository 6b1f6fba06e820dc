"""Feast's v3 entity keys, encoded and decoded as the sqlite online store writes them.

`feast.infra.key_encoding_utils.serialize_entity_key` (version 3) for scalar entity values: a count
of join keys, each join key's name, then each value as (type, length, payload), all little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

ENTITY_KEY_SERIALIZATION_VERSION = 3
# Feast's ValueType numbers (feast.value_type.ValueType) of the entity value types encoded here.
VALUE_TYPE_BYTES, VALUE_TYPE_STRING, VALUE_TYPE_INT32, VALUE_TYPE_INT64 = 1, 2, 3, 4

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_I32 = struct.Struct("<i")
_ENCODED_VALUE_TYPES = (VALUE_TYPE_BYTES, VALUE_TYPE_STRING, VALUE_TYPE_INT32, VALUE_TYPE_INT64)


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
