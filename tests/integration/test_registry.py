"""MLflow for real: register, move aliases through the gate, load the champion and score."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import FeedrankConfig
from pipelines.handoffs import RankerTraining, Registration
from pipelines.models.bundle import RankerBundle
from pipelines.release.gates import compare_with_champion
from pipelines.release.promotion import apply_gates
from pipelines.release.registry import (
    alias_version,
    configure_mlflow,
    load_ranker,
    log_and_register,
)

pytestmark = pytest.mark.integration


def test_register_gate_and_load(trained_cfg: FeedrankConfig, tmp_path: Path) -> None:
    tracking = trained_cfg.tracking.model_copy(
        update={
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "experiment": "registry-test",
        }
    )
    strict_gate = trained_cfg.promote.model_copy(update={"min_ndcg_gain": 0.0})
    cfg = trained_cfg.model_copy(update={"tracking": tracking, "promote": strict_gate})
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# test report\n")
    assert alias_version(cfg, "champion") is None and load_ranker(cfg, "champion") is None

    good = {"ranker_ndcg": 0.70, "lgbm_ndcg": 0.60}
    days = RankerTraining.read(cfg).days_params()
    first = log_and_register(
        cfg,
        cfg.paths.ranker_dir(cfg.ranker.feature_set),
        None,
        report,
        good,
        history=[],
        params=days,
    )
    assert alias_version(cfg, "challenger") == first["version"]
    logged = configure_mlflow(cfg).get_run(first["run_id"]).data.params
    assert {key: logged[key] for key in days} == days  # what it learned from, what it held out
    assert logged["holdout.days"] and logged["train.days"].count(",") >= 1
    decision = apply_gates(cfg, Registration(**first), good, None)
    assert decision["promote"] and alias_version(cfg, "champion") == first["version"]

    worse = {"ranker_ndcg": 0.50, "lgbm_ndcg": 0.60}
    second = log_and_register(
        cfg, cfg.paths.ranker_dir(cfg.ranker.feature_set), None, report, worse, history=[]
    )
    decision = apply_gates(cfg, Registration(**second), worse, None)
    assert not decision["promote"] and "0.5000" in decision["reason"]
    assert alias_version(cfg, "champion") == first["version"]  # the champion stays
    assert alias_version(cfg, "challenger") == second["version"]

    champion = load_ranker(cfg, "champion")
    assert champion is not None and champion.version == first["version"]
    local = RankerBundle.load(cfg.paths.ranker_dir(cfg.ranker.feature_set))
    x = np.random.default_rng(0).normal(size=(4, local.model.normalizer.num_features))
    x = x.astype(np.float32)
    ids = None
    if local.model.sparse is not None:  # the champion embeds sparse ids too: score with some
        buckets = local.model.sparse.table.num_embeddings
        ids = np.random.default_rng(1).integers(0, buckets, size=(4, local.model.sparse.num_slots))
    assert champion.uses_sparse == local.uses_sparse
    loaded, direct = champion.predict_matrix(x, ids), local.predict_matrix(x, ids)
    for head in cfg.ranker.heads:
        np.testing.assert_allclose(loaded[head], direct[head], rtol=1e-6)


def test_a_challenger_no_better_than_the_champion_stays_challenger(
    trained_cfg: FeedrankConfig, tmp_path: Path
) -> None:
    """The champion gate on the real held-out days: the same ranker registered again shows no
    NDCG gain (its interval is [0, 0]), so the champion does not move; the reasons say why."""
    tracking = trained_cfg.tracking.model_copy(
        update={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "gate-test"}
    )
    gate = trained_cfg.promote.model_copy(update={"min_ndcg_gain": 0.0})
    cfg = trained_cfg.model_copy(update={"tracking": tracking, "promote": gate})
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# test report\n")
    assert compare_with_champion(cfg, tmp_path / "gate.json") is None  # no champion yet
    metrics = {"ranker_ndcg": 0.70, "lgbm_ndcg": 0.60}
    first = log_and_register(
        cfg, cfg.paths.ranker_dir(cfg.ranker.feature_set), None, report, metrics, history=[]
    )
    assert apply_gates(cfg, Registration(**first), metrics, None)["promote"]

    second = log_and_register(
        cfg, cfg.paths.ranker_dir(cfg.ranker.feature_set), None, report, metrics, history=[]
    )
    comparison = compare_with_champion(cfg, tmp_path / "gate.json")
    assert comparison is not None and comparison.requests > 10
    assert comparison.ndcg_gain == 0.0 and not comparison.promote
    # A head with no positive on the held-out days (a small served day) has no RCE to compare.
    defined = [drop for drop in comparison.rce_drop.values() if not math.isnan(drop)]
    assert defined and all(abs(drop) < 1e-9 for drop in defined)
    assert (tmp_path / "gate.json").exists()
    decision = apply_gates(cfg, Registration(**second), metrics, comparison)
    assert not decision["promote"] and "bootstrap interval" in decision["reason"]
    assert alias_version(cfg, "champion") == first["version"]
