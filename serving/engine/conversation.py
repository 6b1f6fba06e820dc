"""The conversation request path: the replies of a root tweet, scored for the viewer by the ranker of
their arm, nested into a tree by score and split into sections by health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.inputs.spec import FeatureTable
from pipelines.ranking import blend_scores
from serving.candidates.world_index import WorldIndex
from serving.engine.errors import NotFoundError
from serving.engine.ports import ArmModel
from serving.policy.rules import build_reply_tree, section_replies
from serving.schemas import (
    Arm,
    ConversationRequest,
    ConversationResponse,
    ConversationRoot,
    ConversationSection,
    ReplyNode,
)

# viewer id, candidates (tweet_id, author_id, in_network) -> online features, one row each
Hydrate = Callable[[int, pd.DataFrame], Awaitable[FeatureTable]]


class ConversationPath:
    """Ranks the replies of conversations over `index`; `hydrate` reads their online features."""

    def __init__(self, cfg: FeedrankConfig, index: WorldIndex, hydrate: Hydrate) -> None:
        self.cfg = cfg
        self.index = index
        self.hydrate = hydrate

    async def answer(
        self, request: ConversationRequest, arm: Arm, model: ArmModel, request_id: str
    ) -> ConversationResponse:
        """The conversation of `request.tweet_id` as `model` (the ranker of the viewer's `arm`)
        ranks it, answered under `request_id`.

        Raises NotFoundError for an unknown viewer or tweet, and for a tweet that is a reply.
        """
        index = self.index
        if not index.has_user(request.viewer_id):
            raise NotFoundError("user", request.viewer_id)
        if not index.has_tweet(request.tweet_id):
            raise NotFoundError("tweet", request.tweet_id)
        if not index.is_root(request.tweet_id):
            raise NotFoundError("tweet", request.tweet_id, "is a reply, not a conversation root")
        root = index.tweet(request.tweet_id)
        main, low_quality = await self._sections(request, model)
        return ConversationResponse(
            request_id=request_id,
            root=ConversationRoot(
                tweet_id=int(root["tweet_id"]), author_id=int(root["author_id"]), text=root["text"]
            ),
            sections=[
                ConversationSection(name="main", replies=main),
                ConversationSection(name="low_quality", replies=low_quality),
            ],
            model_version=model.version,
            arm=arm,
        )

    async def _sections(
        self, request: ConversationRequest, model: ArmModel
    ) -> tuple[list[ReplyNode], list[ReplyNode]]:
        """(main, low_quality): the reply trees, scored and sectioned; both empty without
        replies."""
        replies = self.index.replies(request.tweet_id)
        if replies.empty:
            return [], []
        followees = self.index.followees(request.viewer_id)
        candidates = replies[["tweet_id", "author_id"]].assign(
            in_network=np.isin(replies["author_id"], followees)
        )
        features = await self.hydrate(request.viewer_id, candidates)
        predictions = await model.score(features)
        scores = blend_scores(predictions, self.cfg.blend.weights)
        tree = build_reply_tree(replies, request.tweet_id, scores, predictions)
        return section_replies(tree, self.cfg.serve.toxicity_threshold)


def shown_replies(answer: ConversationResponse) -> list[ReplyNode]:
    """Every reply of an answer in display order: the sections in order, each tree depth first
    (a reply, then its replies)."""
    shown: list[ReplyNode] = []

    def visit(nodes: list[ReplyNode]) -> None:
        for node in nodes:
            shown.append(node)
            visit(node.replies)

    for section in answer.sections:
        visit(section.replies)
    return shown
