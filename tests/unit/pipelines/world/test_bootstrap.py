"""The bootstrap runs once: a second build keeps the lake, a rebuild archives the old world's
serving state."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.clock import SimClock, bootstrap_end
from pipelines.config import FeedrankConfig
from pipelines.world.simulate import Simulation, build_world
from pipelines.world.state import WorldStateMismatchError


def lake_stamp(cfg: FeedrankConfig) -> dict[str, int]:
    """Modification time (ns) of every file of the lake."""
    return {str(p): p.stat().st_mtime_ns for p in cfg.paths.lake.rglob("*") if p.is_file()}


def test_the_bootstrap_persists_the_world_and_sets_the_clock_to_its_end(
    tiny_cfg: FeedrankConfig,
) -> None:
    summary = build_world(tiny_cfg)
    assert summary["bootstrapped"] is True
    assert SimClock.of(tiny_cfg).now() == bootstrap_end(tiny_cfg)
    sim = Simulation.load(tiny_cfg)
    assert sim.next_day == tiny_cfg.world.days
    assert sim.day_start(sim.next_day) == bootstrap_end(tiny_cfg)
    assert {key: summary[key] for key in sim.summary()} == sim.summary()


def test_a_second_build_leaves_the_lake_and_counts_what_is_there(
    tiny_cfg: FeedrankConfig,
) -> None:
    first = build_world(tiny_cfg)
    before = lake_stamp(tiny_cfg)
    second = build_world(tiny_cfg)
    assert second == {**first, "bootstrapped": False}
    assert lake_stamp(tiny_cfg) == before


def test_a_missing_clock_means_the_world_is_built_again(tiny_cfg: FeedrankConfig) -> None:
    build_world(tiny_cfg)
    tiny_cfg.paths.clock.unlink()
    assert build_world(tiny_cfg)["bootstrapped"] is True
    assert SimClock.of(tiny_cfg).exists()


def test_a_rebuild_archives_what_the_old_world_served(
    tiny_cfg: FeedrankConfig, caplog: pytest.LogCaptureFixture
) -> None:
    build_world(tiny_cfg)
    paths = tiny_cfg.paths
    events = paths.serving_events
    events.parent.mkdir(parents=True)
    old = {
        events: "events",
        events.with_name(events.name + "-wal"): "wal",
        paths.cursor_key: "key",
    }
    for path, body in old.items():
        path.write_text(body)
    served = paths.served_truth / "day=2026-03-09" / "part.parquet"
    served.parent.mkdir(parents=True)
    served.write_text("served")
    SimClock.of(tiny_cfg).advance_to(bootstrap_end(tiny_cfg) + pd.Timedelta(hours=5))
    with caplog.at_level("INFO", logger="pipelines.world.simulate"):
        assert build_world(tiny_cfg, rebuild=True)["bootstrapped"] is True
    assert not any(path.exists() for path in (*old, paths.served_truth))
    (serving_archive,) = events.parent.glob("archive-*")
    assert {p.name: p.read_text() for p in serving_archive.iterdir()} == {
        path.name: body for path, body in old.items()
    }
    (truth_archive,) = paths.served_truth.parent.glob("archive-*")
    assert (truth_archive / "served_truth" / "day=2026-03-09" / "part.parquet").exists()
    assert str(serving_archive) in caplog.text and str(truth_archive) in caplog.text
    # the new world starts its own clock at its own end
    assert SimClock.of(tiny_cfg).now() == bootstrap_end(tiny_cfg)


def test_a_build_on_the_world_of_another_config_asks_for_a_rebuild(
    tiny_cfg: FeedrankConfig,
) -> None:
    build_world(tiny_cfg)
    other = tiny_cfg.model_copy(update={"world": tiny_cfg.world.model_copy(update={"n_users": 90})})
    with pytest.raises(WorldStateMismatchError, match="n_users.*--rebuild"):
        build_world(other)
    assert build_world(other, rebuild=True)["users"] == 90
