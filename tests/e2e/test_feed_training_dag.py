"""The whole feed_training DAG through Airflow on the smoke config, then the served app."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from pipelines.config import FeedrankConfig
from pipelines.release.registry import alias_version, load_ranker
from pipelines.steps import STEPS

pytestmark = pytest.mark.e2e


def test_the_dag_run_succeeded_with_every_task(
    dag_run: subprocess.CompletedProcess[str], trained_cfg: FeedrankConfig
) -> None:
    # `feedrank dag-test` reads the run's state back from Airflow's metadata database
    assert "feed_training run" in dag_run.stdout and ": success" in dag_run.stdout
    from pipelines.cli import airflow_environment, airflow_json

    env = {**os.environ, **airflow_environment(trained_cfg)}
    run_id = airflow_json(["dags", "list-runs", "feed_training"], env)[0]["run_id"]
    states = airflow_json(["tasks", "states-for-dag-run", "feed_training", run_id], env)
    by_task = {row["task_id"]: row["state"] for row in states}
    assert by_task == {step.name: "success" for step in STEPS}


def test_champion_is_registered_with_metrics(trained_cfg: FeedrankConfig) -> None:
    assert alias_version(trained_cfg, "challenger") is not None
    decision = json.loads((trained_cfg.paths.registration).read_text())
    assert decision["version"] == alias_version(trained_cfg, "challenger")
    metrics = json.loads(trained_cfg.paths.evaluation_metrics.read_text())
    for model in ("ranker", "lgbm", "oracle"):
        for head in trained_cfg.ranker.heads:
            metric = "rce" if head in trained_cfg.ranker.binary_heads else "r2"
            assert f"{model}_{metric}_{head}" in metrics
    # The trained ranker beats a constant predictor on the most common head (RCE > 0), and the
    # oracle's RCE is the ceiling.
    assert metrics["ranker_rce_fav"] > 0
    assert metrics["oracle_rce_fav"] > metrics["ranker_rce_fav"]
    assert (trained_cfg.paths.reports / "evaluation" / "report.md").exists()
    assert alias_version(trained_cfg, "champion") is not None
    model = load_ranker(trained_cfg, "champion")
    assert model is not None and set(model.heads) == set(trained_cfg.ranker.heads)


def test_served_feed_answers(served_url: str, trained_cfg: FeedrankConfig) -> None:
    from serving.candidates.world_index import WorldIndex

    index = WorldIndex.load(trained_cfg)
    user = next(u for u in range(1, index.n_users + 1) if len(index.candidates(u)) >= 3)
    response = httpx.post(f"{served_url}/feed", json={"user_id": user, "limit": 3}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == 3
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    # the router's arm decides the model: its version is the one registered under that alias
    assert body["arm"] in ("champion", "challenger")
    assert body["model_version"] == alias_version(trained_cfg, body["arm"])
