"""The whole feed_training DAG through Airflow on the smoke config, then the served app."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from pipelines.config import FeedrankConfig
from pipelines.registry import alias_version, load_ranker
from pipelines.steps import STEP_ORDER

pytestmark = pytest.mark.e2e


def test_every_task_of_the_dag_succeeded(dag_run: subprocess.CompletedProcess[str]) -> None:
    output = dag_run.stdout + dag_run.stderr
    for task in STEP_ORDER:
        assert f"feed_training.{task}" in output or f"task_id={task}" in output or task in output
    assert "state=failed" not in output.replace(" ", "")


def test_champion_is_registered_with_metrics(trained_cfg: FeedrankConfig) -> None:
    assert alias_version(trained_cfg, "challenger") is not None
    decision = json.loads((trained_cfg.paths.models / "registration.json").read_text())
    assert decision["version"] == alias_version(trained_cfg, "challenger")
    metrics = json.loads((trained_cfg.paths.reports / "evaluation" / "metrics.json").read_text())
    for model in ("ranker", "lgbm", "oracle"):
        for head in trained_cfg.ranker.heads:
            assert f"{model}_rce_{head}" in metrics
    # The trained ranker beats a constant predictor on the most common head (RCE > 0), and the
    # oracle's RCE is the ceiling.
    assert metrics["ranker_rce_fav"] > 0
    assert metrics["oracle_rce_fav"] > metrics["ranker_rce_fav"]
    assert (trained_cfg.paths.reports / "evaluation" / "report.md").exists()
    assert alias_version(trained_cfg, "champion") is not None
    model = load_ranker(trained_cfg, "champion")
    assert model is not None and set(model.heads) == set(trained_cfg.ranker.heads)


def test_served_feed_answers(served_url: str, trained_cfg: FeedrankConfig) -> None:
    from serving.world_index import WorldIndex

    index = WorldIndex.load(trained_cfg)
    user = next(u for u in range(1, index.n_users + 1) if len(index.candidates(u)) >= 3)
    response = httpx.post(f"{served_url}/feed", json={"user_id": user, "limit": 3}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == 3
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model_version"] == alias_version(trained_cfg, "champion") or body["arm"]
