"""One place that starts (or joins) Ray for every pipeline step.

Embedded default: a local Ray on this machine with ``num_cpus = os.cpu_count()``, its temp files in
``cfg.paths.ray_tmp`` (kept out of HOME, short enough for Ray's socket paths).
Scale-out: set ``RAY_ADDRESS`` (e.g. ``ray://head:10001`` or ``auto``) and the same code joins that
cluster, shipping the ``pipelines`` package to its workers.

The dashboard stays on in the embedded default (``FEEDRANK_RAY_DASHBOARD=0`` turns it off): it
costs no measurable start time (~11-12 s either way on a loaded 2-core machine), and without it
the Ray state API is down, which Ray Train V2's placement-group cleaner polls every second (a
warning each time, and no cleanup of a crashed run's placement group); ``ray list actors`` and the
UI at http://127.0.0.1:8265 (the next free port when taken) need it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from pipelines.config import REPO_ROOT, FeedrankConfig

PACKAGE_DIR = REPO_ROOT / "pipelines"  # shipped to a cluster's workers as a py_module


def _prepare_env() -> None:
    """Environment every Ray process of ours inherits (they are forked from this one)."""
    # Ray 2.5x+ enables token auth by default; the embedded cluster is local-only.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from offline hosts
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # show every worker's progress lines
    # Local workers must import `pipelines` whatever the caller's working directory.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])


def init_ray(cfg: FeedrankConfig) -> bool:
    """Start or join Ray unless it is already up; True when this call did it.

    With ``RAY_ADDRESS`` set, joins that cluster (``ray.init(address=...)``) and ships the
    ``pipelines`` package through ``runtime_env``; otherwise starts an embedded local Ray.
    """
    if ray.is_initialized():
        return False
    _prepare_env()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(
            address=address,
            runtime_env={"py_modules": [str(PACKAGE_DIR)]},
            ignore_reinit_error=True,
            log_to_driver=True,
        )
        return True
    temp_dir = cfg.paths.ray_tmp
    temp_dir.mkdir(parents=True, exist_ok=True)
    ray.init(
        num_cpus=os.cpu_count() or 2,
        _temp_dir=str(temp_dir),
        include_dashboard=os.environ.get("FEEDRANK_RAY_DASHBOARD", "1") != "0",
        ignore_reinit_error=True,
        log_to_driver=True,
    )
    return True


@contextmanager
def ray_session(cfg: FeedrankConfig) -> Iterator[None]:
    """Ray up for the ``with`` block; shuts down only a Ray this block started."""
    started = init_ray(cfg)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
