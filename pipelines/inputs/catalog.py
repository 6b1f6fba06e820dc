"""The feature catalog: every feature of feedrank stated once, as data.

Each feature view, request source and on-demand view lists its fields with a dtype kind, a
description and what the ranker does with them. `feature_repo/definitions.py` builds the Feast
objects from it; `pipelines.inputs.spec` derives the ranker's feature lists from it. Pure data and
the standard library only: serving imports it (through spec) on its request path, so no feast and no
torch here.

What the flags of a :class:`Feature` mean for the ranker:

- `dense`: the field is a dense input, at this position within its group. The dense input is the
  groups of :data:`DENSE_GROUPS` in order, each holding the dense fields of its views sorted by
  position; a trained model's weights are laid out in that order, so a position never changes
  without retraining (new features go at the end of their group).
- `vector`: the field is a vector the ranker takes whole, one input per dimension (after the dense
  inputs, in catalog order).
- `log`: a heavy-tailed count, log-transformed before standardizing.
- `skeleton`: part of the reduced `skeleton` feature set (a small set kept as a reference point).
- `reads_text`: read from the tweet text (the text encoder's embeddings); the `no_text` feature
  set leaves it out, which measures what the encoder adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

DtypeKind = Literal["int64", "float64", "string", "float32_list", "int64_list", "string_list"]
DTYPE_KINDS: tuple[str, ...] = get_args(DtypeKind)
# "features": the config's `features.ttl_days`; "graph": GRAPH_TTL_DAYS.
TtlKind = Literal["features", "graph"]

# The follow graph is one snapshot stamped before the world starts (batch.graph_tables), so its
# rows must still join at any later time.
GRAPH_TTL_DAYS = 3650
# Half-life scale of the decayed engagement total: the batch snapshot and its request-time carry-on
# (spec.request_time_columns) decay with it.
ENGAGEMENT_DECAY_HOURS = 24.0


@dataclass(frozen=True)
class Entity:
    """A join key of the feature views (every key is an int64 id)."""

    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class Feature:
    """One field of a view or request source, and what the ranker does with it (module docstring)."""

    name: str
    kind: DtypeKind
    description: str
    dense: int | None = None
    vector: bool = False
    log: bool = False
    skeleton: bool = False
    reads_text: bool = False


@dataclass(frozen=True)
class Push:
    """A push source in front of a view's batch table: fresh rows reach the online store between
    daily runs."""

    name: str
    description: str


@dataclass(frozen=True)
class View:
    """A batch feature view; its source is the feature table named as the view
    (`cfg.paths.feature_table(view.name)`)."""

    name: str
    entities: tuple[str, ...]
    fields: tuple[Feature, ...]
    description: str
    ttl: TtlKind = "features"
    push: Push | None = None

    @property
    def table(self) -> str:
        return self.name


@dataclass(frozen=True)
class RequestSource:
    """Values only the request knows, handed to the on-demand views."""

    name: str
    fields: tuple[Feature, ...]
    description: str


@dataclass(frozen=True)
class OnDemandView:
    """A view computed at read time by a function of spec (spec.ON_DEMAND_COLUMNS); every output
    is float64."""

    name: str
    fields: tuple[Feature, ...]
    description: str


@dataclass(frozen=True)
class Service:
    """A Feast feature service: the views one ranker version reads."""

    name: str
    views: tuple[str, ...]
    description: str


ENTITIES: tuple[Entity, ...] = (
    Entity("tweet", "tweet_id", "A tweet (root or reply)."),
    Entity("author", "author_id", "The user who posted a tweet."),
    Entity("viewer", "viewer_id", "The user a feed or conversation is ranked for."),
)

VIEWS: tuple[View, ...] = (
    View(
        "tweet_content",
        entities=("tweet",),
        description="Static attributes of a tweet, known when it is posted.",
        fields=(
            Feature(
                "tweet_length",
                "int64",
                "Text length in characters.",
                dense=0,
                log=True,
                skeleton=True,
            ),
            Feature("has_image", "int64", "1 if the tweet has an image.", dense=1, skeleton=True),
            Feature("has_video", "int64", "1 if the tweet has a video.", dense=2, skeleton=True),
            Feature("has_url", "int64", "1 if the tweet links out.", dense=3, skeleton=True),
            Feature(
                "is_reply", "int64", "1 if the tweet replies to another.", dense=4, skeleton=True
            ),
            Feature(
                "tweet_toxicity",
                "float64",
                "Health-model toxicity of the tweet in [0, 1] (the tweets table's label).",
                dense=5,
            ),
            Feature("tweet_language", "string", "Language code of the text."),
            Feature("tweet_created_s", "float64", "Posting time, epoch seconds."),
            Feature(
                "tweet_hashtag_vector",
                "float32_list",
                "Unit TF-IDF vector of the tweet's hashtags in 32 hashed buckets.",
            ),
            Feature(
                "tweet_ngram_ids",
                "int64_list",
                "Hashed ids of the text's unigrams and bigrams (the ranker embeds them).",
            ),
        ),
    ),
    View(
        "tweet_engagement",
        entities=("tweet",),
        description="Windowed engagement counts, a row at each hour boundary where a count changes.",
        push=Push(
            "tweet_engagement_push", "Streaming updates of a tweet's windowed engagement counts."
        ),
        fields=(
            Feature(
                "tweet_impressions_window",
                "float64",
                "Impressions in the trailing window (default 24 h).",
                dense=0,
                log=True,
                skeleton=True,
            ),
            Feature(
                "tweet_engagements_window",
                "float64",
                "Favs + replies + retweets + quotes in the trailing window.",
                dense=1,
                log=True,
                skeleton=True,
            ),
            Feature(
                "tweet_favs_window",
                "float64",
                "Favs in the trailing window.",
                dense=2,
                log=True,
                skeleton=True,
            ),
            Feature(
                "tweet_replies_window",
                "float64",
                "Replies in the trailing window.",
                dense=3,
                log=True,
                skeleton=True,
            ),
            Feature(
                "tweet_retweets_window",
                "float64",
                "Retweets in the trailing window.",
                dense=4,
                log=True,
                skeleton=True,
            ),
            Feature(
                "tweet_engagements_total",
                "float64",
                "All engagements since posting.",
                dense=5,
                log=True,
                skeleton=True,
            ),
            Feature("tweet_engagements_1h", "float64", "Engagements in 1 hour.", dense=6, log=True),
            Feature("tweet_engagements_3d", "float64", "Engagements in 3 days.", dense=7, log=True),
            Feature("tweet_engagements_7d", "float64", "Engagements in 7 days.", dense=8, log=True),
            Feature("tweet_favs_3d", "float64", "Favs in 3 days.", dense=9, log=True),
            Feature("tweet_replies_3d", "float64", "Replies in 3 days.", dense=10, log=True),
            Feature("tweet_retweets_2h", "float64", "Retweets in 2 hours.", dense=11, log=True),
            Feature(
                "tweet_engagements_decayed_at_snapshot",
                "float64",
                f"Engagements weighted exp(-age / {ENGAGEMENT_DECAY_HOURS:g} h), at the snapshot "
                "time.",
            ),
            Feature(
                "tweet_engagement_snapshot_s",
                "float64",
                "When this row's counts were taken, epoch seconds.",
            ),
            Feature(
                "tweet_recent_engagers",
                "int64_list",
                "Users who engaged in the last 3 days, most recent first (<= 256).",
            ),
            Feature(
                "tweet_recent_favers",
                "int64_list",
                "Users who faved in the last 3 days, most recent first (<= 256).",
            ),
        ),
    ),
    View(
        "author_stats",
        entities=("author",),
        description="Daily author snapshots.",
        fields=(
            Feature(
                "author_follower_count",
                "int64",
                "Followers of the author.",
                dense=0,
                log=True,
                skeleton=True,
            ),
            Feature(
                "author_following_count",
                "int64",
                "Accounts the author follows.",
                dense=1,
                log=True,
                skeleton=True,
            ),
            Feature("author_is_verified", "float64", "1 if verified.", dense=2, skeleton=True),
            Feature(
                "author_engagement_rate",
                "float64",
                "Engagements / impressions on the author's tweets (3 months, smoothed).",
                dense=3,
                skeleton=True,
            ),
            Feature(
                "author_tweets_window",
                "int64",
                "Tweets posted in 7 days.",
                dense=4,
                log=True,
                skeleton=True,
            ),
            Feature(
                "author_follower_ratio",
                "float64",
                "Followers / max(1, accounts followed).",
                dense=5,
                log=True,
            ),
            Feature(
                "author_hashtag_vector",
                "float32_list",
                "Unit TF-IDF vector of the hashtags the author used (32 hashed buckets).",
            ),
            # Position 6 is author_graph's author_pagerank.
            Feature("author_tweets_total", "int64", "Tweets posted, all time.", dense=7, log=True),
        ),
    ),
    View(
        "viewer_stats",
        entities=("viewer",),
        description="Daily viewer snapshots.",
        fields=(
            Feature(
                "viewer_following_count",
                "int64",
                "Accounts the viewer follows.",
                dense=0,
                log=True,
                skeleton=True,
            ),
            Feature(
                "viewer_engagement_rate",
                "float64",
                "Engagements / impressions of the viewer (3 months, smoothed).",
                dense=1,
                skeleton=True,
            ),
            Feature("viewer_language", "string", "The viewer's language code."),
            Feature("viewer_country", "string", "The viewer's country code."),
            Feature(
                "viewer_hashtag_vector",
                "float32_list",
                "Unit TF-IDF vector of the hashtags of tweets the viewer engaged with.",
            ),
            Feature(
                "viewer_recent_hashtags",
                "string_list",
                "The last 5 distinct hashtags the viewer engaged with, newest first.",
            ),
        ),
    ),
    View(
        "viewer_author",
        entities=("viewer", "author"),
        description="Cumulative viewer-author interaction counts, a row at the end of each active "
        "day.",
        fields=(
            Feature(
                "va_impressions",
                "int64",
                "Tweets of the author the viewer was shown, all time.",
                dense=0,
                log=True,
                skeleton=True,
            ),
            Feature(
                "va_engagements",
                "int64",
                "Engagements of the viewer with the author's tweets, all time.",
                dense=1,
                log=True,
                skeleton=True,
            ),
            # Position 2 is viewer_author_graph's va_common_followees.
            Feature(
                "va_engaged_tweets",
                "int64",
                "Distinct tweets of the author the viewer engaged with.",
                dense=3,
                log=True,
            ),
            Feature(
                "va_engaged_share",
                "float64",
                "Share of the author's tweets seen by the viewer that it engaged with.",
                dense=4,
            ),
        ),
    ),
    View(
        "author_graph",
        entities=("author",),
        ttl="graph",
        description="Reputation and position of an author in the follow graph.",
        fields=(
            Feature(
                "author_pagerank",
                "float64",
                "PageRank on the follow graph, scaled so the average user is 1.",
                dense=6,
                log=True,
            ),
            Feature(
                "author_social_embedding",
                "float32_list",
                "Followee-side vector of the follow graph's truncated SVD (unit).",
            ),
        ),
    ),
    View(
        "viewer_graph",
        entities=("viewer",),
        ttl="graph",
        description="Position of a viewer in the follow graph.",
        fields=(
            Feature(
                "viewer_social_embedding",
                "float32_list",
                "Follower-side vector of the follow graph's truncated SVD (unit).",
            ),
            Feature(
                "viewer_followees",
                "int64_list",
                "Ids of the accounts the viewer follows (its network).",
            ),
        ),
    ),
    View(
        "viewer_author_graph",
        entities=("viewer", "author"),
        ttl="graph",
        description="Follow-graph overlap of a viewer and an author (pairs seen in impressions).",
        fields=(
            Feature(
                "va_common_followees",
                "int64",
                "Accounts both the viewer and the author follow.",
                dense=2,
                log=True,
            ),
        ),
    ),
    View(
        "tweet_embedding",
        entities=("tweet",),
        description="Text embedding of a tweet, from the encoder version of the run.",
        push=Push(
            "tweet_embedding_push",
            "Embeddings of newly posted tweets, pushed without waiting for the daily run.",
        ),
        fields=(
            Feature(
                "tweet_embedding",
                "float32_list",
                "L2-normalized text embedding from the fine-tuned encoder.",
                vector=True,
                reads_text=True,
            ),
            Feature(
                "tweet_topic",
                "int64",
                "Topic id: nearest k-means centroid of the text embeddings.",
                reads_text=True,
            ),
        ),
    ),
    View(
        "viewer_embedding",
        entities=("viewer",),
        description="Daily text profile of a viewer.",
        fields=(
            Feature(
                "viewer_embedding",
                "float32_list",
                "Normalized mean embedding of the viewer's recent engaged tweets.",
                vector=True,
                reads_text=True,
            ),
            Feature(
                "viewer_topic_rates",
                "float32_list",
                "The viewer's engagements / impressions per topic (smoothed toward its overall "
                "rate).",
                reads_text=True,
            ),
        ),
    ),
    View(
        "author_content",
        entities=("author",),
        description="Daily snapshots of what an author writes about and how each topic engages.",
        fields=(
            Feature(
                "author_content_embedding",
                "float32_list",
                "Unit mean text embedding of the author's tweets.",
                reads_text=True,
            ),
            Feature(
                "author_topic_rates",
                "float32_list",
                "Engagements / impressions of the author's tweets per topic (smoothed).",
                reads_text=True,
            ),
        ),
    ),
)

REQUEST_SOURCES: tuple[RequestSource, ...] = (
    RequestSource(
        "request_context",
        description="Values that only the request knows.",
        fields=(
            Feature(
                "request_time_s",
                "float64",
                "When the feed is requested (online) or was served (offline), epoch s.",
            ),
            Feature(
                "viewer_follows_author",
                "int64",
                "1 if the viewer follows the author (from the candidate source).",
            ),
        ),
    ),
    # Where a reply stands in its conversation (pipelines.conversation.context, at the request or
    # impression time) and how its author relates to the root's author (the follow graph); only
    # the conversation ranker's requests carry it.
    RequestSource(
        "conversation_context",
        description="A candidate reply's place in its conversation at request time, and the follow "
        "relation of its author and the root's author.",
        fields=(
            Feature(
                "reply_depth", "int64", "Hops from the reply to the root (1 = a direct reply)."
            ),
            Feature(
                "root_author_replied", "int64", "1 if the root's author replied to this reply."
            ),
            Feature("is_root_author", "int64", "1 if the reply is by the root's author."),
            Feature("reply_descendants", "int64", "Replies below the reply, at any depth."),
            Feature("conversation_size", "int64", "Replies in the conversation."),
            Feature("conversation_age_s", "float64", "Seconds since the root was posted."),
            Feature("reply_age_s", "float64", "Seconds since the reply was posted."),
            Feature(
                "replier_follows_root_author",
                "int64",
                "1 if the reply's author follows the root's.",
            ),
            Feature(
                "root_author_follows_replier",
                "int64",
                "1 if the root's author follows the reply's.",
            ),
        ),
    ),
)

ON_DEMAND_VIEWS: tuple[OnDemandView, ...] = (
    OnDemandView(
        "request_time",
        description="Request-time values, computed by one function offline and online.",
        fields=(
            Feature(
                "in_network",
                "float64",
                "1 if the viewer follows the author.",
                dense=0,
                skeleton=True,
            ),
            Feature(
                "same_language",
                "float64",
                "1 if the tweet's language is the viewer's.",
                dense=1,
                skeleton=True,
            ),
            Feature(
                "tweet_age_hours",
                "float64",
                "Age of the tweet at request time, hours.",
                dense=2,
                log=True,
                skeleton=True,
            ),
            Feature("hour_of_day", "float64", "Hour of the request, UTC.", dense=3, skeleton=True),
            Feature(
                "day_of_week",
                "float64",
                "Day of the week of the request, Monday = 0.",
                dense=4,
                skeleton=True,
            ),
            Feature(
                "viewer_tweet_similarity",
                "float64",
                "Dot product of the viewer's and the tweet's text embeddings.",
                dense=5,
                skeleton=True,
                reads_text=True,
            ),
            Feature(
                "tweet_engagements_decayed",
                "float64",
                "The snapshot's decayed engagements carried on to the request time.",
                dense=6,
                log=True,
            ),
            Feature(
                "season",
                "float64",
                "Meteorological season, 0 winter .. 3 autumn (northern).",
                dense=7,
            ),
            Feature(
                "days_to_holiday",
                "float64",
                "Days to the next major holiday (capped at spec.HOLIDAY_HORIZON_DAYS).",
                dense=8,
            ),
            Feature(
                "va_social_similarity",
                "float64",
                "The viewer's follower vector . the author's followee vector (follow graph).",
                dense=9,
            ),
        ),
    ),
    OnDemandView(
        "request_affinity",
        description="Viewer-author-tweet affinities at request time, one function offline and "
        "online.",
        fields=(
            Feature(
                "va_hashtag_similarity",
                "float64",
                "Hashtag TF-IDF cosine of the viewer and the author.",
                dense=0,
            ),
            Feature(
                "vt_hashtag_similarity",
                "float64",
                "Hashtag TF-IDF cosine of the viewer and the tweet.",
                dense=1,
            ),
            Feature(
                "va_content_similarity",
                "float64",
                "The viewer's embedding . the author's mean tweet embedding.",
                dense=2,
                reads_text=True,
            ),
            Feature(
                "author_topic_engagement_rate",
                "float64",
                "The author's engagement rate on the tweet's topic.",
                dense=3,
                reads_text=True,
            ),
            Feature(
                "tweet_network_engagements_3d",
                "float64",
                "Engagements in 3 days by accounts the viewer follows.",
                dense=4,
                log=True,
            ),
            Feature(
                "tweet_network_favs_3d",
                "float64",
                "Favs in 3 days by accounts the viewer follows.",
                dense=5,
                log=True,
            ),
            Feature(
                "va_engaged_tweets_norm",
                "float64",
                "Tweets of the author the viewer engaged with / tweets the author posted.",
                dense=6,
            ),
            Feature(
                "viewer_topic_engagement_rate",
                "float64",
                "The viewer's engagement rate on the tweet's topic.",
                dense=7,
                reads_text=True,
            ),
            Feature(
                "viewer_topic_lift",
                "float64",
                "That rate over the viewer's overall engagement rate.",
                dense=8,
                log=True,
                reads_text=True,
            ),
        ),
    ),
    OnDemandView(
        "conversation",
        description="The conversation context as model inputs, one function offline and online.",
        fields=(
            Feature("conv_reply_depth", "float64", "Hops from the reply to the root.", dense=0),
            Feature(
                "conv_root_author_replied",
                "float64",
                "1 if the root's author replied to the reply.",
                dense=1,
            ),
            Feature(
                "conv_is_root_author", "float64", "1 if the reply is by the root's author.", dense=2
            ),
            Feature(
                "conv_reply_descendants", "float64", "Replies below the reply.", dense=3, log=True
            ),
            Feature("conv_size", "float64", "Replies in the conversation.", dense=4, log=True),
            Feature(
                "conv_age_hours", "float64", "Hours since the root was posted.", dense=5, log=True
            ),
            Feature(
                "conv_reply_age_hours",
                "float64",
                "Hours since the reply was posted.",
                dense=6,
                log=True,
            ),
            Feature(
                "conv_replier_follows_root_author",
                "float64",
                "1 if the reply's author follows the root's author.",
                dense=7,
            ),
            Feature(
                "conv_root_author_follows_replier",
                "float64",
                "1 if the root's author follows the reply's author.",
                dense=8,
            ),
            Feature(
                "conv_descendant_share",
                "float64",
                "The reply's descendants / the conversation's replies (how much of it the thread "
                "drew).",
                dense=9,
            ),
        ),
    ),
)


# The ranker's dense input: these groups in this order, each the dense fields of its views (batch
# or on-demand) sorted by their `dense` position.
DENSE_GROUPS: dict[str, tuple[str, ...]] = {
    "request": ("request_time",),
    "affinity": ("request_affinity",),
    "tweet": ("tweet_content",),
    "tweet_engagement": ("tweet_engagement",),
    "author": ("author_stats", "author_graph"),
    "viewer": ("viewer_stats",),
    "viewer_author": ("viewer_author", "viewer_author_graph"),
}

# The conversation ranker's dense input: the feed ranker's (DENSE_GROUPS), then these groups.
CONVERSATION_DENSE_GROUPS: dict[str, tuple[str, ...]] = {"conversation": ("conversation",)}

# One service per ranker version: v1 serves the skeleton feature set, v2 the full design.
SERVICES: tuple[Service, ...] = (
    Service(
        "ranker_v1",
        views=(
            "tweet_content",
            "tweet_engagement",
            "author_stats",
            "viewer_stats",
            "viewer_author",
            "tweet_embedding",
            "viewer_embedding",
            "author_graph",
            "viewer_graph",
            "viewer_author_graph",
            "request_time",
        ),
        description="The heavy ranker's features, version 1 (the skeleton feature set).",
    ),
    Service(
        "ranker_v2",
        views=(
            "tweet_content",
            "tweet_engagement",
            "author_stats",
            "viewer_stats",
            "viewer_author",
            "tweet_embedding",
            "viewer_embedding",
            "author_graph",
            "viewer_graph",
            "viewer_author_graph",
            "author_content",
            "request_time",
            "request_affinity",
        ),
        description="Every feature of the heavy ranker, version 2 (the full feature design).",
    ),
    Service(
        "conversation_v1",
        views=(
            "tweet_content",
            "tweet_engagement",
            "author_stats",
            "viewer_stats",
            "viewer_author",
            "tweet_embedding",
            "viewer_embedding",
            "author_graph",
            "viewer_graph",
            "viewer_author_graph",
            "author_content",
            "request_time",
            "request_affinity",
            "conversation",
        ),
        description="The conversation ranker's features, version 1: the heavy ranker's full "
        "design and the reply's conversation context.",
    ),
)
# The service each ranker feature set reads (spec.FEATURE_SETS names the sets).
FEATURE_SET_SERVICES: dict[str, str] = {
    "skeleton": "ranker_v1",
    "full": "ranker_v2",
    "no_text": "ranker_v2",
    "conversation": "conversation_v1",
}


def push_source(view: str) -> str:
    """The push source that feeds `view` between two daily runs."""
    pushed = next((v.push for v in VIEWS if v.name == view), None)
    if pushed is None:
        raise KeyError(f"view {view!r} has no push source")
    return pushed.name


_T = TypeVar("_T", Entity, View, RequestSource, OnDemandView, Service)


def entity(name: str) -> Entity:
    return _named(ENTITIES, name)


def view(name: str) -> View:
    return _named(VIEWS, name)


def on_demand_view(name: str) -> OnDemandView:
    return _named(ON_DEMAND_VIEWS, name)


def request_source(name: str) -> RequestSource:
    return _named(REQUEST_SOURCES, name)


def service(name: str) -> Service:
    return _named(SERVICES, name)


def _named(items: tuple[_T, ...], name: str) -> _T:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {type(items[0]).__name__} named {name!r} in the feature catalog")


def _field_holders() -> tuple[View | RequestSource | OnDemandView, ...]:
    return (*VIEWS, *REQUEST_SOURCES, *ON_DEMAND_VIEWS)


def fields_of(name: str) -> tuple[Feature, ...]:
    """The fields of a batch view, request source or on-demand view, in declared order."""
    for holder in _field_holders():
        if holder.name == name:
            return holder.fields
    raise KeyError(f"no view or request source named {name!r} in the feature catalog")


def all_fields() -> tuple[Feature, ...]:
    """Every field of the catalog: batch views, request sources, on-demand views."""
    return tuple(field for holder in _field_holders() for field in holder.fields)


def dense_group(group: str) -> tuple[Feature, ...]:
    """The dense inputs of one ranker group (:data:`DENSE_GROUPS` or
    :data:`CONVERSATION_DENSE_GROUPS`), in input order."""
    views = {**DENSE_GROUPS, **CONVERSATION_DENSE_GROUPS}[group]
    positioned = [(f.dense, f) for name in views for f in fields_of(name) if f.dense is not None]
    return tuple(f for _, f in sorted(positioned, key=lambda pair: pair[0]))


def dense_inputs() -> tuple[Feature, ...]:
    """The ranker's whole dense input, in order."""
    return tuple(field for group in DENSE_GROUPS for field in dense_group(group))


def conversation_dense_inputs() -> tuple[Feature, ...]:
    """The conversation ranker's whole dense input, in order: the feed ranker's, then the
    CONVERSATION_DENSE_GROUPS."""
    extra = tuple(field for group in CONVERSATION_DENSE_GROUPS for field in dense_group(group))
    return (*dense_inputs(), *extra)


def vector_inputs() -> tuple[Feature, ...]:
    """The vectors the ranker takes whole, in catalog order."""
    return tuple(field for field in all_fields() if field.vector)
