"""The conversation request path: the page of a tweet clicked (a root, or a reply) for a viewer,
stage by stage (DESIGN section 6; the stages live in `serving.conversation`):

1. candidates: the ancestors of the focal tweet (the chain above a reply), the recent-replies
   cache and the top replies below it, the ancestor store's repair of the tree; how many are
   fetched depends on the load (fewer under load or after an overrun: ``degraded``);
2. score: the viewer's arm's :class:`~serving.conversation.scoring.ReplyScorer` within the
   request deadline; when it fails or runs out of time, the heuristic order;
3. page: thread scores and linearization, product order, health sections, ad slots, the nested
   answer and the replies to log, in reading order.

Blocking stages (1 and 3) run on the engine's worker thread (`run_blocking`), so the event loop
keeps taking requests and the load is seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.event_log import ServedItem
from pipelines.inputs.spec import FeatureTable
from pipelines.ranking import blend_scores
from serving.candidates.world_index import WorldIndex, timestamp_ns
from serving.conversation.ads import AdsInventory
from serving.conversation.ancestors import AncestorStore
from serving.conversation.degradation import LoadShedder, heuristic_scores
from serving.conversation.order import product_groups, product_order
from serving.conversation.page import Page, ScoredCandidates, build_page
from serving.conversation.scoring import CANDIDATE_COLUMNS, ReplyScorer, ScoredReplies, checked
from serving.conversation.sections import health_sections
from serving.conversation.sources import Fetched, fetch
from serving.conversation.tree import ReplyTree, build_tree, linearize, thread_scores
from serving.engine.errors import NotFoundError
from serving.engine.ports import ArmModel
from serving.schemas import (
    AdSlot,
    Arm,
    ConversationRequest,
    ConversationResponse,
    ConversationTweet,
    DegradedReason,
)

log = logging.getLogger(__name__)

HEURISTIC_VERSION = "policy:heuristic"  # the model_version of a page the heuristic ordered
NOTHING_SCORED = "none"  # the model_version of a page without replies
SERVED_SOURCE = "conversation"  # the `source` of a reply logged as served in a conversation
# viewer id, candidates (tweet_id, author_id, in_network) -> online features, one row each
Hydrate = Callable[[int, pd.DataFrame], Awaitable[FeatureTable]]
# Runs a blocking function on the engine's worker thread.
RunBlocking = Callable[..., Awaitable[Any]]


class FeedRankerReplyScorer:
    """The default :class:`ReplyScorer`: the replies' online features, the arm's feed ranker and
    the feed's blend weights (``blend.weights``)."""

    def __init__(self, model: ArmModel, hydrate: Hydrate, weights: Mapping[str, float]) -> None:
        self.model = model
        self.hydrate = hydrate
        self.weights = dict(weights)

    @property
    def version(self) -> str:
        return self.model.version

    async def score(self, viewer_id: int, root_id: int, candidates: pd.DataFrame) -> ScoredReplies:
        keys = candidates[["tweet_id", "author_id", "in_network"]].reset_index(drop=True)
        features = await self.hydrate(viewer_id, keys)
        predictions = await self.model.score(features)
        return ScoredReplies(
            blend_scores(predictions, self.weights), dict(predictions), self.model.version
        )


@dataclass(frozen=True)
class Prepared:
    """Stage 1 of a request: the focal tweet, its ancestors' rows (root first), the candidates
    fetched and their tree, and the frame the scorer gets ([N rows] CANDIDATE_COLUMNS)."""

    focal_id: int
    root_row: int
    ancestor_rows: np.ndarray
    fetched: Fetched
    tree: ReplyTree
    frame: pd.DataFrame


@dataclass(frozen=True)
class Ranked:
    """Stage 2: the scores [N] of the candidates, and how they were obtained."""

    scores: np.ndarray
    predictions: Mapping[str, np.ndarray]
    version: str
    heuristic: bool
    reasons: list[DegradedReason]


@dataclass(frozen=True)
class Answered:
    """A conversation answer and the replies it shows, to log as served (reading order)."""

    response: ConversationResponse
    served: list[ServedItem]


class ConversationPath:
    """The conversation pages of one replica over `index`; `run_blocking` runs a blocking stage
    on the engine's worker thread."""

    def __init__(self, cfg: FeedrankConfig, index: WorldIndex, run_blocking: RunBlocking) -> None:
        self.cfg = cfg
        self.conv = cfg.conversation
        self.index = index
        self.run_blocking = run_blocking
        self.store = AncestorStore(index)
        self.shedder = LoadShedder(cfg.conversation, cfg.serve.request_deadline_ms)
        self.ads = AdsInventory(cfg.conversation)

    async def answer(
        self,
        request: ConversationRequest,
        arm: Arm,
        scorer: ReplyScorer,
        request_id: str,
        now: pd.Timestamp,
    ) -> Answered:
        """The page of `request.tweet_id` for `request.viewer_id`, scored by `scorer` (the
        ranker of the viewer's `arm`) at `now`, answered under `request_id`.

        Raises NotFoundError for an unknown viewer or tweet (a reply is a page of its own).
        """
        if not self.index.has_user(request.viewer_id):
            raise NotFoundError("user", request.viewer_id)
        if not self.index.has_tweet(request.tweet_id):
            raise NotFoundError("tweet", request.tweet_id)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.serve.request_deadline_ms / 1000.0
        reasons = self.shedder.enter()
        try:
            laps = _Laps()
            prepared: Prepared = await self.run_blocking(
                self._prepare, request, timestamp_ns(now), reasons
            )
            laps.lap("candidates")
            ranked = await self._rank(request.viewer_id, prepared, scorer, deadline, now)
            laps.lap("score")
            answered: Answered = await self.run_blocking(
                self._page, request, arm, request_id, now, prepared, ranked, reasons
            )
            laps.lap("page")
            answered.response.timings_ms.update(laps.laps)
            return answered
        finally:
            self.shedder.leave(time.perf_counter() - started)

    # ------------------------------------------------------------------------ 1. candidates

    def _prepare(
        self, request: ConversationRequest, now_ns: int, reasons: list[DegradedReason]
    ) -> Prepared:
        """The focal tweet's ancestors and candidates (blocking)."""
        index = self.index
        focal_id = int(request.tweet_id)
        ancestors = self.store.chain(focal_id)
        conversation = int(index.tweet(focal_id)["conversation_id"])
        root_row = int(index.rows_of(np.array([conversation]))[0])
        if root_row < 0:  # a root the index lacks: the top of the chain stands for it
            root_row = (
                int(ancestors[0]) if len(ancestors) else int(index.rows_of(np.array([focal_id]))[0])
            )
        caps = self.shedder.caps(reasons)
        fetched = fetch(index, self.store, focal_id, now_ns, caps, self.conv)
        arrays = index.arrays
        rows = fetched.rows
        ids, parent_ids = arrays.tweet_id[rows], arrays.parent_id[rows]
        tree = build_tree(ids, parent_ids, focal_id)
        frame = pd.DataFrame(
            {
                "tweet_id": ids,
                "author_id": arrays.author_id[rows],
                "in_network": np.isin(arrays.author_id[rows], index.followees(request.viewer_id)),
                "in_reply_to_tweet_id": parent_ids,
                "created_at": pd.DatetimeIndex(
                    arrays.created_ns[rows].view("datetime64[ns]")
                ).tz_localize("UTC"),
                "depth": tree.depth + len(ancestors),
            },
            columns=list(CANDIDATE_COLUMNS),
        )
        return Prepared(focal_id, root_row, ancestors, fetched, tree, frame)

    # ----------------------------------------------------------------------------- 2. score

    async def _rank(
        self,
        viewer_id: int,
        prepared: Prepared,
        scorer: ReplyScorer,
        deadline: float,
        now: pd.Timestamp,
    ) -> Ranked:
        """The scorer's scores within the deadline (event-loop seconds); the heuristic order
        when it raises or runs out of time."""
        frame = prepared.frame
        if frame.empty:
            return Ranked(np.zeros(0), {}, NOTHING_SCORED, False, [])
        root_id = int(self.index.arrays.tweet_id[prepared.root_row])
        timeout = max(deadline - asyncio.get_running_loop().time(), 0.001)
        try:
            answer = await asyncio.wait_for(scorer.score(viewer_id, root_id, frame), timeout)
            scored = checked(answer, len(frame))
        except TimeoutError:
            log.warning("conversation: the ranker ran past the deadline; heuristic order")
            return self._heuristic(prepared, now, "ranker_timeout")
        except Exception as exc:  # a failing ranker must never fail the page
            log.warning("conversation: the ranker failed (%r); heuristic order", exc)
            return self._heuristic(prepared, now, "ranker_failed")
        return Ranked(scored.scores, scored.predictions, scored.version, False, [])

    def _heuristic(self, prepared: Prepared, now: pd.Timestamp, why: DegradedReason) -> Ranked:
        rows = prepared.fetched.rows
        now_ns = timestamp_ns(now)
        scores = heuristic_scores(
            prepared.tree.descendants,
            self.index.engagement_counts(rows, now_ns),
            self.index.arrays.created_ns[rows],
            now_ns,
            self.conv.heuristic_half_life_hours,
        )
        return Ranked(scores, {}, HEURISTIC_VERSION, True, [why])

    # ------------------------------------------------------------------------------ 3. page

    def _page(
        self,
        request: ConversationRequest,
        arm: Arm,
        request_id: str,
        now: pd.Timestamp,
        prepared: Prepared,
        ranked: Ranked,
        reasons: list[DegradedReason],
    ) -> Answered:
        """Linearization, product order, sections, ads: the answer (blocking)."""
        page = self._linearized_page(request.viewer_id, prepared, ranked)
        index, arrays = self.index, self.index.arrays
        shown_rows = prepared.fetched.rows[page.shown]
        placed = self.ads.place(
            len(page.shown), page.main_threads, request.viewer_id, request.tweet_id
        )
        response = ConversationResponse(
            request_id=request_id,
            root=_tweet(index, prepared.root_row),
            focal_tweet_id=prepared.focal_id,
            ancestors=[_tweet(index, int(row)) for row in prepared.ancestor_rows],
            sections=page.sections,
            ads=[
                AdSlot(
                    ad_id=p.ad.ad_id,
                    advertiser_id=p.ad.advertiser_id,
                    text=p.ad.text,
                    after_thread=p.after_thread,
                )
                for p in placed
            ],
            sources=prepared.fetched.counts,
            candidates_scored=len(prepared.frame),
            ranking="heuristic" if ranked.heuristic else "model",
            degraded=bool(reasons or ranked.reasons),
            degraded_reasons=[*reasons, *ranked.reasons],
            model_version=ranked.version,
            arm=arm,
        )
        scores = ranked.scores[page.shown]
        served = [
            ServedItem(
                tweet_id=int(tweet),
                author_id=int(author),
                position=position,
                source=SERVED_SOURCE,
                score=float(score),
                section=section,
            )
            for position, (tweet, author, score, section) in enumerate(
                zip(
                    arrays.tweet_id[shown_rows],
                    arrays.author_id[shown_rows],
                    scores,
                    page.shown_section,
                    strict=True,
                )
            )
        ]
        return Answered(response, served)

    def _linearized_page(self, viewer_id: int, prepared: Prepared, ranked: Ranked) -> Page:
        """Thread scores, branches shown, product order of the threads and their sections."""
        index, conv, tree = self.index, self.conv, prepared.tree
        rows = prepared.fetched.rows
        arrays = index.arrays
        authors = arrays.author_id[rows]
        verified = index.verified(authors)
        in_network = prepared.frame["in_network"].to_numpy(bool)
        thread = thread_scores(tree, ranked.scores, conv.thread_depth)
        lin = linearize(tree, thread, conv.shown_depth, conv.shown_children)
        top = tree.top_level
        groups = product_groups(
            in_network[top],
            np.isin(arrays.tweet_id[rows[top]], prepared.fetched.author_replied),
            verified[top],
        )
        top = top[product_order(groups, thread[top])]
        predictions = {h: np.asarray(v)[top] for h, v in ranked.predictions.items()}
        sections = health_sections(arrays.toxicity[rows[top]], predictions, conv)
        candidates = ScoredCandidates(
            ids=arrays.tweet_id[rows],
            authors=authors,
            source=prepared.fetched.source,
            toxicity=arrays.toxicity[rows],
            in_network=in_network,
            verified=verified,
            scores=ranked.scores,
            thread=thread,
            predictions=ranked.predictions,
        )
        return build_page(candidates, tree, lin, top, sections, conv.max_threads)


def _tweet(index: WorldIndex, row: int) -> ConversationTweet:
    tweet = index.tweet(int(index.arrays.tweet_id[row]))
    return ConversationTweet(
        tweet_id=int(tweet["tweet_id"]), author_id=int(tweet["author_id"]), text=str(tweet["text"])
    )


class _Laps:
    """Milliseconds per stage, each measured from the end of the previous one."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round((now - self.last) * 1000.0, 3)
        self.last = now
