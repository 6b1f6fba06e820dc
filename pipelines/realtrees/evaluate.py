"""The real-tree benchmark: every model on held-out trees, per stratum, with intervals.

One *protocol* is a cut (:func:`pipelines.realtrees.protocol.candidate_table`) and a split of the
trees (:mod:`pipelines.realtrees.splits`). In each, the logistic regression fits on the training
and validation trees, the conversation ranker trains on the training trees and picks its epoch on
the validation trees (:mod:`pipelines.realtrees.ranker`), and every model ranks the test trees'
candidates. Nothing is tuned on the test trees.

:func:`run_benchmark` runs three protocols: the main cut by tree (``real_trees``), the early cut
by tree (``real_trees_early_cut``) and the main cut split in time (``real_trees_time_split``).
Each maps the strata ``all`` (every evaluable test tree) and ``ge20`` (those with at least
``trees.large_min_candidates`` candidates) to ``{model: {"ndcg10", "ci", "recall10", "trees"}}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import ConversationConfig, FeedrankConfig, TreesConfig
from pipelines.realtrees import baselines, metrics
from pipelines.realtrees.history import AuthorHistory
from pipelines.realtrees.importer import load_trees
from pipelines.realtrees.protocol import candidate_table, cut_points
from pipelines.realtrees.ranker import train_ranker
from pipelines.realtrees.splits import TEST, TRAIN, VALIDATION, split_by_time, split_by_tree

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = (
    "ranker",
    "most_replies",
    "logreg",
    "chronological",
    "reverse_chronological",
    "random",
)
STRATA: tuple[str, ...] = ("all", "ge20")
Scorer = Callable[[pd.DataFrame], np.ndarray]


def sample_trees(posts: pd.DataFrame, count: int | None, seed: int) -> pd.DataFrame:
    """All trees, or a seeded draw of `count` of them (smoke runs)."""
    trees = posts["tree"].unique()
    if count is None or count >= len(trees):
        return posts
    kept = np.random.default_rng(seed).choice(trees, size=count, replace=False)
    return posts[posts["tree"].isin(kept)].reset_index(drop=True)


def section_shares(candidates: pd.DataFrame, sections: ConversationConfig) -> dict[str, float]:
    """Shares of candidates each health section of the served conversation page would take by
    toxicity, at the service's thresholds (``conversation.abusive.toxicity`` and
    ``conversation.low_quality.toxicity``): ``abusive``, ``low_quality``, ``main`` below (and
    ``unscored``: the share whose toxicity the package does not know, counted in ``main``)."""
    low_quality_toxicity = sections.low_quality.toxicity
    abusive_toxicity = sections.abusive.toxicity
    toxicity = candidates["toxicity"].to_numpy(dtype=np.float64)
    scored = np.isfinite(toxicity)
    abusive = scored & (toxicity >= abusive_toxicity)
    low = scored & ~abusive & (toxicity >= low_quality_toxicity)
    n = max(len(toxicity), 1)
    return {
        "main": float((~abusive & ~low).sum() / n),
        "low_quality": float(low.sum() / n),
        "abusive": float(abusive.sum() / n),
        "unscored": float((~scored).sum() / n),
        "low_quality_toxicity": low_quality_toxicity,
        "abusive_toxicity": abusive_toxicity,
    }


def fit_scorers(cfg: TreesConfig, candidates: pd.DataFrame) -> tuple[dict[str, Scorer], int]:
    """Every model's scorer, fitted on the non-test trees; and the ranker's kept epoch."""
    train = candidates[candidates["split"] == TRAIN]
    validation = candidates[candidates["split"] == VALIDATION]
    fitted = candidates[candidates["split"].isin([TRAIN, VALIDATION])]
    logreg = baselines.fit_logreg(fitted, cfg.logreg_max_iter, cfg.seed)
    ranker = train_ranker(cfg, train, validation)
    scorers: dict[str, Scorer] = {
        "ranker": ranker.score,
        "most_replies": baselines.most_replies,
        "logreg": baselines.logreg_scorer(logreg),
        "chronological": baselines.chronological,
        "reverse_chronological": baselines.reverse_chronological,
        "random": baselines.random_order(cfg.seed),
    }
    return scorers, ranker.best_epoch


def score_strata(
    cfg: TreesConfig, test: pd.DataFrame, scorers: dict[str, Scorer]
) -> dict[str, dict[str, Any]]:
    """Per stratum: each model's summary and the ranker's paired gains over the baselines."""
    strata = {
        "all": metrics.evaluable(test),
        "ge20": metrics.evaluable(test, cfg.large_min_candidates),
    }
    scores = {name: scorer(test) for name, scorer in scorers.items()}
    out: dict[str, dict[str, Any]] = {}
    for stratum, trees in strata.items():
        per_model = {
            name: metrics.per_tree(test, scores[name], trees, cfg.ndcg_k) for name in MODELS
        }
        out[stratum] = {
            name: metrics.summarize(
                per_model[name], cfg.bootstrap_samples, cfg.confidence, cfg.seed
            )
            for name in MODELS
        }
        out[stratum]["ranker_minus"] = {
            baseline: metrics.paired_difference(
                per_model, "ranker", baseline, cfg.bootstrap_samples, cfg.confidence, cfg.seed
            )
            for baseline in ("most_replies", "logreg")
        }
    return out


def run_protocol(
    cfg: TreesConfig, candidates: pd.DataFrame, split: pd.Series, sections: ConversationConfig
) -> dict[str, Any]:
    """One protocol: fit on the non-test trees of `split`, score the test trees (and the shares
    of the health sections at `sections`' thresholds)."""
    started = time.perf_counter()
    labelled = candidates.assign(split=split.reindex(candidates["tree"]).to_numpy())
    labelled = labelled[labelled["split"].notna()]
    scorers, best_epoch = fit_scorers(cfg, labelled)
    test = labelled[labelled["split"] == TEST]
    result: dict[str, Any] = score_strata(cfg, test, scorers)
    result["sections"] = section_shares(test, sections)
    result["ranker_best_epoch"] = best_epoch
    result["trees"] = {name: int((split == name).sum()) for name in (TRAIN, VALIDATION, TEST)}
    result["seconds"] = time.perf_counter() - started
    return result


def run_benchmark(cfg: FeedrankConfig, platform: str | None = None) -> dict[str, Any]:
    """The three protocols on a platform's trees (``cfg.trees.platform`` by default)."""
    knobs = cfg.trees
    started = time.perf_counter()
    posts, repair = load_trees(cfg, platform or knobs.platform)
    posts = sample_trees(posts, knobs.max_trees, knobs.seed)
    history = AuthorHistory(posts)
    windows = (knobs.recent_window_share, knobs.latest_window_share)
    main = candidate_table(posts, cut_points(posts, knobs.cut_fraction), windows, history)
    early = candidate_table(posts, cut_points(posts, knobs.early_cut_fraction), windows, history)
    by_tree = split_by_tree(
        pd.Index(posts["tree"].unique()), knobs.test_share, knobs.validation_share, knobs.seed
    )
    by_time = split_by_time(posts, knobs.time_test_share, knobs.validation_share)
    log.info("real trees: %d trees, %d candidates at the cut", len(by_tree), len(main))
    results = {
        "real_trees": run_protocol(knobs, main, by_tree, cfg.conversation),
        "real_trees_early_cut": run_protocol(knobs, early, by_tree, cfg.conversation),
        "real_trees_time_split": run_protocol(knobs, main, by_time, cfg.conversation),
    }
    return {
        "platform": platform or knobs.platform,
        **results,
        "repair": repair.as_dict(),
        "seconds": time.perf_counter() - started,
    }
