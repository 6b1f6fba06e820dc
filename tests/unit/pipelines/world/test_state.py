"""The world state on disk: a loaded world goes on exactly as the saved one would have."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.world import state
from pipelines.world.simulate import Simulation
from pipelines.world.state import STATE_FILE, WorldStateMismatchError, WorldStateMissingError
from pipelines.world.truth import true_engagement


def live_day(sim: Simulation, seed: int) -> dict[str, Any]:
    """Everything one live day of `sim` gives: its tweets, its sessions, the true engagement of
    each session's viewer with the day's newest tweets, and the world's memory after it."""
    day = sim.next_day
    tweets = sim.post_day(day)
    viewers, starts = sim.session_starts(day, np.random.default_rng(seed))
    shown = np.resize(tweets["tweet_id"].to_numpy(), len(viewers))
    engagement = true_engagement(sim, viewers, shown, starts)
    engaged = engagement.probability["fav"] > 0.05
    sim.remember(viewers, shown, engaged)
    return {
        "tweets": tweets,
        "viewers": viewers,
        "starts": starts,
        "truth": engagement.truth_columns(),
        "pairs": dict(sim.world.engaged_pairs),
        "tweet_engagements": sim.world.tweet_engagements.copy(),
        "next_day": sim.next_day,
    }


def test_a_loaded_world_simulates_the_next_day_as_the_saved_one_would(
    bootstrapped: Simulation, tiny_cfg: FeedrankConfig
) -> None:
    bootstrapped.save(tiny_cfg)
    loaded = Simulation.load(tiny_cfg)
    pd.testing.assert_frame_equal(loaded.users, bootstrapped.users)
    pd.testing.assert_frame_equal(loaded.follows, bootstrapped.follows)
    np.testing.assert_array_equal(loaded.adjacency, bootstrapped.adjacency)
    for _ in range(2):
        expected, got = live_day(bootstrapped, seed=5), live_day(loaded, seed=5)
        pd.testing.assert_frame_equal(got["tweets"], expected["tweets"])
        np.testing.assert_array_equal(got["viewers"], expected["viewers"])
        pd.testing.assert_index_equal(got["starts"], expected["starts"])
        for column, values in expected["truth"].items():
            np.testing.assert_array_equal(got["truth"][column], values)
        assert got["pairs"] == expected["pairs"] and got["next_day"] == expected["next_day"]
        np.testing.assert_array_equal(got["tweet_engagements"], expected["tweet_engagements"])


def test_a_world_saved_after_a_live_day_loads_at_its_next_day(
    bootstrapped: Simulation, tiny_cfg: FeedrankConfig
) -> None:
    live_day(bootstrapped, seed=1)
    bootstrapped.save(tiny_cfg)
    loaded = Simulation.load(tiny_cfg)
    assert loaded.next_day == tiny_cfg.world.days + 1
    assert loaded.summary() == bootstrapped.summary()
    assert len(loaded.world.tweets) == len(bootstrapped.world.tweets)


def test_loading_a_missing_world_names_the_command_that_bootstraps_it(
    tiny_cfg: FeedrankConfig,
) -> None:
    with pytest.raises(WorldStateMissingError, match="feedrank build-world"):
        Simulation.load(tiny_cfg)


def test_loading_a_world_of_another_config_is_refused_by_name(
    bootstrapped: Simulation, tiny_cfg: FeedrankConfig
) -> None:
    bootstrapped.save(tiny_cfg)
    other = tiny_cfg.model_copy(
        update={"world": tiny_cfg.world.model_copy(update={"seed": 4, "n_users": 90})}
    )
    with pytest.raises(WorldStateMismatchError, match=r"n_users, seed.*--rebuild"):
        Simulation.load(other)


def test_a_failed_save_leaves_the_previous_state_whole(
    bootstrapped: Simulation, tiny_cfg: FeedrankConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = bootstrapped.save(tiny_cfg)
    live_day(bootstrapped, seed=1)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(state.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        bootstrapped.save(tiny_cfg)
    assert Simulation.load(tiny_cfg).next_day == tiny_cfg.world.days
    assert [p.name for p in Path(saved).parent.iterdir()] == [STATE_FILE]


def test_the_state_file_loads_without_pickle(
    bootstrapped: Simulation, tiny_cfg: FeedrankConfig
) -> None:
    path = bootstrapped.save(tiny_cfg)
    with np.load(path, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
