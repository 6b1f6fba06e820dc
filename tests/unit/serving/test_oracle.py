"""The oracle policy's scorer reads the simulated world's truth, and follows the saved world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.clock import bootstrap_end
from pipelines.config import FeedrankConfig
from pipelines.schema import BINARY_ACTIONS
from pipelines.world.simulate import Simulation, build_world
from pipelines.world.truth import true_engagement
from serving.policy.oracle import WorldOracle

TINY_WORLD = {"n_users": 80, "days": 7, "mean_following": 8, "n_topics": 4, "seed": 5}


@pytest.fixture
def world_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    cfg = FeedrankConfig.model_validate({"world": TINY_WORLD})
    build_world(cfg)
    return cfg


def test_there_is_no_oracle_without_a_simulated_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    assert WorldOracle.if_simulated(FeedrankConfig.model_validate({"world": TINY_WORLD})) is None


def test_the_oracle_gives_the_true_probabilities_of_every_action(world_cfg: FeedrankConfig) -> None:
    oracle = WorldOracle.if_simulated(world_cfg)
    assert oracle is not None
    sim = Simulation.load(world_cfg)
    tweets = sim.tweet_ids(np.arange(len(sim.world.tweets))[-5:])
    now = bootstrap_end(world_cfg)
    given = oracle(3, pd.DataFrame({"tweet_id": tweets}), now)
    expected = true_engagement(sim, np.full(5, 3), tweets, pd.DatetimeIndex([now] * 5))
    assert set(given) == set(BINARY_ACTIONS)
    for action in BINARY_ACTIONS:
        np.testing.assert_array_equal(given[action], expected.probability[action])


def test_the_oracle_knows_the_tweets_of_a_day_once_the_world_is_saved(
    world_cfg: FeedrankConfig,
) -> None:
    oracle = WorldOracle.if_simulated(world_cfg)
    assert oracle is not None
    now = bootstrap_end(world_cfg) + pd.Timedelta(days=1)
    first = Simulation.load(world_cfg)
    oracle(1, pd.DataFrame({"tweet_id": first.tweet_ids([len(first.world.tweets) - 1])}), now)
    sim = Simulation.load(world_cfg)
    posted = sim.post_day(sim.next_day)["tweet_id"].to_numpy()
    unknown = oracle(1, pd.DataFrame({"tweet_id": posted[:2]}), now)  # not saved yet
    assert (unknown["fav"] == 0).all()
    sim.save(world_cfg)
    truth = oracle(1, pd.DataFrame({"tweet_id": posted[:2]}), now)
    assert truth["fav"].shape == (2,) and ((truth["fav"] > 0) & (truth["fav"] < 1)).all()
