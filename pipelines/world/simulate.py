"""The simulated world: users, a follow graph, tweets with text, sessions and labelled impressions.

Deterministic from ``cfg.world.seed``. Every impression draws all its action labels from true
probabilities (logits of viewer–topic affinity, the viewer–author relationship and past interactions,
author popularity, tweet quality and age, hour and weekday, language match and toxicity). The true
probabilities go to a separate ``truth`` table that only evaluation reads.

Past interactions are the state at the start of each simulated day (the same daily granularity as the
batch features), so a whole day of impressions is labelled in one vectorized pass.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from pipelines.config import FeedrankConfig
from pipelines.schema import (
    BINARY_ACTIONS,
    DERIVED_ACTIONS,
    DWELL_THRESHOLD_MS,
    ENGAGEMENTS,
    FOLLOWS,
    IMPRESSIONS,
    STATIC_PARTITION,
    TRUTH,
    TWEETS,
    USERS,
    write_partition,
)
from pipelines.world.text import TOPIC_NAMES, compose_text, pick_hashtags

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


@dataclass(frozen=True)
class LinearTerms:
    """One output of the true engagement model: ``base + sum(coefficient * term)``.

    The sum runs in the order of ``coefficients``: floating-point addition is not associative,
    and the order fixes the world a seed draws.
    """

    base: float
    coefficients: Mapping[str, float]

    def __call__(self, terms: Mapping[str, np.ndarray]) -> np.ndarray:
        """``[M]`` values of this output from ``{term: [M] values}``."""
        value: np.ndarray | float = self.base
        for term, coefficient in self.coefficients.items():
            value = value + coefficient * terms[term]
        return np.asarray(value, dtype=np.float64)


# The terms of the true engagement model, per impression; every one is an ``[M]`` array.
TERMS: Mapping[str, str] = {
    "affinity": "the viewer's interest in the tweet's topic, log(interest * K + 0.05): 0 at a "
    "uniform interest 1 / K, about -3 for none, log(K) for all",
    "follows": "1 if the viewer follows the author, else 0",
    "follows_back": "1 if the author follows the viewer, else 0",
    "past": "log1p(engagements of the viewer with the author's tweets before today)",
    "popularity": "log of the author's fitness (Pareto, >= 0): attractiveness as a followee",
    "quality": "the tweet's quality latent: the author's (N(0, 0.5)) + N(0, 0.5) + 0.2 with media",
    "image": "1 if the tweet has an image",
    "video": "1 if the tweet has a video",
    "toxicity": "the tweet's toxicity in [0, 1]",
    "engaged_user": "log of the viewer's activity (lognormal, mean 1)",
    "author_activity": "log of the author's activity (lognormal, mean 1)",
    "age_hours": "hours since the tweet was posted, capped at 72",
    "language": "language match, in logits: +0.3 when viewer and author share a language, "
    "-1.0 when not",
    "evening": "1 when served 18:00-22:59 UTC",
    "weekend": "1 when served on a Saturday or Sunday",
    "length": "the tweet's text length, characters",
    "context": "the shared context below (freshness, language, evening, weekend), in logits",
}
LANGUAGE_MATCH, LANGUAGE_MISMATCH = 0.3, -1.0  # the `language` term's two values
FRESHNESS_HORIZON_HOURS = 72.0  # tweets older than this lose no more freshness

# Context every action but the negative ones shares: fresher tweets, a shared language, evenings
# and weekends engage more.
CONTEXT = LinearTerms(0.0, {"age_hours": -0.03, "language": 1.0, "evening": 0.15, "weekend": 0.1})
# The logit of every binary action. reply_engaged_by_author is conditional on a reply: authors
# answer people they follow and the people they talk to, answer less the more followers they
# have, and ignore toxic replies.
ACTION_LOGITS: Mapping[str, LinearTerms] = {
    "fav": LinearTerms(
        -3.4,
        {
            "affinity": 1.1,
            "follows": 0.5,
            "past": 0.5,
            "popularity": 0.25,
            "quality": 0.6,
            "image": 0.25,
            "engaged_user": 0.3,
            "toxicity": -2.5,
            "context": 1.0,
        },
    ),
    "reply": LinearTerms(
        -5.6,
        {
            "affinity": 1.0,
            "follows": 0.9,
            "past": 0.8,
            "quality": 0.4,
            "toxicity": 0.8,
            "engaged_user": 0.3,
            "context": 1.0,
        },
    ),
    "retweet": LinearTerms(
        -5.0,
        {
            "affinity": 1.2,
            "follows": 0.4,
            "past": 0.4,
            "popularity": 0.4,
            "quality": 0.7,
            "video": 0.3,
            "toxicity": -2.0,
            "context": 1.0,
        },
    ),
    "quote": LinearTerms(
        -6.8,
        {
            "affinity": 0.9,
            "past": 0.3,
            "popularity": 0.3,
            "quality": 0.5,
            "toxicity": 1.0,
            "context": 1.0,
        },
    ),
    "profile_click": LinearTerms(
        -5.2,
        {"affinity": 0.7, "follows": -0.8, "popularity": 0.5, "quality": 0.4, "context": 1.0},
    ),
    "negative": LinearTerms(
        -5.8,
        {
            "affinity": -0.7,
            "follows": -0.6,
            "past": -0.3,
            "quality": -0.3,
            "toxicity": 3.2,
            "language": -0.5,
        },
    ),
    "report": LinearTerms(-8.8, {"affinity": -0.3, "follows": -0.5, "toxicity": 4.5}),
    "reply_engaged_by_author": LinearTerms(
        -1.6,
        {
            "follows_back": 1.4,
            "past": 0.6,
            "author_activity": 0.5,
            "popularity": -0.35,
            "toxicity": -1.5,
            "language": 1.0,
        },
    ),
}
# The mean of the log dwell time (log ms; the dwell is lognormal with sigma DWELL_SIGMA): 3.5 s
# at no term, longer for liked topics, longer texts, videos, quality and followed authors.
MEAN_LOG_DWELL_MS = LinearTerms(
    math.log(3500.0),
    {"affinity": 0.35, "length": 0.004, "video": 0.6, "quality": 0.25, "follows": 0.2},
)
DWELL_SIGMA = 0.9


def true_logits_of(terms: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The true logit of every binary action and the mean log-dwell (log ms), ``[M]`` each, from
    the model's TERMS (``context`` is computed here from its own terms)."""
    terms = {**terms, "context": CONTEXT(terms)}
    logits = {action: model(terms) for action, model in ACTION_LOGITS.items()}
    return logits, MEAN_LOG_DWELL_MS(terms)


@dataclass
class Population:
    """Latent and observed attributes of the users, indexed by user index 0..N-1."""

    interests: np.ndarray  # [N, K] topic interest, rows sum to 1
    activity: np.ndarray  # [N] mean 1
    fitness: np.ndarray  # [N] heavy-tailed attractiveness as a followee
    quality: np.ndarray  # [N] author quality latent
    toxic_tendency: np.ndarray  # [N] mean toxicity of the author's posts
    language: np.ndarray  # [N] str
    frame: pd.DataFrame  # the `users` table


@dataclass
class TweetLog:
    """All tweets posted so far, as columnar arrays, plus the `tweets` rows per day."""

    author: list[np.ndarray] = field(default_factory=list)
    topic: list[np.ndarray] = field(default_factory=list)
    created: list[np.ndarray] = field(default_factory=list)  # seconds since world start
    quality: list[np.ndarray] = field(default_factory=list)
    toxicity: list[np.ndarray] = field(default_factory=list)
    length: list[np.ndarray] = field(default_factory=list)
    has_video: list[np.ndarray] = field(default_factory=list)
    has_image: list[np.ndarray] = field(default_factory=list)
    is_reply: list[np.ndarray] = field(default_factory=list)
    conversation: list[np.ndarray] = field(default_factory=list)  # index of the root tweet

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name)) if getattr(self, name) else np.empty(0)

    def __len__(self) -> int:
        return int(sum(len(a) for a in self.author))


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
        self.tweet_id_base = 1_000_000
        self.tweets = TweetLog()
        self.impression_count = 0
        self.request_count = 0
        self.user_tweets: list[list[int]] = []
        self.engaged_pairs: dict[int, int] = {}  # viewer*N + author -> engagements so far
        self.tweet_engagements = np.zeros(0)
        self.tweet_impressions = np.zeros(0)

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
        index = np.arange(len(self.tweets), len(self.tweets) + len(authors))
        conversation = index.copy()
        conversation[is_reply] = self.tweets.column("conversation").astype(int)[parent[is_reply]]
        self._log_tweets(authors, created, is_reply, conversation, drawn)
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
        is_reply: np.ndarray,
        conversation: np.ndarray,
        drawn: Mapping[str, Any],
    ) -> None:
        """Append new tweets to the tweet log, with no engagement or impression yet."""
        m = len(authors)
        self.tweets.author.append(authors)
        self.tweets.topic.append(drawn["topic"])
        self.tweets.created.append(created)
        self.tweets.quality.append(drawn["quality"])
        self.tweets.toxicity.append(drawn["toxicity"])
        self.tweets.length.append(np.array([len(t) for t in drawn["text"]]))
        self.tweets.has_video.append(drawn["has_video"])
        self.tweets.has_image.append(drawn["has_image"])
        self.tweets.is_reply.append(is_reply)
        self.tweets.conversation.append(conversation)
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
        viewers, times = self._session_starts(pop, day)
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
        return self.label(pop, adjacency, viewer_all, tweet, served, request, position)

    def _session_starts(self, pop: Population, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Viewer index and start (seconds since the world start) of each of the day's sessions,
        in time order: a Poisson count per user at its activity and the weekday's rhythm."""
        rng = self.rng
        weekday = (self.w.start_date.weekday() + day) % 7
        per_user = rng.poisson(
            self.w.sessions_per_user_day * pop.activity * WEEKDAY_RHYTHM[weekday] / 1.1
        )
        viewers = np.repeat(np.arange(self.w.n_users), per_user)
        hours = rng.choice(24, size=len(viewers), p=HOURLY_RHYTHM / HOURLY_RHYTHM.sum())
        times = day * 86400.0 + hours * 3600.0 + rng.uniform(0, 3600, size=len(viewers))
        order = np.argsort(times, kind="stable")
        return viewers[order], times[order]

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

    def true_logits(
        self,
        pop: Population,
        adjacency: np.ndarray,
        viewer: np.ndarray,
        tweet: np.ndarray,
        served: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """True logits of every binary action and the mean log-dwell, per impression."""
        return true_logits_of(self.impression_terms(pop, adjacency, viewer, tweet, served))

    def impression_terms(
        self,
        pop: Population,
        adjacency: np.ndarray,
        viewer: np.ndarray,
        tweet: np.ndarray,
        served: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The TERMS of the true engagement model (but ``context``) of each impression
        (``viewer``, ``tweet`` indices and ``served`` seconds since the world start, ``[M]``)."""
        author = self.tweets.column("author").astype(int)[tweet]
        topic = self.tweets.column("topic").astype(int)[tweet]
        hour = (served % 86400.0) // 3600.0
        weekday = ((self.w.start_date.weekday() + served // 86400.0) % 7).astype(int)
        age_hours = (served - self.tweets.column("created")[tweet]) / 3600.0
        return {
            "affinity": topic_affinity(pop, viewer, topic, self.w.n_topics),
            "follows": adjacency[viewer, author].astype(float),
            "follows_back": adjacency[author, viewer].astype(float),
            "past": np.log1p(self._past_engagements(viewer, author)),
            "popularity": np.log(pop.fitness[author]),
            "quality": self.tweets.column("quality")[tweet],
            "image": self.tweets.column("has_image")[tweet].astype(bool),
            "video": self.tweets.column("has_video")[tweet].astype(bool),
            "toxicity": self.tweets.column("toxicity")[tweet],
            "engaged_user": np.log(pop.activity[viewer]),
            "author_activity": np.log(pop.activity[author]),
            "age_hours": np.minimum(age_hours, FRESHNESS_HORIZON_HOURS),
            "language": np.where(
                pop.language[viewer] == pop.language[author], LANGUAGE_MATCH, LANGUAGE_MISMATCH
            ),
            "evening": ((hour >= 18) & (hour <= 22)).astype(float),
            "weekend": (weekday >= 5).astype(float),
            "length": self.tweets.column("length")[tweet],
        }

    def _past_engagements(self, viewer: np.ndarray, author: np.ndarray) -> np.ndarray:
        """``[M]`` engagements of each viewer with each author before today."""
        n = self.w.n_users
        return np.array(
            [
                self.engaged_pairs.get(int(v) * n + int(a), 0)
                for v, a in zip(viewer, author, strict=True)
            ]
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
        """Draw every label of every impression from its true probabilities."""
        logits, mean_log_dwell = self.true_logits(pop, adjacency, viewer, tweet, served)
        ids = np.arange(self.impression_count, self.impression_count + len(viewer), dtype=np.int64)
        self.impression_count += len(viewer)
        impressions = pd.DataFrame(
            {
                "impression_id": ids + 1,
                "viewer_id": viewer.astype(np.int64) + 1,
                "tweet_id": self.tweet_id_base + tweet.astype(np.int64),
                "served_at": self._timestamps(served),
                "surface": "home",
                "position": position.astype(np.int32),
                "request_id": request.astype(np.int64) + 1,
                "model_version": "world-logging-policy",
                "experiment_arm": "control",
            }
        )
        truth = pd.DataFrame({"impression_id": ids + 1})
        self._draw_actions(logits, served, impressions, truth)
        self._draw_dwell(mean_log_dwell, impressions, truth)
        self._remember(impressions, viewer, tweet)
        return impressions, truth

    def _draw_actions(
        self,
        logits: Mapping[str, np.ndarray],
        served: np.ndarray,
        impressions: pd.DataFrame,
        truth: pd.DataFrame,
    ) -> None:
        """Each binary action's label and time into ``impressions`` and its true probability
        into ``truth``. An action happens some seconds after the impression; a derived action
        (an author engaging with a reply) only after its parent, and only if that happened."""
        rng, m = self.rng, len(served)
        happened_at: dict[str, np.ndarray] = {}
        for action in BINARY_ACTIONS:
            p = expit(logits[action])
            delay = rng.exponential(45.0, size=m) + 1.0
            at = served + delay
            parent = DERIVED_ACTIONS.get(action)
            if parent is not None:
                p = p * truth[f"p_{parent}"].to_numpy(dtype=np.float64)
                happened = impressions[parent].to_numpy() & (rng.random(m) < expit(logits[action]))
                at = happened_at[parent] + rng.exponential(1800.0, size=m) + 1.0
            else:
                happened = rng.random(m) < p
            happened_at[action] = at
            impressions[action] = happened
            impressions[f"{action}_at"] = self._timestamps(at).where(happened, pd.NaT)
            truth[f"p_{action}"] = p.astype(np.float32)

    def _draw_dwell(
        self, mean_log_dwell: np.ndarray, impressions: pd.DataFrame, truth: pd.DataFrame
    ) -> None:
        """The lognormal dwell time (ms, capped at the validation maximum) into ``impressions``;
        the chance of a dwell over DWELL_THRESHOLD_MS, the expected dwell and the mean log
        dwell (log seconds) into ``truth``."""
        dwell = np.exp(mean_log_dwell + DWELL_SIGMA * self.rng.standard_normal(len(mean_log_dwell)))
        impressions["dwell_ms"] = np.minimum(dwell, self.cfg.validate_.max_dwell_ms).astype(
            np.int32
        )
        threshold = (np.log(DWELL_THRESHOLD_MS) - mean_log_dwell) / DWELL_SIGMA
        truth["p_dwell"] = norm.sf(threshold).astype(np.float32)
        truth["expected_dwell_ms"] = np.exp(mean_log_dwell + DWELL_SIGMA**2 / 2).astype(np.float32)
        truth["mean_log_dwell_s"] = (mean_log_dwell - np.log(1000.0)).astype(np.float32)

    def _remember(self, impressions: pd.DataFrame, viewer: np.ndarray, tweet: np.ndarray) -> None:
        """Update the state that tomorrow's probabilities read (past interactions, popularity)."""
        engaged = impressions[list(ENGAGEMENTS)].any(axis=1).to_numpy()
        authors = self.tweets.column("author").astype(int)[tweet]
        n = self.w.n_users
        for v, a in zip(viewer[engaged], authors[engaged], strict=True):
            key = int(v) * n + int(a)
            self.engaged_pairs[key] = self.engaged_pairs.get(key, 0) + 1
        np.add.at(self.tweet_engagements, tweet[engaged], 1.0)
        np.add.at(self.tweet_impressions, tweet, 1.0)

    def _timestamps(self, seconds: np.ndarray) -> pd.Series:
        base = pd.Timestamp(self.start)
        return pd.Series(
            base + pd.to_timedelta(np.round(seconds * 1e6).astype(np.int64), unit="us")
        )


@dataclass
class SimulatedDay:
    """One simulated day's rows: its tweets, and (from day 0 on) its impressions and their truth."""

    label: str  # ISO date, the lake partition
    tweets: pd.DataFrame
    impressions: pd.DataFrame | None  # None before the first session day
    truth: pd.DataFrame | None


@dataclass
class Simulation:
    """A world under way: its population, follow graph and the days simulated one at a time."""

    world: World
    pop: Population
    adjacency: np.ndarray  # [N, N] bool, follower x followee
    users: pd.DataFrame
    follows: pd.DataFrame
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
        """The prehistory days (tweets only), then every session day, in order. Once per
        Simulation: a second pass would go on drawing from the same random stream."""
        if self._started:
            raise RuntimeError("Simulation.days() runs once; start a new Simulation to re-run")
        self._started = True
        cfg, n = self.world.cfg, self.world.w.n_users
        last_visit = np.full(n, -np.inf)
        seen: list[set[int]] = [set() for _ in range(n)]
        for day in range(-PREHISTORY_DAYS, cfg.world.days):
            label = (cfg.world.start_date + timedelta(days=day)).isoformat()
            tweets = self.world.post_tweets(self.pop, day)
            if day < 0:
                yield SimulatedDay(label, tweets, None, None)
                continue
            impressions, truth = self.world.run_sessions(
                self.pop, self.adjacency, day, last_visit, seen
            )
            yield SimulatedDay(label, tweets, impressions, truth)

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


def topic_affinity(
    pop: Population, viewer: np.ndarray, topic: np.ndarray, n_topics: int
) -> np.ndarray:
    """``log(interest * K + 0.05)`` per (viewer, topic) pair: 0 at a uniform interest of 1 / K."""
    return np.log(pop.interests[viewer, topic] * n_topics + 0.05)


def build_world(cfg: FeedrankConfig) -> dict[str, int]:
    """Simulate the world of `cfg` and write raw tables and truth to the lake (replacing them)."""
    started = time.perf_counter()
    raw, truth_dir = cfg.paths.raw, cfg.paths.truth
    for folder in (raw, truth_dir, cfg.paths.quarantine):
        shutil.rmtree(folder, ignore_errors=True)
    sim = Simulation.start(cfg)
    write_partition(sim.users, raw, "users", STATIC_PARTITION, USERS)
    write_partition(sim.follows, raw, "follows", STATIC_PARTITION, FOLLOWS)
    log.info("world: %d users, %d follows", len(sim.users), len(sim.follows))
    totals = {"users": len(sim.users), "follows": len(sim.follows), "tweets": 0, "impressions": 0}
    for day in sim.days():
        write_partition(day.tweets, raw, "tweets", day.label, TWEETS)
        totals["tweets"] += len(day.tweets)
        if day.impressions is None or day.truth is None:
            continue
        write_partition(day.impressions, raw, "impressions", day.label, IMPRESSIONS)
        write_partition(day.truth, truth_dir, "truth", day.label, TRUTH)
        totals["impressions"] += len(day.impressions)
        log.info(
            "world: day %s done: %d tweets, %d impressions (%.0f s elapsed)",
            day.label,
            len(day.tweets),
            len(day.impressions),
            time.perf_counter() - started,
        )
    totals["topics"] = min(cfg.world.n_topics, len(TOPIC_NAMES))
    log.info("world built in %.1f s: %s", time.perf_counter() - started, totals)
    return totals
