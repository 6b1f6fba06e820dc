"""The true engagement model: what a viewer does with a tweet served at a moment, and how likely.

One function, :func:`true_engagement`, gives the probability of every action and the dwell
distribution of any (viewer, tweet, served time) triple of a world. The bootstrap draws its
labels from it, simulated traffic draws what users do with what the service served from it, and
evaluation reads the same probabilities back from the truth table.

Each output is a logistic (or, for the dwell, lognormal) model over TERMS: logits of
viewer–topic affinity, the viewer–author relationship and past interactions, author popularity,
tweet quality and age, hour and weekday, language match and toxicity.

Two surfaces. On **home** an impression is a tweet in the feed and the model is ACTION_LOGITS and
MEAN_LOG_DWELL_MS. On a **conversation** page the tweet shown is a reply at a 0-based position on
the page: its logits are the home model's plus CONVERSATION_LOGITS over the conversation terms
(the root author's involvement, depth, the root author's relation to the replier), its mean log
dwell the home one's plus CONVERSATION_DWELL, and the chance of every action the viewer does
itself is scaled by the position bias :func:`examination` (the derived action through its
parent), the chance the reader gets that far down the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from pipelines.schema import BINARY_ACTIONS, DERIVED_ACTIONS, DWELL_THRESHOLD_MS, TRUTH
from pipelines.world.state import (
    Population,
    TweetLog,
    seconds_since,
    tweet_ids_of,
    tweet_index_of,
    user_index_of,
)


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
    # The conversation surface's own terms (CONVERSATION_LOGITS, CONVERSATION_DWELL).
    "root_author_replied": "1 if the conversation's root author replied to this reply before the "
    "served moment",
    "by_root_author": "1 if the reply is by the conversation's root author",
    "root_author_follows": "1 if the conversation's root author follows the reply's author",
    "depth_below_top": "the reply's depth below the top level (0 for a direct reply to the root), "
    "capped at 5",
    "position": "the reply's 0-based position on the conversation page: the position bias "
    "examination(position) scales every chance the viewer acts",
}
# The terms only a conversation page has.
CONVERSATION_TERMS: tuple[str, ...] = (
    "root_author_replied",
    "by_root_author",
    "root_author_follows",
    "depth_below_top",
    "position",
)
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
# What a conversation page adds to the logit of each action, over the home model's: readers fav,
# answer and click through replies the root author answered or wrote, and replies from the root
# author's own circle; they act less on deep replies; the root author's involvement vouches
# against negatives and reports; people reply more, and repost less, in conversations.
CONVERSATION_LOGITS: Mapping[str, LinearTerms] = {
    "fav": LinearTerms(
        -0.2,
        {
            "root_author_replied": 0.9,
            "by_root_author": 0.6,
            "root_author_follows": 0.3,
            "depth_below_top": -0.25,
        },
    ),
    "reply": LinearTerms(
        0.5,
        {
            "root_author_replied": 1.0,
            "by_root_author": 0.5,
            "root_author_follows": 0.2,
            "depth_below_top": -0.15,
        },
    ),
    "retweet": LinearTerms(-0.8, {"root_author_replied": 0.5, "by_root_author": 0.4}),
    "quote": LinearTerms(-0.6, {"root_author_replied": 0.4, "by_root_author": 0.2}),
    "profile_click": LinearTerms(
        0.3, {"root_author_replied": 0.6, "by_root_author": 0.2, "root_author_follows": 0.2}
    ),
    "negative": LinearTerms(
        0.2, {"root_author_replied": -0.7, "by_root_author": -0.4, "root_author_follows": -0.3}
    ),
    "report": LinearTerms(0.0, {"root_author_replied": -0.6, "by_root_author": -0.5}),
    "reply_engaged_by_author": LinearTerms(0.3, {"by_root_author": 0.5}),
}
# What a conversation page adds to the mean log dwell (log ms): an exchange with the root author
# is read longer, a deep reply shorter.
CONVERSATION_DWELL = LinearTerms(-0.2, {"root_author_replied": 0.3, "depth_below_top": -0.05})
# The position bias of a conversation page: examination(k) = 1 / (1 + decay * k) at 0-based k.
CONVERSATION_POSITION_DECAY = 0.15
DEPTH_CAP = 5  # replies deeper than this below the top level read like this deep
# The truth table's columns but its key, in its order.
TRUTH_COLUMNS: tuple[str, ...] = tuple(name for name in TRUTH.names if name != "impression_id")


def true_logits_of(terms: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The true logit of every binary action and the mean log-dwell (log ms), ``[M]`` each, from
    the model's TERMS (``context`` is computed here from its own terms). Where ``terms`` has the
    CONVERSATION_TERMS the impressions are on a conversation page and CONVERSATION_LOGITS and
    CONVERSATION_DWELL are added; the position bias is not a logit (see :func:`examination`)."""
    terms = {**terms, "context": CONTEXT(terms)}
    logits = {action: model(terms) for action, model in ACTION_LOGITS.items()}
    mean_log_dwell = MEAN_LOG_DWELL_MS(terms)
    if "position" in terms:
        for action, model in CONVERSATION_LOGITS.items():
            logits[action] = logits[action] + model(terms)
        mean_log_dwell = mean_log_dwell + CONVERSATION_DWELL(terms)
    return logits, mean_log_dwell


def examination(position: np.ndarray) -> np.ndarray:
    """The position bias of a conversation page: ``[M]`` chance that a reader gets to the reply
    at 0-based ``position``, ``1 / (1 + CONVERSATION_POSITION_DECAY * position)``."""
    return 1.0 / (1.0 + CONVERSATION_POSITION_DECAY * np.asarray(position, dtype=np.float64))


def topic_affinity(
    pop: Population, viewer: np.ndarray, topic: np.ndarray, n_topics: int
) -> np.ndarray:
    """``log(interest * K + 0.05)`` per (viewer, topic) pair: 0 at a uniform interest of 1 / K."""
    return np.log(pop.interests[viewer, topic] * n_topics + 0.05)


@dataclass(frozen=True)
class WorldView:
    """What the true model reads of a world: its latents, follow graph, tweet log and memory."""

    pop: Population
    adjacency: np.ndarray  # [N, N] bool, follower x followee
    tweets: TweetLog
    engaged_pairs: Mapping[int, int]  # viewer * N + author -> engagements so far
    start: datetime  # the world's start (UTC): served times are read against it
    n_topics: int

    def view(self) -> WorldView:
        return self

    def past_engagements(self, viewer: np.ndarray, author: np.ndarray) -> np.ndarray:
        """``[M]`` engagements of each viewer (index) with each author (index) remembered so far."""
        n = len(self.adjacency)
        return np.array(
            [
                self.engaged_pairs.get(int(v) * n + int(a), 0)
                for v, a in zip(viewer, author, strict=True)
            ],
            dtype=np.int64,
        )


class HasWorldView(Protocol):
    """A world the true model can read: a WorldView itself, or a Simulation."""

    def view(self) -> WorldView: ...


@dataclass(frozen=True)
class TrueEngagement:
    """The true chances of every action of ``M`` impressions and their dwell distribution.

    ``probability[action]`` (``[M]`` float64, every BINARY_ACTIONS) is the unconditional chance,
    what the truth table stores as ``p_<action>``: a derived action's is its ``conditional``
    chance times its parent's. ``conditional[action]`` (``[M]``, every DERIVED_ACTIONS key) is its
    chance given the parent happened. The dwell time is lognormal: log ms ~ N(mean_log_dwell_ms,
    DWELL_SIGMA).
    """

    probability: dict[str, np.ndarray]
    conditional: dict[str, np.ndarray]
    mean_log_dwell_ms: np.ndarray  # [M] log ms

    def __len__(self) -> int:
        return len(self.mean_log_dwell_ms)

    @property
    def p_dwell(self) -> np.ndarray:
        """``[M]`` chance of a dwell of at least DWELL_THRESHOLD_MS."""
        threshold = (np.log(DWELL_THRESHOLD_MS) - self.mean_log_dwell_ms) / DWELL_SIGMA
        return np.asarray(norm.sf(threshold), dtype=np.float64)

    @property
    def expected_dwell_ms(self) -> np.ndarray:
        """``[M]`` mean dwell time, ms."""
        return np.exp(self.mean_log_dwell_ms + DWELL_SIGMA**2 / 2)

    @property
    def mean_log_dwell_s(self) -> np.ndarray:
        """``[M]`` mean of the log dwell time, log seconds."""
        return self.mean_log_dwell_ms - np.log(1000.0)

    def truth_columns(self) -> dict[str, np.ndarray]:
        """Every truth-table column but ``impression_id``, in its order, ``[M]`` float32 each."""
        values = {
            **{f"p_{action}": self.probability[action] for action in BINARY_ACTIONS},
            "p_dwell": self.p_dwell,
            "expected_dwell_ms": self.expected_dwell_ms,
            "mean_log_dwell_s": self.mean_log_dwell_s,
        }
        return {name: values[name].astype(np.float32) for name in TRUTH_COLUMNS}

    def dwell_ms(self, rng: np.random.Generator) -> np.ndarray:
        """``[M]`` dwell times (ms, float64) drawn from the lognormal dwell distribution."""
        noise = rng.standard_normal(len(self))
        return np.exp(self.mean_log_dwell_ms + DWELL_SIGMA * noise)


def true_engagement(
    world: HasWorldView,
    viewer_ids: Any,
    tweet_ids: Any,
    served_at: Any,
    past: Any = None,
    positions: Any = None,
) -> TrueEngagement:
    """The true engagement of ``M`` impressions.

    ``viewer_ids`` and ``tweet_ids`` are lake ids (int64 ``[M]``); ``served_at`` ``[M]`` UTC
    timestamps (a Series, DatetimeIndex or datetime64 values; read at microsecond resolution);
    ``past`` ``[M]`` engagements of each viewer with the tweet's author before the serving day
    (default: what the world remembers now, see ``Simulation.remember``). ``positions`` (``[M]``
    0-based positions on a conversation page) puts the impressions on the conversation surface:
    every tweet is then a reply shown on its conversation's page; without it they are home
    impressions. Raises UnknownIdError for an id the world does not know and ValueError for
    arrays of different lengths, a negative position or a conversation impression of a tweet
    that is not a reply.
    """
    view = world.view()
    viewer_ids, tweet_ids = np.asarray(viewer_ids), np.asarray(tweet_ids)
    served = seconds_since(view.start, served_at)
    _same_lengths(
        viewer_ids=viewer_ids, tweet_ids=tweet_ids, served_at=served, past=past, positions=positions
    )
    viewer = user_index_of(viewer_ids, len(view.adjacency))
    tweet = tweet_index_of(tweet_ids, len(view.tweets))
    if positions is not None:
        _check_conversation_impressions(view, tweet, np.asarray(positions))
    return true_engagement_of(view, viewer, tweet, served, past, positions)


def true_engagement_of(
    view: WorldView,
    viewer: np.ndarray,
    tweet: np.ndarray,
    served: np.ndarray,
    past: Any = None,
    positions: Any = None,
) -> TrueEngagement:
    """:func:`true_engagement` on world indices: ``viewer`` and ``tweet`` ``[M]`` indices,
    ``served`` ``[M]`` seconds since the world's start, ``positions`` as there."""
    author = view.tweets.column("author").astype(int)[tweet]
    if past is None:
        past = view.past_engagements(viewer, author)
    terms = impression_terms(view, viewer, tweet, served, np.asarray(past, dtype=np.float64))
    if positions is not None:
        terms.update(conversation_terms(view, tweet, served, np.asarray(positions)))
    logits, mean_log_dwell = true_logits_of(terms)
    probability = {action: expit(logits[action]) for action in BINARY_ACTIONS}
    if positions is not None:
        seen = examination(terms["position"])
        probability = {
            action: chance if action in DERIVED_ACTIONS else chance * seen
            for action, chance in probability.items()
        }
    conditional = {action: probability[action] for action in DERIVED_ACTIONS}
    for action, parent in DERIVED_ACTIONS.items():
        probability[action] = conditional[action] * probability[parent]
    return TrueEngagement(probability, conditional, mean_log_dwell)


def conversation_terms(
    view: WorldView, tweet: np.ndarray, served: np.ndarray, positions: np.ndarray
) -> dict[str, np.ndarray]:
    """The CONVERSATION_TERMS of replies ``tweet`` (``[M]`` indices) shown at ``positions`` on
    their conversation's page at ``served`` (``[M]`` seconds since the world's start)."""
    tweets = view.tweets
    author = tweets.column("author").astype(int)
    root_author = author[tweets.column("conversation").astype(int)[tweet]]
    replier = author[tweet]
    return {
        "root_author_replied": (root_author_reply_times(tweets)[tweet] < served).astype(float),
        "by_root_author": (replier == root_author).astype(float),
        "root_author_follows": view.adjacency[root_author, replier].astype(float),
        "depth_below_top": np.minimum(reply_depths(tweets, tweet) - 1, DEPTH_CAP).astype(float),
        "position": positions.astype(np.float64),
    }


def reply_depths(tweets: TweetLog, tweet: np.ndarray) -> np.ndarray:
    """``[M]`` depth of each tweet (log index) in its conversation: 0 for a root, 1 for a direct
    reply to it, and so on down the parent links."""
    parent = tweets.column("parent").astype(np.int64)
    node = np.asarray(tweet, dtype=np.int64).copy()
    depth = np.zeros(len(node), dtype=np.int64)
    while True:
        up = parent[node]
        below = up >= 0
        if not below.any():
            return depth
        depth += below
        node = np.where(below, up, node)


def root_author_reply_times(tweets: TweetLog) -> np.ndarray:
    """``[T]`` per tweet, when the root author of its conversation first replied to it (seconds
    since the world's start; inf where never)."""
    author = tweets.column("author").astype(np.int64)
    parent = tweets.column("parent").astype(np.int64)
    root = tweets.column("conversation").astype(np.int64)
    answers = np.nonzero((parent >= 0) & (author == author[root]))[0]
    first = np.full(len(author), np.inf)
    np.minimum.at(first, parent[answers], tweets.column("created")[answers])
    return first


def _check_conversation_impressions(
    view: WorldView, tweet: np.ndarray, positions: np.ndarray
) -> None:
    if len(positions) and positions.min() < 0:
        raise ValueError(f"conversation positions must be >= 0, got {positions.min()}")
    roots = ~view.tweets.column("is_reply").astype(bool)[tweet]
    if roots.any():
        shown = ", ".join(str(t) for t in tweet_ids_of(tweet[roots][:5]))
        raise ValueError(
            f"a conversation impression shows a reply; {int(roots.sum())} tweet(s) are roots "
            f"(e.g. {shown})"
        )


def impression_terms(
    view: WorldView,
    viewer: np.ndarray,
    tweet: np.ndarray,
    served: np.ndarray,
    past: np.ndarray,
) -> dict[str, np.ndarray]:
    """The TERMS of the true engagement model (but ``context``) of each impression
    (``viewer``, ``tweet`` indices, ``served`` seconds since the world's start and ``past``
    engagements of the viewer with the author, ``[M]`` each)."""
    tweets, pop = view.tweets, view.pop
    author = tweets.column("author").astype(int)[tweet]
    topic = tweets.column("topic").astype(int)[tweet]
    hour = (served % 86400.0) // 3600.0
    weekday = ((view.start.weekday() + served // 86400.0) % 7).astype(int)
    age_hours = (served - tweets.column("created")[tweet]) / 3600.0
    return {
        "affinity": topic_affinity(pop, viewer, topic, view.n_topics),
        "follows": view.adjacency[viewer, author].astype(float),
        "follows_back": view.adjacency[author, viewer].astype(float),
        "past": np.log1p(past),
        "popularity": np.log(pop.fitness[author]),
        "quality": tweets.column("quality")[tweet],
        "image": tweets.column("has_image")[tweet].astype(bool),
        "video": tweets.column("has_video")[tweet].astype(bool),
        "toxicity": tweets.column("toxicity")[tweet],
        "engaged_user": np.log(pop.activity[viewer]),
        "author_activity": np.log(pop.activity[author]),
        "age_hours": np.minimum(age_hours, FRESHNESS_HORIZON_HOURS),
        "language": np.where(
            pop.language[viewer] == pop.language[author], LANGUAGE_MATCH, LANGUAGE_MISMATCH
        ),
        "evening": ((hour >= 18) & (hour <= 22)).astype(float),
        "weekend": (weekday >= 5).astype(float),
        "length": tweets.column("length")[tweet],
    }


def _same_lengths(**arrays: Any) -> None:
    lengths = {name: len(values) for name, values in arrays.items() if values is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"true_engagement needs arrays of one length, got {lengths}")
