"""The promotion gate against the serving champion: a bootstrap interval on the blended NDCG gain,
and a bound on how much any head's RCE may drop.

Both rankers score the same held-out impressions. The gain is the mean over feed requests of the
per-request NDCG@k difference (challenger − champion); requests are resampled with replacement
(`promote.bootstrap_samples` times) for a percentile interval at `promote.confidence`. The
challenger passes only if the interval's lower end is above `promote.min_ndcg_gain` and no head's
RCE (100·R² for a regression head) is more than `promote.max_rce_drop` points below the
champion's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig, PromoteConfig
from pipelines.evaluate.metrics import ndcg_per_group, relative_score
from pipelines.ranking import blend_scores
from pipelines.schema import REGRESSION_HEADS

log = logging.getLogger(__name__)

COMPARISON_FILE = "champion_comparison.json"


def bootstrap_interval(
    values: np.ndarray, samples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the mean of `values` [R] over `samples` resamples of the R values."""
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # [100, R] index blocks keep memory flat
        block = rng.integers(0, len(values), size=(min(100, samples - start), len(values)))
        means[start : start + len(block)] = values[block].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


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


def compare_with_champion(cfg: FeedrankConfig, out_dir: Path) -> ChampionComparison | None:
    """Score the held-out days with the new ranker (models/ranker) and the registered champion;
    None when there is no champion yet. Writes the comparison to `out_dir`."""
    from pipelines.models.bundle import IncompatibleBundleError, RankerBundle
    from pipelines.registry import load_ranker

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
    out_dir.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"champion_version": champion.version, **asdict(comparison)}
    (out_dir / COMPARISON_FILE).write_text(json.dumps(payload, indent=2, default=float))
    for line in comparison.reasons:
        log.info("gate vs champion v%s: %s", champion.version, line)
    return comparison
