"""Where materialization ends by default: the simulated clock's next midnight, else the lake's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.clock import SimClock
from pipelines.config import FeedrankConfig
from pipelines.features.store import materialize_end
from tests.utils.lake import write_impressions


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    config = FeedrankConfig()
    for day in ("2026-03-02", "2026-03-11"):
        write_impressions(config, day)
    return config


def test_without_a_clock_it_is_the_day_after_the_lakes_last_day_closes(
    cfg: FeedrankConfig,
) -> None:
    # The lake ends at midnight on the 12th; rows stamped at that midnight are in too.
    assert materialize_end(cfg) == datetime(2026, 3, 13, tzinfo=UTC)


def test_with_a_clock_it_is_the_midnight_after_the_clocks_day(cfg: FeedrankConfig) -> None:
    clock = SimClock.of(cfg)
    clock.set("2026-03-14 10:30")  # traffic went on past the lake's last ingested day
    assert materialize_end(cfg) == datetime(2026, 3, 15, tzinfo=UTC)
    clock.set("2026-03-15 00:00")  # the bootstrap's end: a clock at midnight
    assert materialize_end(cfg) == datetime(2026, 3, 16, tzinfo=UTC)
