"""What the ranker is worth to users: the same simulated users, days and seeds served by each policy.

Usage: python benchmarks/online_policy.py --config default [--days 1] [--users 600]

Needs a trained state (`make run`, or the `feed_training` DAG, has bootstrapped the world and
promoted a champion). For each policy in turn (reverse-chronological, the champion ranker, the
oracle that orders by the blend of the true probabilities), the state root is copied to a scratch
folder, the Serve app is started on the copy, and `feedrank traffic` runs the same users over the
same simulated days with the same seeds against it over HTTP. The copies keep the runs apart:
nothing one policy serves (seen items, pushed counts, new tweets' index) leaks into the next, and
none of this traffic reaches the real state's event log (it never becomes training data).

Figures come from each copy's own event log (what was served, what users did), not from the
client: per policy the blended engagement value per user-day (the config's blend weights on the
realized labels), engagements per impression, the negative-feedback rate, author diversity per
page, sessions per user-day and the client-side p50/p99 `/feed` latency; intervals are bootstrap
intervals over users (each user's days together). The ranker's lift over chronological and its
share of the oracle's lift are paired by user. Prints progress, then one JSON line, last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from scipy.stats import bootstrap

from pipelines.clock import SimClock
from pipelines.config import FeedrankConfig, load_config
from serving.scratch import copy_state, serving

POLICIES: dict[str, str] = {
    "chronological": "chronological",
    "ranker": "served",
    "oracle": "oracle",
}
CONFIDENCE = 0.95


def user_day_frame(
    cfg: FeedrankConfig, home: Path, since: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per home item served at or after `since` (this run's traffic, not what the copied state
    had served before): viewer, day, request, session, author, every label and its blended
    value; per viewer: total value) from the event log of the state root `home`."""
    from pipelines.event_log import EventLog
    from pipelines.ingest.served import impression_rows

    events = EventLog(home / cfg.paths.serving_events.relative_to(cfg.paths.root_dir))
    try:
        served, engagements = events.pending_export()
    finally:
        events.close()
    mine = (served["surface"] == "home") & (served["served_at"] >= since)
    served = served[mine].reset_index(drop=True)
    labelled = impression_rows(served, engagements, cfg.validate_.max_dwell_ms)
    value = np.zeros(len(labelled))
    for head, weight in cfg.blend.weights.items():
        value += weight * labelled[head].to_numpy(dtype=float)
    rows = pd.DataFrame(
        {
            "viewer_id": served["viewer_id"].to_numpy(np.int64),
            "day": served["served_at"].dt.strftime("%Y-%m-%d").to_numpy(),
            "request_id": served["request_id"].to_numpy(),
            "session_id": served["session_id"].to_numpy(),
            "author_id": served["author_id"].to_numpy(np.int64),
            "value": value,
            "engaged": labelled[["fav", "reply", "retweet", "quote"]].any(axis=1).to_numpy(),
            "negative": labelled["negative"].to_numpy(bool),
        }
    )
    per_user = rows.groupby("viewer_id")["value"].sum()
    return rows, per_user.to_frame("value")


def interval(samples: tuple[np.ndarray, ...], statistic: Any, seed: int) -> list[float]:
    """A BCa bootstrap interval over users (paired when several arrays are given)."""
    result = bootstrap(
        samples,
        statistic,
        paired=len(samples) > 1,
        vectorized=False,
        confidence_level=CONFIDENCE,
        n_resamples=2000,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return [
        round(float(result.confidence_interval.low), 4),
        round(float(result.confidence_interval.high), 4),
    ]


def policy_figures(rows: pd.DataFrame, values: np.ndarray, days: int, seed: int) -> dict[str, Any]:
    """The figures of one policy; `values` [U] value per user-day of every simulated user."""
    pages = rows.groupby("request_id")["author_id"].agg(lambda a: a.nunique() / len(a))
    sessions = rows.groupby(["viewer_id", "day"])["session_id"].nunique()
    return {
        "value_per_user_day": round(float(values.mean()), 4),
        "ci": interval((values,), np.mean, seed),
        "impressions": len(rows),
        "value_per_impression": round(float(rows["value"].mean()), 4) if len(rows) else 0.0,
        "engagements_per_impression": round(float(rows["engaged"].mean()), 5) if len(rows) else 0.0,
        "negative_feedback_rate": round(float(rows["negative"].mean()), 5) if len(rows) else 0.0,
        "author_diversity_per_page": round(float(pages.mean()), 4) if len(pages) else 0.0,
        "sessions_per_user_day": round(float(sessions.sum() / (len(values) * days)), 4),
    }


def feed_latency(report: Mapping[str, Any]) -> dict[str, float]:
    """Client-side p50/p99 of /feed from a traffic report (whatever day granularity it has)."""
    latency = report.get("latency_ms", {}).get("feed") or report.get("feed_latency_ms") or {}
    return {key: latency[key] for key in ("p50_ms", "p99_ms") if key in latency}


def main(
    config: str = typer.Option("default", "--config", "-c"),
    days: int = typer.Option(1, min=1, help="Simulated days of traffic per policy."),
    users: int = typer.Option(
        0, min=0, help="Simulated users (a seeded sample; 0: every user of the world)."
    ),
    seed: int = typer.Option(2026, help="Seed of the users' draws (the same for every policy)."),
    port: int = typer.Option(8011, help="Port of the app each policy is served on."),
    scratch: Path | None = typer.Option(None, help="Where the state copies go (default: a tmp)."),
) -> None:
    from pipelines.cli import setup_logging
    from pipelines.traffic.runner import run_traffic

    setup_logging()  # the traffic's progress lines (every few simulated hours)
    cfg = load_config(config)
    source = cfg.paths.root_dir
    if not (cfg.paths.world_state.exists() and cfg.paths.clock.exists()):
        raise SystemExit(f"no bootstrapped world under {source}: `make run` first")
    since = SimClock.of(cfg).now()  # every policy's day starts here, on its own copy
    workdir = Path(tempfile.mkdtemp(prefix="online_policy_", dir=scratch))
    per_policy: dict[str, tuple[pd.DataFrame, pd.Series, dict[str, Any]]] = {}
    try:
        for name, policy in POLICIES.items():
            home = workdir / name
            started = time.perf_counter()
            print(f"[{name}] copying the state to {home} ...", flush=True)
            copy_state(source, home)
            with serving(cfg, home, port, "online_policy") as url:
                print(f"[{name}] serving on {url}; {days} day(s) of traffic ...", flush=True)
                os.environ["FEEDRANK_HOME"] = str(home)
                try:
                    run_cfg = cfg.model_copy(
                        update={"traffic": cfg.traffic.model_copy(update={"url": url})}
                    )
                    report = run_traffic(
                        run_cfg, days=days, users=users or None, policy=policy, seed=seed
                    )
                finally:
                    os.environ.pop("FEEDRANK_HOME", None)
            rows, per_user = user_day_frame(cfg, home, since)
            per_policy[name] = (rows, per_user["value"], report)
            print(
                f"[{name}] {len(rows)} impressions to {per_user.shape[0]} users "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    viewers = sorted(set().union(*(set(p[1].index) for p in per_policy.values())))
    value = {
        name: p[1].reindex(viewers, fill_value=0.0).to_numpy(float) / days
        for name, p in per_policy.items()
    }
    figures = {
        name: {
            **policy_figures(rows, value[name], days, seed),
            "feed_latency": feed_latency(report),
        }
        for name, (rows, _, report) in per_policy.items()
    }
    chrono, ranker, oracle = value["chronological"], value["ranker"], value["oracle"]

    def share(c: np.ndarray, r: np.ndarray, o: np.ndarray) -> float:
        gap = o.mean() - c.mean()
        return float((r.mean() - c.mean()) / gap) if gap != 0 else float("nan")

    lift = ranker - chrono
    for name, row in figures.items():
        print(f"{name:>14}: {json.dumps(row)}", flush=True)
    out = {
        "benchmark": "online_policy",
        "config": cfg.name,
        "days": days,
        "users": len(viewers),
        "seed": seed,
        "policies": figures,
        "ranker_lift_over_chronological": round(float(lift.mean()), 4),
        "ranker_lift_over_chronological_ci": interval((lift,), np.mean, seed),
        "oracle_lift_over_chronological": round(float((oracle - chrono).mean()), 4),
        "ranker_share_of_oracle_lift": round(share(chrono, ranker, oracle), 4),
        "ranker_share_of_oracle_lift_ci": interval((chrono, ranker, oracle), share, seed),
    }
    low, _ = out["ranker_lift_over_chronological_ci"]
    out["ranker_significantly_above_chronological"] = bool(low > 0)
    print(json.dumps(out))


if __name__ == "__main__":
    typer.run(main)
