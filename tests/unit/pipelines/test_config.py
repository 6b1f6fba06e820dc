"""The config tree: every shipped config loads; nonsense is rejected with a clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.config import CONFIG_DIR, FeedrankConfig, load_config


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(name)
    assert cfg.name == name
    assert all(key in cfg.flat() for key in ("world.seed", "ranker.heads", "blend.weights.fav"))


def test_blend_weight_for_a_missing_head_is_rejected() -> None:
    with pytest.raises(ValidationError, match="blend.weights names heads the ranker does not have"):
        FeedrankConfig.model_validate(
            {"ranker": {"heads": ["fav", "reply"]}, "blend": {"weights": {"retweet": 1.0}}}
        )


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="typo_knob"):
        FeedrankConfig.model_validate({"ranker": {"typo_knob": 1}})


def test_unknown_config_name_lists_the_known_ones() -> None:
    with pytest.raises(FileNotFoundError, match="known configs"):
        load_config("no_such_config")
