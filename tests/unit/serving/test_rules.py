"""The home feed's product rules on hand-made frames: blended scores and their head columns.
(The conversation page's rules: test_conversation_page.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.policy.rules import head_columns, score_candidates


def test_score_candidates_blends_the_heads_and_adds_one_column_per_head() -> None:
    candidates = pd.DataFrame({"tweet_id": [10, 11, 12, 13], "author_id": [1, 2, 3, 4]})
    predictions = {
        "fav": np.array([0.1, 0.9, 0.5, 0.9]),
        "report": np.array([0.0, 0.01, 0.0, 0.0]),
    }
    weights = {"fav": 1.0, "report": -100.0}
    scored = score_candidates(candidates, predictions, weights)
    assert scored["tweet_id"].tolist() == [10, 11, 12, 13]  # in the candidates' order
    assert scored["score"].tolist() == pytest.approx([0.1, -0.1, 0.5, 0.9])
    assert head_columns(scored) == {"fav": "p_fav", "report": "p_report"}
    assert scored["p_fav"].tolist() == pytest.approx([0.1, 0.9, 0.5, 0.9])


def test_score_candidates_rejects_misaligned_predictions_and_unknown_weights() -> None:
    candidates = pd.DataFrame({"tweet_id": [1, 2], "author_id": [1, 1]})
    with pytest.raises(ValueError, match="fav"):
        score_candidates(candidates, {"fav": np.array([0.1])}, {"fav": 1.0})
    with pytest.raises(KeyError, match="reply"):
        score_candidates(candidates, {"fav": np.array([0.1, 0.2])}, {"reply": 1.0})


def test_scoring_no_candidates_gives_an_empty_frame_with_a_score() -> None:
    empty = pd.DataFrame({"tweet_id": pd.Series([], dtype="int64")})
    scored = score_candidates(empty, {"fav": np.zeros(0)}, {"fav": 1.0})
    assert scored.empty and "score" in scored.columns
