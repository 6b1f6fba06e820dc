"""The one TorchTrainer assembly of the pipeline: every Ray Train fit (ranker, encoder) goes here.

A fit runs ``loop(loop_config)`` on ``workers`` Ray Train workers (DDP when more than one), one
GPU each when ``use_gpu`` (placement comes from the config: ``ranker.use_gpu``,
``encoder.use_gpu``), else one CPU each. Run state and checkpoints go under ``storage``
(``cfg.paths.ray_results``) in a folder named ``run_name``: a rerun under the same name resumes
from its latest checkpoint, if the loop reads ``ray.train.get_checkpoint()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray.train
from ray.train import CheckpointConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer


def fit(
    loop: Callable[[dict[str, Any]], None],
    loop_config: Mapping[str, Any],
    workers: int,
    use_gpu: bool,
    run_name: str,
    storage: Path,
    keep: int,
) -> ray.train.Result:
    """Run ``loop`` on a TorchTrainer and return its result (the last reported metrics and
    checkpoint, ``metrics_dataframe``, ``error``).

    Ray must be up (:func:`pipelines.ray_runtime.init_ray` or ``ray_session``).

    Args:
        loop: the ``train_loop_per_worker``, called with ``loop_config`` on every worker.
        loop_config: JSON-like values the loop needs (it runs in another process).
        workers: Ray Train workers (DDP ranks).
        use_gpu: one GPU per worker; else one CPU per worker.
        run_name: the run's folder under ``storage``; the same name resumes that run.
        storage: where runs and checkpoints live; shared storage on a multi-node cluster.
        keep: checkpoints kept per run (the newest ones).
    """
    trainer = TorchTrainer(
        loop,
        train_loop_config=dict(loop_config),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=keep),
        ),
    )
    return trainer.fit()
