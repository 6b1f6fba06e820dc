"""The grid search of the conversation blend: every combination tried, the one that orders each
request's replies best by realized dwell wins, and the requests that check it are never searched."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import ConversationBlendConfig
from pipelines.conversation.blend import (
    TooFewRequestsError,
    grid_weights,
    hand_blend,
    search_blend,
    tune_half,
)

HAND = {"fav": 1.0, "negative": -2.0}


def blend(grid: dict[str, tuple[float, ...]]) -> ConversationBlendConfig:
    return ConversationBlendConfig(weights=HAND, grid=grid)


def test_the_grid_is_every_combination_with_off_grid_heads_at_their_hand_weight() -> None:
    combos = list(grid_weights(blend({"fav": (0.0, 2.0), "dwell": (1.0, 3.0)})))
    assert combos == [
        {"fav": 0.0, "negative": -2.0, "dwell": 1.0},
        {"fav": 0.0, "negative": -2.0, "dwell": 3.0},
        {"fav": 2.0, "negative": -2.0, "dwell": 1.0},
        {"fav": 2.0, "negative": -2.0, "dwell": 3.0},
    ]


def test_the_all_zero_combination_is_left_out() -> None:
    config = ConversationBlendConfig(weights={"fav": 0.0}, grid={"fav": (0.0, 1.0)})
    assert list(grid_weights(config)) == [{"fav": 1.0}]


def test_a_grid_larger_than_allowed_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="combinations"):
        ConversationBlendConfig(grid={"fav": (0.0, 1.0, 2.0)}, max_combinations=2)


def requests_with_dwell(n_requests: int = 40, per_request: int = 6):
    """Requests whose realized dwell follows the `dwell` head; `fav` ranks them backwards."""
    rng = np.random.default_rng(3)
    requests = np.repeat(np.arange(n_requests), per_request)
    dwell_ms = rng.uniform(0, 30_000, size=len(requests))
    predictions = {
        "dwell": dwell_ms / 30_000 + rng.normal(0, 0.01, size=len(requests)),
        "fav": 1.0 - dwell_ms / 30_000,
        "negative": np.full(len(requests), 0.1),
    }
    return requests, dwell_ms, predictions


def test_the_search_chooses_the_weights_that_rank_replies_by_dwell() -> None:
    requests, dwell_ms, predictions = requests_with_dwell()
    search = search_blend(
        requests, dwell_ms, predictions, blend({"fav": (0.0, 1.0), "dwell": (0.0, 5.0)}), k=3
    )
    assert search.weights == {"fav": 0.0, "negative": -2.0, "dwell": 5.0}
    assert search.combinations == 4
    assert search.tune_requests == 20 and search.check_requests == 20
    # fav alone (the hand weights) ranks backwards; the tuned blend is near perfect on unseen
    # requests too.
    assert search.check_ndcg_tuned > 0.95 > search.check_ndcg_hand
    assert search.tune_ndcg_tuned >= search.tune_ndcg_hand


def test_the_check_half_never_influences_the_choice() -> None:
    requests, dwell_ms, predictions = requests_with_dwell()
    check = ~tune_half(requests)
    flipped = {head: values.copy() for head, values in predictions.items()}
    flipped["dwell"][check] = -flipped["dwell"][check]  # would make dwell the worst on checks
    grid = blend({"fav": (0.0, 1.0), "dwell": (0.0, 5.0)})
    assert (
        search_blend(requests, dwell_ms, flipped, grid, k=3).weights
        == search_blend(requests, dwell_ms, predictions, grid, k=3).weights
    )


def test_held_out_rows_without_any_dwell_cannot_tune_the_blend() -> None:
    requests, dwell_ms, predictions = requests_with_dwell()
    with pytest.raises(ValueError, match="positive dwell"):
        search_blend(requests, np.zeros_like(dwell_ms), predictions, blend({"fav": (1.0,)}), k=3)


def test_requests_of_a_single_reply_take_no_part_in_the_search() -> None:
    requests, dwell_ms, predictions = requests_with_dwell()
    singles = np.arange(1000, 1100)  # a hundred one-reply requests, none of which can be ordered
    with_singles = (
        np.r_[requests, singles],
        np.r_[dwell_ms, np.full(len(singles), 20_000.0)],
        {head: np.r_[values, np.full(len(singles), 0.5)] for head, values in predictions.items()},
    )
    grid = blend({"fav": (0.0, 1.0), "dwell": (0.0, 5.0)})
    alone = search_blend(requests, dwell_ms, predictions, grid, k=3)
    mixed = search_blend(*with_singles, grid, k=3)
    assert mixed.tune_requests + mixed.check_requests == 40
    assert mixed.check_ndcg_hand == pytest.approx(alone.check_ndcg_hand)
    assert mixed.weights == alone.weights


def test_held_out_requests_that_leave_a_half_empty_cannot_tune_the_blend() -> None:
    requests, dwell_ms, predictions = requests_with_dwell()
    even = requests % 2 == 0  # the tune half only: nothing would check the choice
    with pytest.raises(TooFewRequestsError, match="both halves"):
        search_blend(
            requests[even],
            dwell_ms[even],
            {head: values[even] for head, values in predictions.items()},
            blend({"fav": (1.0,)}),
            k=3,
        )


def test_a_run_that_cannot_tune_keeps_the_hand_weights_and_says_it_tried_nothing() -> None:
    kept = hand_blend(blend({"fav": (0.0, 1.0)}), k=10)
    assert kept.weights == kept.hand_weights == HAND and kept.combinations == 0
    assert np.isnan(kept.check_ndcg_tuned) and np.isnan(kept.check_ndcg_hand)
