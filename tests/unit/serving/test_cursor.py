"""Page cursors: round trip, bound to their viewer, signed, and expiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.policy.cursor import CursorCodec, CursorError, load_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_cursor_round_trip() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock())
    token = codec.encode("ab" * 16, user_id=7, page=2, offset=40)
    cursor = codec.decode(token, user_id=7)
    assert (cursor.session, cursor.user_id, cursor.page, cursor.offset) == ("ab" * 16, 7, 2, 40)


def test_another_users_forged_or_garbage_cursor_is_refused() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock())
    token = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    with pytest.raises(CursorError, match="another user"):
        codec.decode(token, user_id=8)
    other_key = CursorCodec(b"x" * 32, ttl_s=60, clock=Clock())
    with pytest.raises(CursorError, match="not a cursor"):
        other_key.decode(token, user_id=7)
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (tampered, "", "%%%", "abc"):
        with pytest.raises(CursorError, match="not a cursor"):
            codec.decode(bad, user_id=7)


def test_cursor_expires() -> None:
    clock = Clock()
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=clock)
    token = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    clock.now += 61
    with pytest.raises(CursorError, match="expired"):
        codec.decode(token, user_id=7)


def test_key_is_created_once_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "serving" / "cursor.key"
    first = load_key(path)
    assert len(first) == 32 and load_key(path) == first
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_synthetic_visit_is_carried_by_its_cursor_and_a_live_one_is_unchanged() -> None:
    import base64
    import json

    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock())
    probe = codec.encode("ab" * 16, user_id=7, page=1, offset=20, synthetic=True)
    assert codec.decode(probe, user_id=7).synthetic
    live = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    assert not codec.decode(live, user_id=7).synthetic
    raw = base64.urlsafe_b64decode(live + "=" * (-len(live) % 4))[:-16]
    assert set(json.loads(raw)) == {"s", "u", "p", "o", "t"}  # the format live cursors had
