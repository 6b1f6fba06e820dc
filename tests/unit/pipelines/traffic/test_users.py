"""The simulated user's behaviour: position bias, the stopping rule, the draws and what is posted."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from pipelines.config import FeedrankConfig
from pipelines.schema import BINARY_ACTIONS, DERIVED_ACTIONS
from pipelines.traffic.users import (
    VIEWER_ACTIONS,
    Behaviour,
    attention,
    continue_chances,
    react,
    realized_value,
    walk,
)
from pipelines.world.truth import TRUTH_COLUMNS, TrueEngagement


def engagement(m: int, chance: float = 0.0, conditional: float = 0.0) -> TrueEngagement:
    """A true engagement of ``m`` items where every viewer action has chance ``chance``."""
    probability = {action: np.full(m, chance) for action in VIEWER_ACTIONS}
    derived = {action: np.full(m, conditional) for action in DERIVED_ACTIONS}
    for action, parent in DERIVED_ACTIONS.items():
        probability[action] = derived[action] * probability[parent]
    return TrueEngagement(probability, derived, np.full(m, math.log(4000.0)))


def behaviour(**changes: object) -> Behaviour:
    return replace(Behaviour.of(FeedrankConfig()), **changes)  # type: ignore[arg-type]


def test_attention_decays_down_the_page_as_one_over_one_plus_decay_times_position() -> None:
    np.testing.assert_allclose(attention(np.array([0, 1, 10]), 0.5), [1.0, 1 / 1.5, 1 / 6.0])
    np.testing.assert_allclose(attention(np.arange(5), 0.0), np.ones(5))


def test_attention_rejects_a_negative_position() -> None:
    with pytest.raises(ValueError, match="positions must be >= 0"):
        attention(np.array([0, -1]), 0.1)


def test_the_chance_of_an_action_at_a_position_is_the_true_chance_scaled_by_attention() -> None:
    rng, m, decay = np.random.default_rng(0), 20_000, 0.25
    sure_to_stay = behaviour(
        attention_decay=decay,
        continue_probability=1 - 1e-12,
        continue_after_engagement=1 - 1e-12,
        continue_after_negative=1 - 1e-12,
    )
    for position in (0, 4, 12):
        reaction = react(rng, engagement(m, 0.4), np.full(m, position), sure_to_stay)
        assert reaction.viewed.all()
        expected = 0.4 / (1 + decay * position)
        assert reaction.labels["fav"].mean() == pytest.approx(expected, abs=0.015)
        np.testing.assert_allclose(reaction.truth["p_fav"], expected, rtol=1e-6)


def test_a_walk_views_a_prefix_and_stops_after_the_first_item_the_user_leaves_on() -> None:
    viewed, goes_on = walk(np.array([True, True, False, True]))
    assert viewed.tolist() == [True, True, True, False]
    assert not goes_on
    viewed, goes_on = walk(np.array([True, True]))
    assert viewed.tolist() == [True, True] and goes_on
    viewed, goes_on = walk(np.zeros(0, dtype=bool))
    assert viewed.tolist() == [] and not goes_on


def test_users_go_on_more_after_an_engagement_and_less_after_a_negative_or_report() -> None:
    rules = behaviour(
        continue_probability=0.8, continue_after_engagement=0.9, continue_after_negative=0.3
    )
    labels = {action: np.zeros(5, dtype=bool) for action in BINARY_ACTIONS}
    labels["fav"][1] = labels["negative"][2] = labels["report"][3] = True
    labels["profile_click"][4] = labels["negative"][4] = True  # a negative outweighs
    assert continue_chances(labels, rules).tolist() == [0.8, 0.9, 0.3, 0.3, 0.3]


def test_sessions_are_shorter_when_items_repel_and_never_view_past_a_stop() -> None:
    rng, m = np.random.default_rng(1), 40
    rules = behaviour(continue_probability=0.9, continue_after_negative=0.2)
    calm = [react(rng, engagement(m), np.arange(m), rules).viewed.sum() for _ in range(400)]
    repelled = engagement(m)
    repelled.probability["negative"][:] = 1.0
    hostile = [react(rng, repelled, np.arange(m), rules).viewed.sum() for _ in range(400)]
    assert np.mean(calm) == pytest.approx(1 / (1 - 0.9), rel=0.15)
    assert np.mean(hostile) == pytest.approx(1 / (1 - 0.2), rel=0.15)


def test_an_item_never_viewed_has_no_label_no_dwell_and_zero_truth() -> None:
    rng, m = np.random.default_rng(2), 30
    reaction = react(rng, engagement(m, 0.9, 0.9), np.arange(m), behaviour())
    unseen = ~reaction.viewed
    assert unseen.any(), "a 30-item page should outlast a 0.5-0.95 continue chance"
    for action in BINARY_ACTIONS:
        assert not reaction.labels[action][unseen].any()
    assert (reaction.dwell_ms[unseen] == 0).all() and (reaction.dwell_ms[~unseen] > 0).all()
    assert set(reaction.truth) == set(TRUTH_COLUMNS)
    for name in TRUTH_COLUMNS:
        assert (reaction.truth[name][unseen] == 0).all()
        assert reaction.truth[name].dtype == np.float32
    assert not any(reaction.requests(int(i)) for i in np.nonzero(unseen)[0])


def test_an_author_engages_only_with_a_reply_and_it_is_posted_after_the_reply() -> None:
    rng, m = np.random.default_rng(3), 2000
    rules = behaviour(continue_after_engagement=1 - 1e-12, continue_after_negative=1 - 1e-12)
    true = engagement(m, 0.5, 0.5)
    true.probability["negative"][:] = true.probability["report"][:] = 0.0
    reaction = react(rng, true, np.zeros(m), replace(rules, continue_probability=1 - 1e-12))
    derived = reaction.labels["reply_engaged_by_author"]
    assert (reaction.labels["reply"] | ~derived).all()
    assert derived.sum() / reaction.labels["reply"].sum() == pytest.approx(0.5, abs=0.05)
    item = int(np.nonzero(derived)[0][0])
    posted = [action for action, _ in reaction.requests(item)]
    assert posted[0] == "dwell"
    assert posted.index("reply") < posted.index("reply_engaged_by_author")
    np.testing.assert_allclose(reaction.truth["p_reply_engaged_by_author"], 0.25, rtol=1e-6)


def test_a_drawn_negative_is_posted_as_one_negative_action_in_the_configured_shares() -> None:
    rng, m = np.random.default_rng(4), 4000
    rules = behaviour(
        continue_probability=1 - 1e-12,
        continue_after_engagement=1 - 1e-12,
        continue_after_negative=1 - 1e-12,
        negative_actions=("negative", "block"),
        negative_shares=(0.75, 0.25),
    )
    true = engagement(m)
    true.probability["negative"][:] = 1.0
    reaction = react(rng, true, np.zeros(m), rules)
    kinds = reaction.negative_action[reaction.labels["negative"]]
    assert set(kinds) == {"negative", "block"}
    assert (kinds == "block").mean() == pytest.approx(0.25, abs=0.03)
    assert [a for a, _ in reaction.requests(0)] == ["dwell", str(reaction.negative_action[0])]
    assert (reaction.negative_action[~reaction.labels["negative"]] == "").all()


def test_the_dwell_is_posted_in_ms_for_every_viewed_item_and_capped() -> None:
    rng, m = np.random.default_rng(5), 50
    reaction = react(rng, engagement(m), np.arange(m), behaviour(max_dwell_ms=5000))
    for item in np.nonzero(reaction.viewed)[0]:
        action, dwell_ms = reaction.requests(int(item))[0]
        assert action == "dwell" and dwell_ms is not None
        assert dwell_ms == reaction.dwell_ms[item] and 0 < dwell_ms <= 5000


def test_the_same_seed_draws_the_same_session() -> None:
    first = react(np.random.default_rng(9), engagement(20, 0.3, 0.3), np.arange(20), behaviour())
    again = react(np.random.default_rng(9), engagement(20, 0.3, 0.3), np.arange(20), behaviour())
    assert first.viewed.tolist() == again.viewed.tolist()
    assert first.dwell_ms.tolist() == again.dwell_ms.tolist()


def test_react_rejects_positions_that_do_not_match_the_items() -> None:
    with pytest.raises(ValueError, match="3 positions for 2 items"):
        react(np.random.default_rng(0), engagement(2), np.arange(3), behaviour())


def test_realized_value_is_the_blend_of_the_labels_the_user_realized() -> None:
    rng = np.random.default_rng(6)
    reaction = react(rng, engagement(3), np.arange(3), behaviour())
    reaction.labels["fav"][:] = [True, False, False]
    reaction.labels["negative"][:] = [False, True, False]
    weights = {"fav": 0.5, "negative": -74.0, "report": -369.0}
    np.testing.assert_allclose(realized_value(reaction, weights), [0.5, -74.0, 0.0])
    with pytest.raises(ValueError, match="no realized label for blend head 'nonsense'"):
        realized_value(reaction, {"nonsense": 1.0})


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"continue_after_negative": 0.95}, "continue_after_negative <= continue_probability"),
        ({"negative_shares": {"negative": 0.5, "hide": 0.5}}, r"unknown actions \['hide'\]"),
        ({"negative_shares": {"negative": 0.5, "mute": 0.4}}, "must sum to 1"),
    ],
)
def test_the_config_rejects_nonsense_behaviour(traffic: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeedrankConfig.model_validate({"traffic": traffic})
