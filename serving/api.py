"""The HTTP surface of feedrank: a FastAPI app around a feed backend (OpenAPI docs at /docs).

Status codes: 200; 404 when an id names nothing (the detail names the id); 422 for a malformed body
(FastAPI's validation errors name the field) and for a field outside the bounds set in config (the
same shape, e.g. ``limit`` over ``serve.max_limit``).
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from serving.engine import InvalidFieldError, NotFoundError
from serving.schemas import (
    ConversationRequest,
    ConversationResponse,
    FeedRequest,
    FeedResponse,
    HealthResponse,
)


class FeedBackend(Protocol):
    """What the endpoints call; :class:`serving.engine.FeedEngine` is the real one."""

    async def feed(self, request: FeedRequest) -> FeedResponse: ...

    async def conversation(self, request: ConversationRequest) -> ConversationResponse: ...

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


def make_api(backend: FeedBackend) -> FastAPI:
    """The FastAPI app serving `backend`: POST /feed, POST /conversation, GET /healthz."""
    api = FastAPI(
        title="feedrank",
        description="Home feed and conversation ranking with online experiments.",
        version="1",
    )
    api.add_exception_handler(NotFoundError, _not_found)
    api.add_exception_handler(InvalidFieldError, _invalid_field)

    @api.post(
        "/feed", response_model=FeedResponse, responses={404: {"description": "Unknown user"}}
    )
    async def feed(request: FeedRequest) -> FeedResponse:
        """Rank the home feed of `user_id` and return the best `limit` tweets."""
        return await backend.feed(request)

    @api.post(
        "/conversation",
        response_model=ConversationResponse,
        responses={404: {"description": "Unknown viewer or tweet, or the tweet is a reply"}},
    )
    async def conversation(request: ConversationRequest) -> ConversationResponse:
        """Rank the replies of a root tweet for `viewer_id`, as a tree split into sections."""
        return await backend.conversation(request)

    @api.get("/healthz", response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        """Liveness, and the ranker version serving each experiment arm."""
        return backend.health()

    return api
