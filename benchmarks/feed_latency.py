"""`POST /feed` latency over HTTP at concurrency 1, 8 and 32, against the same work in-process.

Usage: python benchmarks/feed_latency.py --config default [--requests 200] [--start] [--no-fill-cap]

The app must be up (`make run` leaves it serving, or `make serve`); with `--start` the benchmark
starts it on a local Ray cluster when it is not. Requests go to the viewers with the most
candidates (each request scores up to `serve.max_candidates`, 1500 by default), round robin, so
that what one request serves (and logs as seen) hardly shrinks the next one's candidates. By
default (`--fill-cap`) the app and the in-process part run with source quotas that fill the cap
(FILL_CAP); the config's own quotas give the default world's busiest viewers ~1250.

In the same run, the same pipeline runs in this process without HTTP and Ray: a `FeedEngine` over
the same world index, online features (FastOnlineFeatures) and the champion bundle, called
directly. Its cost is measured whole (`in_process_feed`) and as its scoring part alone
(`in_process_score`: features + model + blend + heuristics). The ratios say what HTTP, Ray Serve
and the deployment hop add. Prints progress, then one line of JSON with every figure, last.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import typer
import yaml

from pipelines.config import FeedrankConfig, load_config
from serving.run import base_url, wait_healthy

CONCURRENCY = (1, 8, 32)
# Source quotas that fill the 1500-candidate cap for the busiest viewers of the default world
# (whose own quotas give them ~1250 candidates after the filters).
FILL_CAP = ("retrieval.embedding_candidates=1300", "serve.out_of_network_candidates=1250")


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    values = np.asarray(latencies_ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


def with_overrides(cfg: FeedrankConfig, overrides: list[str]) -> FeedrankConfig:
    """`cfg` with each ``dotted.key=value`` set (the value read as YAML), validated again."""
    data = cfg.model_dump()
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {override!r}: expected KEY=VALUE")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise typer.BadParameter(f"--set {override!r}: no config section {part!r}")
            node = node[part]
        if leaf not in node:
            raise typer.BadParameter(f"--set {override!r}: no config key {key!r}")
        node[leaf] = yaml.safe_load(value)
    return FeedrankConfig.model_validate(data)


def busiest_viewers(cfg: FeedrankConfig, count: int) -> list[tuple[int, int]]:
    """(user_id, candidates) of the `count` viewers with the most candidates after the filters,
    most first. What the live app has served (its event log, earlier runs included) counts as
    seen, as the app counts it, so each run picks the viewers that still fill the cap."""
    from pipelines.event_log import EventLog
    from serving.candidates.filters import apply_filters
    from serving.candidates.retrieval import EmbeddingRetriever
    from serving.candidates.sources import CandidateGenerator, FeedContext
    from serving.candidates.world_index import WorldIndex

    index = WorldIndex.load(cfg)
    generator = CandidateGenerator(index, cfg.serve, EmbeddingRetriever.load(cfg).retrieve)
    events = EventLog(cfg.paths.serving_events) if cfg.paths.serving_events.exists() else None
    sizes = []
    nobody = np.zeros(0, dtype=np.int64)
    for user in range(1, index.n_users + 1):
        if index.has_user(user):
            served = events.served_to(user) if events is not None else None
            ctx = FeedContext.of(index, user, extra_seen=served)
            kept, _ = apply_filters(generator.generate(ctx), ctx, nobody)
            sizes.append((user, len(kept)))
    sizes.sort(key=lambda pair: -pair[1])
    return sizes[:count]


async def http_level(
    url: str, users: list[int], limit: int, requests: int, concurrency: int
) -> dict[str, Any]:
    """`requests` POST /feed calls by `concurrency` concurrent clients; latency and throughput."""
    latencies: list[float] = []
    scored: list[int] = []
    stages: dict[str, list[float]] = {}
    outside: list[float] = []
    degraded = 0
    counter = iter(range(requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal degraded
        for i in counter:
            # Marked synthetic: logged like any page, but never exported as training impressions.
            body = {"user_id": users[i % len(users)], "limit": limit, "synthetic": True}
            tic = time.perf_counter()
            response = await client.post(f"{url}/feed", json=body)
            latencies.append((time.perf_counter() - tic) * 1000)
            response.raise_for_status()
            payload = response.json()
            scored.append(int(payload["candidates_scored"]))
            degraded += bool(payload["degraded"])
            for stage, ms in payload.get("timings_ms", {}).items():
                stages.setdefault(stage, []).append(ms)
            if "total" in payload.get("timings_ms", {}):
                outside.append(latencies[-1] - payload["timings_ms"]["total"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": requests,
        **percentiles(latencies),
        "requests_per_second": round(requests / wall, 1),
        "mean_candidates_scored": round(float(np.mean(scored)), 1),
        "degraded_responses": degraded,
        # Inside the ingress replica (the response's timings_ms), and the rest: HTTP, the proxy.
        "server_ms": {stage: percentiles(ms) for stage, ms in stages.items()},
        "outside_server_ms": percentiles(outside) if outside else None,
    }


def in_process(
    cfg: FeedrankConfig, users: list[int], limit: int, requests: int
) -> dict[str, dict[str, float]]:
    """The same feeds without HTTP or Ray: whole engine calls, and the scoring part alone."""
    from pipelines.event_log import EventLog
    from pipelines.release.registry import load_ranker
    from serving.candidates.retrieval import EmbeddingRetriever
    from serving.candidates.world_index import WorldIndex
    from serving.engine.feed import FeedEngine
    from serving.engine.ports import ArmModel
    from serving.features.hydrate import FastOnlineFeatures
    from serving.policy.heuristics import apply_heuristics
    from serving.policy.rules import score_candidates
    from serving.schemas import FeedRequest

    bundle = load_ranker(cfg, "champion")
    if bundle is None:
        raise RuntimeError("no champion in the registry: run `make run` first")

    async def score(features: pd.DataFrame) -> Mapping[str, np.ndarray]:
        return bundle.predict(features)

    features = FastOnlineFeatures.for_serving(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        engine = FeedEngine(
            cfg,
            WorldIndex.load(cfg),
            features,
            {"champion": ArmModel(str(bundle.version), tuple(bundle.heads), score)},
            retriever=EmbeddingRetriever.load(cfg),
            events=EventLog(Path(tmp) / "events.db"),
        )
        engine.warm_up()
        gc.collect()
        gc.freeze()  # as the app's replicas do after warm-up
        feed_ms: list[float] = []
        score_ms: list[float] = []
        loop = asyncio.new_event_loop()
        try:
            for i in range(requests + 5):
                user = users[i % len(users)]
                tic = time.perf_counter()
                loop.run_until_complete(
                    engine.feed(FeedRequest(user_id=user, limit=limit, synthetic=True))
                )
                if i >= 5:  # warm-up
                    feed_ms.append((time.perf_counter() - tic) * 1000)
                prepared = engine._prepare(user)
                tic = time.perf_counter()
                frame = features.hydrate(user, prepared.candidates, engine.now())
                predictions = bundle.predict(frame)
                apply_heuristics(
                    score_candidates(prepared.candidates, predictions, cfg.blend.weights),
                    cfg.serve,
                    prepared.ctx.now,
                    prepared.controls.show_fewer,
                    prepared.ctx.seen,
                )
                if i >= 5:
                    score_ms.append((time.perf_counter() - tic) * 1000)
        finally:
            loop.close()
            engine.close()
            features.close()
            gc.unfreeze()
    return {"in_process_feed": percentiles(feed_ms), "in_process_score": percentiles(score_ms)}


def main(
    config: str = typer.Option("default", "--config", "-c"),
    requests: int = typer.Option(200, min=20, max=5000, help="HTTP requests per level."),
    limit: int = typer.Option(20, min=1),
    viewers: int = typer.Option(100, min=1, help="Viewers (most candidates first) to rotate."),
    start: bool = typer.Option(False, help="Start the app here when it is not up."),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="KEY=VALUE config overrides for the app this run starts and the in-process part, "
        "e.g. --set serve.out_of_network_candidates=1050 (repeatable; after --fill-cap's).",
    ),
    fill_cap: bool = typer.Option(
        True,
        help=f"Raise the source quotas ({', '.join(FILL_CAP)}) so requests fill the 1500 cap; "
        "--no-fill-cap measures the config's own quotas (and an app already up as it is).",
    ),
) -> None:
    overrides = [*FILL_CAP, *overrides] if fill_cap else overrides
    cfg = with_overrides(load_config(config), overrides)
    url = base_url(cfg)
    try:
        wait_healthy(url, timeout=5)
        if overrides:
            raise SystemExit(
                f"an app is already up at {url}, started without --set {overrides}: "
                "`make stop`, then run with --start (or pass --no-fill-cap to measure it as it is)"
            )
    except TimeoutError:
        if not start:
            raise SystemExit(f"the app is not up at {url}: `make serve`, or pass --start") from None
        from serving.run import start as start_app

        print("starting the app ...", flush=True)
        start_app(cfg)
        wait_healthy(url, timeout=300)
    chosen = busiest_viewers(cfg, viewers)
    users = [user for user, _ in chosen]
    print(f"{len(users)} viewers with {chosen[-1][1]}..{chosen[0][1]} candidates each", flush=True)
    levels = []
    for concurrency in CONCURRENCY:
        asyncio.run(http_level(url, users, limit, min(20, requests), concurrency))  # warm-up
        level = asyncio.run(http_level(url, users, limit, requests, concurrency))
        print(json.dumps(level), flush=True)
        levels.append(level)
    local = in_process(cfg, users, limit, min(requests, 100))
    print(json.dumps(local), flush=True)
    single = levels[0]
    figures = {
        "benchmark": "feed_latency",
        "config": cfg.name,
        "overrides": overrides,
        "http": levels,
        **local,
        "http_p50_over_in_process_feed_p50": round(
            single["p50_ms"] / local["in_process_feed"]["p50_ms"], 2
        ),
        "http_p99_over_in_process_feed_p99": round(
            single["p99_ms"] / local["in_process_feed"]["p99_ms"], 2
        ),
        "http_p50_over_in_process_score_p50": round(
            single["p50_ms"] / local["in_process_score"]["p50_ms"], 2
        ),
        "target_p99_under_100_ms": single["p99_ms"] < 100.0,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    typer.run(main)
