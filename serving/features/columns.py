"""One view's cached rows held column-wise (:class:`ViewColumns`): slots per key, numbers in
float64 arrays, vectors in float32 matrices, and a sorted index of integer key codes so a request
finds its keys' slots with one binary search."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.inputs.spec import LIST_LIKE
from serving.features.plan import ViewPlan
from serving.features.readers import Row

log = logging.getLogger(__name__)

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
