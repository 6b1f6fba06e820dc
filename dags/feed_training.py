"""feed_training: ingest what was served, validate, featurize, train the encoder and the ranker,
evaluate, register, promote.

The tasks and their edges come from the step table in `pipelines.steps`; each task runs one step
(also a `feedrank <step>` command). Trigger with a config:
`airflow dags test feed_training --conf '{"config": "smoke"}'`; without one, the deployment's config
(`FEEDRANK_CONFIG`, else `default`). Scheduled daily: the retraining job that learns from what
was served; the world is bootstrapped once (the first run), or again with `{"rebuild": true}`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from pipelines.steps import STEPS, Step, step_options


def step_task(step: Step) -> Any:
    """The TaskFlow task that runs `step` on the run's `config` param and its own options'."""
    overrides = {} if step.retries is None else {"retries": step.retries}

    @task(task_id=step.name, doc_md=step.about, **overrides)
    def run() -> dict[str, Any]:
        from pipelines.steps import run_step

        params = get_current_context()["params"]
        options = {option.name: bool(params.get(option.name)) for option in step.options}
        return run_step(step.name, params.get("config") or None, options)

    return run


def run_params() -> dict[str, Param]:
    """The run's params: the config, and one switch per step option of the table."""
    config = Param(
        None,
        type=["null", "string"],
        description="configs/<name>.yaml or a YAML path; empty: the deployment's config",
    )
    switches = {
        name: Param(False, type="boolean", description=option.about)
        for name, option in step_options().items()
    }
    return {"config": config, **switches}


@dag(
    dag_id="feed_training",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params=run_params(),
    tags=["feedrank", "training"],
    doc_md=__doc__,
)
def feed_training() -> None:
    tasks = {step.name: step_task(step)() for step in STEPS}
    for step in STEPS:
        for upstream in step.upstream:
            tasks[upstream] >> tasks[step.name]


feed_training()
