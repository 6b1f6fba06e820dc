"""Worlds the world tests share: a tiny one simulated in memory, and the smoke world bootstrapped
into a temporary state root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import FeedrankConfig, load_config
from pipelines.world.simulate import Simulation, build_world

TINY_WORLD = {"n_users": 80, "days": 7, "mean_following": 8, "n_topics": 4, "seed": 3}


@pytest.fixture
def tiny_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    """A tiny world's config with its own state root."""
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    return FeedrankConfig.model_validate({"world": TINY_WORLD})


@pytest.fixture
def bootstrapped(tiny_cfg: FeedrankConfig) -> Simulation:
    """The tiny world after its bootstrap days, in memory (nothing written)."""
    sim = Simulation.start(tiny_cfg)
    for _ in sim.days():
        pass
    return sim


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state root holding the smoke config's world, bootstrapped once by build_world."""
    root = tmp_path_factory.mktemp("smoke_world")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEEDRANK_HOME", str(root))
        build_world(load_config("smoke"))
    yield root


@pytest.fixture
def smoke_world(smoke_root: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    """The smoke config, its state root the bootstrapped smoke world."""
    monkeypatch.setenv("FEEDRANK_HOME", str(smoke_root))
    return load_config("smoke")
