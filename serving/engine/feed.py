"""The feed request path, and :class:`FeedEngine`, which owns every request path (feed, engagement,
conversation) of one serving replica, free of Ray and HTTP.

:class:`FeedEngine` wires the world index (candidates, replies), online features and one ranker
per experiment arm into responses. The Ray Serve ingress (`serving.app`) owns one, and so does a
unit test with fake features and rankers; the HTTP layer (`serving.api`) only maps errors to
status codes.

A feed request runs in named steps: the visit (limit, user and cursor checked), candidates
(sources, then filters), features (online, degrading to cached or default), score (the arm's
ranker, blend, heuristics: the page order; newest first when the ranker fails), log (every
served item before the page is returned), then the next page's cursor. A request may ask for
another `policy` than the ranker (chronological, random, oracle): the same candidates after the
same filters, ordered by that policy, logged with ``model_version`` ``policy:<name>``.

Time is the simulated clock's (`pipelines.clock`): every stamp the engine writes (served_at, an
engagement's time, the features' request time, the candidate windows) is its now, never wall time.
The engine lives with the world: POST /tweets makes new tweets candidates at once, every replica
indexes what the others took (:class:`serving.live.sync.LiveSync`), and the engagement counts of
the tweets it serves or records feedback on are pushed to the online store off the request path
(:class:`serving.live.counts.EngagementPusher`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from pipelines.clock import ClockReader, SimClock
from pipelines.config import FeedrankConfig
from pipelines.event_log import (
    AuthorControls,
    EventLog,
    InvalidActionError,
    ServedItem,
    UnservedItemError,
)
from pipelines.inputs.spec import FeatureTable, row_count
from pipelines.schema import ENGAGEMENTS
from serving.candidates.filters import apply_filters
from serving.candidates.sources import CandidateGenerator, FeedContext
from serving.candidates.world_index import WorldIndex
from serving.conversation.scoring import ReplyScorer
from serving.engine.conversation import ConversationPath, FeedRankerReplyScorer
from serving.engine.errors import EventLogError, InvalidFieldError, NotFoundError
from serving.engine.ports import (
    ArmModel,
    Embed,
    FeatureHydrator,
    Oracle,
    PushEmbeddings,
    Retriever,
)
from serving.engine.posting import checked_tweets
from serving.live.counts import EngagementPusher
from serving.live.sync import LiveSync
from serving.policy.cursor import Cursor, CursorCodec, CursorError
from serving.policy.experiments import assign_arm
from serving.policy.heuristics import apply_heuristics
from serving.policy.rules import head_columns, score_candidates
from serving.schemas import (
    Arm,
    ConversationRequest,
    ConversationResponse,
    EngagementRequest,
    EngagementResponse,
    FeatureMode,
    FeedItem,
    FeedRequest,
    FeedResponse,
    HealthResponse,
    Policy,
    PostTweetsRequest,
    PostTweetsResponse,
    RankingMode,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

HYDRATE_COLUMNS = ["tweet_id", "author_id", "in_network"]

NO_CONTROLS = AuthorControls(
    blocked=np.zeros(0, dtype=np.int64), muted=np.zeros(0, dtype=np.int64), show_fewer={}
)


@dataclass(frozen=True)
class Visit:
    """Where a feed request stands in its visit: the session (all its pages), the position of
    the page's first item, the cursor that led here (None on the first page), and whether the
    visit is synthetic (a load test or probe: its pages are too, flag or not)."""

    session: str
    offset: int
    cursor: Cursor | None
    synthetic: bool


@dataclass(frozen=True)
class Prepared:
    """A feed request's candidates after the filters, and what the heuristics need."""

    ctx: FeedContext
    candidates: pd.DataFrame
    by_source: dict[str, int]
    removed: dict[str, int]
    controls: AuthorControls


@dataclass(frozen=True)
class Ranked:
    """The candidates in page order, and how they were ranked."""

    frame: pd.DataFrame
    features: FeatureMode
    ranking: RankingMode


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
    """Ranks feeds and conversations and records engagements; one per serving replica.

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
        *,
        clock: Callable[[], pd.Timestamp] | None = None,
        embed: Embed | None = None,
        push_embeddings: PushEmbeddings | None = None,
        counts: EngagementPusher | None = None,
        oracle: Oracle | None = None,
        reply_scorers: Mapping[Arm, ReplyScorer] | None = None,
    ) -> None:
        """retriever: the out-of-network embedding source (None: trending only); events: where
        served impressions and feedback are logged and posted tweets recorded (None: nothing
        logged, no feedback, no posting); cursors: the page-cursor codec (default: a random key,
        valid in this process only); clock: the serving now (default: the simulated clock of
        `cfg`, or the lake's latest moment while none is set); embed and push_embeddings: the
        text encoder and the online store's embedding push of POST /tweets (None: no posting);
        counts: where the tweets whose counts moved are marked (None: no push); oracle: the
        world's true probabilities for the oracle policy (None: that policy answers 422);
        reply_scorers: the conversation reply ranker per arm (None, or an arm it lacks: the
        arm's feed ranker with ``blend.weights``, :class:`FeedRankerReplyScorer`)."""
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
        self._clock = clock or ClockReader(SimClock.of(cfg), fallback=index.now)
        self.embed = embed
        self.push_embeddings = push_embeddings
        self.counts = counts
        self.oracle = oracle
        self.cursors = cursors or CursorCodec(uuid.uuid4().bytes * 2, cfg.serve.cursor_ttl_s)
        self.generator = CandidateGenerator(
            index, cfg.serve, retriever.retrieve if retriever is not None else None
        )
        self.reply_scorers: dict[Arm, ReplyScorer] = {
            arm: FeedRankerReplyScorer(model, self._hydrate_off_loop, weights)
            for arm, model in self.arms.items()
        }
        self.reply_scorers.update(reply_scorers or {})
        self.conversations = ConversationPath(cfg, index, self._blocking)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedrank-engine")
        # Feature reads get their own threads: one hung on a dead store must not block the next.
        self._feature_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="feedrank-feat")
        # Embedding posted tweets is seconds of CPU: never on the worker that serves feeds.
        self._embed_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedrank-embed")
        self.live = (
            None
            if events is None
            else LiveSync(
                index,
                events,
                apply=self._on_worker,
                add_vectors=retriever.add if retriever is not None else None,
            )
        )

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
            reply_model_versions={
                arm: self.reply_scorers.get(arm, self.reply_scorers["champion"]).version
                for arm in self.arms
            },
            challenger_share=self.challenger_share,
        )

    def now(self) -> pd.Timestamp:
        """The serving clock: the simulated clock's now (one stat per call)."""
        return self._clock()

    def _on_worker(self, mutation: Callable[[], None]) -> None:
        """Run an index mutation on the worker that runs the candidate sources; wait for it."""
        self._worker.submit(mutation).result()

    def start_live(self) -> None:
        """Index what the event log holds beyond the lake (a replica that restarts mid-run
        serves everything posted and engaged so far), then start the background threads of the
        live service: the index sync (every ``serve.live_sync_s``) and the engagement-count push
        (every ``serve.live_push_s``)."""
        if self.live is not None:
            self.live.poll()
            self.live.start(self.cfg.serve.live_sync_s)
        if self.counts is not None:
            self.counts.start(self.cfg.serve.live_push_s)

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

    async def _hydrate_off_loop(self, viewer_id: int, candidates: pd.DataFrame) -> FeatureTable:
        return await self._blocking(self._hydrate, viewer_id, candidates)

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
                prepared = self._prepare(user_id)
                if prepared.candidates.empty:
                    continue
                self._hydrate(user_id, prepared.candidates)
                done += 1
            except Exception as exc:
                log.warning("warm-up: viewer %d failed (%r)", user_id, exc)
                break
        return done

    # ------------------------------------------------------------------------------------- feed

    async def feed(self, request: FeedRequest) -> FeedResponse:
        """Candidate sources -> filters -> online features -> the arm's ranker -> blend ->
        heuristics -> one page; every served item is logged before the page is returned.

        Raises InvalidFieldError (limit over ``serve.max_limit``, a bad cursor, the oracle policy
        without world truth), NotFoundError (unknown user) and EventLogError (the impressions
        could not be logged: nothing served).
        """
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.cfg.serve.request_deadline_ms / 1000.0
        visit = self._visit(request)
        arm = self.arm_of(request.user_id)
        model = self.arms[arm]
        version = model.version if request.policy == "model" else f"policy:{request.policy}"
        request_id = uuid.uuid4().hex
        clock = _StageClock(started)
        prepared = await self._blocking(self._prepare, request.user_id)
        clock.lap("candidates")
        if request.policy == "model":
            ranked = await self._rank(request.user_id, prepared, model, deadline, clock)
        else:
            ranked = await self._blocking(self._by_policy, request.policy, prepared, request_id)
            clock.lap("rank")
        page = ranked.frame.iloc[: request.limit]
        items = _feed_items(page, visit.offset)
        await self._log_page(request_id, request.user_id, visit, items, version, arm, clock)
        if self.counts is not None and not visit.synthetic:
            self.counts.mark(item.tweet_id for item in items)  # their impression counts moved
        return FeedResponse(
            items=items,
            model_version=version,
            policy=request.policy,
            arm=arm,
            request_id=request_id,
            next_cursor=self._next_cursor(
                request.user_id, visit, len(ranked.frame) > len(page), len(items)
            ),
            candidates_scored=len(prepared.candidates),
            candidate_sources=prepared.by_source,
            filtered=prepared.removed,
            features=ranked.features,
            ranking=ranked.ranking,
            degraded=ranked.features != "online" or ranked.ranking == "reverse_chronological",
            timings_ms=clock.finish(),
        )

    def _visit(self, request: FeedRequest) -> Visit:
        """The request checked (limit, user, cursor) and placed in its visit."""
        max_limit = self.cfg.serve.max_limit
        if request.policy == "oracle" and self.oracle is None:
            raise InvalidFieldError(
                "policy", "no simulated world truth here", request.policy, "value_error"
            )
        if request.limit > max_limit:
            raise InvalidFieldError(
                "limit",
                f"Input should be less than or equal to {max_limit}",
                request.limit,
                "less_than_equal",
            )
        if not self.index.has_user(request.user_id):
            raise NotFoundError("user", request.user_id)
        if request.cursor is None:
            return Visit(uuid.uuid4().hex, 0, None, request.synthetic)
        try:
            cursor = self.cursors.decode(request.cursor, request.user_id)
        except CursorError as exc:
            raise InvalidFieldError("cursor", str(exc), request.cursor, "value_error") from exc
        # A synthetic visit stays synthetic on its next pages, flag or not.
        return Visit(cursor.session, cursor.offset, cursor, request.synthetic or cursor.synthetic)

    def _prepare(self, user_id: int) -> Prepared:
        """Candidates of every source -> filters; with what the heuristics need (blocking)."""
        live_seen = self.events.served_to(user_id) if self.events is not None else None
        ctx = FeedContext.of(self.index, user_id, extra_seen=live_seen)
        ctx = replace(ctx, now=self.now())
        controls = self.events.author_controls(user_id) if self.events is not None else NO_CONTROLS
        candidates, by_source = self.generator.generate_with_counts(ctx)
        excluded = np.union1d(controls.blocked, controls.muted)
        kept, removed = apply_filters(candidates, ctx, excluded)
        return Prepared(ctx, kept.reset_index(drop=True), by_source, removed, controls)

    async def _rank(
        self,
        user_id: int,
        prepared: Prepared,
        model: ArmModel,
        deadline: float,
        clock: _StageClock,
    ) -> Ranked:
        """The candidates in page order by `model` within the `deadline` (event-loop seconds);
        newest first when the model fails or runs out of time."""
        candidates = prepared.candidates
        if candidates.empty:
            return Ranked(candidates.iloc[:0], "online", "model")
        loop = asyncio.get_running_loop()
        budget = min(self.cfg.serve.feature_timeout_ms / 1000.0, deadline - loop.time())
        features, feature_mode = await self._features(user_id, candidates, budget)
        clock.lap("features")
        try:
            ranked = await self._score(prepared, features, model, deadline, clock)
        except Exception as exc:  # the model failed or ran out of time: newest first
            log.warning("feed: ranking failed (%r); serving reverse-chronological", exc)
            return Ranked(
                self._reverse_chronological(candidates), feature_mode, "reverse_chronological"
            )
        return Ranked(ranked, feature_mode, "model")

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

    async def _score(
        self,
        prepared: Prepared,
        features: FeatureTable,
        model: ArmModel,
        deadline: float,
        clock: _StageClock,
    ) -> pd.DataFrame:
        """The model's predictions, blended, then the heuristics: the page order."""
        loop = asyncio.get_running_loop()
        predictions = await asyncio.wait_for(
            model.score(features), timeout=max(deadline - loop.time(), 0.001)
        )
        clock.lap("score")
        scored = score_candidates(prepared.candidates, predictions, self.cfg.blend.weights)
        ranked = apply_heuristics(
            scored,
            self.cfg.serve,
            prepared.ctx.now,
            prepared.controls.show_fewer,
            prepared.ctx.seen,
        )
        clock.lap("rank")
        return ranked

    def _by_policy(self, policy: Policy, prepared: Prepared, request_id: str) -> Ranked:
        """The candidates in the order of a reference policy (blocking): chronological (newest
        first), random (a shuffle seeded by the request id) or oracle (the blend of the world's
        true probabilities, best first; those are the items' predictions)."""
        candidates = prepared.candidates
        if policy == "chronological":
            frame = self._reverse_chronological(candidates)
        elif policy == "random":
            rng = np.random.default_rng(int(request_id, 16))
            frame = candidates.iloc[rng.permutation(len(candidates))].reset_index(drop=True)
            frame = frame.assign(score=0.0)
        elif policy == "oracle":
            assert self.oracle is not None  # checked with the request
            truth = self.oracle(prepared.ctx.user_id, candidates[HYDRATE_COLUMNS], self.now())
            scored = score_candidates(candidates, truth, self.cfg.blend.weights)
            frame = scored.sort_values("score", ascending=False, kind="stable")
            frame = frame.reset_index(drop=True)
        else:
            raise ValueError(f"no reference policy {policy!r}")
        return Ranked(frame, "online", "policy")

    def _reverse_chronological(self, candidates: pd.DataFrame) -> pd.DataFrame:
        created = self.index.created_at(candidates["tweet_id"].to_numpy(np.int64))
        order = np.argsort(-created, kind="stable")
        return candidates.iloc[order].reset_index(drop=True).assign(score=0.0)

    async def _log_page(
        self,
        request_id: str,
        user_id: int,
        visit: Visit,
        items: list[FeedItem],
        version: str,
        arm: Arm,
        clock: _StageClock,
    ) -> None:
        """Log every item of the page as served by the ranker `version` (or ``policy:<name>``)
        on `arm`; nothing to log without items or an event log."""
        if not items or self.events is None:
            return
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
            visit.session,
            user_id,
            served,
            version,
            arm,
            visit.synthetic,
        )
        clock.lap("log")

    def _log_served(
        self,
        request_id: str,
        session: str,
        user_id: int,
        items: list[ServedItem],
        version: str,
        arm: str,
        synthetic: bool = False,
        surface: str = "home",
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
                surface=surface,
                synthetic=synthetic,
            )
        except Exception as exc:
            raise EventLogError(f"could not log the served impressions: {exc!r}") from exc

    def _next_cursor(self, user_id: int, visit: Visit, more: bool, served: int) -> str | None:
        """The cursor of the page after this one (`served` items from the visit's offset);
        None when no candidates are left (`more` false)."""
        if not more:
            return None
        page = visit.cursor.page + 1 if visit.cursor is not None else 1
        return self.cursors.encode(
            visit.session, user_id, page, visit.offset + served, synthetic=visit.synthetic
        )

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
        if self.counts is not None and record.new and request.action in ENGAGEMENTS:
            self.counts.mark([request.tweet_id])
        return EngagementResponse(
            recorded=bool(record.new),
            request_id=request.request_id,
            tweet_id=request.tweet_id,
            action=request.action,
        )

    # ----------------------------------------------------------------------------- conversation

    async def conversation(self, request: ConversationRequest) -> ConversationResponse:
        """The page of a tweet clicked (a root, or a reply with the chain above it) for the
        viewer, scored by the reply ranker of the viewer's arm (stage by stage:
        :class:`~serving.engine.conversation.ConversationPath`); every reply shown is logged as
        served (surface ``conversation``, its position in reading order and its section) before
        the page is returned. Ads and ancestors are not logged.

        Raises NotFoundError for an unknown viewer or tweet and EventLogError (the impressions
        could not be logged: nothing served).
        """
        started = time.perf_counter()
        arm = self.arm_of(request.viewer_id)
        scorer = self.reply_scorers.get(arm, self.reply_scorers["champion"])
        request_id = uuid.uuid4().hex
        answered = await self.conversations.answer(request, arm, scorer, request_id, self.now())
        answer = answered.response
        if answered.served and self.events is not None:
            log_started = time.perf_counter()
            # Its own session: a conversation is a visit of its own, not a page of a feed.
            await self._blocking(
                self._log_served,
                request_id,
                uuid.uuid4().hex,
                request.viewer_id,
                answered.served,
                answer.model_version,
                arm,
                request.synthetic,
                "conversation",
            )
            answer.timings_ms["log"] = round((time.perf_counter() - log_started) * 1000.0, 3)
            if self.counts is not None and not request.synthetic:
                self.counts.mark(item.tweet_id for item in answered.served)
        answer.timings_ms["total"] = round((time.perf_counter() - started) * 1000.0, 3)
        return answer

    # ---------------------------------------------------------------------------- posted tweets

    async def post_tweets(self, request: PostTweetsRequest) -> PostTweetsResponse:
        """Tweets posted to the service: checked, embedded, pushed to the online store
        (embedding and topic), recorded in the event log, and indexed here at once (the other
        replicas within ``serve.live_sync_s``). Idempotent on tweet_id.

        Raises InvalidFieldError naming a faulty field (``tweets.<i>.<field>``) and
        EventLogError (no event log, encoder or store here, or one of them failed: nothing is
        recorded, a retry is safe).
        """
        if self.events is None or self.live is None:
            raise EventLogError("this service has no event log: it cannot take tweets")
        if self.embed is None or self.push_embeddings is None:
            raise EventLogError("this service has no text encoder: it cannot take tweets")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.live.poll)  # know what other replicas took
        fresh, repeated = checked_tweets(request.tweets, self.index, self.now())
        if fresh.empty:
            return PostTweetsResponse(posted=0, repeated=repeated)
        posted = await loop.run_in_executor(self._embed_pool, self._record_tweets, fresh)
        await loop.run_in_executor(None, self.live.poll)  # candidates here at once
        return PostTweetsResponse(posted=posted, repeated=repeated + len(fresh) - posted)

    def _record_tweets(self, tweets: pd.DataFrame) -> int:
        """Embed, push, record (blocking); returns how many the event log did not know. The
        push comes first: a tweet is recorded only once its embedding is in the store."""
        assert self.events is not None and self.embed is not None
        assert self.push_embeddings is not None
        try:
            vectors = self.embed(tweets["text"].tolist())
            self.push_embeddings(tweets[["tweet_id", "created_at"]], vectors, self.now())
            return self.events.post_tweets(tweets, vectors)
        except Exception as exc:
            raise EventLogError(f"could not take the posted tweets: {exc!r}") from exc

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
        if self.counts is not None:
            self.counts.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._feature_pool.shutdown(wait=False, cancel_futures=True)
        self._embed_pool.shutdown(wait=False, cancel_futures=True)


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
