"""The feed_training DAG as Airflow parses it: its tasks and edges are the step table's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.steps import REBUILD, STEPS

pytestmark = pytest.mark.integration

DAG_SHAPE = """
import json
import copy
from airflow.models.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError


def accepts(params, conf):  # whether the params take a trigger's conf (Airflow validates)
    trial = copy.deepcopy(params)
    try:
        for key, value in conf.items():
            trial[key] = value
    except ParamValidationError:
        return False
    return True


bag = DagBag(dag_folder="dags")
dag = bag.dags["feed_training"]
print(json.dumps({
    "errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
    "retries": {t.task_id: t.retries for t in dag.tasks},
    "params": {k: dag.params[k] for k in dag.params},
    "schema": {
        k: {**dag.params.get_param(k).schema, "description": dag.params.get_param(k).description}
        for k in dag.params
    },
    "rebuild_accepts": {
        "true": accepts(dag.params, {"rebuild": True}),
        "text": accepts(dag.params, {"rebuild": "yes"}),
    },
}))
"""


@pytest.fixture(scope="module")
def dag_shape(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),  # in a subprocess: Airflow reads it on import
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    repo = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-c", DAG_SHAPE], cwd=repo, env=env, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_dag_has_one_task_per_step_with_the_tables_edges(dag_shape: dict) -> None:
    assert dag_shape["errors"] == {}
    assert dag_shape["upstream"] == {step.name: sorted(step.upstream) for step in STEPS}


def test_the_dag_ingests_after_the_world_is_built_and_before_validation(dag_shape: dict) -> None:
    # build_world replaces the lake: ingesting before it would lose the served rows to it.
    upstream = dag_shape["upstream"]
    assert upstream["ingest_served"] == ["build_world"]
    assert upstream["validate"] == ["ingest_served"]


def test_validation_is_never_retried_and_other_steps_are(dag_shape: dict) -> None:
    # a failed validation quarantines the batch: a retry cannot fix the data
    assert dag_shape["retries"]["validate"] == 0
    assert dag_shape["retries"]["train_ranker"] == 1


def test_a_run_without_a_config_takes_the_deployments_and_keeps_the_world(
    dag_shape: dict,
) -> None:
    assert dag_shape["params"] == {"config": None, "rebuild": False}


def test_the_rebuild_param_is_a_described_boolean_from_the_step_table(dag_shape: dict) -> None:
    rebuild = dag_shape["schema"]["rebuild"]
    assert rebuild["type"] == "boolean"
    assert rebuild["description"] == REBUILD.about
    assert dag_shape["rebuild_accepts"] == {"true": True, "text": False}
