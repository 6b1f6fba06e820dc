"""The ranker's inputs packed into one array for the hop to its replica, and back, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.models.bundle import pack_inputs, unpack_inputs


def test_packed_inputs_come_back_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    x[1, 2] = np.nan  # a missing dense value stays NaN
    x[3, 0] = -0.0
    ids = rng.integers(0, 2**20, size=(5, 3))
    packed = pack_inputs(x, ids)
    assert packed.dtype == np.int32 and packed.shape == (5, 7)
    got_x, got_ids = unpack_inputs(packed, dense_width=4)
    assert got_x.dtype == np.float32 and got_ids is not None and got_ids.dtype == np.int64
    np.testing.assert_array_equal(got_x.view(np.int32), x.view(np.int32))
    np.testing.assert_array_equal(got_ids, ids)


def test_dense_only_inputs_unpack_without_ids() -> None:
    x = np.arange(6, dtype=np.float64).reshape(2, 3)  # float64 in: the model reads float32
    got_x, got_ids = unpack_inputs(pack_inputs(x, None), dense_width=3)
    assert got_ids is None
    np.testing.assert_array_equal(got_x, x.astype(np.float32))


def test_bad_packed_inputs_are_refused_by_name() -> None:
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="rows"):
        pack_inputs(x, np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="int32"):
        pack_inputs(x, np.full((2, 1), 2**40))
    with pytest.raises(ValueError, match="packed inputs"):
        unpack_inputs(np.zeros((2, 3), dtype=np.float32), dense_width=3)
    with pytest.raises(ValueError, match="packed inputs"):
        unpack_inputs(np.zeros((2, 2), dtype=np.int32), dense_width=3)
