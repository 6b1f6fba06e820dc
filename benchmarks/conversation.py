"""Conversation ranking: the ranker against heuristics on real reply trees, and `/conversation`
latency.

Real trees (`pipelines.realtrees`): the delab-trees package's conversations, ids re-keyed and
times repaired, cut when half of each tree's replies has arrived (and at 20%); the candidates are
the top-level replies present then, the gain what each thread gains after the cut. The
conversation ranker (the feed ranker's ParallelMaskNet, trained on the training trees, its epoch
picked on validation trees), an 11-feature logistic regression, most-replies-so-far,
chronological, reverse chronological and random rank the held-out trees; NDCG@10 and capped
recall@10 per tree, macro-averaged with bootstrap intervals, on all evaluable trees and on trees
with at least 20 candidates. Also the early cut, a split in time, the ranker's paired gains and
the section shares at the configured toxicity thresholds.

Latency: `/conversation` at 3,200 candidates over HTTP beside the same work in process
(:func:`measure_latency`; ``--skip-latency`` leaves it out).

Prints progress and the tables, writes the report (markdown, plot, JSON) under the state root's
``reports/conversation`` and logs it to MLflow, then prints one line of JSON, last, with
``real_trees`` {``all``, ``ge20``} -> model -> {``ndcg10``, ``ci``, ``recall10``} and ``latency``
{``http_p99_ms``, ``in_process_p99_ms``}.
Usage: python benchmarks/conversation.py --config default [--platform reddit] [--skip-latency]
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.realtrees.evaluate import MODELS, STRATA, run_benchmark
from pipelines.realtrees.report import PROTOCOLS, gains_table, log_report, table, write_report
from pipelines.realtrees.source import PLATFORMS, TreesDataError

log = logging.getLogger("conversation")


LATENCY_REPLIES = 3200  # the recent-replies cache's size: every reply is a candidate
LATENCY_PORT = 8012
LATENCY_REQUESTS = 200
LATENCY_WARMUP = 10
# Ids of the synthetic conversation: far above any id the world or its traffic gives out.
SYNTHETIC_TWEET_ID_BASE = 8_000_000_000
POST_BATCH = 1000  # POST /tweets takes at most this many


def synthetic_conversation(
    users: np.ndarray, now: pd.Timestamp, replies: int, seed: int
) -> list[dict[str, Any]]:
    """A root tweet and `replies` replies (POST /tweets bodies), all posted in the two hours
    before `now` by `users` drawn at random: a quarter answer the root, the rest an earlier
    reply, so the tree has depth; toxicity from a Beta(1, 6)."""
    rng = np.random.default_rng(seed)
    root_id = SYNTHETIC_TWEET_ID_BASE
    start = now - pd.Timedelta(hours=2)
    offsets = np.sort(rng.uniform(1.0, 7190.0, size=replies))
    authors = rng.choice(users, size=replies + 1)
    toxicity = rng.beta(1.0, 6.0, size=replies)
    tweets = [posted(root_id, int(authors[0]), start, root_id, None, 0.05, "root")]
    for i in range(replies):
        tweet_id = root_id + 1 + i
        answers_root = i < 8 or rng.random() < 0.25
        parent = root_id if answers_root else int(root_id + 1 + rng.integers(0, i))
        at = start + pd.Timedelta(seconds=float(offsets[i]))
        tweets.append(
            posted(tweet_id, int(authors[i + 1]), at, root_id, parent, float(toxicity[i]), "reply")
        )
    return tweets


def posted(
    tweet_id: int,
    author_id: int,
    at: pd.Timestamp,
    root_id: int,
    parent: int | None,
    toxicity: float,
    kind: str,
) -> dict[str, Any]:
    """One POST /tweets item of the synthetic conversation."""
    return {
        "tweet_id": tweet_id,
        "author_id": author_id,
        "created_at": at.isoformat(),
        "text": f"synthetic {kind} {tweet_id} for the conversation latency benchmark",
        "language": "en",
        "has_image": False,
        "has_video": False,
        "has_url": False,
        "hashtags": [],
        "conversation_id": root_id,
        "in_reply_to_tweet_id": parent,
        "toxicity": toxicity,
    }


def percentile_ms(latencies_ms: list[float]) -> dict[str, float]:
    values = np.asarray(latencies_ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


def http_latency(url: str, root_id: int, viewers: np.ndarray) -> dict[str, Any]:
    """`LATENCY_REQUESTS` sequential synthetic POST /conversation calls on the root (after a
    warm-up): latency percentiles and the candidates each scored."""
    latencies: list[float] = []
    scored: list[int] = []
    with httpx.Client(timeout=120) as client:
        for i in range(LATENCY_REQUESTS + LATENCY_WARMUP):
            body = {
                "tweet_id": root_id,
                "viewer_id": int(viewers[i % len(viewers)]),
                "synthetic": True,
            }
            tic = time.perf_counter()
            response = client.post(f"{url}/conversation", json=body)
            elapsed = (time.perf_counter() - tic) * 1000
            response.raise_for_status()
            if i >= LATENCY_WARMUP:
                latencies.append(elapsed)
                scored.append(int(response.json()["candidates_scored"]))
            if (i + 1) % 50 == 0:
                log.info("latency: %d HTTP requests", i + 1)
    return {**percentile_ms(latencies), "mean_candidates_scored": float(np.mean(scored))}


def in_process_latency(cfg: FeedrankConfig, root_id: int, viewers: np.ndarray) -> dict[str, Any]:
    """The same requests to the engine of a replica built in this process (the app's own
    wiring: world index with the posted tweets, online features, the champion rankers and the
    conversation scorers), without HTTP or Ray."""
    from serving.app import _local_arm_model, engine_for_serving
    from serving.schemas import ConversationRequest

    executor = ThreadPoolExecutor(max_workers=1)
    champion = _local_arm_model(cfg, "champion", executor)
    if champion is None:
        raise RuntimeError("no champion ranker in the registry: run `make run` first")
    engine = engine_for_serving(cfg, {"champion": champion})
    engine.warm_up()
    gc.collect()
    gc.freeze()  # as the app's replicas do after warm-up
    latencies: list[float] = []
    loop = asyncio.new_event_loop()
    try:
        for i in range(LATENCY_REQUESTS + LATENCY_WARMUP):
            request = ConversationRequest(
                tweet_id=root_id, viewer_id=int(viewers[i % len(viewers)]), synthetic=True
            )
            tic = time.perf_counter()
            loop.run_until_complete(engine.conversation(request))
            if i >= LATENCY_WARMUP:
                latencies.append((time.perf_counter() - tic) * 1000)
    finally:
        loop.close()
        engine.close()
        executor.shutdown()
        gc.unfreeze()
    return percentile_ms(latencies)


@contextmanager
def state_root(home: Path) -> Iterator[None]:
    """FEEDRANK_HOME set to `home` while inside (every path of the config follows it)."""
    before = os.environ.get("FEEDRANK_HOME")
    os.environ["FEEDRANK_HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FEEDRANK_HOME", None)
        else:
            os.environ["FEEDRANK_HOME"] = before


def measure_latency(cfg: FeedrankConfig) -> dict[str, Any]:
    """p99 of `/conversation` at 3,200 candidates over HTTP, and of the same work in process:
    ``{"http_p99_ms", "in_process_p99_ms", ...}``.

    Needs a trained state (a champion). The state root is copied to a scratch folder and served
    there (:mod:`serving.scratch`), so nothing here reaches the real state; a synthetic
    conversation of ``LATENCY_REPLIES`` replies is posted to it through POST /tweets (embedded
    and indexed like any new tweets), then opened by random viewers over HTTP, and, with the
    service stopped, by the same viewers through an engine built in this process.
    """
    from pipelines.clock import SimClock
    from pipelines.schema import read_table
    from serving.scratch import copy_state, serving

    with tempfile.TemporaryDirectory(prefix="conversation-latency-") as scratch:
        home = Path(scratch) / "state"
        log.info("latency: copying the state root %s", cfg.paths.root_dir)
        copy_state(cfg.paths.root_dir, home)
        with state_root(home):
            users = read_table(cfg.paths.raw, "users")["user_id"].to_numpy(np.int64)
            now = SimClock.of(cfg).now()
            tweets = synthetic_conversation(users, now, LATENCY_REPLIES, cfg.world.seed)
            viewers = np.random.default_rng(cfg.world.seed + 1).choice(users, size=64)
            with serving(cfg, home, LATENCY_PORT, "conversation_latency") as url:
                with httpx.Client(timeout=600) as client:
                    for start in range(0, len(tweets), POST_BATCH):
                        batch = tweets[start : start + POST_BATCH]
                        client.post(f"{url}/tweets", json={"tweets": batch}).raise_for_status()
                log.info("latency: %d synthetic tweets posted", len(tweets))
                http = http_latency(url, SYNTHETIC_TWEET_ID_BASE, viewers)
            local = in_process_latency(cfg, SYNTHETIC_TWEET_ID_BASE, viewers)
    log.info("latency: HTTP %s, in process %s", http, local)
    return {
        "replies": LATENCY_REPLIES,
        "candidates_scored": http["mean_candidates_scored"],
        "http_p50_ms": http["p50_ms"],
        "http_p99_ms": http["p99_ms"],
        "in_process_p50_ms": local["p50_ms"],
        "in_process_p99_ms": local["p99_ms"],
        "http_over_in_process_p99": round(http["p99_ms"] / local["p99_ms"], 2),
    }


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float as None (a stratum of fewer than two trees has no
    interval), so the last line is strict JSON."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def real_trees_json(figures: dict[str, Any]) -> dict[str, Any]:
    """The ``{stratum: {model: {ndcg10, ci, recall10}}}`` block of a protocol."""
    return {
        stratum: {
            model: {key: figures[stratum][model][key] for key in ("ndcg10", "ci", "recall10")}
            for model in MODELS
        }
        for stratum in STRATA
    }


def main(
    config: str = typer.Option("default", "--config", "-c"),
    platform: str | None = typer.Option(
        None, help=f"Dataset of the package: {', '.join(PLATFORMS)} (default trees.platform)."
    ),
    max_trees: int | None = typer.Option(
        None, min=10, help="A seeded draw of this many trees (smoke runs; default all)."
    ),
    skip_latency: bool = typer.Option(False, help="Leave out the /conversation latency."),
    mlflow: bool = typer.Option(True, help="Log the report to MLflow."),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    cfg = load_config(config)
    if max_trees is not None:
        cfg = cfg.model_copy(
            update={"trees": cfg.trees.model_copy(update={"max_trees": max_trees})}
        )
    if platform is not None and platform not in PLATFORMS:
        raise typer.BadParameter(f"--platform must be one of {list(PLATFORMS)}; got {platform!r}")
    latency: dict[str, Any] = (
        {"http_p99_ms": None, "in_process_p99_ms": None, "skipped": True}
        if skip_latency
        else measure_latency(cfg)
    )
    try:
        figures = run_benchmark(cfg, platform)
    except TreesDataError as error:
        typer.echo(f"conversation benchmark: {error}", err=True)
        raise typer.Exit(code=2) from error
    for protocol in PROTOCOLS:
        print(f"\n{protocol} ({figures['platform']})\n{table(figures[protocol])}")
        print(f"\n{gains_table(figures[protocol])}")
    print(f"\nsection shares: {figures['real_trees']['sections']}")
    files = write_report(cfg, figures)
    if mlflow:
        log_report(cfg, figures, files)
    summary = {
        "platform": figures["platform"],
        "real_trees": real_trees_json(figures["real_trees"]),
        "real_trees_early_cut": real_trees_json(figures["real_trees_early_cut"]),
        "real_trees_time_split": real_trees_json(figures["real_trees_time_split"]),
        "ranker_minus": {s: figures["real_trees"][s]["ranker_minus"] for s in STRATA},
        "sections": figures["real_trees"]["sections"],
        "trees": figures["real_trees"]["trees"],
        "repair": figures["repair"],
        "seconds": figures["seconds"],
        "latency": latency,
    }
    print(json.dumps(json_safe(summary), allow_nan=False))


if __name__ == "__main__":
    typer.run(main)
