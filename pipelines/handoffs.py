"""Typed hand-offs between steps: the JSON files one step writes and a later step reads.

Each hand-off is a pydantic model bound to one path of the artifact map (`PathsConfig`), so the
writer and the reader share one definition of the file's name and fields. Reading a hand-off that
its step has not written yet fails with an error that names the step to run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from pipelines.config import FeedrankConfig


class MissingHandoffError(FileNotFoundError):
    """A step ran before the step whose output it reads."""


class Handoff(BaseModel):
    """Base of the hand-offs; `written_by` names the step that writes the file."""

    model_config = ConfigDict(extra="forbid")
    written_by: ClassVar[str]

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        raise NotImplementedError

    def write(self, cfg: FeedrankConfig) -> Path:
        path = self.path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        # NaN (a metric undefined on this data) is written as null, valid JSON for every reader.
        payload = _nan_to_none(self.model_dump(mode="json"))
        path.write_text(json.dumps(payload, indent=2))
        return path

    @classmethod
    def read(cls, cfg: FeedrankConfig) -> Self:
        path = cls.path(cfg)
        if not path.is_file():
            raise MissingHandoffError(
                f"{path} is missing: run the `{cls.written_by}` step first "
                f"(`feedrank {cls.written_by.replace('_', '-')} --config {cfg.name}`)"
            )
        return cls.model_validate_json(path.read_text())


class EncoderTraining(Handoff):
    """How the text encoder's fine-tuning went (`train_encoder`); `register` logs it."""

    written_by: ClassVar[str] = "train_encoder"
    pairs: int
    loss_first: float
    loss_last: float
    steps: int
    seconds: float
    step_seconds: float | None = None
    loss_curve: list[dict[str, float]]
    resumed_from_step: int | None = None
    run_name: str
    out_dir: str

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.encoder_training


class TrainingSetDays(Handoff):
    """The lake days the training set was drawn from (`build_training_set`): the training days,
    the held-out days (ISO dates, ascending) and whether those are days the live service served
    (else the sliding window's last `ranker.test_days` days)."""

    written_by: ClassVar[str] = "build_training_set"
    train_days: list[str]
    holdout_days: list[str]
    served_holdout: bool

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.training_days


class RankerTraining(Handoff):
    """How the ranker's training went (`train_ranker`): sizes, wall time, per-epoch history, and
    the days it learned from and was held out on (empty for a hand-off written before they were
    recorded)."""

    written_by: ClassVar[str] = "train_ranker"
    seconds: float
    train_rows: int
    test_rows: int
    final: dict[str, Any]
    history: list[dict[str, Any]]
    bundle_dir: str
    train_days: list[str] = []
    holdout_days: list[str] = []
    served_holdout: bool = False

    def days_params(self) -> dict[str, str]:
        """The days as MLflow params: ``train.days`` and ``holdout.days`` (comma-separated ISO
        dates) and ``holdout.served`` (``true``: the held-out days are served days)."""
        return {
            "train.days": ",".join(self.train_days),
            "holdout.days": ",".join(self.holdout_days),
            "holdout.served": str(self.served_holdout).lower(),
        }

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.ranker_training(cfg.ranker.feature_set)


class EvaluationMetrics(Handoff):
    """The offline evaluation's flat metrics (`evaluate`): `<model>_<metric>` -> value; None
    where a metric is undefined on the held-out data (a head with no positives)."""

    written_by: ClassVar[str] = "evaluate"
    model_config = ConfigDict(extra="allow")
    # The held-out days the metrics are measured on (the extra fields are the metrics).
    holdout_days: list[str] = []

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.evaluation_metrics

    def values(self) -> dict[str, float]:
        """Every metric as a float (NaN where undefined)."""
        extra = self.model_extra or {}
        return {k: math.nan if v is None else float(v) for k, v in extra.items()}


class Registration(Handoff):
    """The MLflow run and registered version of this run's ranker (`register`)."""

    written_by: ClassVar[str] = "register"
    run_id: str
    version: str

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.registration


class ConversationRankerTraining(RankerTraining):
    """How the conversation ranker's training went (`train_conversation_ranker`); beside its
    bundle, as the feed ranker's is beside its own."""

    written_by: ClassVar[str] = "train_conversation_ranker"

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.ranker_training(cfg.conversation_ranker.feature_set)


class ConversationBlend(Handoff):
    """The conversation score's blend weights, tuned by grid search (`evaluate_conversation`),
    and how they did: NDCG@k of realized dwell per conversation request of the held-out rows the
    search did not see (`check_*`) and of those it searched (`tune_*`), hand vs tuned weights.
    Written inside the conversation ranker's bundle, so it travels with the registered model."""

    written_by: ClassVar[str] = "evaluate_conversation"
    weights: dict[str, float]
    hand_weights: dict[str, float]
    k: int
    combinations: int
    tune_requests: int
    check_requests: int
    tune_ndcg_hand: float
    tune_ndcg_tuned: float
    check_ndcg_hand: float
    check_ndcg_tuned: float

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.conversation_blend


class ConversationEvaluationMetrics(EvaluationMetrics):
    """The conversation ranker's flat metrics (`evaluate_conversation`): the feed's names with a
    `conv_` prefix (`conv_ranker_rce_fav`, `conv_lgbm_ndcg`, ...)."""

    written_by: ClassVar[str] = "evaluate_conversation"

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.conversation_evaluation_metrics


class ConversationRegistration(Registration):
    """The MLflow run and registered version of this run's conversation ranker
    (`register_conversation`)."""

    written_by: ClassVar[str] = "register_conversation"

    @classmethod
    def path(cls, cfg: FeedrankConfig) -> Path:
        return cfg.paths.conversation_registration


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
