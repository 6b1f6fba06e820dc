"""Page cursors: round trip, bound to their viewer, signed, and expiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.policy.cursor import CursorCodec, CursorError, load_key
from tests.utils.fakes import Clock

START = 1_000_000.0


def test_cursor_round_trip() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock(START))
    token = codec.encode("ab" * 16, user_id=7, page=2, offset=40)
    cursor = codec.decode(token, user_id=7)
    assert (cursor.session, cursor.user_id, cursor.page, cursor.offset) == ("ab" * 16, 7, 2, 40)
    assert cursor.issued == START


def test_another_users_forged_or_garbage_cursor_is_refused() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock(START))
    token = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    with pytest.raises(CursorError, match="another user"):
        codec.decode(token, user_id=8)
    other_key = CursorCodec(b"x" * 32, ttl_s=60, clock=Clock(START))
    with pytest.raises(CursorError, match="not a cursor"):
        other_key.decode(token, user_id=7)
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (tampered, "", "%%%", "abc"):
        with pytest.raises(CursorError, match="not a cursor"):
            codec.decode(bad, user_id=7)


def test_cursor_expires() -> None:
    clock = Clock(START)
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=clock)
    token = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    clock.now += 60
    assert codec.decode(token, user_id=7).offset == 20  # exactly ttl_s old: still valid
    clock.now += 1
    with pytest.raises(CursorError, match="expired"):
        codec.decode(token, user_id=7)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CursorCodec(b"k" * 15, ttl_s=60)


def test_key_is_created_once_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "serving" / "cursor.key"
    first = load_key(path)
    assert len(first) == 32 and load_key(path) == first
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_synthetic_visit_is_carried_by_its_cursor() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock(START))
    probe = codec.encode("ab" * 16, user_id=7, page=1, offset=20, synthetic=True)
    assert codec.decode(probe, user_id=7).synthetic
    live = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    assert not codec.decode(live, user_id=7).synthetic


def test_a_live_cursor_carries_no_synthetic_flag() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock(START))
    payload = codec._serializer.loads_unsafe(codec.encode("ab" * 16, 7, 1, 20))[1]
    assert set(payload) == {"s", "u", "p", "o"}  # the issue time is in the signature
    synthetic = codec._serializer.loads_unsafe(codec.encode("ab" * 16, 7, 1, 20, synthetic=True))
    assert set(synthetic[1]) == {"s", "u", "p", "o", "x"}
