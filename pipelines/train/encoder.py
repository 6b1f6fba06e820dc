"""Fine-tune the tweet text encoder on engagement with Ray Train (two-tower, in-batch negatives).

Data: a parquet of training pairs, one per engagement whose viewer had engaged before:
``history`` (list<string>, the viewer's last H engaged tweet texts strictly before it, most recent
last), ``target`` (string, the engaged tweet's text), ``target_log_q`` (float, log of the target
tweet's share among all pair targets, for the logQ correction). :func:`build_pairs` makes it.

Training: :func:`train_encoder` fits through :func:`pipelines.train.trainer.fit`; every worker runs
:func:`train_loop_per_worker` on its rank's shard of the pairs (DDP via ``prepare_model``).
Checkpoints hold the trainable weights and optimizer state (``train_state.pt``) so a run with the
same name resumes where it stopped; the final one also holds the self-contained embedder directory
(``embedder/``, see :class:`~pipelines.models.text_encoder.TextEmbedder`), which is copied out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from ray.train import Checkpoint
from torch import Tensor, nn

from pipelines.config import EncoderConfig, FeedrankConfig
from pipelines.handoffs import EncoderTraining
from pipelines.models.text_encoder import (
    EMBEDDER_META,
    TextEmbedder,
    TweetEncoder,
    TwoTower,
    in_batch_softmax_loss,
    load_tokenizer,
    resolve_model_path,
)
from pipelines.ray_runtime import init_ray
from pipelines.train.trainer import fit

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ("history", "target", "target_log_q")
TRAIN_STATE = "train_state.pt"
TRAIN_SUMMARY = "summary.json"
EMBEDDER_DIR = "embedder"
REPORT_EVERY = 10  # steps between loss reports (and progress lines)
GRAD_CLIP_NORM = 1.0


# --------------------------------------------------------------------------------------------
# Training pairs
# --------------------------------------------------------------------------------------------


def build_pairs(
    engagements: pd.DataFrame,
    tweets_text: Mapping[int, str] | pd.Series,
    history_size: int,
) -> pd.DataFrame:
    """Training pairs (viewer history → engaged tweet) from an engagement log, leak-free.

    engagements: columns viewer_id, tweet_id, engaged_at (one row per engagement).
    tweets_text: tweet_id → text; engagements with tweets of unknown text are dropped first.
    Returns one row per engagement whose viewer engaged at least once strictly before it:
    viewer_id, tweet_id, engaged_at, ``history`` (texts of the viewer's previous ≤ H engagements,
    strictly earlier in time, most recent last), ``history_tweet_ids`` (their ids), ``target``
    (the engaged tweet's text) and ``target_log_q`` (log of the target's share of all pairs).
    Engagements at the same instant never see each other.
    """
    text_of = pd.Series(tweets_text) if not isinstance(tweets_text, pd.Series) else tweets_text
    log = engagements.loc[engagements["tweet_id"].isin(text_of.index)]
    log = log.sort_values(["viewer_id", "engaged_at"], kind="stable").reset_index(drop=True)
    viewers = log["viewer_id"].to_numpy()
    times = log["engaged_at"].to_numpy()
    tweet_ids = log["tweet_id"].to_numpy()
    positions = np.arange(len(log))
    new_viewer = np.ones(len(log), dtype=bool)
    new_viewer[1:] = viewers[1:] != viewers[:-1]
    new_instant = new_viewer.copy()
    new_instant[1:] |= times[1:] != times[:-1]
    # First row of the viewer and of its (viewer, instant): the history is [both starts).
    viewer_start = np.maximum.accumulate(np.where(new_viewer, positions, 0))
    instant_start = np.maximum.accumulate(np.where(new_instant, positions, 0))
    history_start = np.maximum(viewer_start, instant_start - history_size)
    keep = np.flatnonzero(instant_start > viewer_start)

    texts = text_of.reindex(tweet_ids).to_numpy()
    histories = [list(texts[history_start[i] : instant_start[i]]) for i in keep]
    history_ids = [tweet_ids[history_start[i] : instant_start[i]].tolist() for i in keep]
    pairs = log.loc[keep, ["viewer_id", "tweet_id", "engaged_at"]].reset_index(drop=True)
    pairs["history"] = pd.Series(histories, dtype=object)
    pairs["history_tweet_ids"] = pd.Series(history_ids, dtype=object)
    pairs["target"] = texts[keep]
    share = pairs["tweet_id"].map(pairs["tweet_id"].value_counts(normalize=True))
    pairs["target_log_q"] = np.log(share.to_numpy(dtype=np.float64))
    return pairs


def write_training_pairs(cfg: FeedrankConfig, path: Path, workers: int | None = None) -> int:
    """The fine-tuning pairs, written to `path` (parquet); returns how many.

    Engagements before the held-out days only (nothing the evaluation scores leaks in), built by
    :func:`build_pairs`, then a seeded sample of at most train_steps · batch_size · workers · 4
    pairs (`workers`: default `encoder.num_workers`).
    """
    from pipelines.features.batch import engagement_events
    from pipelines.features.training_set import split_boundary
    from pipelines.schema import read_table

    enc = cfg.encoder
    tweets = read_table(cfg.paths.raw, "tweets")
    events = engagement_events(read_table(cfg.paths.raw, "impressions"), tweets)
    events = events[events["at"] < split_boundary(cfg)]
    engagements = events.rename(columns={"at": "engaged_at"})[
        ["viewer_id", "tweet_id", "engaged_at"]
    ]
    pairs = build_pairs(engagements, tweets.set_index("tweet_id")["text"], enc.history_size)
    needed = enc.train_steps * enc.batch_size * (workers or enc.num_workers) * 4
    if len(pairs) > needed:
        pairs = pairs.sample(needed, random_state=cfg.world.seed).sort_values("engaged_at")
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs[["history", "target", "target_log_q"]].to_parquet(path, index=False)
    return len(pairs)


def collate_pairs(
    tokenizer: Any,
    histories: Sequence[Sequence[str]],
    targets: Sequence[str],
    history_size: int,
    max_seq_len: int,
) -> dict[str, Tensor]:
    """Tokenize a batch of pairs into the TwoTower inputs.

    Returns history_ids / history_mask [B, H, T] (missing history slots are all-zero masks) and
    target_ids / target_mask [B, T]; one tokenizer call, so history and target share T.
    """
    batch = len(targets)
    slots = [
        (row * history_size + slot, text)
        for row, history in enumerate(histories)
        for slot, text in enumerate(list(history)[-history_size:])
    ]
    encoded = tokenizer(
        list(targets) + [text for _, text in slots],
        padding=True,
        truncation=True,
        max_length=max_seq_len,
        return_tensors="pt",
    )
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    tokens = ids.shape[1]
    history_ids = torch.zeros(batch * history_size, tokens, dtype=ids.dtype)
    history_mask = torch.zeros(batch * history_size, tokens, dtype=mask.dtype)
    if slots:
        index = torch.tensor([position for position, _ in slots])
        history_ids[index] = ids[batch:]
        history_mask[index] = mask[batch:]
    return {
        "history_ids": history_ids.reshape(batch, history_size, tokens),
        "history_mask": history_mask.reshape(batch, history_size, tokens),
        "target_ids": ids[:batch],
        "target_mask": mask[:batch],
    }


def sample_batch(
    targets: np.ndarray, batch_size: int, seed: int, rank: int, step: int
) -> np.ndarray:
    """Row indices of one batch, with distinct targets (a repeated target is a false negative).

    Deterministic in (seed, rank, step), so a resumed run draws the batches it would have drawn.
    """
    rng = np.random.default_rng([seed, rank, step])
    order = rng.permutation(len(targets))
    _, first = np.unique(targets[order], return_index=True)
    return order[np.sort(first)][:batch_size]


# --------------------------------------------------------------------------------------------
# Steps and the per-worker loop
# --------------------------------------------------------------------------------------------


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Mapping[str, Tensor],
    temperature: float,
    scaler: torch.amp.GradScaler,
    autocast_dtype: torch.dtype | None,
) -> float:
    """One optimizer step on a batch (tensors already on the model's device); returns the loss.

    ``autocast_dtype`` None = full precision (CPU); on GPU bf16 (or fp16 with the grad scaler).
    The loss itself is computed in fp32 outside autocast.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    device_type = batch["target_ids"].device.type
    amp = (
        torch.autocast(device_type=device_type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else nullcontext()
    )
    with amp:
        viewer, tweet = model(
            batch["history_ids"], batch["history_mask"], batch["target_ids"], batch["target_mask"]
        )
    loss = in_batch_softmax_loss(viewer.float(), tweet.float(), temperature, batch["log_q"])
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    torch.nn.utils.clip_grad_norm_(trainable, GRAD_CLIP_NORM)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _unwrap(model: nn.Module) -> TwoTower:
    """The TwoTower inside a DDP wrapper (or the model itself)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, TwoTower):
        raise TypeError(f"expected a TwoTower, got {type(inner).__name__}")
    return inner


def _mean_over_workers(total: float, count: int, device: torch.device) -> float:
    """Mean of a per-worker sum over all workers' counts (all-reduce when distributed)."""
    values = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values)
    return float(values[0] / values[1].clamp(min=1.0))


def _precision(use_gpu: bool) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """Mixed precision on GPU only: bf16 where supported, else fp16 with a grad scaler."""
    if not (use_gpu and torch.cuda.is_available()):
        return None, torch.amp.GradScaler("cpu", enabled=False)
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)
    return torch.float16, torch.amp.GradScaler("cuda", enabled=True)


class _PairShard:
    """This rank's rows of the pairs (every world_size-th row) and their batches."""

    def __init__(self, pairs_path: str, rank: int, world_size: int, enc: EncoderConfig) -> None:
        pairs = pd.read_parquet(pairs_path, columns=list(PAIR_COLUMNS))
        if len(pairs) < world_size * 2:
            raise ValueError(
                f"{pairs_path} has {len(pairs)} pairs: too few for {world_size} workers"
            )
        shard = pairs.iloc[rank::world_size]
        self.histories = [list(history) for history in shard["history"]]
        self.targets = shard["target"].to_numpy()
        self.log_q = shard["target_log_q"].to_numpy(dtype=np.float32)
        self.rank, self.enc = rank, enc

    def batch(self, tokenizer: Any, step: int, seed: int) -> dict[str, Tensor]:
        """The step's batch: TwoTower inputs (see :func:`collate_pairs`) and log_q [B]."""
        rows = sample_batch(self.targets, self.enc.batch_size, seed, self.rank, step)
        batch = collate_pairs(
            tokenizer,
            [self.histories[row] for row in rows],
            list(self.targets[rows]),
            self.enc.history_size,
            self.enc.max_seq_len,
        )
        batch["log_q"] = torch.from_numpy(self.log_q[rows])
        return batch


class _Checkpointer:
    """Writes and reads the run's checkpoints.

    ``train_state.pt`` holds only the trainable weights (the frozen ones are the pretrained
    weights), the optimizer and scaler state and the progress (step, loss curve); the final
    checkpoint also holds the self-contained ``embedder/`` directory and ``summary.json``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        tokenizer: Any,
        enc: EncoderConfig,
    ) -> None:
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.tokenizer, self.enc = tokenizer, enc

    @staticmethod
    def read(checkpoint: Checkpoint) -> dict[str, Any]:
        with checkpoint.as_directory() as directory:
            state: dict[str, Any] = torch.load(Path(directory) / TRAIN_STATE, weights_only=True)
        return state

    def restore(self, state: Mapping[str, Any]) -> None:
        """Optimizer and scaler state (weights are loaded before DDP wraps the model)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])

    def report(self, rank: int, progress: dict[str, Any], save: bool) -> None:
        """``ray.train.report`` on every worker (it is a barrier); rank 0 attaches a checkpoint."""
        metrics = {"step": progress["step"], "loss": progress["curve"][-1]["loss"]}
        if not (save and rank == 0):
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            self._write(Path(tmp), progress, final=progress["step"] >= self.enc.train_steps)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))

    def _write(self, directory: Path, progress: dict[str, Any], final: bool) -> None:
        two_tower = _unwrap(self.model)
        trainable = {
            name: param.detach().cpu().clone()
            for name, param in two_tower.named_parameters()
            if param.requires_grad
        }
        state = {
            "trainable": trainable,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            **progress,
        }
        torch.save(state, directory / TRAIN_STATE)
        (directory / TRAIN_SUMMARY).write_text(json.dumps(progress, indent=2))
        if final:
            device = str(next(two_tower.parameters()).device)
            embedder = TextEmbedder(
                self.tokenizer,
                two_tower.encoder,
                self.enc.max_seq_len,
                two_tower.viewer_head,
                device,
            )
            embedder.save(directory / EMBEDDER_DIR)


def _pretrained_two_tower(
    enc: EncoderConfig, resume: Mapping[str, Any] | None
) -> tuple[TwoTower, Any]:
    """The two-tower on the pretrained encoder (lower layers frozen) and its tokenizer, with the
    trainable weights of ``resume`` (a checkpoint's state) when resuming."""
    model_path = resolve_model_path(enc)
    tokenizer = load_tokenizer(model_path)
    two_tower = TwoTower(TweetEncoder.from_pretrained(model_path, enc.embedding_dim))
    two_tower.encoder.freeze_lower_layers(enc.trainable_layers)
    if resume is not None:
        two_tower.load_state_dict(resume["trainable"], strict=False)
    return two_tower, tokenizer


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: shard, model, optimizer, steps, reports, checkpoints (resumable).

    config: ``encoder`` (EncoderConfig as a dict), ``pairs_path``, ``seed``, ``checkpoint_every``
    (steps between intermediate checkpoints, None = final only).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    enc = EncoderConfig.model_validate(config["encoder"])
    seed, checkpoint_every = int(config["seed"]), config["checkpoint_every"]
    context = ray.train.get_context()
    rank = context.get_world_rank()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(1)  # one core per worker; more threads only fight each other
    torch.manual_seed(seed)

    shard = _PairShard(config["pairs_path"], rank, context.get_world_size(), enc)
    checkpoint = ray.train.get_checkpoint()
    resume = _Checkpointer.read(checkpoint) if checkpoint is not None else None
    two_tower, tokenizer = _pretrained_two_tower(enc, resume)
    model = ray.train.torch.prepare_model(two_tower)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=enc.lr)
    autocast_dtype, scaler = _precision(enc.use_gpu)
    checkpointer = _Checkpointer(model, optimizer, scaler, tokenizer, enc)
    start = int(resume["step"]) if resume is not None else 0
    progress: dict[str, Any] = {
        "step": start,
        "curve": list(resume["curve"]) if resume is not None else [],
        "resumed_from_step": start,
        "step_seconds": None,
    }
    if resume is not None:
        checkpointer.restore(resume)
        if rank == 0:
            logger.info("[encoder] resumed at step %d/%d", start, enc.train_steps)
    if start >= enc.train_steps:  # a finished run: hand its result on again
        checkpointer.report(rank, progress, save=True)
        return

    interval_loss, interval_steps, busy_seconds = 0.0, 0, 0.0
    for step in range(start + 1, enc.train_steps + 1):
        tic = time.perf_counter()
        batch = {k: v.to(device) for k, v in shard.batch(tokenizer, step, seed).items()}
        loss = train_step(model, optimizer, batch, enc.temperature, scaler, autocast_dtype)
        busy_seconds += time.perf_counter() - tic
        interval_loss, interval_steps = interval_loss + loss, interval_steps + 1
        last = step == enc.train_steps
        save = last or (checkpoint_every is not None and step % checkpoint_every == 0)
        if not (save or step == 1 or step % REPORT_EVERY == 0):
            continue
        mean_loss = _mean_over_workers(interval_loss, interval_steps, device)
        interval_loss, interval_steps = 0.0, 0
        progress["step"], progress["step_seconds"] = step, busy_seconds / (step - start)
        progress["curve"].append({"step": step, "loss": mean_loss})
        if rank == 0:
            logger.info(
                "[encoder] step %d/%d loss %.4f (%.2f s/step)",
                step,
                enc.train_steps,
                mean_loss,
                progress["step_seconds"],
            )
        checkpointer.report(rank, progress, save)


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


def default_run_name(cfg: FeedrankConfig, pairs_path: Path) -> str:
    """Run name from the encoder config and the pairs file's content: same inputs, same run.

    A rerun with the same name resumes from that run's latest checkpoint (a finished run just
    hands back its result); new pairs or new settings start a new run.
    """
    digest = hashlib.sha1(cfg.encoder.model_dump_json().encode())
    with Path(pairs_path).open("rb") as handle:
        digest.update(hashlib.file_digest(handle, "sha1").digest())
    return f"encoder-{cfg.name}-{digest.hexdigest()[:12]}"


def train_encoder(
    cfg: FeedrankConfig,
    pairs_path: Path,
    out_dir: Path,
    run_name: str | None = None,
    checkpoint_every: int | None = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Fine-tune the encoder with Ray Train and copy the final embedder directory to ``out_dir``.

    Starts (or joins) Ray via :func:`~pipelines.ray_runtime.init_ray` unless it is up.
    ``checkpoint_every``: steps between intermediate (resumable) checkpoints; None = final only.
    Checkpoints go to ``<state root>/ray_results/<run name>``: on a multi-node cluster that root
    must be shared storage.
    Returns loss_first (step 1), loss_last (mean of the last report interval), steps, seconds (wall
    time of the fit), step_seconds (mean per step on a worker), loss_curve ([{step, loss}] over
    all workers, for MLflow), resumed_from_step, run_name and out_dir.
    """
    pairs_path = Path(pairs_path).resolve()
    name = run_name or default_run_name(cfg, pairs_path)
    init_ray(cfg)
    tic = time.perf_counter()
    result = fit(
        train_loop_per_worker,
        {
            "encoder": cfg.encoder.model_dump(mode="json"),
            "pairs_path": str(pairs_path),
            "seed": seed,
            "checkpoint_every": checkpoint_every,
        },
        workers=cfg.encoder.num_workers,
        use_gpu=cfg.encoder.use_gpu,
        run_name=name,
        storage=cfg.paths.ray_results,
        keep=2,
    )
    seconds = time.perf_counter() - tic
    if result.checkpoint is None:
        raise RuntimeError(f"encoder run {name} finished without a checkpoint")
    summary = _copy_out(result.checkpoint, Path(out_dir))
    curve = summary["curve"]
    logger.info("encoder run %s: %d steps in %.1f s -> %s", name, summary["step"], seconds, out_dir)
    return {
        "loss_first": curve[0]["loss"],
        "loss_last": curve[-1]["loss"],
        "steps": summary["step"],
        "seconds": seconds,
        "step_seconds": summary.get("step_seconds"),
        "loss_curve": curve,
        "resumed_from_step": summary["resumed_from_step"],
        "run_name": name,
        "out_dir": str(out_dir),
    }


def train_text_encoder(cfg: FeedrankConfig) -> dict[str, Any]:
    """Fine-tune the two-tower text encoder on engagement pairs with Ray Train (the
    `train_encoder` step): pairs from the lake, the embedder to the artifact map's `encoder_dir`,
    how it went to the `EncoderTraining` hand-off."""
    from pipelines.ray_runtime import ray_session

    pairs = write_training_pairs(cfg, cfg.paths.encoder_pairs)
    with ray_session(cfg):
        result = train_encoder(cfg, cfg.paths.encoder_pairs, cfg.paths.encoder_dir)
    EncoderTraining(pairs=pairs, **result).write(cfg)
    return {k: result[k] for k in ("loss_first", "loss_last", "steps")} | {"pairs": pairs}


def _copy_out(checkpoint: Checkpoint, out_dir: Path) -> dict[str, Any]:
    """Copy the final checkpoint's embedder directory to ``out_dir`` (replacing an earlier
    embedder there, refusing any other content); the run's summary."""
    with checkpoint.as_directory() as ckpt_dir:
        summary: dict[str, Any] = json.loads((Path(ckpt_dir) / TRAIN_SUMMARY).read_text())
        if (out_dir / EMBEDDER_META).is_file():
            shutil.rmtree(out_dir)
        elif out_dir.exists() and any(out_dir.iterdir()):
            raise FileExistsError(f"{out_dir} is not empty and holds no text embedder")
        shutil.copytree(Path(ckpt_dir) / EMBEDDER_DIR, out_dir)
    return summary
