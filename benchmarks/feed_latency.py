"""`/feed` latency of the running app for one user: p50/p99 over sequential HTTP requests.

Usage: python benchmarks/feed_latency.py --config default --requests 200 (the app must be up:
`make run` or `make serve`). Prints progress, then one line of JSON with the figures, last.
"""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import typer

from pipelines.config import load_config
from serving.run import base_url, wait_healthy
from serving.world_index import WorldIndex


def main(
    config: str = typer.Option("default", "--config", "-c"),
    requests: int = typer.Option(200, min=10, max=5000),
    limit: int = typer.Option(20, min=1),
) -> None:
    cfg = load_config(config)
    url = base_url(cfg)
    wait_healthy(url, timeout=120)
    index = WorldIndex.load(cfg)
    users = range(1, min(index.n_users, 300) + 1)
    user = max(users, key=lambda u: len(index.candidates(u)))
    candidates = len(index.candidates(user))
    body = {"user_id": int(user), "limit": limit}
    latencies = []
    with httpx.Client(timeout=30) as client:
        for _ in range(5):  # warm-up
            client.post(f"{url}/feed", json=body).raise_for_status()
        started = time.perf_counter()
        for i in range(requests):
            tic = time.perf_counter()
            client.post(f"{url}/feed", json=body).raise_for_status()
            latencies.append((time.perf_counter() - tic) * 1000)
            if (i + 1) % 50 == 0:
                print(f"{i + 1}/{requests} requests, p50 so far {np.median(latencies):.1f} ms")
        wall = time.perf_counter() - started
    figures = {
        "benchmark": "feed_latency",
        "user_id": int(user),
        "candidates": candidates,
        "requests": requests,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "requests_per_second": round(requests / wall, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    typer.run(main)
