"""Request and response bodies of the feedrank HTTP API (pydantic, shown in the OpenAPI docs).

Requests forbid unknown fields, so a typo (``usr_id``) is a 422 naming the field instead of a
silent default. The upper bound of ``FeedRequest.limit`` lives in config (``serve.max_limit``) and
is checked by the endpoint, which answers the same 422 shape naming ``limit``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from pipelines.event_log import RECORDABLE_ACTIONS

Arm = Literal["champion", "challenger"]
# The candidate sources of the home feed (serving.candidates.sources), in priority order.
Source = Literal[
    "in_network_recent",
    "in_network_backlog",
    "resurfaced",
    "out_of_network_embedding",
    "out_of_network_trending",
]
# What a feed answered with when part of its pipeline failed or ran out of time.
FeatureMode = Literal["online", "cached", "default"]
RankingMode = Literal["model", "reverse_chronological", "policy"]
# How a feed page is ordered: the ranker (the product), or a reference policy over the same
# candidates after the same filters (newest first, shuffled, or by the world's true value).
Policy = Literal["model", "chronological", "random", "oracle"]


def _recordable(action: str) -> str:
    if action not in RECORDABLE_ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {list(RECORDABLE_ACTIONS)}")
    return action


# What a client may record on a served item (POST /engagement): the event log's vocabulary,
# checked on input and listed as an enum in the OpenAPI schema. The viewer's own actions, and the
# author's side of a reply (`reply_engaged_by_author`), which the log accepts only on top of the
# viewer's recorded reply.
Action = Annotated[
    str,
    AfterValidator(_recordable),
    WithJsonSchema({"type": "string", "enum": list(RECORDABLE_ACTIONS)}),
]
SectionName = Literal["main", "low_quality", "abusive"]
# The candidate sources of a conversation page (serving.conversation.sources).
ReplySource = Literal["recent_replies", "top_replies", "ancestors"]
ConversationRanking = Literal["model", "heuristic"]
# Why a conversation answer degraded (serving.conversation.degradation).
DegradedReason = Literal["load", "recent_overrun", "ranker_failed", "ranker_timeout"]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class FeedRequest(RequestModel):
    user_id: int = Field(gt=0, description="The viewer whose home feed is ranked.")
    limit: int = Field(
        20, ge=1, description="Items in the page; at most `serve.max_limit` of the config."
    )
    cursor: str | None = Field(
        None,
        max_length=512,
        description="`next_cursor` of the previous page: the next page, without repeats.",
    )
    synthetic: bool = Field(
        False,
        description="Load-test or probe traffic: ranked, served and logged as usual, but never "
        "exported to the lake as training impressions (no viewer saw the page). The visit's "
        "next pages (by `next_cursor`) are synthetic too.",
    )
    policy: Policy = Field(
        "model",
        description="How the page is ordered: model (the ranker of the viewer's arm), "
        "chronological (newest first), random (shuffled, seeded by the request), or oracle (by "
        "the blend of the simulated world's true probabilities; 422 where the service has no "
        "world truth).",
    )


class FeedItem(BaseModel):
    tweet_id: int
    author_id: int
    position: int = Field(description="0-based position in the whole feed visit (all pages).")
    score: float = Field(
        description="Final score: the blend of head predictions after the heuristics."
    )
    predictions: dict[str, float] = Field(
        description="Prediction per ranker head (probabilities; dwell_time in log seconds)."
    )
    source: Source = Field(description="The candidate source that proposed the tweet.")
    in_network: bool = Field(description="The viewer follows the author.")


class FeedResponse(BaseModel):
    items: list[FeedItem] = Field(description="The page, best first.")
    model_version: str = Field(
        description="Registry version of the ranker that scored it, or `policy:<name>` for a "
        "page ordered by another policy."
    )
    policy: Policy = Field("model", description="The policy that ordered the page.")
    arm: Arm = Field(description="Experiment arm of the viewer.")
    request_id: str = Field(description="Unique id of this page, for exposure logs and feedback.")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null when there is none."
    )
    candidates_scored: int = Field(description="Candidates that went through the ranker.")
    candidate_sources: dict[str, int] = Field(
        default_factory=dict, description="Candidates per source, before the filters."
    )
    filtered: dict[str, int] = Field(
        default_factory=dict, description="Candidates removed per filter."
    )
    features: FeatureMode = Field(
        "online",
        description="online: read from the feature store; cached: the store was slow or down and "
        "cached rows were used; default: neither answered, model defaults were used.",
    )
    ranking: RankingMode = Field(
        "model",
        description="model: ranked by the heavy ranker; reverse_chronological: the ranker failed "
        "or ran out of time and the page is newest first; policy: ordered by the request's "
        "`policy`.",
    )
    degraded: bool = Field(False, description="True when features or ranking fell back.")
    timings_ms: dict[str, float] = Field(
        default_factory=dict,
        description="Where this request's time went inside the service, in ms: candidates "
        "(sources and filters), features, score (the ranker, its hop included), rank (blend and "
        "heuristics), log and total. HTTP and the Serve proxy come on top of total.",
    )


class EngagementRequest(RequestModel):
    request_id: str = Field(
        pattern="^[0-9a-f]{32}$", description="`request_id` of the page that served it."
    )
    user_id: int = Field(gt=0, description="The viewer who acted (the page's viewer).")
    tweet_id: int = Field(gt=0, description="The served tweet acted on.")
    action: Action = Field(description="What the viewer did.")
    dwell_ms: int | None = Field(
        None, ge=0, le=3_600_000, description="Time on the item (required for `dwell`)."
    )


class EngagementResponse(BaseModel):
    recorded: bool = Field(description="True when new; false for a repeat of a recorded action.")
    request_id: str
    tweet_id: int
    action: Action


class ConversationRequest(RequestModel):
    tweet_id: int = Field(
        gt=0,
        description="The tweet clicked: a conversation root, or a reply (the page then shows the "
        "chain above it and the replies below it).",
    )
    viewer_id: int = Field(gt=0, description="The viewer for whom replies are ranked.")
    synthetic: bool = Field(
        False,
        description="A load test or probe: the replies shown are logged as synthetic, so they "
        "never become training impressions, and they count in no live engagement counts.",
    )


class ReplyNode(BaseModel):
    tweet_id: int
    author_id: int
    position: int = Field(
        description="0-based position on the page in reading order (sections in order, each "
        "thread depth first); the position its served row is logged with."
    )
    source: ReplySource = Field(description="The candidate source that fetched the reply.")
    score: float = Field(description="The reply's score for the viewer (the ranker's blend).")
    thread_score: float = Field(
        description="Average score of the reply's thread down to `conversation.thread_depth` "
        "levels: what orders it among its siblings."
    )
    toxicity: float = Field(description="Health label of the reply in [0, 1].")
    predictions: dict[str, float] = Field(
        description="Prediction per ranker head (empty when the heuristic order served)."
    )
    in_network: bool = Field(description="The viewer follows the author.")
    verified: bool = Field(description="The author is a verified account.")
    more_replies: int = Field(
        0,
        description="The 'more replies' marker: replies below this one not shown (collapsed "
        "branches), 0 when all are shown.",
    )
    replies: list[ReplyNode] = Field(
        default_factory=list, description="The shown replies to this reply, best thread first."
    )


class ConversationTweet(BaseModel):
    tweet_id: int
    author_id: int
    text: str


class ConversationSection(BaseModel):
    name: SectionName = Field(
        description="`main`, `low_quality` or `abusive`: the health section of its threads "
        "(decided by each thread's top reply; a thread moves whole)."
    )
    replies: list[ReplyNode] = Field(
        description="Top-level threads in product order: replies by accounts the viewer follows "
        "that the root author replied to, then verified accounts, then everyone else, "
        "each group by thread score."
    )
    more_replies: int = Field(
        0,
        description="The 'more replies' marker of the section: replies of its threads past "
        "`conversation.max_threads`, not shown.",
    )


class AdSlot(BaseModel):
    is_ad: Literal[True] = Field(True, description="Always true: this is an ad, not a reply.")
    ad_id: int = Field(description="The ad in the simulated ads inventory.")
    advertiser_id: int
    text: str
    section: SectionName = Field("main", description="Ads are placed in `main` only.")
    after_thread: int = Field(
        description="The slot follows this many top-level threads of its section (>= 1)."
    )


class ConversationResponse(BaseModel):
    request_id: str = Field(
        description="Unique id of this answer: every reply shown in `sections` is logged as "
        "served under it (surface `conversation`, with its position and section), so POST "
        "/engagement takes it. Ancestors and ads are not logged."
    )
    root: ConversationTweet = Field(description="The conversation's root tweet.")
    focal_tweet_id: int = Field(
        description="The tweet clicked: the root, or a reply whose replies the sections hold."
    )
    ancestors: list[ConversationTweet] = Field(
        default_factory=list,
        description="The chain above the focal tweet, root first, ending with its parent; "
        "empty on a root's page.",
    )
    sections: list[ConversationSection] = Field(
        description="`main`, `low_quality`, `abusive`, always all three, in this order."
    )
    ads: list[AdSlot] = Field(
        default_factory=list,
        description="Ad slots of the page (one per `conversation.replies_per_ad` replies "
        "shown, at most `conversation.max_ads`), from the simulated ads inventory.",
    )
    sources: dict[str, int] = Field(
        default_factory=dict,
        description="Candidates per source: recent_replies (the recent-replies cache), "
        "top_replies (older replies of large conversations by the search-model score), "
        "ancestors (the ancestor store's tree repair).",
    )
    candidates_scored: int = Field(0, description="Candidates that went through the scorer.")
    ranking: ConversationRanking = Field(
        "model",
        description="model: scored by the reply ranker; heuristic: it failed or ran out of "
        "time, and replies with more answers and engagements, then newer, came first.",
    )
    degraded: bool = Field(False, description="True when fewer candidates or the heuristic served.")
    degraded_reasons: list[DegradedReason] = Field(
        default_factory=list,
        description="Why: load (too many requests in flight: fewer candidates), recent_overrun "
        "(a recent request ran past the deadline: fewer candidates), ranker_failed, "
        "ranker_timeout (the heuristic order served).",
    )
    model_version: str = Field(
        description="Version of the reply ranker that scored, `policy:heuristic` when the "
        "heuristic order served, `none` when there was nothing to score."
    )
    arm: Arm
    timings_ms: dict[str, float] = Field(
        default_factory=dict,
        description="Where this request's time went inside the service, in ms: candidates, "
        "score, page (tree, linearization, order, sections, ads), log and total.",
    )


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_versions: dict[str, str] = Field(description="Ranker version per live experiment arm.")
    reply_model_versions: dict[str, str] = Field(
        default_factory=dict,
        description="Version of the model that ranks conversation replies per live arm: the "
        "conversation ranker's, or the arm's feed ranker's while none is registered.",
    )
    challenger_share: float = Field(description="Share of users routed to the challenger.")


class PostedTweet(RequestModel):
    tweet_id: int = Field(gt=0, description="The new tweet's id (a repeat is not an error).")
    author_id: int = Field(gt=0, description="Its author, a known user.")
    created_at: AwareDatetime = Field(
        description="When it was posted (ISO 8601 with a zone), at or before the service's clock."
    )
    text: str = Field(min_length=1, max_length=2000)
    language: str = Field(min_length=1, max_length=16)
    has_image: bool
    has_video: bool
    has_url: bool
    hashtags: list[Annotated[str, Field(min_length=1, max_length=140)]] = Field(
        default_factory=list, max_length=50
    )
    conversation_id: int = Field(
        gt=0, description="The conversation's root tweet (the tweet itself for a root)."
    )
    in_reply_to_tweet_id: int | None = Field(
        None, gt=0, description="The parent tweet of a reply; null for a root."
    )
    toxicity: float = Field(ge=0.0, le=1.0, description="The tweet's health label.")


class PostTweetsRequest(RequestModel):
    tweets: list[PostedTweet] = Field(
        min_length=1, max_length=1000, description="At most 1000 tweets per call."
    )


class PostTweetsResponse(BaseModel):
    posted: int = Field(description="Tweets new to the service.")
    repeated: int = Field(description="Tweets it already knew (a retry, or a lake tweet).")
