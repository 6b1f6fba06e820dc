"""Fakes of what serving calls out to: a clock, the online features, a ranker."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.inputs.spec import FeatureTable
from pipelines.schema import HEADS
from serving.engine.ports import ArmModel


class Clock:
    """A clock that moves only when a test sets `now` (seconds)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _columns(candidates: pd.DataFrame, age_h: float) -> dict[str, np.ndarray]:
    """The candidates plus one feature, as columns (what FastOnlineFeatures returns)."""
    columns = {name: candidates[name].to_numpy() for name in candidates.columns}
    return {**columns, "tweet_age_h": np.full(len(candidates), age_h)}


class FakeReplica:
    """Stands in for the in-memory feature replica: counts the syncs asked of it."""

    def __init__(self) -> None:
        self.syncs = 0

    def sync(self) -> int:
        self.syncs += 1
        return 0


class FakeFeatures:
    """Stands in for FastOnlineFeatures: echoes the candidates plus one feature column, as
    columns; can fail or be slow (the store), and answer from a 'cache' or with defaults (the
    degraded paths)."""

    def __init__(
        self,
        cfg: FeedrankConfig | None = None,
        fail: bool = False,
        delay_s: float = 0.0,
        batch_ttl_s: float | None = None,
    ) -> None:
        self.calls: list[tuple[int, pd.Timestamp]] = []
        self.fail, self.delay_s, self.cached = fail, delay_s, False
        self.replica = FakeReplica()

    @classmethod
    def for_serving(cls, cfg: FeedrankConfig) -> FakeFeatures:
        return cls(cfg)

    def hydrate(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        self.calls.append((viewer_id, now))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("online store is down")
        return _columns(candidates, 1.0)

    def hydrate_cached(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> tuple[dict[str, np.ndarray], float]:
        return _columns(candidates, np.nan), (1.0 if self.cached else 0.0)

    def hydrate_default(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        return _columns(candidates, np.nan)


def fake_predictions(features: FeatureTable) -> dict[str, np.ndarray]:
    """A deterministic 'model': p(fav) grows with tweet_id % 10, other heads are small."""
    ids = np.asarray(features["tweet_id"])
    out = {head: np.zeros(len(ids)) for head in HEADS}
    out["fav"] = (ids % 10) / 10.0 + 0.05
    return out


def fake_arm(version: str) -> ArmModel:
    async def score(features: FeatureTable) -> Mapping[str, np.ndarray]:
        return fake_predictions(features)

    return ArmModel(version=version, heads=HEADS, score=score)


class FakeRanker:
    version = "7"
    heads = HEADS

    def predict(self, features: FeatureTable) -> dict[str, np.ndarray]:
        return fake_predictions(features)
