"""A simulated day of traffic against the real Ray Serve app (the smoke pipeline's champion).

`feedrank traffic --days 1 --users K` runs, as a user would type it, against the session's app
(tests/conftest.py `served_cfg`); the event log, the world state, the clock, the served truth and
the printed figures must then all tell the same story of that day.

This module moves the session's world on by one day (and the clock to its end).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.clock import SimClock
from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog
from pipelines.traffic.runner import chosen_users, tweet_payloads
from pipelines.world.simulate import Simulation
from pipelines.world.truth import TRUTH_COLUMNS

pytestmark = pytest.mark.integration

USERS = 12  # a handful: a day of their sessions is a few dozen pages


@pytest.fixture(scope="module")
def day(served_cfg: FeedrankConfig, served_url: str) -> dict[str, Any]:
    """One simulated day for USERS users through the CLI: what the world expected to post, the
    day's bounds, and what the command printed."""
    from serving.run import wait_healthy

    wait_healthy(served_url, timeout=300)
    before = Simulation.load(served_cfg)
    number = before.next_day
    start = before.day_start(number)
    expected_tweets = Simulation.load(served_cfg).post_day(number)
    chosen = chosen_users(before.user_ids, USERS, served_cfg.world.seed)
    arguments = ["traffic", "--days", "1", "--users", str(USERS), "--url", served_url]
    result = CliRunner().invoke(app, [*arguments, "--config", served_cfg.name])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 2, result.stdout
    events = EventLog(served_cfg.paths.serving_events)
    try:
        served, engagements = events.pending_export()
        posted, embeddings = events.posted_after()
    finally:
        events.close()
    mine = (served["served_at"] > start) & served["viewer_id"].isin(chosen)
    served = served[mine]
    return {
        "number": number,
        "start": start,
        "end": start + pd.Timedelta(days=1),
        "expected_tweets": expected_tweets,
        "figures": printed[0],
        "run": printed[1],
        "served": served,
        "engagements": engagements[engagements["row_id"].isin(served["row_id"])],
        "posted": posted,
        "embeddings": embeddings,
    }


def test_the_day_moves_the_clock_and_the_world_on(
    served_cfg: FeedrankConfig, day: dict[str, Any]
) -> None:
    assert SimClock.of(served_cfg).now() == day["end"]
    assert pd.Timestamp(day["run"]["clock"]) == day["end"]
    assert Simulation.load(served_cfg).next_day == day["number"] + 1
    assert day["figures"]["day"] == day["start"].date().isoformat()
    report = served_cfg.paths.traffic_reports / f"{day['figures']['day']}.json"
    assert json.loads(report.read_text())["sessions"] == day["figures"]["sessions"]


def test_every_tweet_of_the_day_is_posted_once_with_its_embedding(
    served_url: str, day: dict[str, Any]
) -> None:
    expected = day["expected_tweets"]
    posted = day["posted"].assign(embedded=[e is not None for e in day["embeddings"]])
    of_day = expected[["tweet_id", "created_at"]].merge(
        posted, on="tweet_id", how="left", suffixes=("", "_posted")
    )
    assert of_day["seq"].notna().all() and of_day["tweet_id"].is_unique
    assert of_day["embedded"].all()
    assert (of_day["created_at_posted"] == of_day["created_at"]).all()
    again = httpx.post(
        f"{served_url}/tweets", json={"tweets": tweet_payloads(expected.head(5))}, timeout=60
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"posted": 0, "repeated": min(5, len(expected))}


def test_every_served_item_is_logged_at_a_tick_of_the_simulated_day(
    served_cfg: FeedrankConfig, day: dict[str, Any]
) -> None:
    served, figures = day["served"], day["figures"]
    assert figures["sessions"] > 0 and figures["impressions"] > 0
    assert len(served) == figures["impressions"]
    assert served.groupby("surface").size().to_dict() == figures["impressions_by_surface"]
    assert served["request_id"].nunique() == figures["pages"] + figures["conversations"]
    assert (served["served_at"] <= day["end"]).all()
    tick = pd.Timedelta(minutes=served_cfg.traffic.tick_minutes)
    assert ((served["served_at"] - day["start"]) % tick == pd.Timedelta(0)).all()


def test_what_users_did_is_recorded_once_per_action(day: dict[str, Any]) -> None:
    engagements, figures = day["engagements"], day["figures"]
    assert figures["rejected"] == {}, figures
    keys = engagements[["row_id", "action"]]
    assert not keys.duplicated().any()
    counts = engagements["action"].value_counts().to_dict()
    assert counts.pop("dwell", 0) == figures["viewed"] > 0
    for kind, count in figures["negative_actions"].items():
        assert counts.pop(kind) == count
    done = {action: n for action, n in figures["engagements"].items() if n and action != "negative"}
    assert counts == done


def test_the_served_truth_covers_every_served_item_and_is_zero_where_unviewed(
    served_cfg: FeedrankConfig, day: dict[str, Any]
) -> None:
    folder = served_cfg.paths.served_truth / f"day={day['figures']['day']}"
    truth = pq.read_table(folder).to_pandas()
    assert list(truth.columns) == ["request_id", "tweet_id", *TRUTH_COLUMNS]
    served = day["served"]
    keys = set(zip(served["request_id"], served["tweet_id"], strict=True))
    assert set(zip(truth["request_id"], truth["tweet_id"], strict=True)) == keys
    dwelled = day["engagements"].query("action == 'dwell'")["row_id"]
    viewed = served[served["row_id"].isin(dwelled)]
    viewed_keys = set(zip(viewed["request_id"], viewed["tweet_id"], strict=True))
    seen = truth["p_dwell"] > 0
    assert set(zip(truth["request_id"][seen], truth["tweet_id"][seen], strict=True)) == viewed_keys
    assert (truth.loc[~seen, list(TRUTH_COLUMNS)].to_numpy() == 0).all()
    assert np.isfinite(truth[list(TRUTH_COLUMNS)].to_numpy()).all()
