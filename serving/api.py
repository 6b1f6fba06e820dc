"""The HTTP surface of feedrank: a FastAPI app around a feed backend (OpenAPI docs at /docs).

Status codes: 200; 404 when an id names nothing (the detail names the id); 413 for a body over
``serve.max_body_bytes`` (``serve.max_tweets_body_bytes`` for POST /tweets); 422 for a malformed body (FastAPI's validation errors name the field) and
for a field outside the bounds set in config or not matching what was served (the same shape, e.g.
``limit`` over ``serve.max_limit``, a ``cursor`` of another user, a ``tweet_id`` the request did not
serve, a posted tweet naming an unknown author or parent); 503 when the event log cannot record
what would be served (nothing is served unlogged) or posted tweets cannot be taken.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.engine.errors import EventLogError, InvalidFieldError, NotFoundError
from serving.schemas import (
    ConversationRequest,
    ConversationResponse,
    EngagementRequest,
    EngagementResponse,
    FeedRequest,
    FeedResponse,
    HealthResponse,
    PostTweetsRequest,
    PostTweetsResponse,
)


class FeedBackend(Protocol):
    """What the endpoints call; :class:`serving.engine.feed.FeedEngine` is the real one."""

    async def feed(self, request: FeedRequest) -> FeedResponse: ...

    async def conversation(self, request: ConversationRequest) -> ConversationResponse: ...

    async def engagement(self, request: EngagementRequest) -> EngagementResponse: ...

    async def post_tweets(self, request: PostTweetsRequest) -> PostTweetsResponse: ...

    def health(self) -> HealthResponse: ...


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    return JSONResponse(status_code=404, content={"detail": exc.detail})


async def _invalid_field(_: Request, exc: Exception) -> JSONResponse:
    # The shape of FastAPI's own RequestValidationError body, so clients parse one format.
    assert isinstance(exc, InvalidFieldError)
    error = {
        "type": exc.error_type,
        "loc": ["body", exc.field],
        "msg": exc.message,
        "input": exc.value,
    }
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder([error])})


async def _event_log_down(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` (or its path's limit in `path_limits`) is a 413
    naming the limit, before any parsing.

    Checks the declared Content-Length and counts the bytes actually received (a chunked body
    declares none), so an oversized body is never read whole into memory.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.default_bytes = app, max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.default_bytes)
        await _Limited(self.app, limit)(scope, receive, send)


class _Limited:
    """One request under one byte limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send, int(declared))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(received)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except _TooLarge as exc:
            if not started:
                await self._reject(send, exc.size)

    async def _reject(self, send: Send, size: int) -> None:
        body = json.dumps(
            {"detail": f"request body of {size} bytes is over the limit of {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def make_api(
    backend: FeedBackend, max_body_bytes: int, tweets_body_bytes: int | None = None
) -> FastAPI:
    """The FastAPI app serving `backend`: POST /feed, POST /engagement, POST /conversation,
    POST /tweets, GET /healthz; bodies over `max_body_bytes` (``serve.max_body_bytes``), or over
    `tweets_body_bytes` for POST /tweets (default the same), are refused (413)."""
    api = FastAPI(
        title="feedrank",
        description="Home feed and conversation ranking with online experiments.",
        version="1",
    )
    api.add_exception_handler(NotFoundError, _not_found)
    api.add_exception_handler(InvalidFieldError, _invalid_field)
    api.add_exception_handler(EventLogError, _event_log_down)
    api.add_middleware(
        BodyLimit,  # type: ignore[arg-type]
        max_bytes=max_body_bytes,
        path_limits={"/tweets": tweets_body_bytes or max_body_bytes},
    )

    @api.post(
        "/feed", response_model=FeedResponse, responses={404: {"description": "Unknown user"}}
    )
    async def feed(request: FeedRequest) -> FeedResponse:
        """Rank the home feed of `user_id` and return the best `limit` tweets; pass the
        response's `next_cursor` as `cursor` for the next page."""
        return await backend.feed(request)

    @api.post(
        "/engagement",
        response_model=EngagementResponse,
        responses={422: {"description": "Malformed, or not an item served to this user"}},
    )
    async def engagement(request: EngagementRequest) -> EngagementResponse:
        """Record an action of `user_id` on `tweet_id` as served in `request_id`."""
        return await backend.engagement(request)

    @api.post(
        "/conversation",
        response_model=ConversationResponse,
        responses={404: {"description": "Unknown viewer or tweet"}},
    )
    async def conversation(request: ConversationRequest) -> ConversationResponse:
        """The page of a tweet clicked (a root, or a reply with the chain above it): the replies
        below it ranked for `viewer_id`, linearized, in product order and three health
        sections, with ad slots."""
        return await backend.conversation(request)

    @api.post(
        "/tweets",
        response_model=PostTweetsResponse,
        responses={
            422: {"description": "A field is malformed or names what the world lacks"},
            503: {"description": "The tweets could not be embedded, pushed or recorded"},
        },
    )
    async def tweets(request: PostTweetsRequest) -> PostTweetsResponse:
        """Post new tweets (at most 1000): embedded, recorded, and candidates of the next feeds
        at once. A tweet id the service already knows counts as repeated."""
        return await backend.post_tweets(request)

    @api.get("/healthz", response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        """Liveness, and the ranker version serving each experiment arm."""
        return backend.health()

    return api
