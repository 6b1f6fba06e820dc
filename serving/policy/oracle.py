"""The oracle policy's scorer: the simulated world's true engagement probabilities.

Only a simulated world has a truth, so only there can a feed be ordered by it: the `oracle` feed
policy is the ceiling the ranker is measured against (`benchmarks/online_policy.py`). It reads the
world state that `feedrank traffic` saves (the day's tweets from the start of the day, what users
did at its end) and loads it again whenever the file changes, so it knows every tweet the
simulated authors have posted. It never ranks a page of the `model` policy.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.schema import BINARY_ACTIONS
from pipelines.world.simulate import Simulation
from pipelines.world.state import STATE_FILE, TWEET_ID_BASE
from pipelines.world.truth import true_engagement

log = logging.getLogger(__name__)


class WorldOracle:
    """``(viewer id, candidates with tweet_id [N], now) -> {action: [N] true probability}``."""

    def __init__(self, cfg: FeedrankConfig) -> None:
        self.cfg = cfg
        self.path = cfg.paths.world_state / STATE_FILE
        self._sim: Simulation | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def if_simulated(cls, cfg: FeedrankConfig) -> WorldOracle | None:
        """The oracle of `cfg`'s world, or None where no simulated world state exists."""
        return cls(cfg) if (cfg.paths.world_state / STATE_FILE).exists() else None

    def _current(self) -> Simulation:
        """The world as last saved (loaded again when the state file was replaced)."""
        info = os.stat(self.path)
        stamp = (info.st_ino, info.st_mtime_ns)
        with self._lock:
            if self._sim is None or stamp != self._stamp:
                started = time.perf_counter()
                self._sim = Simulation.load(self.cfg)
                self._stamp = stamp
                log.info(
                    "oracle: world state loaded in %.2f s (next day %d)",
                    time.perf_counter() - started,
                    self._sim.next_day,
                )
            return self._sim

    def __call__(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        sim = self._current()
        tweet_ids = candidates["tweet_id"].to_numpy(np.int64)
        # A tweet posted to the service by someone other than the world has no truth: worth 0.
        known = (tweet_ids >= TWEET_ID_BASE) & (tweet_ids - TWEET_ID_BASE < len(sim.world.tweets))
        n = int(known.sum())
        truth = true_engagement(
            sim,
            np.full(n, int(viewer_id), dtype=np.int64),
            tweet_ids[known],
            pd.DatetimeIndex([pd.Timestamp(now)] * n),
        )
        out: dict[str, np.ndarray] = {}
        for action in BINARY_ACTIONS:
            out[action] = np.zeros(len(tweet_ids))
            out[action][known] = truth.probability[action]
        return out
