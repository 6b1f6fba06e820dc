"""The request path of feed and conversation ranking, free of Ray and HTTP.

:class:`FeedEngine` wires the world index (candidates, replies), online features and one ranker
per experiment arm into responses. The Ray Serve ingress (`serving.app`) owns one, and so does a
unit test with fake features and rankers; the HTTP layer (`serving.api`) only maps errors to
status codes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.ranking import blend_scores
from serving.rules import assign_arm, build_reply_tree, head_columns, rank_feed, section_replies
from serving.schemas import (
    Arm,
    ConversationRequest,
    ConversationResponse,
    ConversationRoot,
    ConversationSection,
    FeedItem,
    FeedRequest,
    FeedResponse,
    HealthResponse,
    ReplyNode,
)
from serving.world_index import WorldIndex

T = TypeVar("T")

# Scores a features frame [N rows] into head -> probabilities [N]; awaitable (a Serve handle call).
Scorer = Callable[[pd.DataFrame], Awaitable[Mapping[str, np.ndarray]]]
HYDRATE_COLUMNS = ["tweet_id", "author_id", "in_network"]


class FeatureHydrator(Protocol):
    """What the engine needs of `pipelines.features.online.OnlineFeatures`."""

    def hydrate(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> pd.DataFrame: ...


class Retriever(Protocol):
    """What the engine needs of `serving.retrieval.EmbeddingRetriever`."""

    def retrieve(self, viewer_id: int, seen: np.ndarray) -> pd.DataFrame: ...


class NotFoundError(LookupError):
    """An id in the request names nothing in the world (HTTP 404)."""

    def __init__(self, kind: str, ident: int, reason: str = "not found") -> None:
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} {ident} {reason}")

    @property
    def detail(self) -> str:
        return str(self.args[0])


class InvalidFieldError(ValueError):
    """A request field is well-typed but out of the bounds that config sets (HTTP 422)."""

    def __init__(self, field: str, message: str, value: Any, error_type: str) -> None:
        self.field, self.message, self.value, self.error_type = field, message, value, error_type
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ArmModel:
    """The ranker serving one experiment arm."""

    version: str
    heads: tuple[str, ...]
    score: Scorer


class FeedEngine:
    """Ranks feeds and conversations; one per serving replica.

    Blocking work (candidate generation, feature reads) runs on one worker thread per engine, so
    the event loop stays free for health checks and the feature store sees one caller at a time.
    """

    def __init__(
        self,
        cfg: FeedrankConfig,
        index: WorldIndex,
        features: FeatureHydrator,
        arms: Mapping[Arm, ArmModel],
        retriever: Retriever | None = None,
    ) -> None:
        """retriever: the out-of-network embedding source (None: trending only)."""
        if "champion" not in arms:
            raise ValueError("a champion ranker is required")
        weights = cfg.blend.weights
        for arm, model in arms.items():
            missing = sorted(set(weights) - set(model.heads))
            if missing:
                raise ValueError(
                    f"{arm} ranker {model.version} lacks heads {missing} that blend.weights uses"
                )
        self.cfg = cfg
        self.index = index
        self.features = features
        self.arms = dict(arms)
        self.retriever = retriever
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedrank-engine")

    @property
    def challenger_share(self) -> float:
        """The share of users on the challenger (0 when there is none)."""
        return self.cfg.serve.challenger_share if "challenger" in self.arms else 0.0

    def arm_of(self, user_id: int) -> Arm:
        return assign_arm(
            user_id, self.cfg.serve.challenger_share, has_challenger="challenger" in self.arms
        )

    def health(self) -> HealthResponse:
        return HealthResponse(
            model_versions={arm: model.version for arm, model in self.arms.items()},
            challenger_share=self.challenger_share,
        )

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def _hydrate(self, viewer_id: int, candidates: pd.DataFrame) -> pd.DataFrame:
        features = self.features.hydrate(
            viewer_id, candidates[HYDRATE_COLUMNS].reset_index(drop=True), self.index.now
        )
        if len(features) != len(candidates):
            raise RuntimeError(
                f"online features returned {len(features)} rows for {len(candidates)} candidates"
            )
        return features

    def _feed_inputs(self, user_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        retrieved = (
            self.retriever.retrieve(user_id, self.index.seen(user_id))
            if self.retriever is not None
            else None
        )
        candidates = self.index.candidates(user_id, retrieved)
        if candidates.empty:
            return candidates, candidates
        return candidates, self._hydrate(user_id, candidates)

    # ------------------------------------------------------------------------------------- feed

    async def feed(self, request: FeedRequest) -> FeedResponse:
        """Candidates -> online features -> the arm's ranker -> blend -> the top `limit`.

        Raises InvalidFieldError (limit over ``serve.max_limit``) and NotFoundError (unknown user).
        """
        max_limit = self.cfg.serve.max_limit
        if request.limit > max_limit:
            raise InvalidFieldError(
                "limit",
                f"Input should be less than or equal to {max_limit}",
                request.limit,
                "less_than_equal",
            )
        if not self.index.has_user(request.user_id):
            raise NotFoundError("user", request.user_id)
        arm = self.arm_of(request.user_id)
        model = self.arms[arm]
        candidates, features = await self._blocking(self._feed_inputs, request.user_id)
        items: list[FeedItem] = []
        if not candidates.empty:
            predictions = await model.score(features)
            ranked = rank_feed(candidates, predictions, self.cfg.blend.weights, request.limit)
            items = _feed_items(ranked)
        return FeedResponse(
            items=items,
            model_version=model.version,
            arm=arm,
            request_id=uuid.uuid4().hex,
            candidates_scored=len(candidates),
        )

    # ----------------------------------------------------------------------------- conversation

    async def conversation(self, request: ConversationRequest) -> ConversationResponse:
        """Replies of a root tweet, scored for the viewer, nested by score and split by health.

        Raises NotFoundError for an unknown viewer or tweet, and for a tweet that is a reply.
        """
        index = self.index
        if not index.has_user(request.viewer_id):
            raise NotFoundError("user", request.viewer_id)
        if not index.has_tweet(request.tweet_id):
            raise NotFoundError("tweet", request.tweet_id)
        if not index.is_root(request.tweet_id):
            raise NotFoundError("tweet", request.tweet_id, "is a reply, not a conversation root")
        arm = self.arm_of(request.viewer_id)
        model = self.arms[arm]
        root = index.tweet(request.tweet_id)
        replies = index.replies(request.tweet_id)
        main: list[ReplyNode] = []
        low_quality: list[ReplyNode] = []
        if not replies.empty:
            candidates = replies[["tweet_id", "author_id"]].assign(
                in_network=np.isin(replies["author_id"], index.followees(request.viewer_id))
            )
            features = await self._blocking(self._hydrate, request.viewer_id, candidates)
            predictions = await model.score(features)
            scores = blend_scores(predictions, self.cfg.blend.weights)
            tree = build_reply_tree(replies, request.tweet_id, scores, predictions)
            main, low_quality = section_replies(tree, self.cfg.serve.toxicity_threshold)
        return ConversationResponse(
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

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _feed_items(ranked: pd.DataFrame) -> list[FeedItem]:
    """FeedItems of a :func:`rank_feed` frame, in its order."""
    heads = head_columns(ranked)
    return [
        FeedItem(
            tweet_id=int(row["tweet_id"]),
            author_id=int(row["author_id"]),
            score=float(row["score"]),
            predictions={head: float(row[col]) for head, col in heads.items()},
            source=row["source"],
            in_network=bool(row["in_network"]),
        )
        for row in ranked.to_dict("records")
    ]
