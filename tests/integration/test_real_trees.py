"""The real-tree benchmark end to end on a seeded sample of the package's Twitter trees: the
package's file, re-keying, repair, the three protocols, the report and its MLflow run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import REPO_ROOT

pytestmark = pytest.mark.integration

MODELS = {"ranker", "most_replies", "logreg", "chronological", "reverse_chronological", "random"}


def smoke_config(tmp_path: Path) -> Path:
    path = tmp_path / "trees_smoke.yaml"
    path.write_text(
        "name: trees_smoke\n"
        "trees:\n"
        "  max_trees: 600\n"
        "  bootstrap_samples: 200\n"
        "  ranker: {epochs: 2, num_blocks: 1, mask_hidden_dim: 16, block_dim: 16, mlp_dims: [16]}\n"
    )
    return path


def test_the_benchmark_prints_every_model_per_stratum_and_logs_its_report(tmp_path: Path) -> None:
    env = {"FEEDRANK_HOME": str(tmp_path / "home"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    completed = subprocess.run(
        [
            sys.executable,
            "benchmarks/conversation.py",
            "--config",
            str(smoke_config(tmp_path)),
            "--skip-latency",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    for stratum in ("all", "ge20"):
        rows = figures["real_trees"][stratum]
        assert set(rows) == MODELS
        for row in rows.values():
            assert 0.0 <= row["ci"][0] <= row["ndcg10"] <= row["ci"][1] <= 1.0
            assert 0.0 <= row["recall10"] <= 1.0
    all_trees = figures["real_trees"]["all"]
    assert all_trees["ranker"]["ndcg10"] > all_trees["random"]["ndcg10"]
    assert figures["latency"] == {"http_p99_ms": None, "in_process_p99_ms": None, "skipped": True}
    assert figures["repair"]["trees_in"] == 7645
    reports = tmp_path / "home" / "reports" / "conversation"
    assert {p.name for p in reports.iterdir()} == {
        "real_trees.md",
        "real_trees_ndcg.png",
        "real_trees.json",
    }
    assert (tmp_path / "home" / "mlflow.db").exists()
    assert (tmp_path / "home" / "trees" / "rekey.salt").exists()
