"""feed_training: ingest what was served, validate, featurize, train the encoder and the ranker,
evaluate, register, promote.

Thin by design: every task calls one function of `pipelines.steps` (also a `feedrank` CLI command).
Trigger with a config: `airflow dags test feed_training --conf '{"config": "smoke"}'`; the default
comes from $FEEDRANK_CONFIG. Scheduled daily for retraining.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

DEFAULT_CONFIG = os.environ.get("FEEDRANK_CONFIG", "default")


def _config() -> str:
    return str(get_current_context()["params"]["config"])


@dag(
    dag_id="feed_training",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={"config": Param(DEFAULT_CONFIG, type="string", description="configs/<name>.yaml")},
    tags=["feedrank", "training"],
    doc_md=__doc__,
)
def feed_training() -> None:
    @task
    def build_world() -> dict:
        from pipelines import steps

        return steps.build_world(_config())

    @task
    def ingest_served() -> dict:
        from pipelines import steps

        return steps.ingest_served(_config())

    @task(retries=0)  # a failed validation quarantines data: retrying cannot fix it
    def validate() -> dict:
        from pipelines import steps

        return steps.validate(_config())

    @task
    def compute_features() -> dict:
        from pipelines import steps

        return steps.compute_features(_config())

    @task
    def train_encoder() -> dict:
        from pipelines import steps

        return steps.train_encoder(_config())

    @task
    def embed() -> dict:
        from pipelines import steps

        return steps.embed(_config())

    @task
    def build_index() -> dict:
        from pipelines import steps

        return steps.build_index(_config())

    @task
    def evaluate_retrieval() -> dict:
        from pipelines import steps

        return steps.evaluate_retrieval(_config())

    @task
    def apply_features() -> dict:
        from pipelines import steps

        return steps.apply_features(_config())

    @task
    def materialize() -> dict:
        from pipelines import steps

        return steps.materialize(_config())

    @task
    def build_training_set() -> dict:
        from pipelines import steps

        return steps.build_training_set(_config())

    @task
    def train_ranker() -> dict:
        from pipelines import steps

        return steps.train_ranker(_config())

    @task
    def evaluate() -> dict:
        from pipelines import steps

        return steps.evaluate(_config())

    @task
    def register() -> dict:
        from pipelines import steps

        return steps.register(_config())

    @task
    def promote() -> dict:
        from pipelines import steps

        return steps.promote(_config())

    applied = apply_features()
    # What the service served (and how viewers engaged) joins the lake before it is validated;
    # after build_world, which replaces the lake.
    validated = build_world() >> ingest_served() >> validate()
    encoded = validated >> compute_features() >> train_encoder() >> embed()
    # The ranker trains only once the encoder, its embeddings and their index are built.
    indexed = encoded >> build_index()
    indexed >> applied
    retrieval = indexed >> evaluate_retrieval()
    registered = applied >> build_training_set() >> train_ranker() >> evaluate() >> register()
    online = applied >> materialize()
    # The champion only moves once the online store holds the features it will be served with.
    [registered, online, retrieval] >> promote()


feed_training()
