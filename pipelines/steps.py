"""The `feed_training` pipeline as one declared table of steps.

Each :class:`Step` names a function (``"module:function"``, imported when the step runs, so that
parsing the DAG stays fast) and the steps it waits for. From this table come the DAG's tasks and
edges (`dags/feed_training.py`), the `feedrank <step>` commands and :func:`run_all`; the bodies live
in the modules their names say. A step takes the resolved config, reads what earlier steps left in
the artifact map (`PathsConfig`), writes its own outputs there and returns a small summary (its
Airflow XCom). Steps are idempotent: a retry recomputes the same outputs from the same inputs.

A step may also declare :class:`StepOption` switches (keyword arguments of its function, off by
default): each becomes a flag of its command and of `run-all` and a typed, described param of the
DAG, so a run is asked for them in one vocabulary (``--rebuild``, ``{"rebuild": true}``).
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from pipelines.config import FeedrankConfig, load_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOption:
    """A switch a step's function takes as a keyword argument (default off, passed only when on):
    `name` is the argument, the DAG param and (with ``-`` for ``_``) the command-line flag;
    `about` their help."""

    name: str
    about: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Step:
    """One step: `target` is ``"package.module:function"`` taking a config (and its `options` as
    keyword arguments) and returning a JSON-able summary; `about` is the one line shown as the
    command's help and the task's doc; `retries` overrides the DAG's default where retrying
    cannot help."""

    name: str
    target: str
    about: str
    upstream: tuple[str, ...] = ()
    retries: int | None = None
    options: tuple[StepOption, ...] = ()

    def function(self) -> Callable[..., Any]:
        module, _, attribute = self.target.partition(":")
        function: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
        return function


REBUILD = StepOption(
    "rebuild",
    "Rebuild the bootstrap world even if it exists (the old serving state is archived); "
    "otherwise an existing world is kept and only grows.",
)


STEPS: tuple[Step, ...] = (
    Step(
        "build_world",
        "pipelines.world.simulate:build_world",
        "Bootstrap the simulated world into the raw lake once (the truth stored apart).",
        options=(REBUILD,),
    ),
    # What the service served (and how viewers engaged) joins the lake after build_world, which
    # replaces the lake, and before it is validated.
    Step(
        "ingest_served",
        "pipelines.ingest.served:ingest_served",
        "The impressions the service served, labelled by their engagements, into the raw lake.",
        ("build_world",),
    ),
    # A failed validation quarantines the batch: retrying cannot fix the data.
    Step(
        "validate",
        "pipelines.validate.lake:validate_lake",
        "Great Expectations suites on every raw batch; failing batches go to quarantine.",
        ("ingest_served",),
        retries=0,
    ),
    Step(
        "compute_features",
        "pipelines.features.batch:compute_batch_features",
        "Batch feature tables (the Feast sources) from the validated lake.",
        ("validate",),
    ),
    Step(
        "train_encoder",
        "pipelines.train.encoder:train_text_encoder",
        "Fine-tune the two-tower text encoder on engagement pairs with Ray Train.",
        ("compute_features",),
    ),
    Step(
        "embed",
        "pipelines.features.embeddings:embed",
        "Tweet, author and viewer embedding features from the fine-tuned encoder.",
        ("train_encoder",),
    ),
    Step(
        "build_index",
        "pipelines.retrieval.index:build_index",
        "The ANN index of tweet embeddings for out-of-network retrieval.",
        ("embed",),
    ),
    Step(
        "evaluate_retrieval",
        "pipelines.retrieval.evaluate:evaluate_retrieval",
        "Recall and NDCG@k of retrieval vs untuned MiniLM, TF-IDF and popularity; to MLflow.",
        ("build_index",),
    ),
    # The ranker's features include the embeddings: they are registered once those exist.
    Step(
        "apply_features",
        "pipelines.features.store:apply_features",
        "`feast apply` on feature_repo/.",
        ("build_index",),
    ),
    Step(
        "materialize",
        "pipelines.features.store:materialize",
        "Load the latest feature values into the online store (incremental, idempotent).",
        ("apply_features",),
    ),
    Step(
        "build_training_set",
        "pipelines.features.training_set:build_training_set",
        "The point-in-time ranker training set from Feast's historical features.",
        ("apply_features",),
    ),
    Step(
        "train_ranker",
        "pipelines.train.ranker:train_ranker",
        "The multi-task parallel MaskNet with Ray Train (TorchTrainer, DDP).",
        ("build_training_set",),
    ),
    Step(
        "evaluate",
        "pipelines.evaluate.offline:evaluate",
        "Ranker vs LightGBM, logistic regression and the oracle on the held-out days.",
        ("train_ranker",),
    ),
    Step(
        "register",
        "pipelines.release.promotion:register",
        "Log the run to MLflow and register the ranker as `challenger`.",
        ("evaluate",),
    ),
    # The champion only moves once the online store holds the features it will be served with.
    Step(
        "promote",
        "pipelines.release.promotion:promote",
        "Gate the challenger against the champion (or LightGBM); promote it if it passes.",
        ("register", "materialize", "evaluate_retrieval"),
    ),
    # The conversation ranker: the same model code on conversation impressions, after the feed's
    # ranker (one trainer at a time on the cores). Each step says it skipped when the lake has no
    # conversation impressions.
    Step(
        "build_conversation_set",
        "pipelines.conversation.training_set:build_conversation_set",
        "The conversation ranker's point-in-time training set (surface `conversation` rows).",
        ("build_training_set",),
    ),
    Step(
        "train_conversation_ranker",
        "pipelines.conversation.ranker:train_conversation_ranker",
        "The reply ranker (the feed ranker's MaskNet and loop) on conversation engagement.",
        ("build_conversation_set", "train_ranker"),
    ),
    Step(
        "evaluate_conversation",
        "pipelines.conversation.evaluate:evaluate_conversation",
        "Grid-search the blend for dwell; reply ranker vs LightGBM and the oracle (conv_ metrics).",
        ("train_conversation_ranker", "evaluate"),
    ),
    Step(
        "register_conversation",
        "pipelines.conversation.release:register_conversation",
        "Log the reply ranker's run to MLflow and register it as `challenger`.",
        ("evaluate_conversation", "register"),
    ),
    Step(
        "promote_conversation",
        "pipelines.conversation.release:promote_conversation",
        "Gate the reply ranker against its champion (or LightGBM); promote it if it passes.",
        ("register_conversation", "promote"),
    ),
)
STEPS_BY_NAME: dict[str, Step] = {step.name: step for step in STEPS}


def execution_order() -> list[str]:
    """The step names in an order that respects every edge (the table's own order when it does)."""
    graph = {step.name: set(step.upstream) for step in STEPS}
    unknown = {up for ups in graph.values() for up in ups} - set(graph)
    if unknown:
        raise ValueError(f"steps wait for unknown steps: {sorted(unknown)}")
    sorter = TopologicalSorter(graph)
    sorter.prepare()  # raises graphlib.CycleError on a cycle
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=[step.name for step in STEPS].index)
        order.extend(ready)
        sorter.done(*ready)
    return order


def step_options() -> dict[str, StepOption]:
    """Every option some step declares, by name (in table order)."""
    return {option.name: option for step in STEPS for option in step.options}


def options_for(step: Step, options: Mapping[str, bool] | None) -> dict[str, bool]:
    """`step`'s own switches that are on among `options` (the run's), as keyword arguments: a
    switch that is off is not passed, so the step runs as it does without options.

    Raises ValueError naming an option no step declares, or a value that is not a bool."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(step_options()))
    if unknown:
        raise ValueError(f"unknown step options {unknown}; known: {sorted(step_options())}")
    wrong = {key: value for key, value in given.items() if not isinstance(value, bool)}
    if wrong:
        raise ValueError(f"step options are switches (true/false); got {wrong}")
    return {option.name: True for option in step.options if given.get(option.name)}


def run_step(
    name: str,
    config: str | FeedrankConfig | None = None,
    options: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """Run one step on a config (a name, a path or a loaded config) with the run's `options`
    (those the step declares are passed to it; see :func:`options_for`); returns its summary
    with the step's wall time, keeping only scalar fields (what an XCom and a log line should
    hold; a NaN or infinite figure becomes None, as an XCom must be JSON)."""
    if name not in STEPS_BY_NAME:
        raise KeyError(f"unknown step {name!r}; steps: {[step.name for step in STEPS]}")
    step = STEPS_BY_NAME[name]
    chosen = options_for(step, options)
    cfg = config if isinstance(config, FeedrankConfig) else load_config(config)
    started = time.perf_counter()
    result = step.function()(cfg, **chosen)
    summary = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in (result if isinstance(result, dict) else {"result": result}).items()
        if value is None or isinstance(value, str | int | float | bool)
    }
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info("step %s done in %.1f s: %s", name, summary["seconds"], summary)
    return summary


def run_all(
    config: str | FeedrankConfig | None = None, options: Mapping[str, bool] | None = None
) -> dict[str, dict[str, Any]]:
    """Every step in dependency order, in this process (the DAG runs the same steps as tasks);
    each step gets the `options` it declares."""
    cfg = config if isinstance(config, FeedrankConfig) else load_config(config)
    return {name: run_step(name, cfg, options) for name in execution_order()}
