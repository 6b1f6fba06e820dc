"""The per-day and per-run figures of simulated traffic, checked by hand arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.schema import BINARY_ACTIONS
from pipelines.traffic.figures import DayTally, run_figures
from pipelines.traffic.users import Reaction
from pipelines.world.truth import TRUTH_COLUMNS

WEIGHTS = {"fav": 0.5, "reply": 13.5, "negative": -74.0}


def reaction(viewed: list[bool], **labels: list[bool]) -> Reaction:
    m = len(viewed)
    marks = {a: np.array(labels.get(a, [False] * m), dtype=bool) for a in BINARY_ACTIONS}
    kinds = np.where(marks["negative"], "mute", "")
    return Reaction(
        viewed=np.array(viewed),
        labels=marks,
        negative_action=kinds,
        dwell_ms=np.where(viewed, 1000, 0),
        truth={name: np.zeros(m, dtype=np.float32) for name in TRUTH_COLUMNS},
        goes_on=False,
    )


def a_day() -> DayTally:
    """User 1: two sessions (a page of 4 by 2 authors, a fav and a reply viewed; an empty page),
    user 2: one session (a page of 2 by 2 authors, a negative; a conversation of 3 replies)."""
    tally = DayTally("2026-03-12", WEIGHTS)
    tally.add_session(1)
    tally.add_page(
        1,
        "home",
        np.array([7, 7, 8, 8]),
        reaction(
            [True, True, True, False],
            fav=[True, False, False, False],
            reply=[False, True, False, False],
        ),
    )
    tally.add_session(1)
    tally.add_page(1, "home", np.array([], dtype=np.int64), reaction([]))
    tally.add_session(2)
    tally.add_page(2, "home", np.array([5, 6]), reaction([True, True], negative=[False, True]))
    tally.add_page(2, "conversation", np.array([5, 9, 9]), reaction([True, False, False]))
    return tally


def test_a_days_figures_count_what_was_served_viewed_and_done() -> None:
    figures = a_day().figures()
    assert figures["users"] == 2 and figures["sessions"] == 3
    assert (figures["pages"], figures["nonempty_pages"], figures["conversations"]) == (3, 2, 1)
    assert figures["impressions"] == 9
    assert figures["impressions_by_surface"] == {"home": 6, "conversation": 3}
    assert figures["viewed"] == 6
    assert figures["engagements"]["fav"] == 1 and figures["engagements"]["negative"] == 1
    assert figures["negative_actions"] == {"mute": 1}


def test_a_days_value_is_the_blend_of_realized_labels_per_impression_and_per_user_day() -> None:
    figures = a_day().figures()
    value = 0.5 + 13.5 - 74.0
    assert figures["value"] == pytest.approx(value)
    assert figures["value_per_impression"] == pytest.approx(value / 9)
    assert figures["value_per_user_day"] == pytest.approx(value / 2)
    assert figures["negative_feedback_rate"] == pytest.approx(1 / 9)
    assert figures["sessions_per_user_day"] == pytest.approx(1.5)
    # pages of 4 items by 2 authors and 2 items by 2 authors; empty pages and conversations aside
    assert figures["author_diversity_per_page"] == pytest.approx((0.5 + 1.0) / 2)


def test_an_empty_day_has_zero_rates_not_a_division_error() -> None:
    figures = DayTally("2026-03-12", WEIGHTS).figures()
    assert figures["value_per_impression"] == figures["value_per_user_day"] == 0.0
    assert figures["author_diversity_per_page"] == 0.0


def test_a_runs_figures_pool_its_days() -> None:
    day = a_day().figures()
    empty = DayTally("2026-03-13", WEIGHTS).figures()
    run = run_figures([day, day, empty])
    assert run["days"] == 3 and run["user_days"] == 4 and run["impressions"] == 18
    assert run["value_per_user_day"] == pytest.approx(day["value_per_user_day"])
    assert run["author_diversity_per_page"] == pytest.approx(day["author_diversity_per_page"])
    assert run["engagements"]["reply"] == 2
