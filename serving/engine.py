"""The request path of feed and conversation ranking, free of Ray and HTTP.

:class:`FeedEngine` wires the world index (candidates, replies), online features and one ranker
per experiment arm into responses. The Ray Serve ingress (`serving.app`) owns one, and so does a
unit test with fake features and rankers; the HTTP layer (`serving.api`) only maps errors to
status codes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.event_log import (
    AuthorControls,
    EventLog,
    InvalidActionError,
    ServedItem,
    UnservedItemError,
)
from pipelines.features.spec import FeatureTable, row_count
from pipelines.ranking import blend_scores
from serving.cursor import CursorCodec, CursorError
from serving.filters import apply_filters
from serving.heuristics import apply_heuristics
from serving.rules import (
    assign_arm,
    build_reply_tree,
    head_columns,
    score_candidates,
    section_replies,
)
from serving.schemas import (
    Arm,
    ConversationRequest,
    ConversationResponse,
    ConversationRoot,
    ConversationSection,
    EngagementRequest,
    EngagementResponse,
    FeatureMode,
    FeedItem,
    FeedRequest,
    FeedResponse,
    HealthResponse,
    RankingMode,
    ReplyNode,
)
from serving.sources import CandidateGenerator, FeedContext
from serving.world_index import WorldIndex

log = logging.getLogger(__name__)

T = TypeVar("T")

# Scores feature rows (columns or a frame) into head -> probabilities [N]; awaitable (a Serve
# handle call).
Scorer = Callable[[FeatureTable], Awaitable[Mapping[str, np.ndarray]]]
HYDRATE_COLUMNS = ["tweet_id", "author_id", "in_network"]


class FeatureHydrator(Protocol):
    """What the engine needs of `pipelines.features.online_fast.FastOnlineFeatures`: online
    features, and the two degraded answers for when the store is slow or down."""

    def hydrate(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> FeatureTable: ...

    def hydrate_cached(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> tuple[FeatureTable, float]: ...

    def hydrate_default(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> FeatureTable: ...


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


class EventLogError(RuntimeError):
    """The event log could not record what was served (HTTP 503): nothing is served unlogged."""


NO_CONTROLS = AuthorControls(
    blocked=np.zeros(0, dtype=np.int64), muted=np.zeros(0, dtype=np.int64), show_fewer={}
)


@dataclass(frozen=True)
class Prepared:
    """A feed request's candidates after the filters, and what the heuristics need."""

    ctx: FeedContext
    candidates: pd.DataFrame
    by_source: dict[str, int]
    removed: dict[str, int]
    controls: AuthorControls


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


class _StageClock:
    """Milliseconds per stage of one request, each lap measured from the previous one."""

    def __init__(self, started: float) -> None:
        self.started = self.last = started
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round((now - self.last) * 1000.0, 3)
        self.last = now

    def finish(self) -> dict[str, float]:
        return {**self.laps, "total": round((time.perf_counter() - self.started) * 1000.0, 3)}


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
        events: EventLog | None = None,
        cursors: CursorCodec | None = None,
    ) -> None:
        """retriever: the out-of-network embedding source (None: trending only); events: where
        served impressions and feedback are logged (None: nothing logged, no feedback);
        cursors: the page-cursor codec (default: a random key, valid in this process only)."""
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
        self.events = events
        self.cursors = cursors or CursorCodec(uuid.uuid4().bytes * 2, cfg.serve.cursor_ttl_s)
        self.generator = CandidateGenerator(
            index, cfg.serve, retriever.retrieve if retriever is not None else None
        )
        self._started = time.monotonic()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedrank-engine")
        # Feature reads get their own threads: one hung on a dead store must not block the next.
        self._feature_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="feedrank-feat")

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

    def _hydrate(self, viewer_id: int, candidates: pd.DataFrame) -> FeatureTable:
        features = self.features.hydrate(
            viewer_id, candidates[HYDRATE_COLUMNS].reset_index(drop=True), self.now()
        )
        if row_count(features) != len(candidates):
            raise RuntimeError(
                f"online features returned {row_count(features)} rows for {len(candidates)} "
                "candidates"
            )
        return features

    def warm_up(self, viewers: int = 3) -> int:
        """Runs candidates and online features for a few viewers, so the first requests after a
        replica starts do not pay for cold store pages and caches (and degrade); returns how many
        viewers ran. Failures are logged, never raised: a cold replica still serves."""
        done = 0
        for user_id in range(1, self.index.n_users + 1):
            if done >= viewers:
                break
            if not self.index.has_user(user_id):
                continue
            try:
                prepared = self._prepare(user_id, uuid.uuid4().hex)
                if prepared.candidates.empty:
                    continue
                self._hydrate(user_id, prepared.candidates)
                done += 1
            except Exception as exc:
                log.warning("warm-up: viewer %d failed (%r)", user_id, exc)
                break
        return done

    def now(self) -> pd.Timestamp:
        """The serving clock: the world's last moment, advancing with wall time since start."""
        return self.index.now + pd.Timedelta(seconds=time.monotonic() - self._started)

    # ------------------------------------------------------------------------------------- feed

    def _prepare(self, user_id: int, session: str) -> Prepared:
        """Candidates of every source -> filters; with what the heuristics need (blocking)."""
        live_seen = self.events.served_to(user_id) if self.events is not None else None
        ctx = FeedContext.of(self.index, user_id, extra_seen=live_seen)
        ctx = replace(ctx, now=self.now())
        controls = self.events.author_controls(user_id) if self.events is not None else NO_CONTROLS
        candidates, by_source = self.generator.generate_with_counts(ctx)
        excluded = np.union1d(controls.blocked, controls.muted)
        kept, removed = apply_filters(candidates, ctx, excluded)
        return Prepared(ctx, kept.reset_index(drop=True), by_source, removed, controls)

    async def _features(
        self, user_id: int, candidates: pd.DataFrame, budget_s: float
    ) -> tuple[FeatureTable, FeatureMode]:
        """Online features within `budget_s`; past it or on a store error, cached rows, else the
        model's defaults (the mode says which)."""
        loop = asyncio.get_running_loop()
        read = loop.run_in_executor(self._feature_pool, self._hydrate, user_id, candidates)
        try:
            return await asyncio.wait_for(read, timeout=max(budget_s, 0.001)), "online"
        except Exception as exc:  # a slow or failing store must not fail the feed
            log.warning("feed: online features failed (%r); degrading", exc)
        keys = candidates[HYDRATE_COLUMNS].reset_index(drop=True)
        try:
            cached, coverage = self.features.hydrate_cached(user_id, keys, self.now())
            if coverage > 0:
                return cached, "cached"
        except Exception as exc:
            log.warning("feed: cached features failed too (%r)", exc)
        return self.features.hydrate_default(user_id, keys, self.now()), "default"

    async def feed(self, request: FeedRequest) -> FeedResponse:
        """Candidate sources -> filters -> online features -> the arm's ranker -> blend ->
        heuristics -> one page; every served item is logged before the page is returned.

        Raises InvalidFieldError (limit over ``serve.max_limit``, a bad cursor), NotFoundError
        (unknown user) and EventLogError (the impressions could not be logged: nothing served).
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = loop.time() + self.cfg.serve.request_deadline_ms / 1000.0
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
        cursor = None
        if request.cursor is not None:
            try:
                cursor = self.cursors.decode(request.cursor, request.user_id)
            except CursorError as exc:
                raise InvalidFieldError("cursor", str(exc), request.cursor, "value_error") from exc
        session = cursor.session if cursor is not None else uuid.uuid4().hex
        offset = cursor.offset if cursor is not None else 0
        # A synthetic visit stays synthetic on its next pages, flag or not.
        synthetic = request.synthetic or (cursor is not None and cursor.synthetic)
        arm = self.arm_of(request.user_id)
        model = self.arms[arm]
        clock = _StageClock(started)
        prepared = await self._blocking(self._prepare, request.user_id, session)
        clock.lap("candidates")
        candidates = prepared.candidates
        request_id = uuid.uuid4().hex
        feature_mode: FeatureMode = "online"
        ranking: RankingMode = "model"
        ranked = candidates.iloc[:0]
        if not candidates.empty:
            budget = min(self.cfg.serve.feature_timeout_ms / 1000.0, deadline - loop.time())
            features, feature_mode = await self._features(request.user_id, candidates, budget)
            clock.lap("features")
            try:
                predictions = await asyncio.wait_for(
                    model.score(features), timeout=max(deadline - loop.time(), 0.001)
                )
                clock.lap("score")
                scored = score_candidates(candidates, predictions, self.cfg.blend.weights)
                ranked = apply_heuristics(
                    scored,
                    self.cfg.serve,
                    prepared.ctx.now,
                    prepared.controls.show_fewer,
                    prepared.ctx.seen,
                )
                clock.lap("rank")
            except Exception as exc:  # the model failed or ran out of time: newest first
                log.warning("feed: ranking failed (%r); serving reverse-chronological", exc)
                ranking = "reverse_chronological"
                ranked = self._reverse_chronological(candidates)
        page = ranked.iloc[: request.limit]
        items = _feed_items(page, offset)
        if items and self.events is not None:
            served = [
                ServedItem(
                    tweet_id=item.tweet_id,
                    author_id=item.author_id,
                    position=item.position,
                    source=item.source,
                    score=item.score,
                )
                for item in items
            ]
            await self._blocking(
                self._log_served,
                request_id,
                session,
                request.user_id,
                served,
                model.version,
                arm,
                synthetic,
            )
            clock.lap("log")
        next_cursor = None
        if len(ranked) > len(page):
            next_cursor = self.cursors.encode(
                session,
                request.user_id,
                (cursor.page + 1 if cursor else 1),
                offset + len(items),
                synthetic=synthetic,
            )
        return FeedResponse(
            items=items,
            model_version=model.version,
            arm=arm,
            request_id=request_id,
            next_cursor=next_cursor,
            candidates_scored=len(candidates),
            candidate_sources=prepared.by_source,
            filtered=prepared.removed,
            features=feature_mode,
            ranking=ranking,
            degraded=feature_mode != "online" or ranking != "model",
            timings_ms=clock.finish(),
        )

    def _log_served(
        self,
        request_id: str,
        session: str,
        user_id: int,
        items: list[ServedItem],
        version: str,
        arm: str,
        synthetic: bool = False,
    ) -> None:
        assert self.events is not None
        try:
            self.events.log_served(
                request_id,
                session,
                user_id,
                self.now(),
                items,
                model_version=version,
                arm=arm,
                synthetic=synthetic,
            )
        except Exception as exc:
            raise EventLogError(f"could not log the served impressions: {exc!r}") from exc

    def _reverse_chronological(self, candidates: pd.DataFrame) -> pd.DataFrame:
        created = self.index.created_at(candidates["tweet_id"].to_numpy(np.int64))
        order = np.argsort(-created, kind="stable")
        return candidates.iloc[order].reset_index(drop=True).assign(score=0.0)

    # ------------------------------------------------------------------------------- feedback

    async def engagement(self, request: EngagementRequest) -> EngagementResponse:
        """Record an action on a served item, validated against what was served.

        Raises InvalidFieldError naming the field (an item not served in that request or to that
        user, `dwell` without `dwell_ms`, an action not allowed) and EventLogError.
        """
        if self.events is None:
            raise EventLogError("this service has no event log")
        if request.action == "dwell" and request.dwell_ms is None:
            raise InvalidFieldError(
                "dwell_ms", "dwell_ms is required for action 'dwell'", None, "missing"
            )
        try:
            record = await self._blocking(
                self.events.record_engagement,
                request.request_id,
                request.user_id,
                request.tweet_id,
                request.action,
                self.now(),
                request.dwell_ms,
            )
        except UnservedItemError as exc:
            raise InvalidFieldError("tweet_id", str(exc), request.tweet_id, "value_error") from exc
        except InvalidActionError as exc:
            raise InvalidFieldError("action", str(exc), request.action, "value_error") from exc
        return EngagementResponse(
            recorded=bool(record.new),
            request_id=request.request_id,
            tweet_id=request.tweet_id,
            action=request.action,
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
        self._feature_pool.shutdown(wait=False, cancel_futures=True)


def _feed_items(ranked: pd.DataFrame, offset: int) -> list[FeedItem]:
    """FeedItems of a ranked frame, in its order, positioned from `offset`."""
    heads = head_columns(ranked)
    return [
        FeedItem(
            tweet_id=int(row["tweet_id"]),
            author_id=int(row["author_id"]),
            position=offset + i,
            score=float(row["score"]),
            predictions={head: float(row[col]) for head, col in heads.items()},
            source=row["source"],
            in_network=bool(row["in_network"]),
        )
        for i, row in enumerate(ranked.to_dict("records"))
    ]
