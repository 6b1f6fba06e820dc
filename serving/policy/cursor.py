"""Page cursors of the home feed: opaque, signed, bound to one viewer and one feed visit.

A cursor carries the visit's session id (the event log knows every tweet served in it, so the next
page never repeats one), the page number, the position where the next page starts and whether the
visit is synthetic. itsdangerous signs it with its issue time under a key kept next to the event
log, so every replica on the machine accepts the cursors of the others, a client cannot forge one
for another viewer, and an old one expires.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

KEY_BYTES = 32


class CursorError(ValueError):
    """A cursor that is malformed, forged, expired or another viewer's; the message says which."""


@dataclass(frozen=True)
class Cursor:
    session: str  # hex id of the feed visit (all its pages)
    user_id: int
    page: int  # the page this cursor leads to (1 = the second page)
    offset: int  # position of the next page's first item in the visit
    issued: float  # unix seconds
    synthetic: bool = False  # the visit is load-test / probe traffic: its pages are too


def load_key(path: Path) -> bytes:
    """The signing key at `path`, created (readable by the owner only) on first use."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(key)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic create-if-absent: two replicas starting agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _signer_on(clock: Callable[[], float]) -> type[TimestampSigner]:
    """itsdangerous' timestamp signer reading `clock` (unix seconds) instead of the wall clock."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


class CursorCodec:
    """Encodes and checks cursors with `key` through itsdangerous (a JSON payload, its issue time
    and an HMAC signature); `ttl_s` bounds their age."""

    SALT = "feedrank.cursor"

    def __init__(self, key: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self.ttl_s = ttl_s
        self._serializer = URLSafeTimedSerializer(key, salt=self.SALT, signer=_signer_on(clock))

    def encode(
        self, session: str, user_id: int, page: int, offset: int, synthetic: bool = False
    ) -> str:
        body: dict[str, Any] = {"s": session, "u": int(user_id), "p": int(page), "o": int(offset)}
        if synthetic:  # only then, so a live visit's cursor carries no flag
            body["x"] = 1
        return self._serializer.dumps(body)

    def decode(self, token: str, user_id: int) -> Cursor:
        """The cursor in `token` for `user_id`; CursorError naming what is wrong otherwise."""
        try:
            body, issued = self._serializer.loads(token, max_age=self.ttl_s, return_timestamp=True)
        except SignatureExpired as exc:
            raise CursorError(
                f"cursor expired (older than {self.ttl_s:.0f} s); start a new feed"
            ) from exc
        except BadData as exc:
            raise CursorError("cursor is not a cursor this service issued") from exc
        cursor = Cursor(
            session=str(body["s"]),
            user_id=int(body["u"]),
            page=int(body["p"]),
            offset=int(body["o"]),
            issued=issued.timestamp(),
            synthetic=bool(body.get("x", 0)),
        )
        if cursor.user_id != int(user_id):
            raise CursorError(f"cursor belongs to another user than {user_id}")
        return cursor
