"""Distributed training of the multi-task ranker with Ray Train (TorchTrainer, DDP).

The loop does not know the model: `train_step` / `eval_step` call any module as ``model(*inputs)``
and expect ``{head: logits}``, and :func:`train_ranker` assembles the TorchTrainer in one place. The
driver turns the training set into arrays once (``ranker_arrays.npz``: ``x`` dense features, ``s``
sparse ids when the ranker uses them, ``y`` labels, per split); each worker reads its shard from there.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from pipelines.config import FeedrankConfig, RankerConfig
from pipelines.handoffs import RankerTraining, TrainingSetDays
from pipelines.inputs.sparse import sparse_ids
from pipelines.inputs.spec import feature_matrix, feature_names, log_mask
from pipelines.models.bundle import RankerBundle, sparse_meta
from pipelines.models.losses import downsampling_weights, multitask_loss
from pipelines.models.masknet import FeatureNormalizer

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "model.pt"  # the best epoch's state_dict in the run's checkpoint


def model_inputs(ranker: RankerConfig) -> tuple[str, ...]:
    """The arrays the ranker is called with, in call order: ``x`` [N, F] and, if sparse, ``s`` [N, S].

    ``prepare_arrays`` stores ``<name>_<split>`` for each; the loop feeds ``model(*inputs)``.
    """
    return ("x", "s") if ranker.uses_sparse else ("x",)


def prepare_arrays(cfg: FeedrankConfig, training_set: Path | None = None) -> dict[str, int]:
    """Training set parquet (default: the feed's) -> x (and s) / y arrays per split, in the
    model's feature order, at ``cfg.paths.ranker_arrays`` of the ranker's feature set."""
    frame = pd.read_parquet(training_set or cfg.paths.training_set)
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


Tensors = list[Tensor] | tuple[Tensor, ...]


def bias_corrected_ema(decay: float) -> Callable[[Tensors, Tensors, Tensor | int], None]:
    """An ``AveragedModel`` ``multi_avg_fn``: the exponential moving average with Adam's bias
    correction, ``avg_t = sum_i (1 - d) d^(t - i) w_i / (1 - d^t)``.

    As a running update that is ``avg_t = avg_{t-1} + (w_t - avg_{t-1}) (1 - d) / (1 - d^t)``;
    at t = 1 the share is 1 and the average is the first weights exactly (``AveragedModel``
    copies them at its first update), so the random start carries no weight even in a short run.
    """

    @torch.no_grad()
    def update(averaged: Tensors, current: Tensors, num_averaged: Tensor | int) -> None:
        step = int(num_averaged) + 1  # the update that this call makes, counting from 1
        # One fused kernel over all (float) tensors of a device and dtype, as torch's own EMA.
        torch._foreach_lerp_(averaged, current, (1.0 - decay) / (1.0 - decay**step))

    return update


class WeightAverage:
    """The exponential moving average of a model's weights, a smoother model than the last step's.

    A ``torch.optim.swa_utils.AveragedModel`` over :func:`bias_corrected_ema`: each step's weights
    weighted by ``decay`` per step since, over the last ~1 / (1 - decay) steps. It averages the
    model's parameters as one flat ``ParameterList`` (the same tensors): a step then costs one
    fused update, not four walks of the module tree and a copy of every buffer.
    :meth:`averaged` writes the average, and the model's current buffers, into a copy of the
    model when it is read (once per epoch).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.source = model
        self._weights = nn.ParameterList(model.parameters())
        self._average = AveragedModel(self._weights, multi_avg_fn=bias_corrected_ema(decay))
        self._copy = copy.deepcopy(model).requires_grad_(False)

    def update(self) -> None:
        """Fold in the source model's weights after one more step."""
        self._average.update_parameters(self._weights)

    @torch.no_grad()
    def averaged(self) -> nn.Module:
        """The copy of the model holding the average of the steps so far (the source's
        buffers); the source itself when no step was taken."""
        if not int(self._average.n_averaged):
            return self.source
        torch._foreach_copy_(list(self._copy.parameters()), list(self._average.module.parameters()))
        for average_buffer, buffer in zip(self._copy.buffers(), self.source.buffers(), strict=True):
            average_buffer.copy_(buffer)
        return self._copy


@dataclass
class RankerShard:
    """One worker's rows: its share of the training rows (numpy, batched on demand) and every
    validation row (tensors on the device).

    The last 5% of training rows (by time) check for overfitting; no worker trains on them.
    """

    inputs: list[np.ndarray]  # model inputs in call order: x [n, F] (and ids [n, S])
    y: np.ndarray  # [n, H] labels
    weights: np.ndarray  # [n, H] downsampling loss weights
    inputs_val: tuple[Tensor, ...]
    y_val: Tensor  # [V, H]

    @classmethod
    def load(
        cls,
        arrays_path: str,
        inputs: Sequence[str],
        validation_share: float,
        rank: int,
        world: int,
        device: torch.device,
    ) -> RankerShard:
        arrays = np.load(arrays_path)
        inputs_all = [arrays[f"{name}_train"] for name in inputs]
        y_all = arrays["y_train"]
        cut = int(len(y_all) * (1.0 - validation_share))
        return cls(
            inputs=[values[rank:cut:world] for values in inputs_all],
            y=y_all[rank:cut:world],
            weights=arrays["w_train"][rank:cut:world],
            inputs_val=tuple(torch.from_numpy(values[cut:]).to(device) for values in inputs_all),
            y_val=torch.from_numpy(y_all[cut:]).to(device),
        )

    def batches(
        self, order: np.ndarray, size: int, device: torch.device
    ) -> Iterator[tuple[tuple[Tensor, ...], Tensor, Tensor]]:
        """``(inputs, y [B, H], weights [B, H])`` on the device, ``size`` rows at a time in
        ``order``."""
        for lo in range(0, len(order), size):
            index = order[lo : lo + size]
            yield (
                tuple(torch.from_numpy(values[index]).to(device) for values in self.inputs),
                torch.from_numpy(self.y[index]).to(device),
                torch.from_numpy(self.weights[index]).to(device),
            )


@dataclass
class BestEpoch:
    """The epoch with the lowest validation loss so far, and its weights (on the CPU)."""

    val_loss: float
    epoch: int
    state: dict[str, Tensor]


def worker_model(cfg: FeedrankConfig, config: Mapping[str, Any]) -> nn.Module:
    """The ranker a worker trains: the driver's normalizer, embedding only the known sparse ids."""
    normalizer = FeatureNormalizer(
        torch.tensor(config["norm_mean"]),
        torch.tensor(config["norm_std"]),
        torch.tensor(config["norm_log_mask"]),
    )
    torch.manual_seed(cfg.world.seed)  # same initial weights on every worker
    ranker = RankerBundle.build(cfg.ranker, cfg.encoder.embedding_dim, normalizer)
    if ranker.sparse is not None:
        ranker.sparse.restrict_to(torch.from_numpy(np.load(config["arrays_path"])["sparse_known"]))
    return ranker


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[tuple[Tensor, ...], Tensor, Tensor]],
    ranker: RankerConfig,
    average: WeightAverage | None,
    progress: str | None,
) -> list[float]:
    """One pass over ``batches``: a :func:`train_step` each, folded into ``average``; the batch
    losses. Logs every 100th step under the ``progress`` prefix (None: silent)."""
    losses: list[float] = []
    for step, (inputs, y, weights) in enumerate(batches):
        losses.append(train_step(model, optimizer, inputs, y, ranker, weights))
        if average is not None:
            average.update()
        if progress is not None and step % 100 == 0:
            log.info("ranker: %s step %d loss %.4f", progress, step, losses[-1])
    return losses


def keep_best(best: BestEpoch | None, val_loss: float, epoch: int, model: nn.Module) -> BestEpoch:
    """``best``, or this epoch's weights when its validation loss is lower (early stopping
    without a stop: later epochs that only memorize ids do not replace it)."""
    if best is not None and val_loss >= best.val_loss:
        return best
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return BestEpoch(val_loss, epoch, state)


def report_epoch(metrics: dict[str, Any], best: BestEpoch, checkpoint: bool) -> None:
    """Report an epoch's metrics to Ray Train, with the best weights as a checkpoint if asked."""
    import ray.train

    if not checkpoint:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(best.state, Path(tmp) / CHECKPOINT_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: its shard of the rows, DDP-wrapped model, epochs of AdamW
    (weight decay), validating the moving average of the weights when `ema_decay` is set.

    Rank 0 reports the best epoch's weights as a checkpoint after the last epoch.
    """
    import ray.train
    import ray.train.torch

    cfg = FeedrankConfig.model_validate(config["cfg"])
    if not cfg.ranker.use_gpu:
        torch.set_num_threads(max(1, config["threads_per_worker"]))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    shard = RankerShard.load(
        config["arrays_path"], config["inputs"], cfg.ranker.validation_share, rank, world, device
    )
    model: nn.Module = ray.train.torch.prepare_model(worker_model(cfg, config))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.ranker.lr, weight_decay=cfg.ranker.weight_decay
    )
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    average = WeightAverage(inner, cfg.ranker.ema_decay) if cfg.ranker.ema_decay > 0 else None
    generator = np.random.default_rng(cfg.world.seed + rank)
    best: BestEpoch | None = None
    for epoch in range(cfg.ranker.epochs):
        started = time.perf_counter()
        order = generator.permutation(len(shard.y))
        batches = shard.batches(order, cfg.ranker.batch_size, device)
        progress = f"epoch {epoch}" if rank == 0 else None
        losses = train_epoch(model, optimizer, batches, cfg.ranker, average, progress)
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "epoch_seconds": time.perf_counter() - started,
            "rows_per_second": len(shard.y) / (time.perf_counter() - started),
        }
        kept = inner if average is None else average.averaged()
        validation = eval_step(kept, shard.inputs_val, shard.y_val, cfg.ranker)
        metrics |= {f"val_{k}": v for k, v in validation.items()}
        best = keep_best(best, metrics["val_loss"], epoch, kept)
        metrics["best_epoch"] = best.epoch
        report_epoch(metrics, best, checkpoint=rank == 0 and epoch == cfg.ranker.epochs - 1)


def loop_config(
    cfg: FeedrankConfig, normalizer: FeatureNormalizer, mask: np.ndarray
) -> dict[str, Any]:
    """What every worker needs, as JSON-like values: the config, where the arrays are, the
    model's inputs and the driver's normalizer statistics."""
    return {
        "cfg": cfg.model_dump(mode="json", by_alias=True),
        "arrays_path": str(cfg.paths.ranker_arrays(cfg.ranker.feature_set)),
        "inputs": list(model_inputs(cfg.ranker)),
        "norm_mean": normalizer.mean.tolist(),
        "norm_std": normalizer.std.tolist(),
        "norm_log_mask": mask.tolist(),
        "threads_per_worker": max(1, (torch.get_num_threads() or 2) // cfg.ranker.num_workers),
    }


def save_bundle(
    cfg: FeedrankConfig, state: dict[str, Tensor], normalizer: FeatureNormalizer, train_rows: int
) -> Path:
    """The trained weights as a RankerBundle under ``cfg.paths.ranker_dir``; its directory."""
    model = RankerBundle.build(cfg.ranker, cfg.encoder.embedding_dim, normalizer)
    model.load_state_dict(state)
    meta = {
        "heads": list(cfg.ranker.heads),
        "embedding_dim": cfg.encoder.embedding_dim,
        "ranker": cfg.ranker.model_dump(mode="json"),
        "sparse_fields": sparse_meta() if cfg.ranker.uses_sparse else [],
        "feature_names": list(feature_names(cfg.encoder.embedding_dim, cfg.ranker.feature_set)),
        "trained_rows": train_rows,
    }
    return RankerBundle(model, meta).save(cfg.paths.ranker_dir(cfg.ranker.feature_set))


def train_ranker(cfg: FeedrankConfig) -> dict[str, Any]:
    """Fit the ranker with a TorchTrainer; save a RankerBundle under models/ranker; return metrics."""
    return fit_ranker(cfg, cfg.paths.training_set, RankerTraining).model_dump()


def fit_ranker(
    cfg: FeedrankConfig, training_set: Path, handoff: type[RankerTraining]
) -> RankerTraining:
    """Fit `cfg.ranker` on a training set parquet with a TorchTrainer, save its RankerBundle
    under ``cfg.paths.ranker_dir`` of its feature set and write the `handoff` (the feed's
    `RankerTraining`, or a subclass bound to another path) that it returns."""
    from pipelines.ray_runtime import ray_session
    from pipelines.train.trainer import fit

    sizes = prepare_arrays(cfg, training_set)
    days = TrainingSetDays.read(cfg)  # the days the arrays come from, for the hand-off
    arrays = np.load(cfg.paths.ranker_arrays(cfg.ranker.feature_set))
    mask = log_mask(cfg.encoder.embedding_dim, cfg.ranker.feature_set)
    normalizer = FeatureNormalizer.fit(arrays["x_train"], mask)
    started = time.perf_counter()
    with ray_session(cfg):
        result = fit(
            train_loop_per_worker,
            loop_config(cfg, normalizer, mask),
            workers=cfg.ranker.num_workers,
            use_gpu=cfg.ranker.use_gpu,
            run_name=f"ranker{_feature_set_tag(cfg.ranker.feature_set)}-{int(time.time())}",
            storage=cfg.paths.ray_results,
            keep=1,  # the loop reports one checkpoint: the best epoch's, after the last
        )
    seconds = time.perf_counter() - started
    if result.checkpoint is None:
        raise RuntimeError(f"ranker training produced no checkpoint (error: {result.error})")
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    bundle_dir = save_bundle(cfg, state, normalizer, sizes["train_rows"])
    history = (
        result.metrics_dataframe.to_dict("records") if result.metrics_dataframe is not None else []
    )
    summary = handoff(
        seconds=seconds,
        train_rows=sizes["train_rows"],
        test_rows=sizes["test_rows"],
        final=result.metrics or {},
        history=history,
        bundle_dir=str(bundle_dir),
        train_days=days.train_days,
        holdout_days=days.holdout_days,
        served_holdout=days.served_holdout,
    )
    summary.write(cfg)
    log.info(
        "ranker (%s): trained in %.1f s on %d rows: %s",
        cfg.ranker.feature_set,
        seconds,
        sizes["train_rows"],
        result.metrics,
    )
    return summary


def _feature_set_tag(feature_set: str) -> str:
    """The run-name tag of a feature set's ranker: none for the feed's full set."""
    return "" if feature_set == "full" else f"-{feature_set}"
