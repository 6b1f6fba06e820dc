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
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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
BASE_LOGIT = {
    "fav": -3.4,
    "reply": -5.6,
    "retweet": -5.0,
    "quote": -6.8,
    "profile_click": -5.2,
    "negative": -5.8,
    "report": -8.8,
}
# Logit that an author engages with a viewer's reply (given the reply), before the terms below.
AUTHOR_ENGAGES_REPLY_LOGIT = -1.6


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
        rng, n = self.rng, self.w.n_users
        day_start = day * 86400.0
        counts = rng.poisson(self.w.tweets_per_user_day * pop.activity)
        authors = np.repeat(np.arange(n), counts)
        m = len(authors)
        hours = rng.choice(24, size=m, p=HOURLY_RHYTHM / HOURLY_RHYTHM.sum())
        created = day_start + hours * 3600.0 + rng.uniform(0, 3600, size=m)
        order = np.argsort(created, kind="stable")
        authors, created = authors[order], created[order]

        prior_count = len(self.tweets)
        prior_created = self.tweets.column("created")
        prior_topic = self.tweets.column("topic").astype(int)
        prior_conv = self.tweets.column("conversation").astype(int)
        recent: np.ndarray = (
            np.nonzero(prior_created >= day_start - 86400.0)[0] if prior_count else np.empty(0, int)
        )
        is_reply = (rng.random(m) < self.w.reply_share) & (len(recent) > 0)
        parent = np.full(m, -1)
        if is_reply.any():
            weights = pop.fitness[self.tweets.column("author").astype(int)[recent]]
            parent[is_reply] = rng.choice(
                recent, size=int(is_reply.sum()), p=weights / weights.sum()
            )

        topic = np.array(
            [rng.choice(self.w.n_topics, p=pop.interests[a]) for a in authors], dtype=int
        )
        topic[is_reply] = prior_topic[parent[is_reply]]
        toxicity = np.clip(pop.toxic_tendency[authors] + rng.normal(0, 0.08, size=m), 0, 1)
        toxic = toxicity > 0.5
        has_video = rng.random(m) < 0.08
        has_image = ~has_video & (rng.random(m) < 0.25)
        has_url = rng.random(m) < 0.15
        quality = pop.quality[authors] + rng.normal(0, 0.5, size=m) + 0.2 * (has_image | has_video)
        texts = [
            compose_text(
                rng, int(topic[i]), str(pop.language[authors[i]]), bool(toxic[i]), bool(is_reply[i])
            )
            for i in range(m)
        ]
        hashtags = [pick_hashtags(rng, int(t)) for t in topic]
        index = np.arange(prior_count, prior_count + m)
        conversation = index.copy()
        conversation[is_reply] = prior_conv[parent[is_reply]]

        self.tweets.author.append(authors)
        self.tweets.topic.append(topic)
        self.tweets.created.append(created)
        self.tweets.quality.append(quality)
        self.tweets.toxicity.append(toxicity)
        self.tweets.length.append(np.array([len(t) for t in texts]))
        self.tweets.has_video.append(has_video)
        self.tweets.has_image.append(has_image)
        self.tweets.is_reply.append(is_reply)
        self.tweets.conversation.append(conversation)
        for i, a in zip(index, authors, strict=True):
            self.user_tweets[a].append(int(i))
        self.tweet_engagements = np.concatenate([self.tweet_engagements, np.zeros(m)])
        self.tweet_impressions = np.concatenate([self.tweet_impressions, np.zeros(m)])

        return pd.DataFrame(
            {
                "tweet_id": self.tweet_id_base + index,
                "author_id": authors.astype(np.int64) + 1,
                "created_at": self._timestamps(created),
                "text": texts,
                "language": pop.language[authors],
                "has_image": has_image,
                "has_video": has_video,
                "has_url": has_url,
                "hashtags": hashtags,
                "conversation_id": self.tweet_id_base + conversation,
                "in_reply_to_tweet_id": pd.Series(self.tweet_id_base + parent, dtype="Int64").mask(
                    ~is_reply
                ),
                "toxicity": toxicity.astype(np.float32),
            }
        )

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
        rng, n = self.rng, self.w.n_users
        weekday = (self.w.start_date.weekday() + day) % 7
        per_user = rng.poisson(
            self.w.sessions_per_user_day * pop.activity * WEEKDAY_RHYTHM[weekday] / 1.1
        )
        viewers = np.repeat(np.arange(n), per_user)
        hours = rng.choice(24, size=len(viewers), p=HOURLY_RHYTHM / HOURLY_RHYTHM.sum())
        times = day * 86400.0 + hours * 3600.0 + rng.uniform(0, 3600, size=len(viewers))
        order = np.argsort(times, kind="stable")
        viewers, times = viewers[order], times[order]

        created = self.tweets.column("created")
        authors = self.tweets.column("author").astype(int)
        is_reply = self.tweets.column("is_reply").astype(bool)
        roots = np.nonzero(~is_reply)[0]
        followees = [np.nonzero(adjacency[u])[0] for u in range(n)]
        per_session = self.w.impressions_per_session
        n_out = int(round(per_session * self.w.out_of_network_share))
        popularity = np.sqrt(1.0 + self.tweet_engagements)

        rows_viewer, rows_tweet, rows_time, rows_request, rows_pos = [], [], [], [], []
        for viewer, now in zip(viewers, times, strict=True):
            since = max(last_visit[viewer], now - 3 * 86400.0)
            pool = [t for a in followees[viewer] for t in self.user_tweets[a][-30:]]
            inn = np.array(
                [t for t in pool if since < created[t] <= now and t not in seen[viewer]], dtype=int
            )
            if len(inn) > per_session - n_out:
                recency = np.exp(-(now - created[inn]) / 43200.0)
                inn = rng.choice(
                    inn, size=per_session - n_out, replace=False, p=recency / recency.sum()
                )
            fresh = roots[(created[roots] > now - 2 * 86400.0) & (created[roots] <= now)]
            want_out = per_session - len(inn)
            out = np.empty(0, dtype=int)
            if len(fresh) and want_out:
                weight = popularity[fresh]
                out = rng.choice(
                    fresh, size=min(want_out, len(fresh)), replace=False, p=weight / weight.sum()
                )
                out = out[(authors[out] != viewer) & ~adjacency[viewer, authors[out]]]
                out = np.array([t for t in out if t not in seen[viewer]], dtype=int)
            shown = np.concatenate([inn, out]).astype(int)
            if not len(shown):
                continue
            shown = shown[rng.permutation(len(shown))]
            seen[viewer].update(int(t) for t in shown)
            last_visit[viewer] = now
            rows_viewer.append(np.full(len(shown), viewer))
            rows_tweet.append(shown)
            rows_time.append(now + 4.0 * np.arange(len(shown)))
            rows_request.append(np.full(len(shown), self.request_count))
            rows_pos.append(np.arange(len(shown)))
            self.request_count += 1
        if not rows_viewer:
            return IMPRESSIONS.empty_table().to_pandas(), TRUTH.empty_table().to_pandas()
        shown_viewer = np.concatenate(rows_viewer)
        shown_tweet = np.concatenate(rows_tweet)
        shown_at = np.concatenate(rows_time)
        return self.label(
            pop,
            adjacency,
            shown_viewer,
            shown_tweet,
            shown_at,
            np.concatenate(rows_request),
            np.concatenate(rows_pos),
        )

    def true_logits(
        self,
        pop: Population,
        adjacency: np.ndarray,
        viewer: np.ndarray,
        tweet: np.ndarray,
        served: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """True logits of every binary action and the mean log-dwell, per impression."""
        author = self.tweets.column("author").astype(int)[tweet]
        topic = self.tweets.column("topic").astype(int)[tweet]
        age_h = (served - self.tweets.column("created")[tweet]) / 3600.0
        quality = self.tweets.column("quality")[tweet]
        toxicity = self.tweets.column("toxicity")[tweet]
        length = self.tweets.column("length")[tweet]
        video = self.tweets.column("has_video")[tweet].astype(bool)
        image = self.tweets.column("has_image")[tweet].astype(bool)
        n = self.w.n_users
        affinity = topic_affinity(pop, viewer, topic, self.w.n_topics)
        follows = adjacency[viewer, author].astype(float)
        past = np.log1p(
            np.array(
                [
                    self.engaged_pairs.get(int(v) * n + int(a), 0)
                    for v, a in zip(viewer, author, strict=True)
                ]
            )
        )
        popularity = np.log(pop.fitness[author])
        hour = (served % 86400.0) // 3600.0
        weekday = ((self.w.start_date.weekday() + served // 86400.0) % 7).astype(int)
        evening = ((hour >= 18) & (hour <= 22)).astype(float)
        weekend = (weekday >= 5).astype(float)
        language = np.where(pop.language[viewer] == pop.language[author], 0.3, -1.0)
        freshness = -0.03 * np.minimum(age_h, 72.0)
        engaged_user = np.log(pop.activity[viewer])
        shared = freshness + language + 0.15 * evening + 0.1 * weekend
        logits = {
            "fav": BASE_LOGIT["fav"]
            + 1.1 * affinity
            + 0.5 * follows
            + 0.5 * past
            + 0.25 * popularity
            + 0.6 * quality
            + 0.25 * image
            + 0.3 * engaged_user
            - 2.5 * toxicity
            + shared,
            "reply": BASE_LOGIT["reply"]
            + 1.0 * affinity
            + 0.9 * follows
            + 0.8 * past
            + 0.4 * quality
            + 0.8 * toxicity
            + 0.3 * engaged_user
            + shared,
            "retweet": BASE_LOGIT["retweet"]
            + 1.2 * affinity
            + 0.4 * follows
            + 0.4 * past
            + 0.4 * popularity
            + 0.7 * quality
            + 0.3 * video
            - 2.0 * toxicity
            + shared,
            "quote": BASE_LOGIT["quote"]
            + 0.9 * affinity
            + 0.3 * past
            + 0.3 * popularity
            + 0.5 * quality
            + 1.0 * toxicity
            + shared,
            "profile_click": BASE_LOGIT["profile_click"]
            + 0.7 * affinity
            - 0.8 * follows
            + 0.5 * popularity
            + 0.4 * quality
            + shared,
            "negative": BASE_LOGIT["negative"]
            - 0.7 * affinity
            - 0.6 * follows
            - 0.3 * past
            - 0.3 * quality
            + 3.2 * toxicity
            - 0.5 * language,
            "report": BASE_LOGIT["report"] - 0.3 * affinity - 0.5 * follows + 4.5 * toxicity,
            # Conditional on a reply: authors answer people they follow, the people they talk to,
            # and answer less the more followers they have; toxic replies get ignored.
            "reply_engaged_by_author": AUTHOR_ENGAGES_REPLY_LOGIT
            + 1.4 * adjacency[author, viewer].astype(float)
            + 0.6 * past
            + 0.5 * np.log(pop.activity[author])
            - 0.35 * popularity
            - 1.5 * toxicity
            + language,
        }
        mean_log_dwell = (
            np.log(3500.0)
            + 0.35 * affinity
            + 0.004 * length
            + 0.6 * video
            + 0.25 * quality
            + 0.2 * follows
        )
        return logits, mean_log_dwell

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
        rng, m = self.rng, len(viewer)
        logits, mean_log_dwell = self.true_logits(pop, adjacency, viewer, tweet, served)
        ids = np.arange(self.impression_count, self.impression_count + m, dtype=np.int64)
        self.impression_count += m
        served_ts = self._timestamps(served)
        impressions = pd.DataFrame(
            {
                "impression_id": ids + 1,
                "viewer_id": viewer.astype(np.int64) + 1,
                "tweet_id": self.tweet_id_base + tweet.astype(np.int64),
                "served_at": served_ts,
                "surface": "home",
                "position": position.astype(np.int32),
                "request_id": request.astype(np.int64) + 1,
                "model_version": "world-logging-policy",
                "experiment_arm": "control",
            }
        )
        truth = pd.DataFrame({"impression_id": ids + 1})
        happened_at: dict[str, np.ndarray] = {}
        for action in BINARY_ACTIONS:
            p = expit(logits[action])
            delay = rng.exponential(45.0, size=m) + 1.0
            at = served + delay
            parent = DERIVED_ACTIONS.get(action)
            if parent is not None:  # happens only after its parent action, and only if it did
                p = p * truth[f"p_{parent}"].to_numpy(dtype=np.float64)
                happened = impressions[parent].to_numpy() & (rng.random(m) < expit(logits[action]))
                at = happened_at[parent] + rng.exponential(1800.0, size=m) + 1.0
            else:
                happened = rng.random(m) < p
            happened_at[action] = at
            impressions[action] = happened
            impressions[f"{action}_at"] = self._timestamps(at).where(happened, pd.NaT)
            truth[f"p_{action}"] = p.astype(np.float32)
        sigma = 0.9
        dwell = np.exp(mean_log_dwell + sigma * rng.standard_normal(m))
        impressions["dwell_ms"] = np.minimum(dwell, self.cfg.validate_.max_dwell_ms).astype(
            np.int32
        )
        truth["p_dwell"] = norm.sf((np.log(DWELL_THRESHOLD_MS) - mean_log_dwell) / sigma).astype(
            np.float32
        )
        truth["expected_dwell_ms"] = np.exp(mean_log_dwell + sigma**2 / 2).astype(np.float32)
        truth["mean_log_dwell_s"] = (mean_log_dwell - np.log(1000.0)).astype(np.float32)
        self._remember(impressions, viewer, tweet)
        return impressions, truth

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
