"""The simulated world: users, a follow graph, tweets with text, sessions and labelled impressions.

Deterministic from ``cfg.world.seed``. Every impression draws all its action labels from the true
engagement model (:mod:`pipelines.world.truth`); the true probabilities go to a separate ``truth``
table that only evaluation reads.

Past interactions are the state at the start of each simulated day (the same daily granularity as the
batch features), so a whole day of impressions is labelled in one vectorized pass.

The bootstrap (:func:`build_world`) simulates ``cfg.world.days`` days under a logging policy and
persists the world; later days are *live*: the world posts its tweets (``Simulation.post_day``)
and draws its sessions (``Simulation.session_starts``), simulated traffic serves them through the
real service and reports back what users did (``Simulation.remember``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.clock import SimClock, bootstrap_end
from pipelines.config import FeedrankConfig, WorldConfig
from pipelines.schema import (
    BINARY_ACTIONS,
    DERIVED_ACTIONS,
    ENGAGEMENTS,
    FOLLOWS,
    IMPRESSIONS,
    STATIC_PARTITION,
    TRUTH,
    TWEETS,
    USERS,
    write_partition,
)
from pipelines.world.conversation import (
    CONVERSATION_ID_BASE,
    CONVERSATION_PAGE_STREAM,
    CONVERSATION_POLICY,
    ROOT_AUTHOR_STREAM,
    ReplyIndex,
    answered_parents,
    page_rows,
    pages_direct,
    pages_opened,
    stream,
)
from pipelines.world.state import (
    STATE_FILE,
    TWEET_ID_BASE,
    Population,
    TweetLog,
    WorldStateMismatchError,
    counts_arrays,
    counts_of,
    frame_arrays,
    frame_of,
    population_arrays,
    population_of,
    ragged_arrays,
    ragged_of,
    read_meta,
    read_state,
    seconds_since,
    timestamps_at,
    tweet_ids_of,
    tweet_index_of,
    tweet_log_arrays,
    tweet_log_of,
    user_ids_of,
    user_index_of,
    write_state,
)
from pipelines.world.text import TOPIC_NAMES, compose_text, pick_hashtags
from pipelines.world.truth import TrueEngagement, WorldView, topic_affinity, true_engagement_of

log = logging.getLogger(__name__)

LANGUAGES = np.array(["en", "es", "pt", "fr", "ja"])
LANGUAGE_SHARE = np.array([0.70, 0.12, 0.08, 0.05, 0.05])
COUNTRIES_BY_LANGUAGE = {
    "en": ["US", "GB", "CA", "AU", "IN"],
    "es": ["ES", "MX", "AR"],
    "pt": ["BR", "PT"],
    "fr": ["FR", "CA"],
    "ja": ["JP"],
}
# Relative session intensity by hour of day (UTC) and by weekday (Monday first).
HOURLY_RHYTHM = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.2,
        2.8,
        2.2,
        1.8,
        2.0,
        2.6,
        2.4,
        1.8,
        1.7,
        1.9,
        2.2,
        2.6,
        3.0,
        3.3,
        3.2,
        2.6,
        1.7,
    ]
)
WEEKDAY_RHYTHM = np.array([1.0, 1.0, 1.0, 1.05, 1.1, 1.25, 1.2])
PREHISTORY_DAYS = 2  # tweets posted before the first session, so day one has candidates


@dataclass
class CandidatePool:
    """What the logging policy picks a day's sessions from: the tweet log as of the day's start."""

    created: np.ndarray  # [T] seconds since the world start
    authors: np.ndarray  # [T] author index
    roots: np.ndarray  # log indices of the tweets that are not replies
    followees: list[np.ndarray]  # per user, the indices of the users it follows
    popularity: np.ndarray  # [T] sqrt(1 + engagements so far): out-of-network draw weight

    @classmethod
    def of(cls, world: World, adjacency: np.ndarray) -> CandidatePool:
        is_reply = world.tweets.column("is_reply").astype(bool)
        return cls(
            created=world.tweets.column("created"),
            authors=world.tweets.column("author").astype(int),
            roots=np.nonzero(~is_reply)[0],
            followees=[np.nonzero(adjacency[u])[0] for u in range(world.w.n_users)],
            popularity=np.sqrt(1.0 + world.tweet_engagements),
        )


class World:
    """Build the world day by day and write the raw tables and the truth to the lake."""

    def __init__(self, cfg: FeedrankConfig) -> None:
        self.cfg = cfg
        self.w = cfg.world
        self.rng = np.random.default_rng(self.w.seed)
        self.start = datetime.combine(self.w.start_date, datetime.min.time(), tzinfo=UTC)
        self.tweet_id_base = TWEET_ID_BASE
        self.tweets = TweetLog()
        self.impression_count = 0
        self.request_count = 0
        self.user_tweets: list[list[int]] = []
        self.engaged_pairs: dict[int, int] = {}  # viewer*N + author -> engagements so far
        self.tweet_engagements = np.zeros(0)
        self.tweet_impressions = np.zeros(0)
        self.conversation_impression_count = 0
        self.conversation_page_count = 0
        # The bootstrap's conversation engagements, remembered once its last day is over.
        self.unremembered: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.adjacency = np.zeros((0, 0), dtype=bool)  # the follow graph, once built

    # ------------------------------------------------------------------ population and graph
    def build_population(self) -> Population:
        n, k, rng = self.w.n_users, self.w.n_topics, self.rng
        interests = rng.dirichlet(np.full(k, self.w.topic_concentration), size=n)
        activity = rng.lognormal(0.0, 0.7, size=n)
        activity /= activity.mean()
        fitness = rng.pareto(1.6, size=n) + 1.0
        quality = rng.normal(0.0, 0.5, size=n)
        toxic = rng.random(n) < self.w.toxic_author_share
        toxic_tendency = np.where(toxic, rng.beta(5, 3, size=n), rng.beta(1, 14, size=n))
        language = rng.choice(LANGUAGES, size=n, p=LANGUAGE_SHARE)
        country = np.array([rng.choice(COUNTRIES_BY_LANGUAGE[lang]) for lang in language])
        top = fitness >= np.quantile(fitness, 1 - self.w.verified_share / 2)
        verified = top | (rng.random(n) < self.w.verified_share / 2)
        created = [self.start - timedelta(days=float(d)) for d in rng.uniform(30, 2500, size=n)]
        frame = pd.DataFrame(
            {
                "user_id": np.arange(1, n + 1, dtype=np.int64),
                "created_at": pd.to_datetime(created, utc=True),
                "is_verified": verified,
                "language": language,
                "country": country,
            }
        )
        return Population(interests, activity, fitness, quality, toxic_tendency, language, frame)

    def build_follows(self, pop: Population) -> tuple[pd.DataFrame, np.ndarray]:
        """Fitness-weighted attachment with topic homophily: heavy-tailed in-degree.

        Each user picks followees without replacement by the Gumbel top-k trick over
        log(fitness) + homophily * cos(interests) + language match. Returns the `follows` table and a
        boolean adjacency matrix [N, N] (follower, followee).
        """
        n, rng = self.w.n_users, self.rng
        unit = pop.interests / np.linalg.norm(pop.interests, axis=1, keepdims=True)
        wanted = np.clip(rng.poisson(self.w.mean_following * np.sqrt(pop.activity)), 3, n - 1)
        adjacency = np.zeros((n, n), dtype=bool)
        same_language = pop.language[:, None] == pop.language[None, :]
        for lo in range(0, n, 512):
            hi = min(lo + 512, n)
            scores = (
                np.log(pop.fitness)[None, :]
                + self.w.homophily * (unit[lo:hi] @ unit.T)
                + 1.5 * same_language[lo:hi]
                + rng.gumbel(size=(hi - lo, n))
            )
            scores[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # nobody follows themselves
            order = np.argsort(-scores, axis=1)
            for row in range(hi - lo):
                adjacency[lo + row, order[row, : wanted[lo + row]]] = True
        self.adjacency = adjacency
        follower, followee = np.nonzero(adjacency)
        since = rng.uniform(5, 700, size=len(follower))
        follows = pd.DataFrame(
            {
                "follower_id": follower.astype(np.int64) + 1,
                "followee_id": followee.astype(np.int64) + 1,
                "created_at": pd.to_datetime(
                    [self.start - timedelta(days=float(d)) for d in since], utc=True
                ),
            }
        )
        return follows, adjacency

    # ------------------------------------------------------------------ tweets
    def post_tweets(self, pop: Population, day: int) -> pd.DataFrame:
        """Tweets of one day (day may be negative: prehistory); appends to the tweet log."""
        day_start = day * 86400.0
        authors, created = self._posting_times(pop, day_start)
        is_reply, parent = self._reply_parents(pop, len(authors), day_start)
        drawn = self._draw_tweets(pop, authors, is_reply, parent)
        parent = answered_parents(
            self.tweets,
            self.adjacency,
            authors,
            parent,
            day_start - 86400.0,
            self.w.root_author_answer_share,
            stream(self.w.seed, ROOT_AUTHOR_STREAM, day, PREHISTORY_DAYS),
        )
        index = np.arange(len(self.tweets), len(self.tweets) + len(authors))
        conversation = index.copy()
        conversation[is_reply] = self.tweets.column("conversation").astype(int)[parent[is_reply]]
        self._log_tweets(authors, created, parent, conversation, drawn)
        for i, a in zip(index, authors, strict=True):
            self.user_tweets[a].append(int(i))
        return pd.DataFrame(
            {
                "tweet_id": self.tweet_id_base + index,
                "author_id": authors.astype(np.int64) + 1,
                "created_at": self._timestamps(created),
                "text": drawn["text"],
                "language": pop.language[authors],
                "has_image": drawn["has_image"],
                "has_video": drawn["has_video"],
                "has_url": drawn["has_url"],
                "hashtags": drawn["hashtags"],
                "conversation_id": self.tweet_id_base + conversation,
                "in_reply_to_tweet_id": pd.Series(self.tweet_id_base + parent, dtype="Int64").mask(
                    ~is_reply
                ),
                "toxicity": drawn["toxicity"].astype(np.float32),
            }
        )

    def _posting_times(self, pop: Population, day_start: float) -> tuple[np.ndarray, np.ndarray]:
        """Author index and time (seconds since the world start) of each of the day's tweets,
        ``[m]`` each in time order: a Poisson count per user at its activity, by the hourly
        rhythm."""
        rng = self.rng
        counts = rng.poisson(self.w.tweets_per_user_day * pop.activity)
        authors = np.repeat(np.arange(self.w.n_users), counts)
        m = len(authors)
        hours = rng.choice(24, size=m, p=HOURLY_RHYTHM / HOURLY_RHYTHM.sum())
        created = day_start + hours * 3600.0 + rng.uniform(0, 3600, size=m)
        order = np.argsort(created, kind="stable")
        return authors[order], created[order]

    def _reply_parents(
        self, pop: Population, m: int, day_start: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``m`` new tweets are replies (``[m]`` bool), and to which tweet (``[m]`` log
        index, -1 for a root): a tweet of the last day, drawn by its author's fitness."""
        rng = self.rng
        recent: np.ndarray = (
            np.nonzero(self.tweets.column("created") >= day_start - 86400.0)[0]
            if len(self.tweets)
            else np.empty(0, int)
        )
        is_reply = (rng.random(m) < self.w.reply_share) & (len(recent) > 0)
        parent = np.full(m, -1)
        if is_reply.any():
            weights = pop.fitness[self.tweets.column("author").astype(int)[recent]]
            parent[is_reply] = rng.choice(
                recent, size=int(is_reply.sum()), p=weights / weights.sum()
            )
        return is_reply, parent

    def _draw_tweets(
        self, pop: Population, authors: np.ndarray, is_reply: np.ndarray, parent: np.ndarray
    ) -> dict[str, Any]:
        """The content of each new tweet: topic (a reply keeps its parent's), toxicity, media and
        url flags, quality, text and hashtags (``[m]`` arrays, lists for text and hashtags)."""
        rng, m = self.rng, len(authors)
        topic = np.array(
            [rng.choice(self.w.n_topics, p=pop.interests[a]) for a in authors], dtype=int
        )
        topic[is_reply] = self.tweets.column("topic").astype(int)[parent[is_reply]]
        toxicity = np.clip(pop.toxic_tendency[authors] + rng.normal(0, 0.08, size=m), 0, 1)
        has_video = rng.random(m) < 0.08
        has_image = ~has_video & (rng.random(m) < 0.25)
        has_url = rng.random(m) < 0.15
        quality = pop.quality[authors] + rng.normal(0, 0.5, size=m) + 0.2 * (has_image | has_video)
        text = [
            compose_text(
                rng,
                int(topic[i]),
                str(pop.language[authors[i]]),
                bool(toxicity[i] > 0.5),
                bool(is_reply[i]),
            )
            for i in range(m)
        ]
        hashtags = [pick_hashtags(rng, int(t)) for t in topic]
        return {
            "topic": topic,
            "toxicity": toxicity,
            "has_video": has_video,
            "has_image": has_image,
            "has_url": has_url,
            "quality": quality,
            "text": text,
            "hashtags": hashtags,
        }

    def _log_tweets(
        self,
        authors: np.ndarray,
        created: np.ndarray,
        parent: np.ndarray,
        conversation: np.ndarray,
        drawn: Mapping[str, Any],
    ) -> None:
        """Append new tweets to the tweet log, with no engagement or impression yet (``parent``
        ``[m]`` log index of each one's parent, -1 for a root)."""
        m = len(authors)
        self.tweets.author.append(authors)
        self.tweets.topic.append(drawn["topic"])
        self.tweets.created.append(created)
        self.tweets.quality.append(drawn["quality"])
        self.tweets.toxicity.append(drawn["toxicity"])
        self.tweets.length.append(np.array([len(t) for t in drawn["text"]]))
        self.tweets.has_video.append(drawn["has_video"])
        self.tweets.has_image.append(drawn["has_image"])
        self.tweets.is_reply.append(parent >= 0)
        self.tweets.conversation.append(conversation)
        self.tweets.parent.append(parent)
        self.tweet_engagements = np.concatenate([self.tweet_engagements, np.zeros(m)])
        self.tweet_impressions = np.concatenate([self.tweet_impressions, np.zeros(m)])

    # ------------------------------------------------------------------ sessions
    def run_sessions(
        self,
        pop: Population,
        adjacency: np.ndarray,
        day: int,
        last_visit: np.ndarray,
        seen: list[set[int]],
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """All sessions of one day: candidate selection by the logging policy, then labels."""
        viewers, times = draw_session_starts(self.w, pop, day, self.rng)
        pool = CandidatePool.of(self, adjacency)
        rows: list[tuple[np.ndarray, ...]] = []
        for viewer, now in zip(viewers, times, strict=True):
            shown = self._serve(pool, adjacency, viewer, now, last_visit[viewer], seen[viewer])
            if not len(shown):
                continue
            seen[viewer].update(int(t) for t in shown)
            last_visit[viewer] = now
            rows.append(
                (
                    np.full(len(shown), viewer),
                    shown,
                    now + 4.0 * np.arange(len(shown)),
                    np.full(len(shown), self.request_count),
                    np.arange(len(shown)),
                )
            )
            self.request_count += 1
        if not rows:
            return IMPRESSIONS.empty_table().to_pandas(), TRUTH.empty_table().to_pandas()
        viewer_all, tweet, served, request, position = (
            np.concatenate(c) for c in zip(*rows, strict=True)
        )
        # Before the home labels: a conversation page reads the world as the day started, as
        # the home rows do, and the home rows' remembering comes after.
        conversations = self.run_conversations(pop, adjacency, day, pool, rows)
        home, home_truth = self.label(pop, adjacency, viewer_all, tweet, served, request, position)
        return (
            pd.concat([home, conversations[0]], ignore_index=True),
            pd.concat([home_truth, conversations[1]], ignore_index=True),
        )

    def run_conversations(
        self,
        pop: Population,
        adjacency: np.ndarray,
        day: int,
        pool: CandidatePool,
        home_rows: list[tuple[np.ndarray, ...]],
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The day's conversation pages (see :mod:`pipelines.world.conversation`) opened from
        the home sessions ``home_rows`` (per session: viewer, tweet, served, request, position
        ``[k]`` each) and their labelled impressions and truth, from the page stream alone. What
        the viewers do there is remembered only once the bootstrap is over, so that the home
        stream of the bootstrap stays as it was without conversations."""
        rng = stream(self.w.seed, CONVERSATION_PAGE_STREAM, day, PREHISTORY_DAYS)
        replies = ReplyIndex.of(self.tweets)
        viewer, tweet, served = (np.concatenate(c) for c in list(zip(*home_rows, strict=True))[:3])
        requests = pages_opened(
            viewer, tweet, served, self.w.conversation_open_share, self.tweets, rng
        )
        sessions = [(int(rows[0][0]), float(rows[2][0])) for rows in home_rows]
        requests += pages_direct(
            sessions,
            self.w.conversation_direct_share,
            pool.followees,
            self.user_tweets,
            self.tweets,
            replies,
            rng,
        )
        pages = page_rows(requests, replies, self.w.conversation_page_size, rng)
        served_at = self._timestamps(pages.served)
        truth_of = true_engagement_of(
            self.view(pop, adjacency),
            pages.viewer,
            pages.tweet,
            seconds_since(self.start, served_at),
            positions=pages.position,
        )
        ids = CONVERSATION_ID_BASE + self.conversation_impression_count + np.arange(len(pages))
        self.conversation_impression_count += len(pages)
        impressions = pd.DataFrame(
            {
                "impression_id": ids.astype(np.int64),
                "viewer_id": user_ids_of(pages.viewer),
                "tweet_id": self.tweet_id_base + pages.tweet.astype(np.int64),
                "served_at": served_at,
                "surface": "conversation",
                "position": pages.position.astype(np.int32),
                "request_id": (
                    CONVERSATION_ID_BASE + self.conversation_page_count + pages.page
                ).astype(np.int64),
                "model_version": CONVERSATION_POLICY,
                "experiment_arm": "control",
            }
        )
        self.conversation_page_count += int(pages.page.max()) + 1 if len(pages) else 0
        impressions, truth = self._labelled(impressions, truth_of, pages.served, rng)
        engaged = impressions[list(ENGAGEMENTS)].any(axis=1).to_numpy()
        self.unremembered.append((pages.viewer, pages.tweet, engaged))
        return impressions, truth

    def _serve(
        self,
        pool: CandidatePool,
        adjacency: np.ndarray,
        viewer: int,
        now: float,
        last_visit: float,
        seen: set[int],
    ) -> np.ndarray:
        """The tweets the logging policy shows in one session, shuffled (``[k]`` log indices):
        unseen followee tweets since the last visit (at most three days back, the most recent
        likelier), topped up with popular fresh roots from outside the viewer's network."""
        rng, per_session = self.rng, self.w.impressions_per_session
        n_out = int(round(per_session * self.w.out_of_network_share))
        since = max(last_visit, now - 3 * 86400.0)
        candidates = [t for a in pool.followees[viewer] for t in self.user_tweets[a][-30:]]
        inn = np.array(
            [t for t in candidates if since < pool.created[t] <= now and t not in seen], dtype=int
        )
        if len(inn) > per_session - n_out:
            recency = np.exp(-(now - pool.created[inn]) / 43200.0)
            inn = rng.choice(
                inn, size=per_session - n_out, replace=False, p=recency / recency.sum()
            )
        out = self._out_of_network(pool, adjacency, viewer, now, seen, per_session - len(inn))
        shown = np.concatenate([inn, out]).astype(int)
        return shown[rng.permutation(len(shown))] if len(shown) else shown

    def _out_of_network(
        self,
        pool: CandidatePool,
        adjacency: np.ndarray,
        viewer: int,
        now: float,
        seen: set[int],
        wanted: int,
    ) -> np.ndarray:
        """Up to ``wanted`` root tweets of the last two days by popularity, less the viewer's own,
        its followees' and those it has seen."""
        posted = pool.created[pool.roots]
        fresh = pool.roots[(posted > now - 2 * 86400.0) & (posted <= now)]
        if not (len(fresh) and wanted):
            return np.empty(0, dtype=int)
        weight = pool.popularity[fresh]
        out = self.rng.choice(
            fresh, size=min(wanted, len(fresh)), replace=False, p=weight / weight.sum()
        )
        out = out[(pool.authors[out] != viewer) & ~adjacency[viewer, pool.authors[out]]]
        return np.array([t for t in out if t not in seen], dtype=int)

    def view(self, pop: Population, adjacency: np.ndarray) -> WorldView:
        """What the true engagement model reads of this world now."""
        return WorldView(
            pop, adjacency, self.tweets, self.engaged_pairs, self.start, self.w.n_topics
        )

    def label(
        self,
        pop: Population,
        adjacency: np.ndarray,
        viewer: np.ndarray,
        tweet: np.ndarray,
        served: np.ndarray,
        request: np.ndarray,
        position: np.ndarray,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Draw every label of every impression from its true engagement at the served time
        (``served`` ``[M]`` seconds since the world start, read as the lake stores it: to the
        microsecond, so the truth table is what :func:`true_engagement` gives for its rows)."""
        served_at = self._timestamps(served)
        truth_of = true_engagement_of(
            self.view(pop, adjacency), viewer, tweet, seconds_since(self.start, served_at)
        )
        ids = np.arange(self.impression_count, self.impression_count + len(viewer), dtype=np.int64)
        self.impression_count += len(viewer)
        impressions = pd.DataFrame(
            {
                "impression_id": ids + 1,
                "viewer_id": viewer.astype(np.int64) + 1,
                "tweet_id": self.tweet_id_base + tweet.astype(np.int64),
                "served_at": served_at,
                "surface": "home",
                "position": position.astype(np.int32),
                "request_id": request.astype(np.int64) + 1,
                "model_version": "world-logging-policy",
                "experiment_arm": "control",
            }
        )
        impressions, truth = self._labelled(impressions, truth_of, served, self.rng)
        engaged = impressions[list(ENGAGEMENTS)].any(axis=1).to_numpy()
        self.remember(viewer, tweet, engaged)
        return impressions, truth

    def _labelled(
        self,
        impressions: pd.DataFrame,
        truth_of: TrueEngagement,
        served: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``impressions`` with every label and the dwell drawn from ``truth_of`` by ``rng``
        (``served`` ``[M]`` seconds since the world start), and their truth rows."""
        self._draw_actions(truth_of, served, impressions, rng)
        dwell = truth_of.dwell_ms(rng)
        impressions["dwell_ms"] = np.minimum(dwell, self.cfg.validate_.max_dwell_ms).astype(
            np.int32
        )
        ids = impressions["impression_id"].to_numpy(np.int64)
        return impressions, pd.DataFrame({"impression_id": ids, **truth_of.truth_columns()})

    def _draw_actions(
        self,
        truth_of: TrueEngagement,
        served: np.ndarray,
        impressions: pd.DataFrame,
        rng: np.random.Generator,
    ) -> None:
        """Each binary action's label and time into ``impressions``, drawn by ``rng``. An action
        happens some seconds after the impression; a derived action (an author engaging with a
        reply) only after its parent, and only if that happened."""
        m = len(served)
        happened_at: dict[str, np.ndarray] = {}
        for action in BINARY_ACTIONS:
            delay = rng.exponential(45.0, size=m) + 1.0
            at = served + delay
            parent = DERIVED_ACTIONS.get(action)
            if parent is not None:
                chance = truth_of.conditional[action]
                happened = impressions[parent].to_numpy() & (rng.random(m) < chance)
                at = happened_at[parent] + rng.exponential(1800.0, size=m) + 1.0
            else:
                happened = rng.random(m) < truth_of.probability[action]
            happened_at[action] = at
            impressions[action] = happened
            impressions[f"{action}_at"] = self._timestamps(at).where(happened, pd.NaT)

    def remember(self, viewer: np.ndarray, tweet: np.ndarray, engaged: np.ndarray) -> None:
        """Fold ``M`` impressions (``viewer``, ``tweet`` indices, ``engaged`` bool, ``[M]``) into
        the state later probabilities read: past interactions per (viewer, author) and each
        tweet's engagement and impression counts (its out-of-network popularity)."""
        authors = self.tweets.column("author").astype(int)[tweet]
        n = self.w.n_users
        for v, a in zip(viewer[engaged], authors[engaged], strict=True):
            key = int(v) * n + int(a)
            self.engaged_pairs[key] = self.engaged_pairs.get(key, 0) + 1
        np.add.at(self.tweet_engagements, tweet[engaged], 1.0)
        np.add.at(self.tweet_impressions, tweet, 1.0)

    def _timestamps(self, seconds: np.ndarray) -> pd.Series:
        return timestamps_at(self.start, seconds)


def draw_session_starts(
    w: WorldConfig, pop: Population, day: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Viewer index and start (seconds since the world start) of each of the day's sessions,
    ``[S]`` each in time order: a Poisson count per user at its activity and the weekday's rhythm,
    at hours drawn by the hourly rhythm."""
    weekday = (w.start_date.weekday() + day) % 7
    per_user = rng.poisson(w.sessions_per_user_day * pop.activity * WEEKDAY_RHYTHM[weekday] / 1.1)
    viewers = np.repeat(np.arange(w.n_users), per_user)
    hours = rng.choice(24, size=len(viewers), p=HOURLY_RHYTHM / HOURLY_RHYTHM.sum())
    times = day * 86400.0 + hours * 3600.0 + rng.uniform(0, 3600, size=len(viewers))
    order = np.argsort(times, kind="stable")
    return viewers[order], times[order]


@dataclass
class SimulatedDay:
    """One simulated day's rows: its tweets, and (from day 0 on) its impressions and their truth."""

    label: str  # ISO date, the lake partition
    tweets: pd.DataFrame
    impressions: pd.DataFrame | None  # None before the first session day
    truth: pd.DataFrame | None


@dataclass
class Simulation:
    """A world under way: its population, follow graph and the days simulated one at a time.

    The bootstrap runs its first days under the logging policy (:meth:`days`); :meth:`save`
    persists it and :meth:`load` goes on from there with *live* days, which simulated traffic
    drives: :meth:`post_day` posts a day's tweets, :meth:`session_starts` draws who opens the app
    when, the service serves them, :func:`~pipelines.world.truth.true_engagement` says what they
    do, and :meth:`remember` folds that into tomorrow's state. Lake ids map to the world's
    indices by :meth:`user_index` and :meth:`tweet_index`.
    """

    world: World
    pop: Population
    adjacency: np.ndarray  # [N, N] bool, follower x followee
    users: pd.DataFrame
    follows: pd.DataFrame
    next_day: int = -PREHISTORY_DAYS  # the day to simulate next (0 = the first session day)
    _started: bool = False

    @classmethod
    def start(cls, cfg: FeedrankConfig) -> Simulation:
        world = World(cfg)
        pop = world.build_population()
        world.user_tweets = [[] for _ in range(cfg.world.n_users)]
        follows, adjacency = world.build_follows(pop)
        users = pop.frame.assign(
            follower_count=adjacency.sum(axis=0).astype(np.int64),
            following_count=adjacency.sum(axis=1).astype(np.int64),
        )
        return cls(world, pop, adjacency, users, follows)

    def days(self) -> Iterator[SimulatedDay]:
        """The prehistory days (tweets only), then every session day, in order; once the last is
        over the world remembers the bootstrap's conversation engagements too. Once per
        Simulation: a second pass would go on drawing from the same random stream."""
        if self._started or self.next_day != -PREHISTORY_DAYS:
            raise RuntimeError("Simulation.days() runs once; start a new Simulation to re-run")
        self._started = True
        cfg, n = self.world.cfg, self.world.w.n_users
        last_visit = np.full(n, -np.inf)
        seen: list[set[int]] = [set() for _ in range(n)]
        for day in range(-PREHISTORY_DAYS, cfg.world.days):
            label = self.day_start(day).date().isoformat()
            tweets = self.world.post_tweets(self.pop, day)
            self.next_day = day + 1
            if day < 0:
                yield SimulatedDay(label, tweets, None, None)
                continue
            impressions, truth = self.world.run_sessions(
                self.pop, self.adjacency, day, last_visit, seen
            )
            yield SimulatedDay(label, tweets, impressions, truth)
        for viewer, tweet, engaged in self.world.unremembered:
            self.world.remember(viewer, tweet, engaged)
        self.world.unremembered.clear()

    # ------------------------------------------------------------------ live days
    def day_start(self, day: int) -> pd.Timestamp:
        """Midnight UTC that starts `day` (0 = the world's first session day)."""
        return pd.Timestamp(self.world.start) + pd.Timedelta(days=day)

    def post_day(self, day: int) -> pd.DataFrame:
        """The tweets the world's authors post on `day`, by the bootstrap's process: roots and
        replies into conversations of the day before, created within the day, in time order, in
        the lake's ``tweets`` columns. A day is posted once, and only the next one
        (``day == next_day``); the tweets join the tweet log and ``next_day`` moves on."""
        if day != self.next_day or day < 0:
            raise ValueError(
                f"cannot post day {day}: the world's next day is {self.next_day} "
                f"({self.day_start(self.next_day).date()}), and a day is posted once"
            )
        tweets = self.world.post_tweets(self.pop, day)
        self.next_day = day + 1
        return tweets

    def session_starts(
        self, day: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DatetimeIndex]:
        """``(user_ids [S] int64, starts [S] UTC timestamps)`` of the sessions of `day`, in time
        order, by the bootstrap's process (a Poisson count per user at its activity and the
        weekday's rhythm, at hours by the hourly rhythm), drawn from `rng` alone: the same
        generator state gives the same sessions, whatever the world did since."""
        viewers, times = draw_session_starts(self.world.w, self.pop, day, rng)
        return user_ids_of(viewers), pd.DatetimeIndex(timestamps_at(self.world.start, times))

    def remember(self, viewer_ids: Any, tweet_ids: Any, engaged: Any) -> None:
        """Fold what users did with ``M`` served tweets into the state that later
        probabilities read: ``viewer_ids`` and ``tweet_ids`` are lake ids, ``engaged`` whether
        the viewer did any of ENGAGEMENTS (``[M]`` each). Call it once a day is over: past
        interactions count from the day after."""
        engaged = np.asarray(engaged)
        if engaged.dtype != np.bool_ or engaged.shape != np.shape(viewer_ids):
            raise ValueError(
                f"remember needs one bool per impression: engaged is {engaged.dtype} "
                f"{engaged.shape}, viewer_ids {np.shape(viewer_ids)}"
            )
        self.world.remember(self.user_index(viewer_ids), self.tweet_index(tweet_ids), engaged)

    # ------------------------------------------------------------------ ids
    @property
    def user_ids(self) -> np.ndarray:
        """``[N]`` every user's lake id (int64), in index order."""
        return user_ids_of(np.arange(self.world.w.n_users))

    def user_index(self, user_ids: Any) -> np.ndarray:
        """``[M]`` world indices of lake user ids (UnknownIdError for one it does not know)."""
        return user_index_of(np.asarray(user_ids), self.world.w.n_users)

    def tweet_index(self, tweet_ids: Any) -> np.ndarray:
        """``[M]`` tweet log indices of lake tweet ids (UnknownIdError for one it lacks)."""
        return tweet_index_of(np.asarray(tweet_ids), len(self.world.tweets))

    def tweet_ids(self, index: Any) -> np.ndarray:
        """``[M]`` lake tweet ids of tweet log indices."""
        return tweet_ids_of(np.asarray(index))

    def view(self) -> WorldView:
        """What the true engagement model reads of this world now."""
        return self.world.view(self.pop, self.adjacency)

    # ------------------------------------------------------------------ persistence
    def save(self, cfg: FeedrankConfig) -> Path:
        """Write the whole state to ``cfg.paths.world_state`` atomically; returns the file."""
        path = cfg.paths.world_state / STATE_FILE
        write_state(path, self._arrays(), self._meta())
        log.info("world: state saved to %s (next day %d)", path, self.next_day)
        return path

    @classmethod
    def load(cls, cfg: FeedrankConfig) -> Simulation:
        """The world :meth:`save` wrote under `cfg`'s state root, ready for its next day.
        Raises WorldStateMissingError (naming the command that bootstraps it) when there is
        none, and WorldStateMismatchError when it was built from another world config."""
        path = cfg.paths.world_state / STATE_FILE
        arrays, meta = read_state(path)
        _check_same_world(cfg, meta, path)
        world = World(cfg)
        world.tweets = tweet_log_of(arrays)
        world.rng.bit_generator.state = meta["rng"]
        world.impression_count = meta["impression_count"]
        world.request_count = meta["request_count"]
        world.conversation_impression_count = meta["conversation_impression_count"]
        world.conversation_page_count = meta["conversation_page_count"]
        world.user_tweets = ragged_of(arrays, "user_tweets")
        world.engaged_pairs = counts_of(arrays, "engaged_pairs")
        world.tweet_engagements = arrays["tweet_engagements"]
        world.tweet_impressions = arrays["tweet_impressions"]
        users, follows = frame_of(arrays, "users"), frame_of(arrays, "follows")
        adjacency = np.zeros((cfg.world.n_users, cfg.world.n_users), dtype=bool)
        adjacency[
            user_index_of(follows["follower_id"].to_numpy(), cfg.world.n_users),
            user_index_of(follows["followee_id"].to_numpy(), cfg.world.n_users),
        ] = True
        pop = population_of(arrays, users)
        world.adjacency = adjacency
        return cls(world, pop, adjacency, users, follows, meta["next_day"], _started=True)

    def summary(self) -> dict[str, int]:
        """Counts of what this world holds: users, follows, tweets, impressions (the logging
        policy's home ones) and conversation impressions (the bootstrap's conversation pages'),
        topics, and the next day to simulate."""
        return {
            "users": len(self.users),
            "follows": len(self.follows),
            "tweets": len(self.world.tweets),
            "impressions": self.world.impression_count,
            "conversation_impressions": self.world.conversation_impression_count,
            "topics": min(self.world.w.n_topics, len(TOPIC_NAMES)),
            "next_day": self.next_day,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        """The state as flat named arrays; the follow graph is the follows table's (the
        adjacency is rebuilt from it)."""
        world = self.world
        return {
            **population_arrays(self.pop),
            **frame_arrays("users", self.users),
            **frame_arrays("follows", self.follows),
            **tweet_log_arrays(world.tweets),
            **ragged_arrays("user_tweets", world.user_tweets),
            **counts_arrays("engaged_pairs", world.engaged_pairs),
            "tweet_engagements": world.tweet_engagements,
            "tweet_impressions": world.tweet_impressions,
        }

    def _meta(self) -> dict[str, Any]:
        return {
            "world_config": self.world.w.model_dump(mode="json"),
            "rng": self.world.rng.bit_generator.state,
            "impression_count": self.world.impression_count,
            "request_count": self.world.request_count,
            "conversation_impression_count": self.world.conversation_impression_count,
            "conversation_page_count": self.world.conversation_page_count,
            "next_day": self.next_day,
            "summary": self.summary(),
        }

    def latent(self, impressions: pd.DataFrame) -> pd.DataFrame:
        """The latent state behind `impressions`' probabilities that no table shows: the viewer's
        affinity to the tweet's topic and the tweet's quality, per ``impression_id``."""
        viewer = impressions["viewer_id"].to_numpy(np.int64) - 1
        tweet = impressions["tweet_id"].to_numpy(np.int64) - self.world.tweet_id_base
        topic = self.world.tweets.column("topic").astype(int)[tweet]
        return pd.DataFrame(
            {
                "impression_id": impressions["impression_id"].to_numpy(np.int64),
                "topic_affinity": topic_affinity(self.pop, viewer, topic, self.world.w.n_topics),
                "tweet_quality": self.world.tweets.column("quality")[tweet],
            }
        )


def _check_same_world(cfg: FeedrankConfig, meta: Mapping[str, Any], path: Path) -> None:
    saved = meta["world_config"]
    wanted = cfg.world.model_dump(mode="json")
    differ = sorted(key for key in set(saved) | set(wanted) if saved.get(key) != wanted.get(key))
    if differ:
        raise WorldStateMismatchError(
            f"the world state at {path} was built from another world config (differs in "
            f"{', '.join(differ)}): rebuild the world (`feedrank build-world --rebuild`)"
        )


def build_world(cfg: FeedrankConfig, rebuild: bool = False) -> dict[str, int | bool]:
    """Bootstrap the world of `cfg` once: simulate its first days, write raw tables and truth to
    the lake (replacing them), persist the world state and set the clock to its end.

    Where a world state and the clock already exist and `rebuild` is False, the lake is left as
    it is and the summary (``bootstrapped`` False) counts what the world holds: users, follows,
    tweets (live days' too), the bootstrap's impressions, topics and the next day to simulate.
    Otherwise (first run or rebuild) the serving state of an older world is archived first, so
    the new world never ingests what was served on the old one (``bootstrapped`` True).
    Raises WorldStateMismatchError where the persisted world was built from another world
    config.
    """
    state = cfg.paths.world_state / STATE_FILE
    if not rebuild and state.exists() and SimClock.of(cfg).exists():
        meta = read_meta(state)
        _check_same_world(cfg, meta, state)
        log.info("world: already bootstrapped at %s; the lake is kept", state)
        return {"bootstrapped": False, **meta["summary"]}
    archive_serving_state(cfg)
    started = time.perf_counter()
    raw, truth_dir = cfg.paths.raw, cfg.paths.truth
    for folder in (raw, truth_dir, cfg.paths.quarantine):
        shutil.rmtree(folder, ignore_errors=True)
    sim = Simulation.start(cfg)
    write_partition(sim.users, raw, "users", STATIC_PARTITION, USERS)
    write_partition(sim.follows, raw, "follows", STATIC_PARTITION, FOLLOWS)
    log.info("world: %d users, %d follows", len(sim.users), len(sim.follows))
    for day in sim.days():
        write_partition(day.tweets, raw, "tweets", day.label, TWEETS)
        if day.impressions is None or day.truth is None:
            continue
        write_partition(day.impressions, raw, "impressions", day.label, IMPRESSIONS)
        write_partition(day.truth, truth_dir, "truth", day.label, TRUTH)
        log.info(
            "world: day %s done: %d tweets, %d impressions (%.0f s elapsed)",
            day.label,
            len(day.tweets),
            len(day.impressions),
            time.perf_counter() - started,
        )
    sim.save(cfg)
    SimClock.of(cfg).set(bootstrap_end(cfg), reason="bootstrap")
    totals = sim.summary()
    log.info("world built in %.1f s: %s", time.perf_counter() - started, totals)
    return {"bootstrapped": True, **totals}


def archive_serving_state(cfg: FeedrankConfig) -> list[Path]:
    """Move what an older world's service recorded aside, into a timestamped archive folder
    beside each: the serving event log (with its -wal and -shm files and the cursor key) and the
    served truth. Returns the archived paths; logs where each went."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    events = cfg.paths.serving_events
    serving = [events, *(events.with_name(events.name + tail) for tail in ("-wal", "-shm"))]
    moved: list[Path] = []
    for path in (*serving, cfg.paths.cursor_key, cfg.paths.served_truth):
        if not path.exists():
            continue
        target = path.parent / f"archive-{stamp}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        log.info("world: archived the older world's %s to %s", path.name, target)
        moved.append(target)
    return moved
