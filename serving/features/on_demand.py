"""Request-time features: each on-demand view run over the hydrated columns, outputs typed as the
Feast SDK types them (:func:`run_on_demand_columns`), or its own pandas transformation on a frame
(:func:`run_on_demand`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd

from pipelines.inputs.spec import ON_DEMAND_COLUMNS
from serving.features.frames import framed
from serving.features.plan import OnDemandPlan
from serving.features.values import column_kind, frame_column


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
    frame = pd.DataFrame({name: framed(columns[name]) for name in plan.inputs})
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
