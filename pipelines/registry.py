"""MLflow tracking and the model registry: log a run, register the ranker, move aliases.

The registered ranker is an MLflow pyfunc around :class:`RankerBundle` (a contract we own, rather than
a pickled torch module), with the fine-tuned text encoder and the evaluation report in the same run.
Aliases: ``challenger`` is the newest registered model; ``champion`` is the one that serves, moved
only by :func:`promote` when the challenger passes the gate.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.models.bundle import RankerBundle

if TYPE_CHECKING:
    from pipelines.evaluate.gate import ChampionComparison

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
PIP_REQUIREMENTS = ["torch==2.13.0", "numpy", "pandas", "mlflow"]


def tracking_uri(cfg: FeedrankConfig) -> str:
    return cfg.tracking.tracking_uri or f"sqlite:///{cfg.paths.mlflow_db}"


def configure_mlflow(cfg: FeedrankConfig):  # -> mlflow.MlflowClient
    """Point MLflow at the run's store and make sure the experiment exists; returns a client."""
    import mlflow

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
) -> dict[str, str]:
    """One MLflow run with the resolved config, curves, metrics, report and models.

    Registers the ranker under cfg.tracking.ranker_model_name and points `challenger` at it.
    """
    import mlflow

    client = configure_mlflow(cfg)
    with mlflow.start_run(run_name=f"feed_training-{cfg.name}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in cfg.flat().items()})
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


def gate_decision(metrics: dict[str, float], min_gain: float) -> dict[str, Any]:
    """The promotion gate: the ranker's blended NDCG must beat LightGBM's by at least min_gain."""
    ranker, baseline = (
        metrics.get("ranker_ndcg", float("nan")),
        metrics.get("lgbm_ndcg", float("nan")),
    )
    passed = ranker == ranker and baseline == baseline and ranker - baseline > min_gain
    reason = (
        f"ranker blended NDCG {ranker:.4f} vs LightGBM {baseline:.4f}: "
        f"gain {ranker - baseline:+.4f} {'>' if passed else '<='} required {min_gain:+.4f}"
    )
    return {"promote": bool(passed), "reason": reason, "ranker_ndcg": ranker, "lgbm_ndcg": baseline}


def promote(
    cfg: FeedrankConfig,
    run_id: str,
    version: str,
    metrics: dict[str, float],
    comparison: ChampionComparison | None = None,
) -> dict[str, Any]:
    """Apply the gate to a registered challenger; move `champion` if it passes. Logs the decision.

    With a `comparison` against the serving champion (pipelines.evaluate.gate) that decides: a
    bootstrap interval of the NDCG gain above the margin and no head's RCE dropping too far.
    Without one (no champion yet) the challenger must beat the LightGBM baseline.
    """
    import mlflow

    client = configure_mlflow(cfg)
    if comparison is None:
        decision = gate_decision(metrics, cfg.promote.min_ndcg_gain)
    else:
        decision = {
            "promote": comparison.promote,
            "reason": "; ".join(comparison.reasons),
            **{k: v for k, v in asdict(comparison).items() if k not in ("promote", "reasons")},
        }
    previous = alias_version(cfg, CHAMPION)
    decision.update({"version": version, "previous_champion": previous})
    if decision["promote"]:
        client.set_registered_model_alias(cfg.tracking.ranker_model_name, CHAMPION, version)
    decision["champion"] = version if decision["promote"] else previous
    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(decision, "promotion/decision.json")
        mlflow.set_tag("promotion", "promoted" if decision["promote"] else "rejected")
        mlflow.set_tag("promotion_reason", decision["reason"])
    log.info(
        "registry: %s v%s: %s",
        "PROMOTED" if decision["promote"] else "NOT promoted",
        version,
        decision["reason"],
    )
    return decision


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


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
