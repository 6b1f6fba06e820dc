"""The e2e tier reads what the real DAG run left, never an in-process pipeline."""

from __future__ import annotations

import subprocess

import pytest

from pipelines.config import FeedrankConfig, load_config


@pytest.fixture(scope="session")
def trained_cfg(dag_run: subprocess.CompletedProcess[str]) -> FeedrankConfig:
    """The smoke config after `feedrank dag-test --config smoke` succeeded."""
    return load_config("smoke")
