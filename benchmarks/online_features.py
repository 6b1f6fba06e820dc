"""Online features for one feed request: the Feast SDK vs a direct store read vs the fast path.

One viewer (the most active in the last days of the world) and `--candidates` distinct tweets
posted in those days, with their authors and whether the viewer follows them: the ranker's whole
feature service (`ranker_v2`) for tweet, author, viewer and viewer-author keys. Measured in one run,
interleaved request by request so the machine's noise falls on every path alike:

- sdk: `OnlineFeatures.hydrate` (`FeatureStore.get_online_features` with the service, to a frame);
- direct: plain sqlite3 queries of the same keys on Feast's online tables, one per view, each
  value parsed as a feast `Value` protobuf; rows per key, no frame, no on-demand transforms
  (the floor of any read of this store);
- fast_cold: `FastOnlineFeatures` with its cache off (every request reads the store);
- fast: `FastOnlineFeatures` with a warm cache (`--cache-ttl-s`), as a replica serves a viewer's
  requests while candidate tweets and authors repeat across requests.

The fast paths return columns (vectors as float32 matrices), not a frame; framed (`frame_of`),
they are checked to equal the SDK's frame (same columns and values). Prints the
figures, then one line of JSON with all of them, last. Needs a materialized online store
(`make run`, or `feedrank materialize`); the direct read needs the sqlite online store.
Usage: python benchmarks/online_features.py --config default --requests 50 --candidates 1500
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.schema import list_partitions, read_table
from serving.features.frames import feature_frame_differences, frame_of
from serving.features.hydrate import FastOnlineFeatures
from serving.features.plan import ServicePlan
from serving.features.readers import SqliteRows
from serving.features.sdk import OnlineFeatures

RECENT_DAYS = 2
WARMUP_REQUESTS = 3


def pick_request(
    cfg: FeedrankConfig, candidates: int, seed: int
) -> tuple[int, pd.DataFrame, pd.Timestamp]:
    """(viewer, candidates, now): the most active viewer of the last days, distinct tweets posted
    in them (tweet_id, author_id, in_network: the viewer follows the author), and a request time
    just after the last tweet."""
    raw = cfg.paths.raw
    days = list_partitions(raw, "tweets")[-RECENT_DAYS:]
    tweets = read_table(raw, "tweets", days).drop_duplicates("tweet_id")
    if tweets.empty:
        raise typer.BadParameter(f"no tweets under {raw}: build the world first")
    rng = np.random.default_rng(seed)
    picked = tweets.iloc[rng.permutation(len(tweets))[:candidates]]
    impressions = read_table(raw, "impressions", list_partitions(raw, "impressions")[-RECENT_DAYS:])
    viewer = int(impressions["viewer_id"].value_counts().idxmax())
    follows = read_table(raw, "follows")
    followees = follows.loc[follows["follower_id"] == viewer, "followee_id"].to_numpy()
    frame = pd.DataFrame(
        {
            "tweet_id": picked["tweet_id"].astype("int64").to_numpy(),
            "author_id": picked["author_id"].astype("int64").to_numpy(),
        }
    )
    frame["in_network"] = np.isin(frame["author_id"], followees)
    now = pd.Timestamp(tweets["created_at"].max()) + pd.Timedelta(minutes=1)
    return viewer, frame, now


def direct_read(
    conn: sqlite3.Connection,
    tables: dict[str, str],
    plan: ServicePlan,
    request: dict[str, list[Any]],
) -> dict[str, dict[bytes, dict[str, Any]]]:
    """Every view's rows for the request's keys: view -> entity key -> feature -> value."""
    from feast.protos.feast.types.Value_pb2 import Value

    out: dict[str, dict[bytes, dict[str, Any]]] = {}
    for view in plan.views:
        keys = list({view.encoder(key) for key in view.keys(request)})
        sql = (
            f'SELECT entity_key, feature_name, value FROM "{tables[view.name]}" '
            f"WHERE entity_key IN ({','.join('?' * len(keys))})"
        )
        rows: dict[bytes, dict[str, Any]] = {}
        for entity_key, feature_name, blob in conn.execute(sql, keys):
            value = Value.FromString(blob)
            field = value.WhichOneof("val")
            python: Any = None if field is None else getattr(value, field)
            if hasattr(python, "val"):  # a list value: its elements
                python = list(python.val)
            rows.setdefault(entity_key, {})[feature_name] = python
        out[view.name] = rows
    return out


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(float(np.median(latencies_ms)), 2),
        "p99_ms": round(float(np.percentile(latencies_ms, 99)), 2),
    }


def main(
    config: str = typer.Option("default", "--config", "-c"),
    requests: int = typer.Option(50, min=5, max=5000, help="Timed requests per path."),
    candidates: int = typer.Option(1500, min=1, help="Candidate tweets per request."),
    cache_ttl_s: float | None = typer.Option(
        None, min=0.0, help="Fast path cache TTL (seconds; default: serve.feature_cache_ttl_s)."
    ),
    seed: int = typer.Option(0, help="Seed of the candidate sample."),
) -> None:
    cfg = load_config(config)
    viewer, frame, now = pick_request(cfg, candidates, seed)
    print(
        f"viewer {viewer}, {len(frame)} candidates ({int(frame['in_network'].sum())} in network), "
        f"{frame['author_id'].nunique()} authors, now {now}"
    )
    sdk = OnlineFeatures(cfg)
    fast = FastOnlineFeatures(cfg, cache_ttl_s=cache_ttl_s)
    fast_cold = FastOnlineFeatures(cfg, cache_ttl_s=0)
    paths: dict[str, Callable[[], Any]] = {
        "sdk": lambda: sdk.hydrate(viewer, frame, now),
        "fast_cold": lambda: fast_cold.hydrate(viewer, frame, now),
        "fast": lambda: fast.hydrate(viewer, frame, now),
    }
    if isinstance(fast.reader, SqliteRows):
        conn = sqlite3.connect(f"{fast.reader.path.resolve().as_uri()}?mode=ro", uri=True)
        request = {
            "tweet_id": frame["tweet_id"].tolist(),
            "author_id": frame["author_id"].tolist(),
            "viewer_id": [viewer] * len(frame),
        }
        tables = fast.reader.tables
        paths["direct"] = lambda: direct_read(conn, tables, fast.plan, request)
    else:
        print(f"online store {cfg.features.online_store}: no direct sqlite read to compare")

    reference = sdk.hydrate(viewer, frame, now)
    identical = True
    for name in ("fast", "fast_cold"):
        differing = feature_frame_differences(frame_of(paths[name]()), reference)
        if differing:
            identical = False
            print(f"{name} differs from the SDK in columns {differing}")
    for _ in range(WARMUP_REQUESTS):
        for run in paths.values():
            run()
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    on_demand_ms: list[float] = []
    for i in range(requests):
        for name, run in paths.items():
            started = time.perf_counter()
            run()
            latencies[name].append((time.perf_counter() - started) * 1000)
        on_demand_ms.append(fast.last_timings["on_demand_s"] * 1000)
        if (i + 1) % 10 == 0:
            medians = ", ".join(f"{n} {np.median(v):.1f}" for n, v in latencies.items())
            print(f"{i + 1}/{requests} requests; median ms so far: {medians}")

    figures = {name: summary(values) for name, values in latencies.items()}
    for name, values in figures.items():
        print(f"{name:>9}: median {values['median_ms']:8.2f} ms   p99 {values['p99_ms']:8.2f} ms")
    print(
        f"fast path on-demand transforms: median {np.median(on_demand_ms):.2f} ms "
        f"({len(fast.plan.on_demand)} on-demand views)"
    )
    ratios = {
        "sdk_over_fast": figures["sdk"]["median_ms"] / figures["fast"]["median_ms"],
        "fast_cold_over_fast": figures["fast_cold"]["median_ms"] / figures["fast"]["median_ms"],
    }
    if "direct" in figures:
        direct = figures["direct"]["median_ms"]
        for name in ("sdk", "fast_cold", "fast"):
            ratios[f"{name}_over_direct"] = figures[name]["median_ms"] / direct
    ratios = {name: round(value, 2) for name, value in ratios.items()}
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    fast_median = figures["fast"]["median_ms"]
    print(f"fast path median {fast_median:.2f} ms (target < 20 ms); frames identical: {identical}")
    result = {
        "benchmark": "online_features",
        "config": cfg.name,
        "online_store": cfg.features.online_store,
        "viewer_id": viewer,
        "candidates": len(frame),
        "requests": requests,
        "feature_columns": int(reference.shape[1]),
        "on_demand_views": len(fast.plan.on_demand),
        "cache_ttl_s": fast.cache.ttl_s,
        **figures,
        "fast_on_demand_median_ms": round(float(np.median(on_demand_ms)), 2),
        "ratios": ratios,
        "fast_under_20ms": fast_median < 20.0,
        "identical": identical,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
