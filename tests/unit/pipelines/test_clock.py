"""The simulated clock: one "now" in a file every process reads; it only moves forward."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.clock import ClockError, ClockNotSetError, ClockReader, SimClock, bootstrap_end
from pipelines.config import FeedrankConfig

T0 = pd.Timestamp("2026-03-12T00:00:00Z")


def test_the_clock_starts_where_the_bootstrap_world_ends() -> None:
    cfg = FeedrankConfig.model_validate({"world": {"days": 9}})
    assert bootstrap_end(cfg) == pd.Timestamp(cfg.world.start_date, tz="UTC") + pd.Timedelta(days=9)


def test_an_unset_clock_names_the_command_that_sets_it(tmp_path: Path) -> None:
    with pytest.raises(ClockNotSetError, match="build-world"):
        SimClock(tmp_path / "clock.json").now()


def test_the_clock_reads_back_what_was_set_in_utc(tmp_path: Path) -> None:
    clock = SimClock(tmp_path / "state" / "clock.json")
    clock.set("2026-03-12T02:00:00+02:00")
    assert clock.now() == T0 and str(clock.now().tz) == "UTC"
    clock.set(pd.Timestamp("2026-03-12 06:00"))  # a naive time is UTC
    assert clock.now() == T0 + pd.Timedelta(hours=6)


def test_the_clock_moves_forward_and_never_back(tmp_path: Path) -> None:
    clock = SimClock(tmp_path / "clock.json")
    clock.set(T0)
    assert clock.advance(pd.Timedelta(minutes=15)) == T0 + pd.Timedelta(minutes=15)
    assert clock.advance_to(T0 + pd.Timedelta(minutes=15)) == T0 + pd.Timedelta(minutes=15)
    with pytest.raises(ClockError, match="cannot go back"):
        clock.advance_to(T0)
    with pytest.raises(ClockError, match="cannot go back"):
        clock.advance(pd.Timedelta(seconds=-1))
    assert clock.now() == T0 + pd.Timedelta(minutes=15)


def test_a_reader_sees_every_move_of_another_writer_at_once(tmp_path: Path) -> None:
    writer = SimClock(tmp_path / "clock.json")
    writer.set(T0)
    reader = ClockReader(SimClock(tmp_path / "clock.json"))
    seen = []
    for minutes in range(50):  # many moves within one mtime tick: the inode changes each time
        writer.advance_to(T0 + pd.Timedelta(minutes=minutes))
        seen.append(reader())
    assert seen == [T0 + pd.Timedelta(minutes=m) for m in range(50)]


def test_a_reader_falls_back_only_while_no_clock_exists(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    reader = ClockReader(SimClock(path), fallback=T0)
    assert reader() == T0
    SimClock(path).set(T0 + pd.Timedelta(days=1))
    assert reader() == T0 + pd.Timedelta(days=1)
    with pytest.raises(ClockNotSetError):
        ClockReader(SimClock(tmp_path / "other.json"))()


def test_readers_never_see_a_half_written_clock(tmp_path: Path) -> None:
    clock = SimClock(tmp_path / "clock.json")
    clock.set(T0)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                SimClock(tmp_path / "clock.json").now()
            except BaseException as exc:  # a torn read would be a JSON error here
                errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    for minutes in range(200):
        clock.advance_to(T0 + pd.Timedelta(minutes=minutes))
    done.set()
    thread.join()
    assert errors == []


def test_the_clock_command_prints_moves_and_refuses_to_go_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    runner = CliRunner()
    unset = runner.invoke(app, ["clock", "--config", "smoke"])
    assert unset.exit_code == 1 and "build-world" in unset.output
    SimClock(tmp_path / "clock.json").set(T0)
    moved = runner.invoke(app, ["clock", "--advance-hours", "2", "--config", "smoke"])
    assert moved.exit_code == 0 and moved.stdout.strip() == (T0 + pd.Timedelta(hours=2)).isoformat()
    back = runner.invoke(app, ["clock", "--set", T0.isoformat(), "--config", "smoke"])
    assert back.exit_code != 0 and "cannot go back" in back.output
    assert SimClock(tmp_path / "clock.json").now() == T0 + pd.Timedelta(hours=2)
