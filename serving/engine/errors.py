"""The errors of the request paths, each mapped to one HTTP status by `serving.api`."""

from __future__ import annotations

from typing import Any


class NotFoundError(LookupError):
    """An id in the request names nothing in the world (HTTP 404)."""

    def __init__(self, kind: str, ident: int, reason: str = "not found") -> None:
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} {ident} {reason}")

    @property
    def detail(self) -> str:
        return str(self.args[0])


class EventLogError(RuntimeError):
    """The event log could not record what was served (HTTP 503): nothing is served unlogged."""


class InvalidFieldError(ValueError):
    """A request field is well-typed but out of the bounds that config sets (HTTP 422)."""

    def __init__(self, field: str, message: str, value: Any, error_type: str) -> None:
        self.field, self.message, self.value, self.error_type = field, message, value, error_type
        super().__init__(f"{field}: {message}")
