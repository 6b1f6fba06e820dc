"""The feed blend and the promotion gate."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.ranking import blend_scores
from pipelines.release.gates import offline_gate


def test_blend_is_the_weighted_sum_of_head_probabilities() -> None:
    predictions = {
        "fav": np.array([0.2, 0.1]),
        "reply": np.array([0.01, 0.05]),
        "report": np.array([0.0, 0.001]),
    }
    weights = {"fav": 0.5, "reply": 13.5, "report": -369.0}
    # row 0: 0.5*0.2 + 13.5*0.01 + 0 = 0.235; row 1: 0.05 + 0.675 - 0.369 = 0.356
    np.testing.assert_allclose(blend_scores(predictions, weights), [0.235, 0.356])


def test_blend_refuses_a_weight_without_predictions() -> None:
    with pytest.raises(KeyError, match="negative"):
        blend_scores({"fav": np.array([0.1])}, {"fav": 1.0, "negative": -74.0})


def test_gate_accepts_a_better_ranker_and_rejects_a_worse_one() -> None:
    better = offline_gate({"ranker_ndcg": 0.62, "lgbm_ndcg": 0.60}, min_gain=0.0)
    worse = offline_gate({"ranker_ndcg": 0.58, "lgbm_ndcg": 0.60}, min_gain=0.0)
    assert better["promote"] and not worse["promote"]
    assert "0.5800" in worse["reason"] and "0.6000" in worse["reason"]


def test_gate_requires_the_configured_margin_and_real_numbers() -> None:
    assert not offline_gate({"ranker_ndcg": 0.61, "lgbm_ndcg": 0.60}, min_gain=0.02)["promote"]
    assert not offline_gate({"ranker_ndcg": float("nan"), "lgbm_ndcg": 0.6}, 0.0)["promote"]
    assert not offline_gate({"lgbm_ndcg": 0.6}, 0.0)["promote"]
