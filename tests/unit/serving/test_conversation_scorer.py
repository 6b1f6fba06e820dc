"""The conversation scorer on a small saved conversation ranker over the tiny world: the replies'
context at the clock's now reaches the model, the score is the tuned blend of its predictions,
and a bundle without a tuned blend or a reply outside the world is an error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.config import CONVERSATION_BLEND_FILE, ConversationRankerConfig
from pipelines.inputs.spec import DENSE_FEATURES, EMBEDDING_FEATURES, feature_names
from pipelines.models.bundle import RankerBundle
from pipelines.models.masknet import FeatureNormalizer
from serving.candidates.world_index import WorldIndex
from serving.engine.conversation_scorer import (
    ConversationScorer,
    NoConversationModelError,
    tuned_weights,
)
from tests.utils.world import HOUR, NOW, ROOT, make_cfg, tiny_world

DIM = 2  # embedding width of the small bundle
WEIGHTS = {"fav": 2.0, "dwell": 1.0, "negative": -3.0}
REPLIES = [
    202,
    203,
    204,
]  # 202 (by 2) and 203 (by 5) answer the root (by 4); 204 (by 3) answers 202


class OnlineFeatures:
    """The feed's online features of the candidates: every dense feature at 1.0, no embeddings
    (as a store that lacks them answers); records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, list[int], pd.Timestamp]] = []

    def hydrate(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp) -> dict:
        self.asked.append((viewer_id, candidates["tweet_id"].tolist(), now))
        n = len(candidates)
        columns = {name: np.ones(n) for name in DENSE_FEATURES}
        columns |= {name: np.full((n, DIM), np.nan) for name in EMBEDDING_FEATURES}
        return {name: candidates[name].to_numpy() for name in candidates.columns} | columns

    def hydrate_cached(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp):
        raise AssertionError("the scorer reads through hydrate")

    def hydrate_default(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp):
        raise AssertionError("the scorer reads through hydrate")


def small_bundle(directory: Path, blend: dict[str, float] | None = WEIGHTS) -> RankerBundle:
    """A freshly initialized conversation ranker saved to `directory` (with a tuned blend)."""
    ranker = ConversationRankerConfig(
        num_blocks=1, mask_hidden_dim=4, block_dim=4, mlp_dims=(8,), tower_dim=4
    )
    names = feature_names(DIM, ranker.feature_set)
    torch.manual_seed(0)
    model = RankerBundle.build(ranker, DIM, FeatureNormalizer.identity(len(names)))
    meta = {
        "heads": list(ranker.heads),
        "embedding_dim": DIM,
        "ranker": ranker.model_dump(mode="json"),
        "sparse_fields": [],
        "feature_names": names,
        "version": "3",
    }
    RankerBundle(model, meta).save(directory)
    if blend is not None:
        (directory / CONVERSATION_BLEND_FILE).write_text(
            json.dumps(
                {
                    "weights": blend,
                    "hand_weights": {"fav": 0.5},
                    "k": 10,
                    "combinations": 4,
                    "tune_requests": 3,
                    "check_requests": 3,
                    "tune_ndcg_hand": 0.5,
                    "tune_ndcg_tuned": 0.6,
                    "check_ndcg_hand": 0.5,
                    "check_ndcg_tuned": 0.55,
                }
            )
        )
    return RankerBundle.load(directory)


def world_index() -> WorldIndex:
    frames = tiny_world()
    # Replier 2 follows the root's author 4, who follows replier 5.
    follows = frames["follows"]
    extra = pd.DataFrame({"follower_id": [2, 4], "followee_id": [4, 5]})
    frames["follows"] = pd.concat([follows, extra.assign(created_at=follows["created_at"].iloc[0])])
    return WorldIndex.from_frames(make_cfg(), **frames)


def scorer(tmp_path: Path, now: pd.Timestamp = NOW) -> tuple[ConversationScorer, OnlineFeatures]:
    bundle = small_bundle(tmp_path / "bundle")
    features = OnlineFeatures()
    return ConversationScorer(
        bundle, tuned_weights(bundle), world_index(), features, lambda: now
    ), features


def candidates(ids: list[int] = REPLIES) -> pd.DataFrame:
    authors = {202: 2, 203: 5, 204: 3}  # viewer 1 follows 2 and 3
    return pd.DataFrame(
        {
            "tweet_id": ids,
            "author_id": [authors[i] for i in ids],
            "in_network": [authors[i] in (2, 3) for i in ids],
        }
    )


def test_the_score_is_the_tuned_blend_of_the_conversation_rankers_predictions(
    tmp_path: Path,
) -> None:
    reply_scorer, features = scorer(tmp_path)
    scored = asyncio.run(reply_scorer.score(1, ROOT, candidates()))
    assert scored.version == "3"
    assert set(scored.predictions) == set(reply_scorer.model.heads)
    expected = sum(w * scored.predictions[head].astype(np.float64) for head, w in WEIGHTS.items())
    np.testing.assert_allclose(scored.scores, expected)
    # the model saw what the scorer computed: the same predictions from the same columns
    columns = reply_scorer.feature_columns(1, ROOT, candidates())
    for head, values in reply_scorer.model.predict(columns).items():
        np.testing.assert_allclose(scored.predictions[head], values)
    assert features.asked[0] == (1, REPLIES, NOW)


def test_each_reply_gets_its_conversation_context_at_the_clocks_now(tmp_path: Path) -> None:
    reply_scorer, _ = scorer(tmp_path)
    columns = reply_scorer.feature_columns(1, ROOT, candidates())
    assert columns["conv_reply_depth"].tolist() == [1.0, 1.0, 2.0]
    assert columns["conv_reply_descendants"].tolist() == [1.0, 0.0, 0.0]  # 204 answers 202
    assert columns["conv_size"].tolist() == [3.0, 3.0, 3.0]
    np.testing.assert_allclose(columns["conv_age_hours"], [5.0, 5.0, 5.0])
    np.testing.assert_allclose(columns["conv_reply_age_hours"], [4.0, 4.0, 3.0])
    assert columns["conv_replier_follows_root_author"].tolist() == [1.0, 0.0, 0.0]
    assert columns["conv_root_author_follows_replier"].tolist() == [0.0, 1.0, 0.0]
    assert columns["conv_is_root_author"].tolist() == [0.0, 0.0, 0.0]


def test_replies_posted_after_the_clocks_now_do_not_count(tmp_path: Path) -> None:
    reply_scorer, _ = scorer(tmp_path, now=NOW - 3.5 * HOUR)  # before 204 (NOW - 3 h)
    columns = reply_scorer.feature_columns(1, ROOT, candidates([202, 203]))
    assert columns["conv_reply_descendants"].tolist() == [0.0, 0.0]
    assert columns["conv_size"].tolist() == [2.0, 2.0]


def test_a_reply_clicked_is_scored_in_its_root_conversation(tmp_path: Path) -> None:
    reply_scorer, _ = scorer(tmp_path)
    by_reply = reply_scorer.feature_columns(1, 202, candidates([204, 203, 202]))
    assert by_reply["conv_reply_depth"].tolist() == [2.0, 1.0, 1.0]


def test_a_reply_outside_the_conversation_is_an_error(tmp_path: Path) -> None:
    reply_scorer, _ = scorer(tmp_path)
    outside = pd.DataFrame({"tweet_id": [202, 101], "author_id": [2, 2], "in_network": [1, 1]})
    with pytest.raises(ValueError, match=r"\[101\]"):
        asyncio.run(reply_scorer.score(1, ROOT, outside))


def test_a_bundle_without_a_tuned_blend_cannot_serve(tmp_path: Path) -> None:
    bundle = small_bundle(tmp_path / "bundle", blend=None)
    with pytest.raises(NoConversationModelError, match="evaluate_conversation"):
        tuned_weights(bundle)


def test_blend_weights_for_heads_the_ranker_lacks_are_refused(tmp_path: Path) -> None:
    bundle = small_bundle(tmp_path / "bundle")
    with pytest.raises(ValueError, match="dwell_time"):
        ConversationScorer(
            bundle, {"dwell_time": 1.0}, world_index(), OnlineFeatures(), lambda: NOW
        )


def test_health_names_the_conversation_ranker_that_ranks_replies(tmp_path: Path) -> None:
    from serving.engine.feed import FeedEngine
    from tests.utils.fakes import FakeFeatures, fake_arm

    reply_scorer, _ = scorer(tmp_path)
    arms = {"champion": fake_arm("v1")}
    with_ranker = FeedEngine(
        make_cfg(), world_index(), FakeFeatures(), arms, reply_scorers={"champion": reply_scorer}
    )
    assert with_ranker.health().reply_model_versions == {"champion": "3"}
    assert with_ranker.health().model_versions == {"champion": "v1"}
    # without one, the feed ranker ranks replies
    feed_only = FeedEngine(make_cfg(), world_index(), FakeFeatures(), arms)
    assert feed_only.health().reply_model_versions == {"champion": "v1"}
