"""What the raw lake holds, in days: its span, the days the live service served, and the days a
training run learns from and holds out.

The world grows after the bootstrap (simulated traffic adds served days), so no step may assume
the bootstrap's ``cfg.world.days``: the days are those of the lake's `impressions` partitions.
Between the lake's first and last day every calendar day counts (a day without traffic is still a
day of feature snapshots and of the training window).

The split (:func:`training_days`): the newest ``cfg.train.window_days`` calendar days of the lake
form the window. Once the window holds days the live service served (impressions ingested from
its event log), the newest ``cfg.train.served_holdout_days`` of them are held out for evaluation;
before that, the window's last ``cfg.ranker.test_days`` days. The days of the window before the
first held-out day are the training days, so no training row is later than a held-out one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pyarrow.parquet as pq

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.ingest.served import IMPRESSION_ID_OFFSET


class EmptyLakeError(FileNotFoundError):
    """The lake holds no impressions: the world was never built under this state root."""


@dataclass(frozen=True)
class LakeSpan:
    """The calendar days from the lake's first impressions day to its last, both included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> pd.Timestamp:
        """Midnight UTC that opens the first day."""
        return pd.Timestamp(self.first, tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        """Midnight UTC after the last day (exclusive end of the lake's impressions)."""
        return pd.Timestamp(self.last + timedelta(days=1), tz="UTC")

    def midnights(self) -> list[pd.Timestamp]:
        """``days + 1`` midnights: the start of every day and the end of the last one."""
        return [self.start + timedelta(days=day) for day in range(self.days + 1)]


@dataclass(frozen=True)
class TrainingDays:
    """The days a training run learns from and the days it holds out (ISO dates, ascending).

    `served_holdout`: the held-out days are days the live service served (else the window's
    last ``ranker.test_days`` days, whatever served them).
    """

    train: tuple[str, ...]
    holdout: tuple[str, ...]
    served_holdout: bool

    @property
    def boundary(self) -> pd.Timestamp:
        """Midnight UTC opening the first held-out day: rows at or after it are held out."""
        return pd.Timestamp(self.holdout[0], tz="UTC")

    @property
    def window_start(self) -> pd.Timestamp:
        """Midnight UTC opening the first training day: older rows are out of the window."""
        return pd.Timestamp(self.train[0], tz="UTC")


def lake_days(cfg: FeedrankConfig) -> list[str]:
    """The days (``YYYY-MM-DD``, ascending) of the lake's impressions partitions that hold a file."""
    raw = cfg.paths.raw
    return [
        day
        for day in schema.list_partitions(raw, "impressions")
        if (schema.partition_dir(raw, "impressions", day) / schema.PART_FILE).exists()
    ]


def lake_span(cfg: FeedrankConfig) -> LakeSpan:
    """The lake's first and last impressions day. Raises EmptyLakeError naming the step to run."""
    days = lake_days(cfg)
    if not days:
        raise EmptyLakeError(
            f"the lake at {cfg.paths.raw} holds no impressions partitions: run `feedrank "
            f"build-world --config {cfg.name}` first"
        )
    return LakeSpan(date.fromisoformat(days[0]), date.fromisoformat(days[-1]))


def served_days(cfg: FeedrankConfig) -> list[str]:
    """The lake's days (ascending) whose impressions include rows the live service served."""
    raw = cfg.paths.raw
    served = []
    for day in lake_days(cfg):
        ids = pq.read_table(
            schema.partition_dir(raw, "impressions", day) / schema.PART_FILE,
            columns=["impression_id"],
        ).column(0)
        if len(ids) and ids.to_numpy().max() >= IMPRESSION_ID_OFFSET:
            served.append(day)
    return served


def training_days(cfg: FeedrankConfig) -> TrainingDays:
    """The training and held-out days of the lake as it is now (module docstring).

    Raises ValueError when the window leaves no training day before the held-out ones (a lake
    shorter than the held-out days, or served days spanning the whole window).
    """
    span = lake_span(cfg)
    window_first = max(span.first, span.last - timedelta(days=cfg.train.window_days - 1))
    window = [
        (window_first + timedelta(days=d)).isoformat()
        for d in range((span.last - window_first).days + 1)
    ]
    served = [day for day in served_days(cfg) if day >= window[0]]
    if served:
        holdout = tuple(served[-cfg.train.served_holdout_days :])
    else:
        holdout = tuple(window[-cfg.ranker.test_days :])
    train = tuple(day for day in window if day < holdout[0])
    if not train:
        raise ValueError(
            f"no training day before the held-out days {list(holdout)} in the window "
            f"{window[0]}..{window[-1]} (train.window_days={cfg.train.window_days}): widen "
            "the window or hold out fewer days"
        )
    return TrainingDays(train=train, holdout=holdout, served_holdout=bool(served))
