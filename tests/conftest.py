"""Shared fixtures. One temporary state root per session; the smoke pipeline runs in it once,
either step by step in process (`smoke_pipeline`, what the integration tier uses) or as the real
feed_training DAG through Airflow (`dag_run`, the e2e tier)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import FeedrankConfig, load_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh FEEDRANK_HOME for the whole session (restored afterwards)."""
    root = tmp_path_factory.mktemp("feedrank_state")
    previous = os.environ.get("FEEDRANK_HOME")
    os.environ["FEEDRANK_HOME"] = str(root)
    os.environ.setdefault("MPLCONFIGDIR", str(root / "mpl"))
    yield root
    if previous is None:
        os.environ.pop("FEEDRANK_HOME", None)
    else:
        os.environ["FEEDRANK_HOME"] = previous


class SmokePipeline:
    """The smoke config's pipeline in the session's state root, run a step at a time on demand.

    `through(step)` runs, in this process, the steps `step` needs that have not run yet this
    session (its upstream closure, in dependency order) and returns the config. The integration
    tier asks only for what it needs; when the e2e tier has run the whole DAG through Airflow in
    the same session, every step is done and nothing runs twice.
    """

    def __init__(self) -> None:
        self.done: set[str] = set()

    def through(self, step: str) -> FeedrankConfig:
        from pipelines.steps import STEPS_BY_NAME, execution_order, run_step

        needed = {step}
        for name in reversed(execution_order()):
            if name in needed:
                needed.update(STEPS_BY_NAME[name].upstream)
        cfg = load_config("smoke")
        for name in execution_order():
            if name in needed and name not in self.done:
                run_step(name, cfg)
                self.done.add(name)
        return cfg


@pytest.fixture(scope="session")
def smoke_pipeline(state_root: Path) -> SmokePipeline:
    return SmokePipeline()


@pytest.fixture(scope="session")
def dag_run(state_root: Path, smoke_pipeline: SmokePipeline) -> subprocess.CompletedProcess[str]:
    """`feedrank dag-test --config smoke`: the whole DAG through Airflow, as `make run` does."""
    from pipelines.steps import STEPS

    feedrank = Path(sys.executable).parent / "feedrank"
    command = [str(feedrank), "dag-test", "--config", "smoke"]
    completed = subprocess.run(
        command, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=1500
    )
    log = state_root / "dag_test.log"
    log.write_text(completed.stdout + "\n" + completed.stderr)
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr)[-6000:]
        pytest.fail(f"feed_training DAG failed (rc={completed.returncode}), log {log}:\n{tail}")
    smoke_pipeline.done.update(step.name for step in STEPS)
    return completed


@pytest.fixture(scope="session")
def trained_cfg(smoke_pipeline: SmokePipeline) -> FeedrankConfig:
    """The smoke config whose lake, Feast store and MLflow registry hold a promoted champion."""
    return smoke_pipeline.through("promote")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served_cfg(trained_cfg: FeedrankConfig) -> Iterator[FeedrankConfig]:
    """The Ray Serve app over real HTTP on a free port, for one test module.

    Module scope on purpose: a live app holds Ray CPUs that training tests in other modules need.
    """
    from serving.run import start, stop, wait_healthy

    serve_cfg = trained_cfg.serve.model_copy(update={"host": "127.0.0.1", "port": _free_port()})
    cfg = trained_cfg.model_copy(update={"serve": serve_cfg})
    try:
        url = start(cfg)
        wait_healthy(url, timeout=300)
        yield cfg
    finally:
        stop()
        import ray

        ray.shutdown()


@pytest.fixture(scope="module")
def served_url(served_cfg: FeedrankConfig) -> str:
    return f"http://{served_cfg.serve.host}:{served_cfg.serve.port}"
