"""The lake's days: its span from the impressions partitions, the days served live, and the
sliding window's training and held-out days (real parquet partitions in a temporary lake)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
import pytest

from pipelines.config import FeedrankConfig
from pipelines.handoffs import RankerTraining
from pipelines.lake import (
    EmptyLakeError,
    LakeSpan,
    lake_days,
    lake_span,
    served_days,
    training_days,
)
from tests.utils.lake import write_impressions


def lake(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    world: list[str],
    served: list[str],
    **train: Any,
) -> FeedrankConfig:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    cfg = FeedrankConfig.model_validate({"train": train, "ranker": {"test_days": 2}})
    for day in world:
        write_impressions(cfg, day)
    for day in served:
        write_impressions(cfg, day, served=True)
    return cfg


def days(first: int, last: int) -> list[str]:
    """March 2026 days `first`..`last` as ISO dates."""
    return [date(2026, 3, d).isoformat() for d in range(first, last + 1)]


def test_the_span_runs_from_the_first_impressions_day_to_the_last_counting_a_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=days(2, 8), served=["2026-03-10"])
    span = lake_span(cfg)

    assert lake_days(cfg) == [*days(2, 8), "2026-03-10"]
    assert span == LakeSpan(date(2026, 3, 2), date(2026, 3, 10))
    assert span.days == 9  # the 9th, without traffic, is still a day
    assert span.start == pd.Timestamp("2026-03-02", tz="UTC")
    assert span.end == pd.Timestamp("2026-03-11", tz="UTC")
    assert span.midnights()[0] == span.start and span.midnights()[-1] == span.end
    assert len(span.midnights()) == span.days + 1
    assert served_days(cfg) == ["2026-03-10"]


def test_an_empty_lake_names_the_step_that_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=[], served=[])
    with pytest.raises(EmptyLakeError, match="build-world"):
        lake_span(cfg)


def test_before_any_served_day_the_windows_last_test_days_are_held_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=days(2, 11), served=[])
    split = training_days(cfg)

    assert split.holdout == tuple(days(10, 11)) and not split.served_holdout
    assert split.train == tuple(days(2, 9))
    assert split.boundary == pd.Timestamp("2026-03-10", tz="UTC")


def test_the_newest_served_days_are_held_out_and_training_stops_before_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=days(2, 11), served=days(12, 14))
    split = training_days(cfg)

    assert split.served_holdout and split.holdout == ("2026-03-14",)
    # The earlier served days are trained on, beside the world's.
    assert split.train == tuple(days(2, 13))
    assert split.boundary == pd.Timestamp("2026-03-14", tz="UTC")


def test_more_held_out_served_days_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=days(2, 11), served=days(12, 14), served_holdout_days=2)
    split = training_days(cfg)
    assert split.holdout == tuple(days(13, 14)) and split.train[-1] == "2026-03-12"


def test_the_window_keeps_only_the_newest_days_of_the_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=days(2, 11), served=days(12, 13), window_days=5)
    split = training_days(cfg)

    assert split.train == tuple(days(9, 12)) and split.holdout == ("2026-03-13",)
    assert split.window_start == pd.Timestamp("2026-03-09", tz="UTC")


def test_a_lake_with_no_day_before_the_held_out_ones_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = lake(tmp_path, monkeypatch, world=[], served=["2026-03-12"])
    with pytest.raises(ValueError, match="no training day before the held-out days"):
        training_days(cfg)


def test_a_window_too_short_for_its_held_out_days_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="train.window_days"):
        FeedrankConfig.model_validate(
            {"train": {"window_days": 4, "served_holdout_days": 3}, "ranker": {"test_days": 2}}
        )


def test_the_ranker_hand_off_gives_its_days_as_mlflow_params() -> None:
    training = RankerTraining(
        seconds=1.0,
        train_rows=10,
        test_rows=2,
        final={},
        history=[],
        bundle_dir="/nowhere",
        train_days=days(2, 4),
        holdout_days=["2026-03-05"],
        served_holdout=True,
    )
    assert training.days_params() == {
        "train.days": "2026-03-02,2026-03-03,2026-03-04",
        "holdout.days": "2026-03-05",
        "holdout.served": "true",
    }
