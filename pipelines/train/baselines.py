"""Tabular baselines every evaluation compares against: gradient-boosted trees (LightGBM) and
a per-head logistic regression on standardized features (a ridge linear regression for a
regression head such as `dwell_time`, so "logreg" is the linear baseline of every head).

Both read the ranker's dense matrix ``x`` [N, F] (raw values, NaN where missing) and fit on a
seeded subsample of at most ``cfg.ranker.lgbm_max_rows`` training rows, so the two baselines see
the same rows and stay to a minute or two on 2 cores.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipelines.config import FeedrankConfig
from pipelines.inputs.spec import log_mask
from pipelines.models.masknet import FeatureNormalizer

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression, Ridge

log = logging.getLogger(__name__)

LOGREG_MAX_ITER = 200
EARLY_STOPPING_ROUNDS = 20


def training_subsample(
    cfg: FeedrankConfig, x_train: np.ndarray, y_train: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``cfg.ranker.lgbm_max_rows`` rows of ``x`` [N, F] and ``y`` [N, H], seeded by
    ``cfg.world.seed`` and kept in their original order; all rows when there are fewer."""
    if len(x_train) <= cfg.ranker.lgbm_max_rows:
        return x_train, y_train
    keep = np.sort(
        np.random.default_rng(cfg.world.seed).choice(
            len(x_train), cfg.ranker.lgbm_max_rows, replace=False
        )
    )
    return x_train[keep], y_train[keep]


def fit_lightgbm(
    cfg: FeedrankConfig, x_train: np.ndarray, y_train: np.ndarray
) -> dict[str, object]:
    """One LightGBM model per head on the ranker's own features (binary log loss, squared error
    for a regression head); head -> booster."""
    import lightgbm as lgb

    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 31,
        "min_child_samples": 100,
        "lambda_l2": 1.0,
        "feature_fraction": 0.5,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "max_bin": 63,
        "force_col_wise": True,
        "num_threads": 2,
        "seed": cfg.world.seed,
        "verbose": -1,
    }
    x_train, y_train = training_subsample(cfg, x_train, y_train)
    # The last tenth (by time) stops each head's boosting when it no longer helps: a rare head
    # (quote, report) overfits its few positives long before lgbm_rounds.
    cut = int(len(x_train) * 0.9)
    boosters: dict[str, object] = {}
    for column, head in enumerate(cfg.ranker.heads):
        started = time.perf_counter()
        data = lgb.Dataset(x_train[:cut], label=y_train[:cut, column], free_raw_data=True)
        valid = lgb.Dataset(x_train[cut:], label=y_train[cut:, column], reference=data)
        objective = "binary" if head in cfg.ranker.binary_heads else "regression"
        booster = lgb.train(
            {**params, "objective": objective},
            data,
            num_boost_round=cfg.ranker.lgbm_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
        boosters[head] = booster
        log.info(
            "lightgbm: head %s fitted in %.1f s (%d rounds)",
            head,
            time.perf_counter() - started,
            booster.best_iteration or cfg.ranker.lgbm_rounds,
        )
    return boosters


def predict_lightgbm(boosters: dict[str, object], x: np.ndarray) -> dict[str, np.ndarray]:
    return {head: np.asarray(b.predict(x)) for head, b in boosters.items()}  # type: ignore[attr-defined]


@dataclass
class LogregBaseline:
    """One logistic regression per head on standardized features. A head whose training labels
    were a single class holds its training rate (a float) instead of a model."""

    standardizer: FeatureNormalizer
    heads: dict[str, LogisticRegression | Ridge | float] = field(default_factory=dict)


def standardize(normalizer: FeatureNormalizer, x: np.ndarray) -> np.ndarray:
    """``x`` [N, F] raw -> [N, F] float32 as the ranker's own input transform gives it: signed
    log1p on the log columns, standardized, missing and infinite values at the mean (0)."""
    if x.ndim != 2 or x.shape[1] != normalizer.num_features:
        raise ValueError(f"expected [N, {normalizer.num_features}] features, got {x.shape}")
    with torch.no_grad():
        return normalizer(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def _column_mask(cfg: FeedrankConfig, num_features: int) -> np.ndarray:
    """The ranker's log-transform mask, or none where the matrix is not the spec's (tests)."""
    mask = log_mask(cfg.encoder.embedding_dim, cfg.ranker.feature_set)
    if mask.shape != (num_features,):
        log.warning("logreg: %d features but the spec has %d; no log1p", num_features, len(mask))
        return np.zeros(num_features, dtype=bool)
    return mask


def fit_logreg(cfg: FeedrankConfig, x_train: np.ndarray, y_train: np.ndarray) -> LogregBaseline:
    """Per-head ``LogisticRegression`` (lbfgs, C=1) on the ranker's dense features.

    Args:
        x_train: ``[N, F]`` raw dense features (the ranker's ``x_train``), NaN where missing.
        y_train: ``[N, H]`` 0/1 labels, columns in ``cfg.ranker.heads`` order.

    The same columns as the ranker are signed-log1p'd, then every column is standardized with
    training statistics (NaN -> the training mean). Fits on the seeded subsample of at most
    ``cfg.ranker.lgbm_max_rows`` rows that LightGBM uses.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    x_train, y_train = training_subsample(cfg, x_train, y_train)
    standardizer = FeatureNormalizer.fit(x_train, _column_mask(cfg, x_train.shape[1]))
    features = standardize(standardizer, x_train)
    baseline = LogregBaseline(standardizer=standardizer)
    for column, head in enumerate(cfg.ranker.heads):
        if head not in cfg.ranker.binary_heads:
            baseline.heads[head] = Ridge(alpha=1.0).fit(features, y_train[:, column])
            continue
        labels = (y_train[:, column] > 0.5).astype(np.int64)
        rate = float(labels.mean()) if labels.size else 0.0
        if labels.min(initial=0) == labels.max(initial=0):
            log.warning("logreg: head %s has one class in training; predicting %.4f", head, rate)
            baseline.heads[head] = rate
            continue
        started = time.perf_counter()
        model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=LOGREG_MAX_ITER)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(features, labels)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.warning("logreg: head %s stopped at %d iterations", head, LOGREG_MAX_ITER)
        baseline.heads[head] = model
        log.info("logreg: head %s fitted in %.1f s", head, time.perf_counter() - started)
    return baseline


def predict_logreg(baseline: LogregBaseline, x: np.ndarray) -> dict[str, np.ndarray]:
    """``x`` [N, F] raw features -> {head: [N] probability, or value for a regression head}."""
    from sklearn.linear_model import Ridge

    features = standardize(baseline.standardizer, x)
    out: dict[str, np.ndarray] = {}
    for head, model in baseline.heads.items():
        if isinstance(model, float):
            out[head] = np.full(len(features), model, dtype=np.float64)
        elif isinstance(model, Ridge):
            out[head] = np.asarray(model.predict(features), dtype=np.float64)
        else:
            out[head] = np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)
    return out
