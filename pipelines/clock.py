"""The simulated clock: the one notion of "now" of the world, the pipeline and the service.

The world is simulated, so wall time means nothing to it. The clock lives in one small JSON file
(``cfg.paths.clock``) that every process reads: the service stamps what it serves and records with
it, feature windows and ages are taken at it, and the event log records it. It moves only when
something says so: the bootstrap sets it to the end of the bootstrap world, simulated traffic
advances it tick by tick, and ``feedrank clock --advance-hours H`` moves it by hand. It never goes
back (a rebuild of the world starts a new clock).

A write replaces the file atomically (temp file + rename), so a reader sees the old time or the new
one. Readers in a hot path use :class:`ClockReader`, which re-reads the file only when its
modification time changed (one ``stat`` per call).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from pipelines.config import FeedrankConfig


class ClockNotSetError(RuntimeError):
    """No clock file: the world was never bootstrapped under this state root."""


class ClockError(ValueError):
    """A clock move that would break the clock's contract (going back in time)."""


def bootstrap_end(cfg: FeedrankConfig) -> pd.Timestamp:
    """Midnight after the bootstrap world's last day: where the clock starts."""
    start = datetime.combine(cfg.world.start_date, datetime.min.time(), tzinfo=UTC)
    return pd.Timestamp(start + timedelta(days=cfg.world.days))


def _utc(at: pd.Timestamp | datetime | str) -> pd.Timestamp:
    stamp = pd.Timestamp(at)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class SimClock:
    """The clock file at `path`: read, set, advance."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, cfg: FeedrankConfig) -> SimClock:
        return cls(cfg.paths.clock)

    def exists(self) -> bool:
        return self.path.exists()

    def now(self) -> pd.Timestamp:
        """The simulated now (UTC). Raises ClockNotSetError naming the command that sets it."""
        try:
            payload = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise ClockNotSetError(
                f"no simulated clock at {self.path}: bootstrap the world first "
                "(`feedrank build-world` or `make run`)"
            ) from None
        return _utc(payload["now"])

    def set(self, at: pd.Timestamp | datetime | str, *, reason: str = "set") -> pd.Timestamp:
        """Set the clock to `at`, whatever it was (the bootstrap does this)."""
        stamp = _utc(at)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"now": stamp.isoformat(), "reason": reason}, sort_keys=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            temporary.write_text(body)
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        return stamp

    def advance_to(
        self, at: pd.Timestamp | datetime | str, *, reason: str = "advance"
    ) -> pd.Timestamp:
        """Move the clock forward to `at`; moving back raises ClockError (standing still is
        allowed)."""
        stamp, current = _utc(at), self.now()
        if stamp < current:
            raise ClockError(f"the clock cannot go back from {current} to {stamp}")
        return self.set(stamp, reason=reason)

    def advance(self, by: timedelta | pd.Timedelta, *, reason: str = "advance") -> pd.Timestamp:
        if pd.Timedelta(by) < pd.Timedelta(0):
            raise ClockError(f"the clock cannot go back (asked to advance by {by})")
        return self.advance_to(self.now() + pd.Timedelta(by), reason=reason)


class ClockReader:
    """A cached reader for hot paths: one ``stat`` per call, a re-read when the file changed.

    `fallback` answers while no clock file exists (a service started on a lake built before the
    clock existed: the lake's own latest moment).
    """

    def __init__(self, clock: SimClock, fallback: pd.Timestamp | None = None) -> None:
        self.clock = clock
        self.fallback = fallback
        self._stamp: tuple[int, int, int] | None = None
        self._now: pd.Timestamp | None = None
        self._lock = threading.Lock()

    def __call__(self) -> pd.Timestamp:
        try:
            info = os.stat(self.clock.path)
        except FileNotFoundError:
            if self.fallback is None:
                return self.clock.now()  # raises ClockNotSetError
            return self.fallback
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)  # a replace makes a new inode
        with self._lock:
            if stamp != self._stamp or self._now is None:
                self._now = self.clock.now()
                self._stamp = stamp
            return self._now
