"""Simulated days of traffic against the live service: the world's users as its HTTP clients.

A day of the persisted world (``Simulation.load``) runs tick by tick on the simulated clock
(``traffic.tick_minutes``). At tick time ``T`` the clock is set to ``T``, the world's tweets created
in ``(T - tick, T]`` are posted to ``POST /tweets``, and the sessions that start in ``(T - tick, T]``
run concurrently; every request of those sessions happens "at ``T``" (the service reads the clock).
A session pages through ``/feed`` (``traffic.page_size`` a page, following ``next_cursor``), and
what its user does with each page is drawn from the true engagement model at ``T``
(``pipelines.traffic.users``) and posted to ``/engagement``; a viewed item with replies opens its
conversation now and then (``/conversation``), and a session may open a followee's conversation
directly before its feed (``traffic.conversation_direct_share``). A conversation page's replies
are viewed in the order the service answers them and engaged with by the conversation surface of
the true model at their position on the page (its own position bias, not the feed's). At the day's end the world remembers what users did and is saved, the served truth of the
day is written (``cfg.paths.served_truth``), the clock is set to the day's end, and the day's
figures are saved (``cfg.paths.traffic_reports``).

Randomness: the same ``seed`` (default the world's) draws the same users, the same session starts
and the same per-session streams whatever the policy, so policies are compared on the same users
at the same times. A session's stream depends only on (seed, day, its index among the day's
sessions); a direct opening draws from a second stream of the session's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.clock import SimClock
from pipelines.config import FeedrankConfig
from pipelines.schema import ENGAGEMENTS, TRUTH
from pipelines.traffic.client import ClientStats, ServiceClient
from pipelines.traffic.figures import DayTally, run_figures
from pipelines.traffic.users import Behaviour, Reaction, react
from pipelines.world.simulate import Simulation
from pipelines.world.state import TWEET_ID_BASE, seconds_since
from pipelines.world.truth import TRUTH_COLUMNS, true_engagement

log = logging.getLogger(__name__)

# A run's policy -> the `policy` field of POST /feed.
POLICIES: dict[str, str] = {
    "served": "model",
    "chronological": "chronological",
    "random": "random",
    "oracle": "oracle",
}
DEFAULT_FEED_POLICY = "model"  # what the service serves when a request names no policy
# Independent random streams of a run, each seeded by (seed, stream, ...).
USERS_STREAM, SESSION_STARTS_STREAM, SESSION_STREAM, DIRECT_STREAM = 1, 2, 3, 4
PROGRESS_EVERY_HOURS = 3  # simulated hours between two progress lines
SERVED_TRUTH_SCHEMA = pa.schema(
    [("request_id", pa.string()), ("tweet_id", pa.int64())]
    + [TRUTH.field(name) for name in TRUTH_COLUMNS]
)


class TrafficError(RuntimeError):
    """Traffic cannot run as asked: bad arguments, a clock past the day to run, or a service that
    does not serve the policy."""


@dataclass(frozen=True)
class Session:
    """One session of a day: its user, its start, its random stream and the stream of its
    direct conversation opening (apart, so the feed's draws are the same with or without)."""

    user_id: int
    start: pd.Timestamp
    rng: np.random.Generator
    direct: np.random.Generator


@dataclass
class Served:
    """What one day served and what users did with it, for the world's memory and the truth."""

    viewers: list[np.ndarray] = field(default_factory=list)  # [M] user ids per page
    tweets: list[np.ndarray] = field(default_factory=list)  # [M] tweet ids per page
    engaged: list[np.ndarray] = field(default_factory=list)  # [M] did any of ENGAGEMENTS
    truth: list[pd.DataFrame] = field(default_factory=list)  # SERVED_TRUTH_SCHEMA rows per page

    def add(self, user_id: int, request_id: str, tweet_ids: np.ndarray, what: Reaction) -> None:
        self.viewers.append(np.full(len(tweet_ids), user_id, dtype=np.int64))
        self.tweets.append(tweet_ids)
        self.engaged.append(np.logical_or.reduce([what.labels[a] for a in ENGAGEMENTS]))
        self.truth.append(
            pd.DataFrame({"request_id": request_id, "tweet_id": tweet_ids, **what.truth})
        )

    def remember(self, sim: Simulation) -> None:
        """Fold the day into the world's memory (tomorrow's past interactions, popularity)."""
        if self.viewers:
            sim.remember(
                np.concatenate(self.viewers),
                np.concatenate(self.tweets),
                np.concatenate(self.engaged),
            )

    def truth_table(self) -> pa.Table:
        frame = pd.concat(self.truth, ignore_index=True) if self.truth else None
        if frame is None:
            return SERVED_TRUTH_SCHEMA.empty_table()
        return pa.Table.from_pandas(frame, schema=SERVED_TRUTH_SCHEMA, preserve_index=False)


# ---------------------------------------------------------------------------- the run
def run_traffic(
    cfg: FeedrankConfig,
    days: int,
    users: int | None = None,
    policy: str = "served",
    seed: int | None = None,
    on_day: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run `days` simulated days of traffic against the service at ``cfg.service_url``.

    Args:
        users: keep the sessions of this many users, chosen by a seeded draw (default: all).
        policy: how the service ranks the feed: served (its ranker), chronological, random or
            oracle (the blend of the true probabilities).
        seed: of every draw of the run (default ``cfg.world.seed``).
        on_day: called with each day's figures as the day ends.

    Returns the run's report: the policy, seed and users, every day's figures, the run's, the
    client's figures over the run (``latency_ms`` per endpoint, ``retries``, ``rejected``) and the
    clock.
    Raises TrafficError for a run that cannot be done as asked, and ServiceUnavailableError
    when the service stops answering (after ``traffic.retries``).
    """
    check_request(cfg, days, users, policy)
    return asyncio.run(
        _run(cfg, days, users, policy, cfg.world.seed if seed is None else seed, on_day)
    )


def check_request(cfg: FeedrankConfig, days: int, users: int | None, policy: str) -> None:
    if days < 1:
        raise TrafficError(f"days must be >= 1, got {days}")
    if policy not in POLICIES:
        raise TrafficError(f"unknown policy {policy!r}; one of {list(POLICIES)}")
    if users is not None and not 1 <= users <= cfg.world.n_users:
        raise TrafficError(f"users must be in 1..{cfg.world.n_users} (the world's), got {users}")


async def _run(
    cfg: FeedrankConfig,
    days: int,
    users: int | None,
    policy: str,
    seed: int,
    on_day: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    sim = Simulation.load(cfg)
    chosen = chosen_users(sim.user_ids, users, seed)
    figures: list[dict[str, Any]] = []
    client_stats = ClientStats()
    async with ServiceClient.of(cfg) as client:
        await client.healthz()
        await probe_policy(client, policy, int(sim.user_ids[0] if chosen is None else chosen[0]))
        for _ in range(days):
            day = DayRun(cfg, sim, client, policy, seed, chosen)
            report = await day.run()
            client_stats.absorb(client.stats)
            figures.append(report)
            if on_day is not None:
                on_day(report)
    return {
        "policy": policy,
        "seed": seed,
        "users": None if chosen is None else len(chosen),
        "days": figures,
        "run": run_figures(figures),
        **client_stats.summary(),
        "clock": SimClock.of(cfg).now().isoformat(),
    }


def feed_policy_of(policy: str) -> str | None:
    """The `policy` field of POST /feed for a run's policy; None (left out) for the service's
    default, so that a service without policies serves the ranker's runs."""
    feed_policy = POLICIES[policy]
    return None if feed_policy == DEFAULT_FEED_POLICY else feed_policy


async def probe_policy(client: ServiceClient, policy: str, user_id: int) -> None:
    """Ask the service for one synthetic page under `policy` before any day is spent: a service
    that cannot serve it (the oracle without the world's state, a service without policies)
    stops the run here with its reason."""
    page = await client.feed(user_id, 1, policy=feed_policy_of(policy), synthetic=True)
    if page is None:
        raise TrafficError(
            f"the service does not serve the {policy!r} policy: {client.stats.rejections[-1:]}"
        )


def chosen_users(user_ids: np.ndarray, users: int | None, seed: int) -> np.ndarray | None:
    """The ``users`` user ids (sorted) whose sessions a run keeps, by a draw seeded by `seed`
    alone; None keeps everyone."""
    if users is None:
        return None
    rng = np.random.default_rng([seed, USERS_STREAM])
    return np.sort(rng.choice(user_ids, size=users, replace=False))


def day_sessions(sim: Simulation, day: int, seed: int, chosen: np.ndarray | None) -> list[Session]:
    """The day's sessions (of the chosen users), in start order, each with its own stream."""
    user_ids, starts = sim.session_starts(
        day, np.random.default_rng([seed, SESSION_STARTS_STREAM, day])
    )
    keep = None if chosen is None else {int(user) for user in chosen}
    return [
        Session(
            int(user),
            start,
            np.random.default_rng([seed, SESSION_STREAM, day, index]),
            np.random.default_rng([seed, DIRECT_STREAM, day, index]),
        )
        for index, (user, start) in enumerate(zip(user_ids, starts, strict=True))
        if keep is None or int(user) in keep
    ]


def tick_of(
    times: pd.Series | pd.DatetimeIndex, day_start: pd.Timestamp, tick: pd.Timedelta, ticks: int
) -> np.ndarray:
    """``[M]`` 1-based tick of each time: tick ``i`` covers ``(day_start + (i-1) tick,
    day_start + i tick]``; the day's first instant belongs to the first tick."""
    elapsed = (pd.DatetimeIndex(times) - day_start) / tick
    return np.clip(np.ceil(np.asarray(elapsed, dtype=np.float64)), 1, ticks).astype(int)


def tweet_payloads(tweets: pd.DataFrame) -> list[dict[str, Any]]:
    """The lake's tweet rows as POST /tweets bodies (ISO UTC times, null for a root's parent)."""
    return [
        {
            "tweet_id": int(row.tweet_id),
            "author_id": int(row.author_id),
            "created_at": pd.Timestamp(row.created_at).isoformat(),
            "text": str(row.text),
            "language": str(row.language),
            "has_image": bool(row.has_image),
            "has_video": bool(row.has_video),
            "has_url": bool(row.has_url),
            "hashtags": [str(tag) for tag in row.hashtags],
            "conversation_id": int(row.conversation_id),
            "in_reply_to_tweet_id": (
                None if pd.isna(row.in_reply_to_tweet_id) else int(row.in_reply_to_tweet_id)
            ),
            "toxicity": float(row.toxicity),
        }
        for row in tweets.itertuples(index=False)
    ]


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def known_items(sim: Simulation, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The served items whose tweets the simulated world knows, in order. A tweet posted to the
    service by someone else (a probe, another client) has no truth in the world: simulated users
    scroll past it without acting."""
    logged = len(sim.world.tweets)
    return [item for item in items if 0 <= int(item["tweet_id"]) - TWEET_ID_BASE < logged]


def linearized_replies(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies of a /conversation answer in the order a reader meets them: section by
    section (``sections[*].replies``), each subtree depth first (a node's ``replies``). An ad
    (``is_ad``) and an entry with no tweet (a "more replies" marker) are no reply; the ancestors
    and fields this reader does not know are left alone."""
    out: list[dict[str, Any]] = []

    def visit(node: dict[str, Any]) -> None:
        if node.get("is_ad") or node.get("tweet_id") is None:
            return
        out.append(node)
        for child in node.get("replies") or []:
            visit(child)

    for section in conversation.get("sections", []):
        for node in section.get("replies", []):
            visit(node)
    return out


# ---------------------------------------------------------------------------- one day
class DayRun:
    """One simulated day of traffic: ticks, sessions, and the day's end."""

    def __init__(
        self,
        cfg: FeedrankConfig,
        sim: Simulation,
        client: ServiceClient,
        policy: str,
        seed: int,
        chosen: np.ndarray | None,
    ) -> None:
        self.cfg, self.sim, self.client = cfg, sim, client
        self.policy, self.seed, self.chosen = policy, seed, chosen
        self.feed_policy = feed_policy_of(policy)
        self.behaviour = Behaviour.of(cfg)
        self.clock = SimClock.of(cfg)
        self.day = sim.next_day
        self.start = sim.day_start(self.day)
        self.label = self.start.date().isoformat()
        self.tally = DayTally(self.label, cfg.blend.weights)
        self.served = Served()
        self.unknown_items = 0  # served items of tweets the world does not know (see `known`)
        # Per tweet index, as of the current tick: its conversation's root, its visible replies.
        self.roots = np.zeros(0, dtype=np.int64)
        self.replies = np.zeros(0, dtype=np.int64)

    async def run(self) -> dict[str, Any]:
        """Every tick of the day, then the day's end; returns the day's figures."""
        now = self.clock.now()
        if now < self.start:
            raise TrafficError(
                f"the world's day before {self.start.date()} was posted but its traffic did not "
                f"finish (the clock is at {now}): move the clock on with `feedrank clock --set "
                f"{self.start.isoformat()}` to go on from the next day"
            )
        if now > self.start:
            raise TrafficError(
                f"the clock ({now}) is past the start of the world's next day ({self.start}): "
                "a day of traffic starts where the last one (or the bootstrap) ended"
            )
        self.client.stats = ClientStats()  # the day's own latencies, retries and rejections
        tick = pd.Timedelta(minutes=self.cfg.traffic.tick_minutes)
        ticks = math.ceil(pd.Timedelta(days=1) / tick)
        tweets = self.sim.post_day(self.day)
        # Saved at once, so that the service's oracle policy (which reads the saved world) knows
        # the latents of every tweet posted today; what users do is folded in at the day's end.
        self.sim.save(self.cfg)
        sessions = day_sessions(self.sim, self.day, self.seed, self.chosen)
        tweet_ticks = tick_of(tweets["created_at"], self.start, tick, ticks)
        session_ticks = tick_of(
            pd.DatetimeIndex([s.start for s in sessions]), self.start, tick, ticks
        )
        for index in range(1, ticks + 1):
            at = min(self.start + index * tick, self.start + pd.Timedelta(days=1))
            todo = [s for s, t in zip(sessions, session_ticks, strict=True) if t == index]
            await self.tick(at, tweets[tweet_ticks == index], todo)
            self.progress(index, ticks, tick)
        return self.end()

    async def tick(self, at: pd.Timestamp, tweets: pd.DataFrame, sessions: list[Session]) -> None:
        """The clock to ``at``, the tick's tweets posted, then its sessions run concurrently."""
        self.clock.advance_to(at, reason="traffic")
        for batch in batches(tweet_payloads(tweets), self.cfg.traffic.tweets_per_post):
            await self.client.post_tweets(batch)
        self.roots, self.replies = conversations_at(self.sim, at)
        await asyncio.gather(*(self.session(s, at) for s in sessions))

    def progress(self, index: int, ticks: int, tick: pd.Timedelta) -> None:
        hours = index * tick / pd.Timedelta(hours=1)
        on_the_hour = hours == int(hours) and int(hours) % PROGRESS_EVERY_HOURS == 0
        if index == ticks or on_the_hour:
            figures = self.tally.figures()
            log.info(
                "traffic %s %02d:00: %d sessions, %d pages, %d impressions, %d viewed, "
                "%.2f value/impression, %d requests retried, %d rejected",
                self.label,
                int(hours),
                figures["sessions"],
                figures["pages"],
                figures["impressions"],
                figures["viewed"],
                figures["value_per_impression"],
                sum(self.client.stats.retries.values()),
                sum(self.client.stats.rejected.values()),
            )

    # ------------------------------------------------------------------------ sessions
    async def session(self, session: Session, at: pd.Timestamp) -> None:
        """Page through the feed while the user keeps scrolling (at most traffic.max_pages)."""
        self.tally.add_session(session.user_id)
        if session.direct.random() < self.cfg.traffic.conversation_direct_share:
            root = self.direct_conversation(session)
            if root is not None:
                await self.conversation(session, at, root, session.direct)
        cursor: str | None = None
        for _ in range(self.cfg.traffic.max_pages):
            page = await self.client.feed(
                session.user_id, self.cfg.traffic.page_size, cursor=cursor, policy=self.feed_policy
            )
            if page is None:
                return
            goes_on = await self.view(session, at, page)
            cursor = page.get("next_cursor")
            if not goes_on or not cursor:
                return

    def known(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:func:`known_items`, counting what it leaves out (``unknown_items``)."""
        kept = known_items(self.sim, items)
        self.unknown_items += len(items) - len(kept)
        return kept

    async def view(self, session: Session, at: pd.Timestamp, page: dict[str, Any]) -> bool:
        """What the user does with one feed page; whether it goes on scrolling."""
        items = self.known(page["items"])
        if not items:
            return bool(page["items"])
        reaction = await self.react(session.rng, session, at, page["request_id"], "home", items)
        opens = session.rng.random(len(items)) < self.cfg.traffic.conversation_share
        for item, viewed, opened in zip(items, reaction.viewed, opens, strict=True):
            if viewed and opened and self.has_replies(item["tweet_id"]):
                await self.conversation(session, at, item["tweet_id"], session.rng)
        return reaction.goes_on

    def direct_conversation(self, session: Session) -> int | None:
        """A lake tweet id of a root a followee of the session's user posted, that has replies
        now, drawn uniformly from the session's direct stream; None when there is none."""
        user = int(self.sim.user_index([session.user_id])[0])
        followees = np.nonzero(self.sim.adjacency[user])[0]
        posted = [t for a in followees for t in self.sim.world.user_tweets[a][-30:]]
        live = [t for t in posted if self.replies[t] > 0]
        if not live:
            return None
        return int(self.sim.tweet_ids(live[int(session.direct.integers(len(live)))]))

    async def conversation(
        self, session: Session, at: pd.Timestamp, tweet_id: int, rng: np.random.Generator
    ) -> None:
        """Open the conversation of a tweet and view its replies, drawing from ``rng``."""
        root = int(self.sim.tweet_ids(self.root_of(tweet_id)))
        answer = await self.client.conversation(root, session.user_id)
        if answer is None:
            return
        replies = linearized_replies(answer)
        for position, reply in enumerate(replies):
            reply["position"] = position
        known = [item for item in self.known(replies) if self.is_reply(item["tweet_id"])]
        if known:
            await self.react(rng, session, at, answer["request_id"], "conversation", known)

    async def react(
        self,
        rng: np.random.Generator,
        session: Session,
        at: pd.Timestamp,
        request_id: str,
        surface: str,
        items: list[dict[str, Any]],
    ) -> Reaction:
        """Draw (from ``rng``) what the user does with served ``items`` at ``at`` on ``surface``,
        keep it, post it. A conversation page's position bias is the true model's own."""
        tweet_ids = np.array([item["tweet_id"] for item in items], dtype=np.int64)
        authors = np.array([item["author_id"] for item in items], dtype=np.int64)
        positions = np.array([item["position"] for item in items], dtype=np.int64)
        on_page = surface == "conversation"
        true = true_engagement(
            self.sim,
            np.full(len(items), session.user_id, dtype=np.int64),
            tweet_ids,
            pd.DatetimeIndex([at] * len(items)),
            positions=positions if on_page else None,
        )
        behaviour = replace(self.behaviour, attention_decay=0.0) if on_page else self.behaviour
        reaction = react(rng, true, positions, behaviour)
        self.tally.add_page(session.user_id, surface, authors, reaction)
        self.served.add(session.user_id, request_id, tweet_ids, reaction)
        await asyncio.gather(
            *(
                self.post(request_id, session.user_id, int(tweet), reaction.requests(i))
                for i, tweet in enumerate(tweet_ids)
            )
        )
        return reaction

    async def post(
        self, request_id: str, user_id: int, tweet_id: int, requests: list[tuple[str, int | None]]
    ) -> None:
        """One item's engagements, one after the other (a derived action after its parent)."""
        for action, dwell_ms in requests:
            await self.client.engagement(request_id, user_id, tweet_id, action, dwell_ms)

    def root_of(self, tweet_id: int) -> int:
        """Tweet index of the root of the conversation `tweet_id` is in."""
        return int(self.roots[self.sim.tweet_index([tweet_id])[0]])

    def has_replies(self, tweet_id: int) -> bool:
        return bool(self.replies[self.root_of(tweet_id)] > 0)

    def is_reply(self, tweet_id: int) -> bool:
        index = int(self.sim.tweet_index([tweet_id])[0])
        return bool(self.roots[index] != index)

    # ------------------------------------------------------------------------ the day's end
    def end(self) -> dict[str, Any]:
        """Remember, save, write the served truth, set the clock to the day's end, report."""
        self.served.remember(self.sim)
        self.sim.save(self.cfg)
        truth = self.write_truth()
        self.clock.advance_to(self.start + pd.Timedelta(days=1), reason="traffic day end")
        figures = {
            **self.tally.figures(),
            "policy": self.policy,
            "unknown_items": self.unknown_items,
            "client": self.client.stats.summary(),
            "served_truth": str(truth),
        }
        self.write_report(figures)
        return figures

    def write_truth(self) -> Path:
        """The day's served truth as one new parquet file (a day's files never overwrite)."""
        folder = self.cfg.paths.served_truth / f"day={self.label}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"traffic-{uuid.uuid4().hex}.parquet"
        pq.write_table(self.served.truth_table(), path)
        return path

    def write_report(self, figures: dict[str, Any]) -> None:
        folder = self.cfg.paths.traffic_reports
        folder.mkdir(parents=True, exist_ok=True)
        body = {**figures, "value_per_user": {str(u): v for u, v in self.tally.value_of.items()}}
        (folder / f"{self.label}.json").write_text(json.dumps(body, indent=2, default=str))


def conversations_at(sim: Simulation, at: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """``([T] root index, [T] visible replies)`` per tweet index: the root of the conversation
    each tweet is in, and how many replies to a root were posted by ``at`` (0 but at roots)."""
    tweets = sim.view().tweets
    roots = tweets.column("conversation").astype(np.int64)
    posted = tweets.column("created") <= seconds_since(sim.view().start, [at])[0]
    is_reply = tweets.column("is_reply").astype(bool) & posted
    return roots, np.bincount(roots[is_reply], minlength=len(tweets))
