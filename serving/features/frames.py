"""Hydrated columns as the frame the Feast SDK returns (:func:`frame_of`), and two such frames
compared by value (:func:`feature_frame_differences`: the parity check of the tests and of
`benchmarks/online_features.py`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.inputs.spec import present_rows
from serving.features.values import object_column

# Hydrated features: name -> [N] values, or [N, D] float32 for a vector feature (rows of NaN where
# missing; a vector feature with no vector held, as in `hydrate_default`, is a [N] column of
# missing values); `frame_of` turns them into the frame the Feast SDK returns.
FeatureColumns = dict[str, np.ndarray]


def framed(values: np.ndarray | list[Any]) -> np.ndarray | list[Any]:
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
    return pd.DataFrame({name: framed(values) for name, values in columns.items()})


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
