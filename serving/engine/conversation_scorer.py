"""The conversation ranker at serving time: candidate replies -> head predictions -> the tuned blend.

:class:`ConversationScorer` is the reply scorer the conversation path calls (``await
scorer.score(viewer_id, root_id, candidates)``). For N candidates it

1. reads the conversation's tweets from the world index and computes each reply's conversation
   context at the clock's now (`pipelines.conversation.context`, the function training used at
   each impression's time) and the follow relations of its author and the root's author;
2. reads the online features of the feed's feature service (every batch view the conversation
   service reads) through the replica's hydrator, and runs the `conversation` on-demand view's
   function (`spec.conversation_columns`) over the context, as Feast's `conversation_v1` service
   gives them offline;
3. predicts every head with the registered conversation ranker and blends them with the weights
   the grid search chose (saved in the bundle).

It raises on any failure (no model, a missing feature, an unknown reply); the caller then falls
back to a heuristic order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import CONVERSATION_BLEND_FILE, FeedrankConfig
from pipelines.conversation.context import TWEET_COLUMNS, conversation_context, follow_relations
from pipelines.handoffs import ConversationBlend
from pipelines.inputs.spec import FeatureTable, conversation_columns
from pipelines.models.bundle import RankerBundle
from pipelines.ranking import blend_scores
from serving.candidates.world_index import WorldIndex
from serving.conversation.scoring import ScoredReplies
from serving.engine.ports import FeatureHydrator

log = logging.getLogger(__name__)

KEY_COLUMNS = ("tweet_id", "author_id", "in_network")  # what the hydrator reads per candidate


class NoConversationModelError(RuntimeError):
    """No conversation ranker can serve: none is registered under the alias, or its bundle has
    no tuned blend."""


def tuned_weights(bundle: RankerBundle) -> dict[str, float]:
    """The blend weights saved in the bundle's directory by `evaluate_conversation`.

    Raises NoConversationModelError for a bundle without them (one never evaluated)."""
    path = None if bundle.directory is None else bundle.directory / CONVERSATION_BLEND_FILE
    if path is None or not path.is_file():
        raise NoConversationModelError(
            f"the conversation ranker v{bundle.version} has no tuned blend ({CONVERSATION_BLEND_FILE} beside "
            "its model): run the evaluate_conversation step before registering it"
        )
    return dict(ConversationBlend.model_validate_json(path.read_text()).weights)


class ConversationScorer:
    """Scores a conversation's candidate replies for a viewer with the conversation ranker.

    Args:
        model: the conversation ranker (a RankerBundle of the `conversation` feature set).
        weights: head -> blend weight (the tuned ones: :func:`tuned_weights`).
        index: the serving world index (the conversation's tweets, the follow graph).
        features: the replica's online features (the feed's service: every batch view).
        now: the serving clock.
        executor: where the blocking reads and the model run (None: the loop's default).
    """

    def __init__(
        self,
        model: RankerBundle,
        weights: Mapping[str, float],
        index: WorldIndex,
        features: FeatureHydrator,
        now: Callable[[], pd.Timestamp],
        executor: Executor | None = None,
    ) -> None:
        unknown = sorted(set(weights) - set(model.heads))
        if unknown:
            raise ValueError(f"blend weights name heads {unknown} the conversation ranker lacks")
        self.model = model
        self.weights = dict(weights)
        self.index = index
        self.features = features
        self.now = now
        self.executor = executor

    @property
    def version(self) -> str:
        return str(self.model.version)

    async def score(self, viewer_id: int, root_id: int, candidates: pd.DataFrame) -> ScoredReplies:
        """candidates: [N rows] with tweet_id, author_id, in_network (replies of the conversation
        of `root_id`) -> ScoredReplies in their order. Raises on any failure."""
        if candidates.empty:
            raise ValueError("no candidate replies to score")
        loop = asyncio.get_running_loop()
        columns = await loop.run_in_executor(
            self.executor, self.feature_columns, viewer_id, root_id, candidates
        )
        predictions = await loop.run_in_executor(self.executor, self.model.predict, columns)
        return ScoredReplies(blend_scores(predictions, self.weights), predictions, self.version)

    def feature_columns(
        self, viewer_id: int, root_id: int, candidates: pd.DataFrame
    ) -> dict[str, Any]:
        """The model's input columns of the candidates at the clock's now: the online features,
        the conversation context and the `conversation` view's outputs."""
        now = self.now()
        keys = candidates[list(KEY_COLUMNS)].reset_index(drop=True)
        context = self.context(viewer_id, root_id, keys, now)
        hydrated: FeatureTable = self.features.hydrate(viewer_id, keys, now)
        columns: dict[str, Any] = dict(hydrated.items())
        columns.update({name: context[name].to_numpy() for name in context.columns})
        columns.update(conversation_columns(columns))
        return columns

    def context(
        self, viewer_id: int, root_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> pd.DataFrame:
        """[N] the `conversation_context` request data of the candidates at `now`: their place
        in the conversation and the follow relations of each reply's author and the root's."""
        tweets = self.conversation_tweets(root_id)
        asked = pd.DataFrame(
            {"tweet_id": candidates["tweet_id"].to_numpy(np.int64), "viewer_id": int(viewer_id)}
        )
        context = conversation_context(tweets, asked, now)
        root = tweets.iloc[0]
        repliers = candidates["author_id"].to_numpy(np.int64)
        follows = self.follow_pairs(repliers, int(root["author_id"]))
        relations = follow_relations(
            follows, repliers, np.full(len(repliers), int(root["author_id"]))
        )
        for name, values in relations.items():
            context[name] = values
        return context

    def conversation_tweets(self, root_id: int) -> pd.DataFrame:
        """TWEET_COLUMNS of the conversation `root_id` belongs to, its root first."""
        conversation = int(self.index.tweet(root_id)["conversation_id"])
        root = self.index.tweet(conversation)
        replies = self.index.replies(conversation)
        tweets = pd.DataFrame(
            {
                "tweet_id": np.r_[int(root["tweet_id"]), replies["tweet_id"].to_numpy(np.int64)],
                "author_id": np.r_[int(root["author_id"]), replies["author_id"].to_numpy(np.int64)],
                "created_at": pd.DatetimeIndex(
                    [pd.Timestamp(root["created_at"]), *pd.to_datetime(replies["created_at"])]
                ),
                "conversation_id": conversation,
                "in_reply_to_tweet_id": pd.array(
                    [None, *replies["in_reply_to_tweet_id"].to_numpy(np.int64)], dtype="Int64"
                ),
            }
        )
        return tweets[list(TWEET_COLUMNS)]

    def follow_pairs(self, repliers: np.ndarray, root_author: int) -> pd.DataFrame:
        """The follow edges between the repliers and the root's author, both ways, as
        (follower_id, followee_id) rows."""
        distinct = np.unique(repliers)
        following_root = np.array(
            [r for r in distinct if _follows(self.index.followees(int(r)), root_author)],
            dtype=np.int64,
        )
        followed_by_root = distinct[np.isin(distinct, self.index.followees(root_author))]
        return pd.DataFrame(
            {
                "follower_id": np.r_[following_root, np.full(len(followed_by_root), root_author)],
                "followee_id": np.r_[np.full(len(following_root), root_author), followed_by_root],
            }
        )


def _follows(followees: np.ndarray, user: int) -> bool:
    """Whether `user` is among sorted `followees`."""
    slot = int(np.searchsorted(followees, user))
    return slot < len(followees) and int(followees[slot]) == user


def load_scorer(
    cfg: FeedrankConfig,
    alias: str,
    index: WorldIndex,
    features: FeatureHydrator,
    now: Callable[[], pd.Timestamp],
    executor: Executor | None = None,
) -> ConversationScorer:
    """The registered conversation ranker under `alias` (``tracking.conversation_model_name``)
    with its tuned blend, ready to score. Raises NoConversationModelError when there is none."""
    from pipelines.conversation.ranker import conversation_config
    from pipelines.release.registry import load_ranker

    model = load_ranker(conversation_config(cfg), alias)
    if model is None:
        raise NoConversationModelError(
            f"no conversation ranker has alias {alias!r} in the registry "
            f"({cfg.tracking.conversation_model_name}); train and promote one first"
        )
    return ConversationScorer(model, tuned_weights(model), index, features, now, executor)
