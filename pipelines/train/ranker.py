"""Distributed training of the multi-task ranker with Ray Train (TorchTrainer, DDP).

The loop does not know the model: `train_step` / `eval_step` call any module as ``model(*inputs)``
and expect ``{head: logits}``, and :func:`train_ranker` assembles the TorchTrainer in one place. The
driver turns the training set into arrays once (``ranker_arrays.npz``: ``x`` dense features, ``s``
sparse ids when the ranker uses them, ``y`` labels, per split); each worker reads its shard from there.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipelines.config import FeedrankConfig, RankerConfig
from pipelines.features.sparse import sparse_ids
from pipelines.features.spec import feature_matrix, feature_names, log_mask
from pipelines.models.bundle import RankerBundle, sparse_meta
from pipelines.models.losses import downsampling_weights, multitask_loss
from pipelines.models.masknet import FeatureNormalizer

log = logging.getLogger(__name__)


def model_inputs(ranker: RankerConfig) -> tuple[str, ...]:
    """The arrays the ranker is called with, in call order: ``x`` [N, F] and, if sparse, ``s`` [N, S].

    ``prepare_arrays`` stores ``<name>_<split>`` for each; the loop feeds ``model(*inputs)``.
    """
    return ("x", "s") if ranker.uses_sparse else ("x",)


def prepare_arrays(cfg: FeedrankConfig) -> dict[str, int]:
    """Training set parquet -> x (and s) / y arrays per split, in the model's feature order."""
    frame = pd.read_parquet(cfg.paths.training_set)
    dim = cfg.encoder.embedding_dim
    label_columns = [f"label_{head}" for head in cfg.ranker.heads]
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        part = frame[frame["split"] == split]
        out[f"x_{split}"] = feature_matrix(part, dim, cfg.ranker.feature_set)
        if "s" in model_inputs(cfg.ranker):
            out[f"s_{split}"] = sparse_ids(part, cfg.ranker.sparse_buckets)
        out[f"y_{split}"] = part[label_columns].to_numpy(dtype=np.float32)
    out["w_train"] = downsampling_weights(
        out["y_train"],
        cfg.ranker.heads,
        {h: cfg.ranker.sample_rate(h) for h in cfg.ranker.binary_heads},
        cfg.world.seed,
    )
    if "s" in model_inputs(cfg.ranker):
        out["sparse_known"] = known_ids(out["s_train"], cfg.ranker)
    path = cfg.paths.ranker_arrays(cfg.ranker.feature_set)
    np.savez(path, **out)  # type: ignore[arg-type]
    return {"train_rows": len(out["x_train"]), "test_rows": len(out["x_test"])}


def known_ids(ids: np.ndarray, ranker: RankerConfig) -> np.ndarray:
    """[buckets] bool: ids occurring in at least `sparse_min_count` training rows (never 0).

    An id seen once cannot be learned, and a new tweet's id would otherwise land on whatever its
    bucket learned for another id; the model embeds only these (`SparseEmbedder.restrict_to`).
    """
    counts = np.bincount(ids.ravel(), minlength=ranker.sparse_buckets)
    known = counts >= ranker.sparse_min_count
    known[0] = False
    return known


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: tuple[torch.Tensor, ...],
    y: torch.Tensor,
    ranker: RankerConfig,
    weights: torch.Tensor | None = None,
) -> float:
    """One optimizer step on a batch: ``model(*inputs)`` (e.g. ``(x [B, F], ids [B, S])``), y [B, H],
    per-head loss weights [B, H] (the negative downsampling) or None."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss, _ = ranker_loss(model(*inputs), y, ranker, weights)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def ranker_loss(
    outputs: dict[str, torch.Tensor],
    y: torch.Tensor,
    ranker: RankerConfig,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The multi-task loss of the configured heads (binary and regression)."""
    return multitask_loss(
        outputs,
        y,
        ranker.heads,
        weights,
        regression_heads=set(ranker.heads) - set(ranker.binary_heads),
        regression_weight=ranker.regression_loss_weight,
    )


def eval_step(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], y: torch.Tensor, ranker: RankerConfig
) -> dict[str, float]:
    """Losses of ``model(*inputs)`` against y [B, H] (all rows, no downsampling), total and per
    head, without autograd."""
    model.eval()
    with torch.no_grad():
        loss, per_head = ranker_loss(model(*inputs), y, ranker)
    return {"loss": float(loss), **{f"loss_{h}": v for h, v in per_head.items()}}


class WeightAverage:
    """An exponential moving average of a model's weights, a smoother model than the last step's.

    After step t the average is ``sum_i (1 - d) d^(t - i) w_i / (1 - d^t)``: each step's weights
    weighted by ``decay`` per step since, over the last ~1 / (1 - decay) steps, and normalized
    (Adam's bias correction) so the initial random weights carry no weight even in a short run.
    A step only folds the weights into running sums; :meth:`averaged` writes the average (and the
    model's current buffers) into a copy of the model when it is read.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        self.source = model
        self._copy = copy.deepcopy(model)
        self._copy.requires_grad_(False)
        self._sums = [torch.zeros_like(p) for p in self._copy.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        """Fold in the source model's weights after one more step."""
        self.steps += 1
        for total, new in zip(self._sums, self.source.parameters(), strict=True):
            total.lerp_(new.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def averaged(self) -> nn.Module:
        """The copy of the model holding the average of the steps so far (the source's
        buffers); the source itself when no step was taken."""
        if self.steps == 0:
            return self.source
        scale = 1.0 / (1.0 - self.decay**self.steps)
        for total, avg in zip(self._sums, self._copy.parameters(), strict=True):
            torch.mul(total, scale, out=avg)
        for avg_buffer, buffer in zip(self._copy.buffers(), self.source.buffers(), strict=True):
            avg_buffer.copy_(buffer)
        return self._copy


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: its shard of the rows, DDP-wrapped model, epochs of AdamW
    (weight decay), validating the moving average of the weights when `ema_decay` is set."""
    import ray.train
    import ray.train.torch

    cfg = FeedrankConfig.model_validate(config["cfg"])
    if not cfg.ranker.use_gpu:
        torch.set_num_threads(max(1, config["threads_per_worker"]))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    arrays = np.load(config["arrays_path"])
    inputs_all = [arrays[f"{name}_train"] for name in config["inputs"]]
    y_all = arrays["y_train"]
    # The last 5% of training rows (by time) check for overfitting; they are not trained on.
    cut = int(len(y_all) * 0.95)
    inputs_train = [values[rank:cut:world] for values in inputs_all]
    y_train = y_all[rank:cut:world]
    w_train = arrays["w_train"][rank:cut:world]
    inputs_val = tuple(torch.from_numpy(values[cut:]).to(device) for values in inputs_all)
    y_val = torch.from_numpy(y_all[cut:]).to(device)

    normalizer = FeatureNormalizer(
        torch.tensor(config["norm_mean"]),
        torch.tensor(config["norm_std"]),
        torch.tensor(config["norm_log_mask"]),
    )
    torch.manual_seed(cfg.world.seed)  # same initial weights on every worker
    ranker = RankerBundle.build(cfg.ranker, cfg.encoder.embedding_dim, normalizer)
    if ranker.sparse is not None:
        ranker.sparse.restrict_to(torch.from_numpy(arrays["sparse_known"]))
    model: nn.Module = ray.train.torch.prepare_model(ranker)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.ranker.lr, weight_decay=cfg.ranker.weight_decay
    )
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    average = WeightAverage(inner, cfg.ranker.ema_decay) if cfg.ranker.ema_decay > 0 else None
    batch = cfg.ranker.batch_size
    generator = np.random.default_rng(cfg.world.seed + rank)
    # The epoch with the lowest validation loss is the one kept (early stopping without a stop:
    # later epochs that only memorize ids do not replace it).
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(cfg.ranker.epochs):
        started, losses = time.perf_counter(), []
        order = generator.permutation(len(y_train))
        for step, lo in enumerate(range(0, len(order), batch)):
            index = order[lo : lo + batch]
            inputs = tuple(torch.from_numpy(values[index]).to(device) for values in inputs_train)
            yb = torch.from_numpy(y_train[index]).to(device)
            wb = torch.from_numpy(w_train[index]).to(device)
            losses.append(train_step(model, optimizer, inputs, yb, cfg.ranker, wb))
            if average is not None:
                average.update()
            if rank == 0 and step % 100 == 0:
                log.info("ranker: epoch %d step %d loss %.4f", epoch, step, losses[-1])
        metrics = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "epoch_seconds": time.perf_counter() - started,
            "rows_per_second": len(y_train) / (time.perf_counter() - started),
        }
        kept = inner if average is None else average.averaged()
        metrics |= {
            f"val_{k}": v for k, v in eval_step(kept, inputs_val, y_val, cfg.ranker).items()
        }
        if best is None or metrics["val_loss"] < best[0]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in kept.state_dict().items()}
            best = (metrics["val_loss"], epoch, state)
        metrics["best_epoch"] = best[1]
        last = epoch == cfg.ranker.epochs - 1
        if rank == 0 and last:
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(best[2], Path(tmp) / "model.pt")
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)


def train_ranker(cfg: FeedrankConfig) -> dict[str, Any]:
    """Fit the ranker with a TorchTrainer; save a RankerBundle under models/ranker; return metrics."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipelines.train.ray_runtime import ray_session

    sizes = prepare_arrays(cfg)
    arrays = np.load(cfg.paths.ranker_arrays(cfg.ranker.feature_set))
    mask = log_mask(cfg.encoder.embedding_dim, cfg.ranker.feature_set)
    normalizer = FeatureNormalizer.fit(arrays["x_train"], mask)
    workers = cfg.ranker.num_workers
    loop_config = {
        "cfg": cfg.model_dump(mode="json", by_alias=True),
        "arrays_path": str(cfg.paths.ranker_arrays(cfg.ranker.feature_set)),
        "inputs": list(model_inputs(cfg.ranker)),
        "norm_mean": normalizer.mean.tolist(),
        "norm_std": normalizer.std.tolist(),
        "norm_log_mask": mask.tolist(),
        "threads_per_worker": max(1, (torch.get_num_threads() or 2) // workers),
    }
    started = time.perf_counter()
    with ray_session(cfg):
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=loop_config,
            scaling_config=ScalingConfig(
                num_workers=workers,
                use_gpu=cfg.ranker.use_gpu,
                resources_per_worker=None if cfg.ranker.use_gpu else {"CPU": 1},
            ),
            run_config=RunConfig(
                name=f"ranker-{int(time.time())}",
                storage_path=str(cfg.paths.ray_results),
            ),
        )
        result = trainer.fit()
    seconds = time.perf_counter() - started
    if result.checkpoint is None:
        raise RuntimeError(f"ranker training produced no checkpoint (error: {result.error})")
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / "model.pt", map_location="cpu", weights_only=True)
    model = RankerBundle.build(cfg.ranker, cfg.encoder.embedding_dim, normalizer)
    model.load_state_dict(state)
    meta = {
        "heads": list(cfg.ranker.heads),
        "embedding_dim": cfg.encoder.embedding_dim,
        "ranker": cfg.ranker.model_dump(mode="json"),
        "sparse_fields": sparse_meta() if cfg.ranker.uses_sparse else [],
        "feature_names": list(feature_names(cfg.encoder.embedding_dim, cfg.ranker.feature_set)),
        "trained_rows": sizes["train_rows"],
    }
    bundle_dir = RankerBundle(model, meta).save(cfg.paths.ranker_dir(cfg.ranker.feature_set))
    history = (
        result.metrics_dataframe.to_dict("records") if result.metrics_dataframe is not None else []
    )
    summary = {
        "seconds": seconds,
        "train_rows": sizes["train_rows"],
        "test_rows": sizes["test_rows"],
        "final": result.metrics or {},
        "history": history,
        "bundle_dir": str(bundle_dir),
    }
    (bundle_dir / "training.json").write_text(json.dumps(summary, indent=2, default=float))
    log.info(
        "ranker: trained in %.1f s on %d rows: %s", seconds, sizes["train_rows"], result.metrics
    )
    return summary
