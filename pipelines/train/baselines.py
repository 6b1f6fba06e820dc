"""Tabular baselines every evaluation compares against: gradient-boosted trees (LightGBM)."""

from __future__ import annotations

import logging
import time

import numpy as np

from pipelines.config import FeedrankConfig

log = logging.getLogger(__name__)


def fit_lightgbm(
    cfg: FeedrankConfig, x_train: np.ndarray, y_train: np.ndarray
) -> dict[str, object]:
    """One binary LightGBM classifier per head on the ranker's own features; head -> booster."""
    import lightgbm as lgb

    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 31,
        "min_child_samples": 100,
        "feature_fraction": 0.5,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "max_bin": 63,
        "force_col_wise": True,
        "num_threads": 2,
        "seed": cfg.world.seed,
        "verbose": -1,
    }
    if len(x_train) > cfg.ranker.lgbm_max_rows:
        # A seeded subsample keeps the baseline to a minute or two on 2 cores.
        keep = np.random.default_rng(cfg.world.seed).choice(
            len(x_train), cfg.ranker.lgbm_max_rows, replace=False
        )
        x_train, y_train = x_train[np.sort(keep)], y_train[np.sort(keep)]
    boosters: dict[str, object] = {}
    for column, head in enumerate(cfg.ranker.heads):
        started = time.perf_counter()
        data = lgb.Dataset(x_train, label=y_train[:, column], free_raw_data=True)
        boosters[head] = lgb.train(params, data, num_boost_round=cfg.ranker.lgbm_rounds)
        log.info("lightgbm: head %s fitted in %.1f s", head, time.perf_counter() - started)
    return boosters


def predict_lightgbm(boosters: dict[str, object], x: np.ndarray) -> dict[str, np.ndarray]:
    return {head: np.asarray(b.predict(x)) for head, b in boosters.items()}  # type: ignore[attr-defined]
