"""Request and response bodies of the feedrank HTTP API (pydantic, shown in the OpenAPI docs).

Requests forbid unknown fields, so a typo (``usr_id``) is a 422 naming the field instead of a
silent default. The upper bound of ``FeedRequest.limit`` lives in config (``serve.max_limit``) and
is checked by the endpoint, which answers the same 422 shape naming ``limit``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Arm = Literal["champion", "challenger"]
Source = Literal["in_network", "out_of_network", "out_of_network_embedding"]
SectionName = Literal["main", "low_quality"]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class FeedRequest(RequestModel):
    user_id: int = Field(gt=0, description="The viewer whose home feed is ranked.")
    limit: int = Field(
        20, ge=1, description="Items in the page; at most `serve.max_limit` of the config."
    )


class FeedItem(BaseModel):
    tweet_id: int
    author_id: int
    score: float = Field(description="Blended score: sum of blend weight * head probability.")
    predictions: dict[str, float] = Field(description="Probability per ranker head.")
    source: Source = Field(description="The candidate source that proposed the tweet.")
    in_network: bool = Field(description="The viewer follows the author.")


class FeedResponse(BaseModel):
    items: list[FeedItem] = Field(description="The page, best first.")
    model_version: str = Field(description="Registry version of the ranker that scored it.")
    arm: Arm = Field(description="Experiment arm of the viewer.")
    request_id: str = Field(description="Unique id of this request, for exposure logs.")
    candidates_scored: int = Field(description="Candidates that went through the ranker.")


class ConversationRequest(RequestModel):
    tweet_id: int = Field(gt=0, description="Root tweet of the conversation.")
    viewer_id: int = Field(gt=0, description="The viewer for whom replies are ranked.")


class ReplyNode(BaseModel):
    tweet_id: int
    author_id: int
    score: float = Field(description="Blended score of the reply for the viewer.")
    toxicity: float = Field(description="Health label of the reply in [0, 1].")
    predictions: dict[str, float] = Field(description="Probability per ranker head.")
    replies: list[ReplyNode] = Field(
        default_factory=list, description="Direct replies to this reply, best first."
    )


class ConversationRoot(BaseModel):
    tweet_id: int
    author_id: int
    text: str


class ConversationSection(BaseModel):
    name: SectionName = Field(description="`main`, or `low_quality` for toxic subtrees.")
    replies: list[ReplyNode] = Field(description="Top-level reply subtrees, best first.")


class ConversationResponse(BaseModel):
    root: ConversationRoot
    sections: list[ConversationSection] = Field(description="`main` then `low_quality`.")
    model_version: str
    arm: Arm


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_versions: dict[str, str] = Field(description="Ranker version per live experiment arm.")
    challenger_share: float = Field(description="Share of users routed to the challenger.")
