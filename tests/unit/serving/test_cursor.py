"""Page cursors: round trip, bound to their viewer, signed, and expiring; the library-backed codec
(itsdangerous) against the hand-written one."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from serving.policy.cursor import CursorCodec, CursorError, SignedCursorCodec, load_key
from tests.utils.fakes import Clock

CODECS = [CursorCodec, SignedCursorCodec]
START = 1_000_000.0


@pytest.mark.parametrize("codec_class", CODECS)
def test_cursor_round_trip(codec_class: type[CursorCodec]) -> None:
    codec = codec_class(b"k" * 32, ttl_s=60, clock=Clock(START))
    token = codec.encode("ab" * 16, user_id=7, page=2, offset=40)
    cursor = codec.decode(token, user_id=7)
    assert (cursor.session, cursor.user_id, cursor.page, cursor.offset) == ("ab" * 16, 7, 2, 40)
    assert cursor.issued == START


@pytest.mark.parametrize("codec_class", CODECS)
def test_another_users_forged_or_garbage_cursor_is_refused(codec_class: type[CursorCodec]) -> None:
    codec = codec_class(b"k" * 32, ttl_s=60, clock=Clock(START))
    token = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    with pytest.raises(CursorError, match="another user"):
        codec.decode(token, user_id=8)
    other_key = codec_class(b"x" * 32, ttl_s=60, clock=Clock(START))
    with pytest.raises(CursorError, match="not a cursor"):
        other_key.decode(token, user_id=7)
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (tampered, "", "%%%", "abc"):
        with pytest.raises(CursorError, match="not a cursor"):
            codec.decode(bad, user_id=7)


@pytest.mark.parametrize("codec_class", CODECS)
def test_cursor_expires(codec_class: type[CursorCodec]) -> None:
    clock = Clock(START)
    codec = codec_class(b"k" * 32, ttl_s=60, clock=clock)
    token = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    clock.now += 60
    assert codec.decode(token, user_id=7).offset == 20  # exactly ttl_s old: still valid
    clock.now += 1
    with pytest.raises(CursorError, match="expired"):
        codec.decode(token, user_id=7)


@pytest.mark.parametrize("codec_class", CODECS)
def test_a_short_key_is_refused(codec_class: type[CursorCodec]) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        codec_class(b"k" * 15, ttl_s=60)


def test_key_is_created_once_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "serving" / "cursor.key"
    first = load_key(path)
    assert len(first) == 32 and load_key(path) == first
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("codec_class", CODECS)
def test_a_synthetic_visit_is_carried_by_its_cursor(codec_class: type[CursorCodec]) -> None:
    codec = codec_class(b"k" * 32, ttl_s=60, clock=Clock(START))
    probe = codec.encode("ab" * 16, user_id=7, page=1, offset=20, synthetic=True)
    assert codec.decode(probe, user_id=7).synthetic
    live = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    assert not codec.decode(live, user_id=7).synthetic


def test_a_live_hand_signed_cursor_keeps_its_format() -> None:
    codec = CursorCodec(b"k" * 32, ttl_s=60, clock=Clock(START))
    live = codec.encode("ab" * 16, user_id=7, page=1, offset=20)
    raw = base64.urlsafe_b64decode(live + "=" * (-len(live) % 4))[:-16]
    assert set(json.loads(raw)) == {"s", "u", "p", "o", "t"}  # the format live cursors had


def test_a_live_cursor_carries_no_synthetic_flag() -> None:
    codec = SignedCursorCodec(b"k" * 32, ttl_s=60, clock=Clock(START))
    payload = codec._serializer.loads_unsafe(codec.encode("ab" * 16, 7, 1, 20))[1]
    assert set(payload) == {"s", "u", "p", "o"}  # the issue time is in the signature
    synthetic = codec._serializer.loads_unsafe(codec.encode("ab" * 16, 7, 1, 20, synthetic=True))
    assert set(synthetic[1]) == {"s", "u", "p", "o", "x"}
