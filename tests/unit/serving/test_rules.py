"""Serving product rules on hand-made frames: blended scores, reply trees, health sections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.policy.rules import (
    build_reply_tree,
    head_columns,
    score_candidates,
    section_replies,
)
from serving.schemas import ReplyNode


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


def _replies() -> pd.DataFrame:
    """Root 100 <- 1 <- (3, 4), root <- 2, root <- 5 (toxic), 5 <- 6."""
    return pd.DataFrame(
        {
            "tweet_id": [1, 2, 3, 4, 5, 6],
            "author_id": [11, 12, 13, 14, 15, 16],
            "in_reply_to_tweet_id": [100, 100, 1, 1, 100, 5],
            "toxicity": [0.1, 0.0, 0.2, 0.0, 0.9, 0.0],
        }
    )


def _ids(nodes: list[ReplyNode]) -> list[int]:
    return [n.tweet_id for n in nodes]


def test_build_reply_tree_nests_and_orders_siblings_by_score() -> None:
    scores = np.array([0.5, 0.8, 0.1, 0.3, 0.9, 0.0])
    predictions = {"fav": scores / 2}
    tree = build_reply_tree(_replies(), 100, scores, predictions)
    assert _ids(tree) == [5, 2, 1]
    by_id = {n.tweet_id: n for n in tree}
    assert _ids(by_id[1].replies) == [4, 3]
    assert _ids(by_id[5].replies) == [6]
    assert by_id[2].replies == []
    assert by_id[1].predictions == {"fav": pytest.approx(0.25)}
    assert by_id[5].toxicity == pytest.approx(0.9)
    assert by_id[1].author_id == 11


def test_build_reply_tree_repairs_replies_with_a_missing_parent() -> None:
    replies = _replies()
    replies.loc[replies["tweet_id"] == 6, "in_reply_to_tweet_id"] = 999  # parent not loaded
    tree = build_reply_tree(replies, 100, np.arange(6, dtype=float))
    assert 6 in _ids(tree)
    assert len(tree) == 4


def test_section_replies_sends_toxic_subtrees_to_low_quality() -> None:
    scores = np.array([0.5, 0.8, 0.1, 0.3, 0.9, 0.0])
    tree = build_reply_tree(_replies(), 100, scores)
    main, low_quality = section_replies(tree, toxicity_threshold=0.6)
    assert _ids(main) == [2, 1]
    assert _ids(low_quality) == [5]
    # The healthy answer to the toxic reply stays with it, in context.
    assert _ids(low_quality[0].replies) == [6]
    # Sectioning looks at the top reply only: reply 3 (0.2) under reply 1 does not matter.
    main, low_quality = section_replies(tree, toxicity_threshold=0.15)
    assert _ids(main) == [2, 1] and _ids(low_quality) == [5]
