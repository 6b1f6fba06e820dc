"""Text encoder throughput: batch embedding (in process and with Ray Data) and Ray Train fine-tuning.

Measured in one run, on the world's tweet texts:

- embed: tweets/s of `TextEmbedder.embed` in this process (torch's default threads) for each
  `--batch-size`, on `--texts` tweets drawn at random. One warm-up call, then passes over the
  texts until MIN_EMBED_SECONDS of work (at least one pass). The pipeline's fine-tuned embedder
  when there is one, else the pretrained one (the same network, so the same cost).
- ray_data: tweets/s of `embed_texts` (the `embed` step's path: `encoder.num_workers` Ray Data
  actors, one torch thread each) on the same texts, one call, fine-tuned embedder only. Ray is
  already up: actor start-up and model loading count, Ray's own start does not.
- train: samples/s of the two-tower fine-tuning (`train_encoder`: Ray Train, one torch thread per
  worker) with 1 and then 2 workers, `--train-steps` steps each, on pairs built as the
  `train_encoder` step builds them. Each fit is a fresh run (nothing resumes; final checkpoint
  only) into a temp dir; its Ray results folder is removed afterwards. Samples = steps · batch ·
  workers; "wall" divides by the fit's wall time (worker start-up, model loading and the final
  checkpoint included), "step" by steps · the workers' mean busy seconds per step (batch
  building and the optimizer step only).

The machine's 1-minute load average at the start and the end is reported with the figures (other
work on the machine slows every figure). Prints progress and a table, then one line of JSON with
all the figures, last. Needs the world (`feedrank build-world`); the Ray Data figure needs the
fine-tuned encoder (`feedrank train-encoder`).
Usage: python benchmarks/encoder.py --config default --texts 2048 --train-steps 12
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.models.text_encoder import EMBEDDER_META, TextEmbedder
from pipelines.schema import read_table
from pipelines.train.encoder import write_training_pairs

DEFAULT_BATCH_SIZES = [32, 64, 128, 256, 512]
MIN_EMBED_SECONDS = 2.0  # per batch size: enough work to average out a noisy shared machine
TRAIN_WORKERS = (1, 2)


def sample_texts(tweets: pd.DataFrame, count: int, seed: int) -> list[str]:
    """`count` distinct tweets' texts drawn at random (all of them when there are fewer)."""
    texts = tweets.drop_duplicates("tweet_id")["text"]
    rng = np.random.default_rng(seed)
    return [str(texts.iloc[i]) for i in rng.permutation(len(texts))[:count]]


def embed_throughput(embedder: TextEmbedder, texts: list[str], batch_size: int) -> float:
    """Tweets/s of `embed` at `batch_size`: whole passes over `texts`, MIN_EMBED_SECONDS at least."""
    passes, started = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - started < MIN_EMBED_SECONDS:
        embedder.embed(texts, batch_size=batch_size)
        passes += 1
    return passes * len(texts) / (time.perf_counter() - started)


def train_throughput(
    cfg: FeedrankConfig, pairs_path: Path, out_root: Path, workers: int
) -> dict[str, float]:
    """One fresh fine-tuning run with `workers` Ray Train workers: samples/s, wall and per step."""
    from pipelines.train.encoder import train_encoder

    enc = cfg.encoder.model_copy(update={"num_workers": workers})
    run_cfg = cfg.model_copy(update={"encoder": enc})
    run_name = f"bench-encoder-{cfg.name}-{workers}w-{uuid.uuid4().hex[:8]}"
    try:
        summary = train_encoder(
            run_cfg, pairs_path, out_root / run_name, run_name=run_name, checkpoint_every=None
        )
    finally:
        shutil.rmtree(cfg.paths.ray_results / run_name, ignore_errors=True)
    steps, step_seconds = int(summary["steps"]), float(summary["step_seconds"])
    samples = steps * enc.batch_size * workers
    return {
        "samples_per_s": samples / float(summary["seconds"]),
        "step_samples_per_s": samples / (steps * step_seconds),
        "seconds": float(summary["seconds"]),
        "step_seconds": step_seconds,
    }


def main(
    config: str = typer.Option("default", "--config", "-c"),
    texts: int = typer.Option(2048, min=1, help="Tweet texts embedded per pass."),
    batch_sizes: list[int] = typer.Option(
        DEFAULT_BATCH_SIZES, "--batch-size", min=1, help="Embedding batch sizes (repeatable)."
    ),
    train_steps: int = typer.Option(12, min=1, help="Optimizer steps of each training run."),
    seed: int = typer.Option(0, help="Seed of the text sample."),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    load_start = os.getloadavg()[0]
    base = load_config(config)
    cfg = base.model_copy(
        update={"encoder": base.encoder.model_copy(update={"train_steps": train_steps})}
    )
    tweets = read_table(cfg.paths.raw, "tweets")
    if tweets.empty:
        typer.echo(f"no tweets under {cfg.paths.raw}: build the world first", err=True)
        typer.echo(f"(feedrank build-world --config {config})", err=True)
        raise typer.Exit(code=1)
    sample = sample_texts(tweets, texts, seed)
    model_dir = cfg.paths.encoder_dir
    fine_tuned = (model_dir / EMBEDDER_META).is_file()
    if fine_tuned:
        embedder, kind = TextEmbedder.load(model_dir), "fine-tuned"
    else:
        embedder, kind = TextEmbedder.pretrained(cfg.encoder), "pretrained"
    threads = torch.get_num_threads()
    where = model_dir if fine_tuned else f"no fine-tuned one at {model_dir}"
    print(f"{kind} embedder ({where})")
    print(f"{len(sample)} tweet texts, {threads} torch threads, load average {load_start:.2f}")

    largest = max(batch_sizes)
    embedder.embed(sample[:largest], batch_size=largest)  # warm-up
    embed_rates: dict[str, float] = {}
    for batch_size in batch_sizes:
        embed_rates[str(batch_size)] = round(embed_throughput(embedder, sample, batch_size), 1)
        print(f"embed batch {batch_size}: {embed_rates[str(batch_size)]:.1f} tweets/s")
    del embedder

    from pipelines.models.batch_inference import embed_texts
    from pipelines.ray_runtime import ray_session

    ray_data_rate: float | None = None
    train: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as tmp, ray_session(cfg):
        if fine_tuned:
            started = time.perf_counter()
            embed_texts(cfg, model_dir, sample)
            ray_data_rate = round(len(sample) / (time.perf_counter() - started), 1)
            print(f"ray data ({cfg.encoder.num_workers} actors): {ray_data_rate:.1f} tweets/s")
        else:
            print("no fine-tuned embedder: the Ray Data path is not timed")
        pairs_path = Path(tmp) / "encoder_pairs.parquet"
        print(f"{write_training_pairs(cfg, pairs_path, max(TRAIN_WORKERS))} training pairs")
        for workers in TRAIN_WORKERS:
            print(f"training {train_steps} steps with {workers} worker(s)")
            train[workers] = train_throughput(cfg, pairs_path, Path(tmp), workers)

    batch = cfg.encoder.batch_size
    load_end = os.getloadavg()[0]
    print(f"\n{kind} embedder, {len(sample)} texts, {threads} torch threads")
    for size, rate in embed_rates.items():
        print(f"  embed batch {size:>4}: {rate:10.1f} tweets/s")
    if ray_data_rate is not None:
        print(f"  ray data ({cfg.encoder.num_workers} actors): {ray_data_rate:10.1f} tweets/s")
    print(f"training: {train_steps} steps, batch {batch} per worker")
    print("  workers   wall samples/s   step samples/s   fit s   s/step")
    for workers, figures in train.items():
        print(
            f"  {workers:>7}   {figures['samples_per_s']:14.1f}   "
            f"{figures['step_samples_per_s']:14.1f}   {figures['seconds']:5.1f}   "
            f"{figures['step_seconds']:6.2f}"
        )
    one, two = train[1], train[2]
    wall_ratio = round(two["samples_per_s"] / one["samples_per_s"], 2)
    step_ratio = round(two["step_samples_per_s"] / one["step_samples_per_s"], 2)
    print(f"  2 workers over 1: wall {wall_ratio:.2f}x, step {step_ratio:.2f}x")
    print(f"load average (1 min): {load_start:.2f} at the start, {load_end:.2f} at the end")
    result: dict[str, Any] = {
        "benchmark": "encoder",
        "config": cfg.name,
        "embedder": kind,
        "texts": len(sample),
        "torch_threads": threads,
        "embed_tweets_per_s": embed_rates,
        "ray_data_tweets_per_s": ray_data_rate,
        "ray_data_actors": cfg.encoder.num_workers,
        "train_samples_per_s": {str(w): round(f["samples_per_s"], 1) for w, f in train.items()},
        "train_step_samples_per_s": {
            str(w): round(f["step_samples_per_s"], 1) for w, f in train.items()
        },
        "train_seconds": {str(w): round(f["seconds"], 1) for w, f in train.items()},
        "train_step_seconds": {str(w): round(f["step_seconds"], 3) for w, f in train.items()},
        "train_2_over_1": wall_ratio,
        "train_step_2_over_1": step_ratio,
        "train_steps": train_steps,
        "batch_size": batch,
        "load_1m_start": round(load_start, 2),
        "load_1m_end": round(load_end, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
