"""The `conversation` on-demand view's function: the context as model inputs, one function for
Feast's frames and serving's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.inputs.spec import CONVERSATION_FEATURES, conversation_columns, conversation_values

CONTEXT = {
    "reply_depth": np.array([1, 3]),
    "root_author_replied": np.array([1, 0]),
    "is_root_author": np.array([0, 1]),
    "reply_descendants": np.array([4, 0]),
    "conversation_size": np.array([8, 0]),
    "conversation_age_s": np.array([7200.0, np.nan]),
    "reply_age_s": np.array([1800.0, 36.0]),
    "replier_follows_root_author": np.array([1, 0]),
    "root_author_follows_replier": np.array([0, 1]),
}


def test_the_context_becomes_float_inputs_with_ages_in_hours() -> None:
    out = conversation_columns(CONTEXT)
    assert tuple(out) == CONVERSATION_FEATURES
    assert all(values.dtype == np.float64 for values in out.values())
    assert out["conv_reply_depth"].tolist() == [1.0, 3.0]
    np.testing.assert_allclose(out["conv_age_hours"], [2.0, np.nan])
    np.testing.assert_allclose(out["conv_reply_age_hours"], [0.5, 0.01])
    # a thread's share of its conversation; an empty conversation counts as one reply
    assert out["conv_descendant_share"].tolist() == [0.5, 0.0]


def test_frames_and_columns_give_the_same_values() -> None:
    frame = pd.DataFrame(CONTEXT, index=[5, 9])
    values = conversation_values(frame)
    assert list(values.index) == [5, 9]
    for name, column in conversation_columns(CONTEXT).items():
        np.testing.assert_array_equal(values[name].to_numpy(), column)


def test_missing_context_stays_missing_for_the_models_default() -> None:
    out = conversation_columns({"reply_depth": np.array([2])})
    assert out["conv_reply_depth"].tolist() == [2.0]
    assert np.isnan(out["conv_size"]).all() and np.isnan(out["conv_root_author_replied"]).all()
