"""MLflow tracking and the model registry: log a run, register the ranker, move aliases.

MLflow only: what to promote is decided in `pipelines.release.gates`.

The registered ranker is an MLflow pyfunc around :class:`RankerBundle` (a contract we own, rather than
a pickled torch module), with the fine-tuned text encoder and the evaluation report in the same run.
Aliases: ``challenger`` is the newest registered model; ``champion`` is the one that serves, moved
only when the challenger passes the gate (`pipelines.release.promotion`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.models.bundle import RankerBundle

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
PIP_REQUIREMENTS = ["torch==2.13.0", "numpy", "pandas", "mlflow"]


def tracking_uri(cfg: FeedrankConfig) -> str:
    return cfg.tracking.tracking_uri or f"sqlite:///{cfg.paths.mlflow_db}"


def configure_mlflow(cfg: FeedrankConfig):  # -> mlflow.MlflowClient
    """Point MLflow at the run's store and make sure the experiment exists; returns a client."""
    import mlflow

    # Artifact uploads print a progress bar per file, which floods task logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    cfg.paths.root_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(cfg))
    if mlflow.get_experiment_by_name(cfg.tracking.experiment) is None:
        cfg.paths.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(
            cfg.tracking.experiment, artifact_location=cfg.paths.mlflow_artifacts.as_uri()
        )
    mlflow.set_experiment(cfg.tracking.experiment)
    return mlflow.MlflowClient()


def _pyfunc_class():  # defined lazily: mlflow's import costs seconds that DAG parsing should not pay
    import mlflow.pyfunc

    class RankerPyfunc(mlflow.pyfunc.PythonModel):
        """pyfunc contract: a frame of raw feature columns in, a frame of p_<head> columns out."""

        def load_context(self, context: Any) -> None:
            self.bundle = RankerBundle.load(Path(context.artifacts["bundle"]))

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: Any = None
        ) -> pd.DataFrame:
            predictions = self.bundle.predict(model_input)
            return pd.DataFrame({f"p_{head}": p for head, p in predictions.items()})

    return RankerPyfunc


def log_and_register(
    cfg: FeedrankConfig,
    bundle_dir: Path,
    encoder_dir: Path | None,
    report_dir: Path,
    metrics: dict[str, float],
    history: list[dict[str, Any]],
    extra_artifacts: dict[str, Path] | None = None,
    series: dict[str, list[float]] | None = None,
    params: dict[str, str] | None = None,
    run_name: str | None = None,
) -> dict[str, str]:
    """One MLflow run with the resolved config, curves, metrics, report and models; `params` are
    logged beside the config's (e.g. the days the ranker learned from and was held out on).

    Registers the ranker under cfg.tracking.ranker_model_name and points `challenger` at it.
    The run is named `run_name` (default ``feed_training-<config>``).
    """
    import mlflow

    client = configure_mlflow(cfg)
    with mlflow.start_run(run_name=run_name or f"feed_training-{cfg.name}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in {**cfg.flat(), **(params or {})}.items()})
        mlflow.log_dict(cfg.model_dump(mode="json", by_alias=True), "config/resolved.json")
        for step, record in enumerate(history):
            mlflow.log_metrics(
                {f"train_{k}": float(v) for k, v in record.items() if _is_number(v)}, step=step
            )
        for name, values in (series or {}).items():
            for step, value in enumerate(values):
                mlflow.log_metric(name, value, step=step)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # NaN metrics are skipped
        mlflow.log_artifacts(str(report_dir), artifact_path="report")
        for name, path in (extra_artifacts or {}).items():
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=name)
            elif path.exists():
                mlflow.log_artifact(str(path), artifact_path=name)
        if encoder_dir is not None:
            mlflow.log_artifacts(str(encoder_dir), artifact_path="text_encoder")
        info = mlflow.pyfunc.log_model(
            name="ranker",
            python_model=_pyfunc_class()(),
            artifacts={"bundle": str(bundle_dir)},
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=cfg.tracking.ranker_model_name,
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(cfg.tracking.ranker_model_name, CHALLENGER, version)
        mlflow.set_tag("ranker_version", version)
    log.info(
        "registry: run %s registered %s v%s as %s",
        run.info.run_id,
        cfg.tracking.ranker_model_name,
        version,
        CHALLENGER,
    )
    return {"run_id": run.info.run_id, "version": version}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def alias_version(cfg: FeedrankConfig, alias: str) -> str | None:
    """The registered version behind an alias, or None when the alias (or the model) is absent."""
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(cfg)
    try:
        return str(client.get_model_version_by_alias(cfg.tracking.ranker_model_name, alias).version)
    except MlflowException:
        return None


def set_alias(cfg: FeedrankConfig, alias: str, version: str) -> None:
    """Point `alias` of the ranker model at a registered version."""
    configure_mlflow(cfg).set_registered_model_alias(cfg.tracking.ranker_model_name, alias, version)


def log_decision(run_id: str, decision: dict[str, Any]) -> None:
    """Attach a promotion decision to the run that registered the challenger."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(decision, "promotion/decision.json")
        mlflow.set_tag("promotion", "promoted" if decision["promote"] else "rejected")
        mlflow.set_tag("promotion_reason", decision["reason"])


def load_ranker(cfg: FeedrankConfig, alias: str) -> RankerBundle | None:
    """The ranker behind an alias, ready to score; None when the alias does not exist."""
    import mlflow

    version = alias_version(cfg, alias)
    if version is None:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{cfg.tracking.ranker_model_name}@{alias}")
    bundle: RankerBundle = model.unwrap_python_model().bundle
    bundle.version = version
    return bundle
