"""Scheduled retraining learns from what was served: bootstrap (the first DAG run), serve, one
simulated day of traffic over HTTP, then the DAG again through Airflow.

The second run must not rebuild the world, must ingest the served day into the lake, train on a
window that includes it and hold that day out, and record both in its MLflow run. Runs after
`test_feed_training_dag.py` (the first run's checks) and moves the session's world on by a day.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.clock import SimClock, bootstrap_end
from pipelines.config import FeedrankConfig
from pipelines.handoffs import RankerTraining, Registration, TrainingSetDays
from pipelines.schema import list_partitions, read_table
from pipelines.world.simulate import Simulation

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
USERS = 40  # a day of their sessions: a few hundred served items, enough to hold out


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served_day(trained_cfg: FeedrankConfig) -> Iterator[dict[str, Any]]:
    """One simulated day of USERS users against the Serve app over HTTP; the app is stopped
    after (it holds CPUs the second DAG run trains with)."""
    import ray

    from pipelines.traffic.runner import run_traffic
    from serving.run import start, stop, wait_healthy

    port = _free_port()
    cfg = trained_cfg.model_copy(
        update={
            "serve": trained_cfg.serve.model_copy(update={"host": "127.0.0.1", "port": port}),
            "traffic": trained_cfg.traffic.model_copy(update={"url": f"http://127.0.0.1:{port}"}),
        }
    )
    day = Simulation.load(cfg).next_day
    start_of_day = Simulation.load(cfg).day_start(day)
    try:
        wait_healthy(start(cfg), timeout=300)
        report = run_traffic(cfg, days=1, users=USERS, policy="served", seed=11)
    finally:
        stop()
        ray.shutdown()
    yield {"report": report, "day": start_of_day.date().isoformat(), "start": start_of_day}


@pytest.fixture(scope="module")
def second_run(
    served_day: dict[str, Any], trained_cfg: FeedrankConfig, state_root: Path
) -> subprocess.CompletedProcess[str]:
    """`feedrank dag-test --config smoke` again: the daily retraining through Airflow."""
    feedrank = Path(sys.executable).parent / "feedrank"
    completed = subprocess.run(
        [str(feedrank), "dag-test", "--config", "smoke"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    log = state_root / "dag_test_second.log"
    log.write_text(completed.stdout + "\n" + completed.stderr)
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr)[-6000:]
        pytest.fail(
            f"the second feed_training run failed (rc={completed.returncode}), {log}:\n{tail}"
        )
    return completed


def test_the_served_day_is_in_the_event_log_at_simulated_times(
    served_day: dict[str, Any], trained_cfg: FeedrankConfig
) -> None:
    figures = served_day["report"]["days"][0]
    assert figures["day"] == served_day["day"]
    assert figures["impressions"] > 0 and figures["sessions"] > 0
    assert SimClock.of(trained_cfg).now() == served_day["start"] + pd.Timedelta(days=1)
    assert SimClock.of(trained_cfg).now() > bootstrap_end(trained_cfg)


def test_the_second_run_learns_from_the_served_day_and_holds_it_out(
    served_day: dict[str, Any],
    second_run: subprocess.CompletedProcess[str],
    trained_cfg: FeedrankConfig,
) -> None:
    cfg, day = trained_cfg, served_day["day"]
    # The world was not rebuilt: the served day joined the bootstrap's days in the lake.
    assert day in list_partitions(cfg.paths.raw, "impressions")
    impressions = read_table(cfg.paths.raw, "impressions", [day])
    assert (impressions["model_version"] != "world-logging-policy").all()
    assert len(impressions) > 0
    days = TrainingSetDays.read(cfg)
    assert days.holdout_days == [day] and days.served_holdout
    assert day not in days.train_days and len(days.train_days) >= 2
    training = pd.read_parquet(cfg.paths.training_set)
    served_rows = training[
        pd.to_datetime(training["served_at"], utc=True).dt.date.astype(str) == day
    ]
    assert len(served_rows) > 0 and served_rows["served"].all()
    ranker = RankerTraining.read(cfg)
    assert ranker.holdout_days == [day] and ranker.test_rows > 0


def test_the_second_runs_mlflow_run_records_its_days(
    served_day: dict[str, Any],
    second_run: subprocess.CompletedProcess[str],
    trained_cfg: FeedrankConfig,
) -> None:
    from pipelines.release.registry import configure_mlflow

    registration = Registration.read(trained_cfg)
    client = configure_mlflow(trained_cfg)
    params = client.get_run(registration.run_id).data.params
    assert params["holdout.days"] == served_day["day"]
    assert params["holdout.served"] == "true"
    assert served_day["day"] not in params["train.days"].split(",")
    assert len(params["train.days"].split(",")) == len(TrainingSetDays.read(trained_cfg).train_days)


def test_the_second_run_trains_the_reply_ranker_on_the_replies_served_that_day(
    served_day: dict[str, Any],
    second_run: subprocess.CompletedProcess[str],
    trained_cfg: FeedrankConfig,
) -> None:
    cfg, day = trained_cfg, served_day["day"]
    impressions = read_table(cfg.paths.raw, "impressions", [day])
    replies = impressions[impressions["surface"] == "conversation"]
    assert len(replies) > 0  # the simulated users opened conversations and the lake has them
    truth = read_table(cfg.paths.truth, "truth", [day])
    assert set(replies["impression_id"]) <= set(truth["impression_id"])
    conversation = pd.read_parquet(cfg.paths.conversation_training_set)
    held_out = conversation[conversation["split"] == "test"]
    assert set(held_out["impression_id"]) == set(replies["impression_id"])
