"""A private copy of a state root, served by the Serve app in a child process.

Benchmarks that send traffic use it so that nothing they serve reaches the real state: not its
event log (so none of it becomes training data), not its seen-items history, pushed counts or
index of new tweets.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from pipelines.config import FeedrankConfig

# Folders of a state root that a serving run neither reads nor needs: left out of the copies.
NOT_COPIED = ("ray_results", "airflow", "mpl", "reports", "ray")


def copy_state(source: Path, target: Path) -> None:
    """A private copy of the state root (SQLite files with their WAL, the lake, the models)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)


@contextmanager
def serving(cfg: FeedrankConfig, home: Path, port: int, name: str = "scratch") -> Iterator[str]:
    """The Serve app of `cfg` on port `port` and the state root `home`, in a child process with
    its own embedded Ray; yields its base URL once healthy and stops it after. `name` names its
    config and log files in `home`."""
    config = home / f"{name}.yaml"
    resolved = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"port": port})})
    config.write_text(yaml.safe_dump(resolved.model_dump(mode="json", by_alias=True)))
    env = {**os.environ, "FEEDRANK_HOME": str(home)}
    env.pop("RAY_ADDRESS", None)
    log = (home / f"{name}-serve.log").open("w")
    child = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--config", str(config), "--block"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from serving.run import wait_healthy

    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout=600)
        yield url
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        log.close()
