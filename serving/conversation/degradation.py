"""Graceful degradation of the conversation path.

Load: a replica counts its conversation requests in flight; over ``conversation.max_in_flight``,
or for ``conversation.overrun_cooldown_s`` after a request ran past ``serve.request_deadline_ms``,
a request fetches (and so scores) only ``degraded_share`` of the candidates, and says why. Load
is measured in wall-clock time (the machine's, not the simulated clock).

A ranker that fails or runs out of the deadline gives way to the heuristic order: replies with
more answers and engagements first, newer first among equals::

    heuristic = log(1 + replies below it + engagements so far) + 2 ** (-age_h / half_life_h)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from pipelines.config import ConversationConfig
from serving.conversation.sources import NS_PER_HOUR, Caps
from serving.schemas import DegradedReason


class LoadShedder:
    """Counts the conversation requests in flight on one replica and remembers the last one that
    ran past the deadline; decides how many candidates a new request fetches. Used from one
    event loop (no lock)."""

    def __init__(
        self,
        cfg: ConversationConfig,
        deadline_ms: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.deadline_s = deadline_ms / 1000.0
        self.clock = clock
        self.in_flight = 0
        self._last_overrun = -math.inf

    def enter(self) -> list[DegradedReason]:
        """A request starts: the reasons it must fetch fewer candidates (empty: none)."""
        self.in_flight += 1
        reasons: list[DegradedReason] = []
        if self.in_flight > self.cfg.max_in_flight:
            reasons.append("load")
        if self.clock() - self._last_overrun < self.cfg.overrun_cooldown_s:
            reasons.append("recent_overrun")
        return reasons

    def leave(self, elapsed_s: float) -> None:
        """A request ended after `elapsed_s` seconds."""
        self.in_flight -= 1
        if elapsed_s > self.deadline_s:
            self._last_overrun = self.clock()

    def caps(self, reasons: list[DegradedReason]) -> Caps:
        """Candidates a request may fetch per source: all the config allows, or the degraded
        share of it (at least one) when there is a reason."""
        cfg = self.cfg
        if not reasons:
            return Caps(cfg.recent_replies, cfg.top_replies)
        share = cfg.degraded_share
        return Caps(
            max(1, int(cfg.recent_replies * share)),
            int(cfg.top_replies * share),
        )


def heuristic_scores(
    descendants: np.ndarray,
    engagements: np.ndarray,
    created_ns: np.ndarray,
    now_ns: int,
    half_life_hours: float,
) -> np.ndarray:
    """The heuristic score [N] of N replies (see the module docstring)."""
    age_h = np.maximum(now_ns - np.asarray(created_ns, dtype=np.int64), 0) / NS_PER_HOUR
    return np.log1p(descendants + engagements) + np.exp2(-age_h / half_life_hours)
