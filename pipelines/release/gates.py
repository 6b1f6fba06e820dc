"""The two promotion gates, and the decision that applies them.

- **Offline gate** (no champion yet): the challenger's blended NDCG on the held-out days must beat
  LightGBM's by more than `promote.min_ndcg_gain`.
- **Champion gate**: both rankers score the same held-out impressions. The gain is the mean over
  feed requests of the per-request NDCG@k difference (challenger - champion); a percentile
  bootstrap over requests (`promote.bootstrap_samples` resamples, `scipy.stats.bootstrap`) gives an
  interval at `promote.confidence`. The challenger passes only if the interval's lower end is above
  `promote.min_ndcg_gain` and no head's RCE (100 R2 for a regression head) is more than
  `promote.max_rce_drop` points below the champion's.

The registry (`pipelines.release.registry`) only talks to MLflow; this module decides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from pipelines.config import FeedrankConfig, PromoteConfig
from pipelines.evaluate.metrics import ndcg_per_group, relative_score
from pipelines.ranking import blend_scores
from pipelines.schema import REGRESSION_HEADS

log = logging.getLogger(__name__)


def bootstrap_interval(
    values: np.ndarray, samples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` [R] over `samples` resamples."""
    values = np.asarray(values, dtype=np.float64)
    result = scipy.stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=samples,
        batch=100,  # [100, R] resamples at a time keep memory flat
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass
class ChampionComparison:
    """What the gate decides on; `reasons` say why it passed or failed, one line each."""

    promote: bool
    ndcg_gain: float
    ndcg_gain_low: float
    ndcg_gain_high: float
    challenger_ndcg: float
    champion_ndcg: float
    requests: int
    rce_drop: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def compare_predictions(
    requests: np.ndarray,
    labels: dict[str, np.ndarray],
    challenger: dict[str, np.ndarray],
    champion: dict[str, np.ndarray],
    weights: dict[str, float],
    gate: PromoteConfig,
    seed: int = 0,
) -> ChampionComparison:
    """The gate on two rankers' predictions ({head: [N]}) of the same rows, with realized labels
    ({head: [N] 0/1}) and feed requests [N]."""
    gains = np.maximum(0.0, blend_scores(labels, weights))
    ours = ndcg_per_group(requests, gains, blend_scores(challenger, weights), gate.ndcg_k)
    theirs = ndcg_per_group(requests, gains, blend_scores(champion, weights), gate.ndcg_k)
    valid = ~np.isnan(ours)
    diff = ours[valid] - theirs[valid]
    if not len(diff):
        return ChampionComparison(
            False, np.nan, np.nan, np.nan, np.nan, np.nan, 0, reasons=["no request has a gain"]
        )
    low, high = bootstrap_interval(diff, gate.bootstrap_samples, gate.confidence, seed)
    gain = float(diff.mean())
    reasons = [
        f"blended NDCG@{gate.ndcg_k} challenger {ours[valid].mean():.4f} vs champion "
        f"{theirs[valid].mean():.4f}: gain {gain:+.4f}, {gate.confidence:.0%} bootstrap interval "
        f"[{low:+.4f}, {high:+.4f}] over {len(diff)} requests; the lower end must exceed "
        f"{gate.min_ndcg_gain:+.4f}: {'yes' if low > gate.min_ndcg_gain else 'no'}"
    ]
    drops = {
        head: relative_score(labels[head], champion[head], head in REGRESSION_HEADS)
        - relative_score(labels[head], challenger[head], head in REGRESSION_HEADS)
        for head in labels
        if head in champion and head in challenger
    }
    worst = {h: d for h, d in drops.items() if not d <= gate.max_rce_drop}
    for head, drop in sorted(worst.items()):
        reasons.append(
            f"RCE of {head} drops by {drop:.2f} points (at most {gate.max_rce_drop:.2f} allowed)"
        )
    if not worst:
        reasons.append(f"no head's RCE drops by more than {gate.max_rce_drop:.2f} points")
    return ChampionComparison(
        promote=bool(low > gate.min_ndcg_gain and not worst),
        ndcg_gain=gain,
        ndcg_gain_low=low,
        ndcg_gain_high=high,
        challenger_ndcg=float(ours[valid].mean()),
        champion_ndcg=float(theirs[valid].mean()),
        requests=int(len(diff)),
        rce_drop=drops,
        reasons=reasons,
    )


def compare_with_champion(
    cfg: FeedrankConfig, out: Path | None = None
) -> ChampionComparison | None:
    """Score the held-out days with this run's ranker and the registered champion; None when
    there is no champion yet (or it cannot score today's features). Writes the comparison to the
    artifact map's `champion_comparison` (or to `out`)."""
    from pipelines.models.bundle import IncompatibleBundleError, RankerBundle
    from pipelines.release.registry import load_ranker

    try:
        champion = load_ranker(cfg, "champion")
    except IncompatibleBundleError as exc:
        log.warning("gate: the champion cannot score today's features (%s); gating as if new", exc)
        return None
    if champion is None:
        return None
    frame = pd.read_parquet(cfg.paths.training_set)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    heads = list(cfg.ranker.heads)
    labels = {head: test[f"label_{head}"].to_numpy(dtype=np.float64) for head in heads}
    challenger = RankerBundle.load(cfg.paths.ranker_dir(cfg.ranker.feature_set)).predict(test)
    theirs = champion.predict(test)
    comparison = compare_predictions(
        test["request_id"].to_numpy(),
        labels,
        challenger,
        theirs,
        cfg.blend.weights,
        cfg.promote,
        seed=cfg.world.seed,
    )
    payload: dict[str, Any] = {"champion_version": champion.version, **asdict(comparison)}
    out = out or cfg.paths.champion_comparison
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float))
    for line in comparison.reasons:
        log.info("gate vs champion v%s: %s", champion.version, line)
    return comparison


def offline_gate(metrics: Mapping[str, float], min_gain: float) -> dict[str, Any]:
    """The gate while no champion serves: the ranker's blended NDCG must beat LightGBM's by more
    than `min_gain` (a missing or NaN figure fails)."""
    ranker = metrics.get("ranker_ndcg", float("nan"))
    baseline = metrics.get("lgbm_ndcg", float("nan"))
    passed = ranker == ranker and baseline == baseline and ranker - baseline > min_gain
    reason = (
        f"ranker blended NDCG {ranker:.4f} vs LightGBM {baseline:.4f}: "
        f"gain {ranker - baseline:+.4f} {'>' if passed else '<='} required {min_gain:+.4f}"
    )
    return {"promote": bool(passed), "reason": reason, "ranker_ndcg": ranker, "lgbm_ndcg": baseline}


def decide(
    metrics: Mapping[str, float], comparison: ChampionComparison | None, gate: PromoteConfig
) -> dict[str, Any]:
    """The promotion decision: the champion gate when there is a champion to compare with, the
    offline gate otherwise. `promote` says whether the challenger becomes champion; `reason` why."""
    if comparison is None:
        return offline_gate(metrics, gate.min_ndcg_gain)
    return {
        "promote": comparison.promote,
        "reason": "; ".join(comparison.reasons),
        **{k: v for k, v in asdict(comparison).items() if k not in ("promote", "reasons")},
    }
