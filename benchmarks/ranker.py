"""Heavy ranker throughput: Ray Train fitting with 1 and 2 workers, and scoring one feed request.

Measured in one run, on the pipeline's training set:

- train: samples/s of `train_ranker` (the configured architecture; parallel MaskNet by default)
  with 1 and then 2 Ray Train workers, `--epochs` epochs each. Every fit runs on a config whose
  state root is a temp dir holding a link to the training set, so the pipeline's arrays and
  `models/ranker` bundle are never written; the arrays are built there once (`prepare_arrays`,
  timed apart) and both fits reuse them. Ray is already up: its start does not count. Samples =
  the rows trained per epoch (95% of the training rows; the last 5% validate) · epochs; "wall"
  divides by the fit's wall time (worker start-up, array loading, validation and the final
  checkpoint included), "loop" is the workers' own `rows_per_second` (rank 0's shard over its
  epoch's training steps, averaged over epochs) · the world size. Torch threads per worker are
  the driver's threads // workers, as `train_ranker` sets them.
- score: milliseconds to score one request of `--candidates` test rows (seeded sample) in this
  process, Ray down, after warm-up, `--repeats` times, the paths interleaved request by request:
  `matrix` is `RankerBundle.predict_matrix(x, ids)` on the prepared test arrays (the model alone);
  `frame` is `RankerBundle.predict(frame)` on the same rows of the training-set parquet (feature
  matrix and sparse-id hashing, then the model); `features` is that preprocessing alone. The
  pipeline's bundle when there is one that fits the arrays, else the one the 2-worker fit just
  trained (same architecture, so the same cost). The two paths' probabilities are compared.

The machine's 1-minute load average at the start and the end is reported with the figures. Prints
progress and a table, then one line of JSON with all the figures, last. Needs the training set
(`feedrank build-training-set`); the pipeline's bundle (`feedrank train-ranker`) is optional.
Usage: python benchmarks/ranker.py --config default --epochs 1 --candidates 1500 --repeats 100
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch
import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.inputs.sparse import sparse_ids
from pipelines.inputs.spec import feature_matrix
from pipelines.models.bundle import RankerBundle
from pipelines.train import ranker as ranker_training
from pipelines.train.ranker import prepare_arrays

TRAIN_WORKERS = (1, 2)
VALIDATION_SHARE = 0.05  # the training loop holds out the last 5% of training rows
WARMUP_REQUESTS = 3


def with_root(cfg: FeedrankConfig, root: Path, **ranker: Any) -> FeedrankConfig:
    """`cfg` with its state under `root` and the given `ranker` settings."""
    return cfg.model_copy(
        update={
            "paths": cfg.paths.model_copy(update={"root": str(root)}),
            "ranker": cfg.ranker.model_copy(update=ranker),
        }
    )


def stage_root(cfg: FeedrankConfig, root: Path) -> FeedrankConfig:
    """A config whose state root is `root`, with the training set linked in at its usual place.

    Only the parquet is linked (read-only); `prepare_arrays` writes a fresh arrays file there, as a
    link to the pipeline's would be written through.
    """
    staged = with_root(cfg, root)
    source, target = cfg.paths.training_set, staged.paths.training_set
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve())
    return staged


def fit(cfg: FeedrankConfig, sizes: dict[str, int], workers: int, epochs: int) -> dict[str, float]:
    """One `train_ranker` run with `workers` workers on the staged arrays: samples/s and seconds."""
    run_cfg = with_root(cfg, cfg.paths.root_dir, num_workers=workers, epochs=epochs)
    # The arrays are the same for every fit: built once by the caller, not again per fit.
    with mock.patch.object(ranker_training, "prepare_arrays", lambda _cfg: sizes):
        summary = ranker_training.train_ranker(run_cfg)
    history = summary["history"] or [summary["final"]]
    loop_rate = float(np.mean([float(h["rows_per_second"]) for h in history])) * workers
    samples = int(sizes["train_rows"] * (1 - VALIDATION_SHARE)) * epochs
    seconds = float(summary["seconds"])
    return {
        "samples_per_s": samples / seconds,
        "loop_samples_per_s": loop_rate,
        "seconds": seconds,
        "epoch_seconds": float(np.mean([float(h["epoch_seconds"]) for h in history])),
        "threads_per_worker": max(1, (torch.get_num_threads() or 2) // workers),
    }


def sparse_buckets(bundle: RankerBundle) -> int:
    """Rows of the bundle's sparse-id table; 0 for a dense-only bundle."""
    return bundle.model.sparse.table.num_embeddings if bundle.model.sparse is not None else 0


def pick_bundle(cfg: FeedrankConfig, trained: Path, features: int) -> tuple[RankerBundle, str]:
    """The pipeline's bundle when it exists and reads these arrays, else the benchmark's own."""
    directory = cfg.paths.ranker_dir(cfg.ranker.feature_set)
    if not (directory / "meta.json").is_file():
        print(f"no pipeline ranker bundle at {directory}: scoring the one trained here")
        return RankerBundle.load(trained), "benchmark"
    try:
        bundle = RankerBundle.load(directory)
    except ValueError as error:
        print(f"pipeline bundle unusable ({error}): scoring the one trained here")
        return RankerBundle.load(trained), "benchmark"
    expected = cfg.ranker.sparse_buckets if cfg.ranker.uses_sparse else 0
    if bundle.model.num_features != features or sparse_buckets(bundle) != expected:
        print(
            f"pipeline bundle at {directory} does not fit these arrays: scoring the one trained here"
        )
        return RankerBundle.load(trained), "benchmark"
    return bundle, "pipeline"


def request_rows(
    cfg: FeedrankConfig, candidates: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None, pd.DataFrame]:
    """x [C, F], ids [C, S] or None, and the matching test rows of the training-set parquet."""
    arrays = np.load(cfg.paths.ranker_arrays(cfg.ranker.feature_set))
    x_test = arrays["x_test"]
    rng = np.random.default_rng(seed)
    index = rng.choice(len(x_test), size=candidates, replace=len(x_test) < candidates)
    ids = arrays["s_test"][index] if "s_test" in arrays.files else None
    test = pd.read_parquet(cfg.paths.training_set, filters=[("split", "==", "test")])
    if len(test) != len(x_test):
        raise RuntimeError(f"{len(test)} test rows in the parquet, {len(x_test)} in the arrays")
    return x_test[index], ids, test.iloc[index].reset_index(drop=True)


def score_latencies(
    paths: dict[str, Callable[[], Any]], repeats: int
) -> dict[str, dict[str, float]]:
    """Median and p99 ms of each path, `repeats` timed calls each, interleaved call by call."""
    for _ in range(WARMUP_REQUESTS):
        for run in paths.values():
            run()
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(repeats):
        for name, run in paths.items():
            started = time.perf_counter()
            run()
            latencies[name].append((time.perf_counter() - started) * 1000)
        if (i + 1) % 25 == 0:
            medians = ", ".join(f"{n} {np.median(v):.1f}" for n, v in latencies.items())
            print(f"{i + 1}/{repeats} requests; median ms so far: {medians}")
    return {
        name: {
            "median_ms": round(float(np.median(values)), 2),
            "p99_ms": round(float(np.percentile(values, 99)), 2),
        }
        for name, values in latencies.items()
    }


def main(
    config: str = typer.Option("default", "--config", "-c"),
    epochs: int = typer.Option(1, min=1, help="Epochs of each training run."),
    candidates: int = typer.Option(1500, min=1, help="Candidates scored per request."),
    repeats: int = typer.Option(100, min=5, help="Timed scoring requests per path."),
    seed: int = typer.Option(0, help="Seed of the candidate sample."),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    load_start = os.getloadavg()[0]
    loaded = load_config(config)
    cfg = with_root(loaded, loaded.paths.root_dir)
    # FEEDRANK_HOME would override the temp root of the fits: pin the source root, drop the override.
    os.environ.pop("FEEDRANK_HOME", None)
    if not cfg.paths.training_set.is_file():
        typer.echo(f"no training set at {cfg.paths.training_set}: run the pipeline first", err=True)
        typer.echo(f"(feedrank build-training-set --config {config})", err=True)
        raise typer.Exit(code=1)
    print(f"{cfg.ranker.architecture} ranker, training set {cfg.paths.training_set}")
    print(f"{torch.get_num_threads()} torch threads, load average {load_start:.2f}")

    from pipelines.ray_runtime import ray_session

    train: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ranker-") as tmp:
        staged = stage_root(cfg, Path(tmp))
        started = time.perf_counter()
        sizes = prepare_arrays(staged)
        arrays_seconds = time.perf_counter() - started
        print(
            f"arrays: {sizes['train_rows']} train rows, {sizes['test_rows']} test rows "
            f"({arrays_seconds:.1f} s)"
        )
        with ray_session(cfg):  # the source root's Ray temp dir; the fits find Ray up
            for workers in TRAIN_WORKERS:
                print(f"training {epochs} epoch(s) with {workers} worker(s)")
                train[workers] = fit(staged, sizes, workers, epochs)
                print(f"  {train[workers]['samples_per_s']:.0f} samples/s (wall)")
        x, ids, frame = request_rows(staged, candidates, seed)
        bundle, bundle_source = pick_bundle(
            cfg, staged.paths.ranker_dir(staged.ranker.feature_set), x.shape[1]
        )

    buckets = sparse_buckets(bundle)
    sparse_input = ids if bundle.uses_sparse else None

    def features() -> tuple[np.ndarray, np.ndarray | None]:
        matrix = feature_matrix(frame, bundle.embedding_dim, bundle.feature_set)
        return matrix, sparse_ids(frame, buckets) if bundle.uses_sparse else None

    paths: dict[str, Callable[[], Any]] = {
        "matrix": lambda: bundle.predict_matrix(x, sparse_input),
        "frame": lambda: bundle.predict(frame),
        "features": features,
    }
    from_matrix, from_frame = paths["matrix"](), paths["frame"]()
    max_abs_diff = max(float(np.abs(from_matrix[h] - from_frame[h]).max()) for h in bundle.heads)
    print(f"scoring {len(x)} candidates with the {bundle_source} bundle, {repeats} requests")
    score = score_latencies(paths, repeats)

    load_end = os.getloadavg()[0]
    rows = int(sizes["train_rows"] * (1 - VALIDATION_SHARE))
    print(f"\n{cfg.ranker.architecture} ranker, {cfg.name}: {rows} rows/epoch, {epochs} epoch(s)")
    print("  workers   wall samples/s   loop samples/s   fit s   epoch s   threads/worker")
    for workers, figures in train.items():
        print(
            f"  {workers:>7}   {figures['samples_per_s']:14.1f}   "
            f"{figures['loop_samples_per_s']:14.1f}   {figures['seconds']:5.1f}   "
            f"{figures['epoch_seconds']:7.1f}   {figures['threads_per_worker']:14d}"
        )
    one, two = train[1], train[2]
    wall_ratio = round(two["samples_per_s"] / one["samples_per_s"], 2)
    loop_ratio = round(two["loop_samples_per_s"] / one["loop_samples_per_s"], 2)
    print(f"  2 workers over 1: wall {wall_ratio:.2f}x, loop {loop_ratio:.2f}x")
    print(
        f"scoring {len(x)} candidates ({bundle_source} bundle, {torch.get_num_threads()} threads)"
    )
    for name, values in score.items():
        print(f"  {name:>8}: median {values['median_ms']:8.2f} ms   p99 {values['p99_ms']:8.2f} ms")
    print(f"  frame vs matrix probabilities: max abs difference {max_abs_diff:.2e}")
    print(f"load average (1 min): {load_start:.2f} at the start, {load_end:.2f} at the end")
    result: dict[str, Any] = {
        "benchmark": "ranker",
        "config": cfg.name,
        "architecture": cfg.ranker.architecture,
        "train_rows": sizes["train_rows"],
        "rows_per_epoch": rows,
        "epochs": epochs,
        "batch_size": cfg.ranker.batch_size,
        "arrays_seconds": round(arrays_seconds, 1),
        "train_samples_per_s": {str(w): round(f["samples_per_s"], 1) for w, f in train.items()},
        "train_loop_samples_per_s": {
            str(w): round(f["loop_samples_per_s"], 1) for w, f in train.items()
        },
        "train_seconds": {str(w): round(f["seconds"], 1) for w, f in train.items()},
        "train_epoch_seconds": {str(w): round(f["epoch_seconds"], 2) for w, f in train.items()},
        "train_threads_per_worker": {str(w): f["threads_per_worker"] for w, f in train.items()},
        "train_2_over_1": wall_ratio,
        "train_loop_2_over_1": loop_ratio,
        "score_bundle": bundle_source,
        "score_candidates": len(x),
        "score_repeats": repeats,
        "score_sparse": bundle.uses_sparse,
        "score_torch_threads": torch.get_num_threads(),
        "score": score,
        "score_max_abs_diff": max_abs_diff,
        "load_1m_start": round(load_start, 2),
        "load_1m_end": round(load_end, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
