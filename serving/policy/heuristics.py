"""Product heuristics on the ranked feed (DESIGN section 6): plain functions of a scored frame.

A scored frame has a ``score`` column (the blended model score, which can be negative) next to
author_id, in_network, tweet_id and source. Each discount multiplies a non-negative score by its
factor (in (0, 1]) and divides a negative one by it, so a discount always moves an item down;
discounts compose (factor ``a`` then ``b`` is factor ``a * b``), and the ``heuristic_factor``
column keeps their product.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from pipelines.config import ServeConfig
from pipelines.schema import id_array

FACTOR_COLUMN = "heuristic_factor"


def discount(score: np.ndarray, factor: float | np.ndarray) -> np.ndarray:
    """Scores [N] moved down by factor(s) in (0, 1]: ``score * factor`` where the score is
    non-negative, ``score / factor`` where it is negative."""
    score = np.asarray(score, dtype=np.float64)
    factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), score.shape)
    if (factor <= 0).any():
        raise ValueError("discount factors must be positive")
    return np.where(score >= 0, score * factor, score / factor)


def _out_of_network_factor(frame: pd.DataFrame, scale: float) -> np.ndarray:
    """[N] factor: `scale` for out-of-network tweets, 1 for in-network ones."""
    return np.where(frame["in_network"].to_numpy(bool), 1.0, scale)


def fatigue_factor(elapsed_days: np.ndarray, min_factor: float, recovery_days: float) -> np.ndarray:
    """[N] factor rising linearly from `min_factor` at the feedback to 1 after `recovery_days`."""
    progress = np.clip(np.asarray(elapsed_days, dtype=np.float64) / recovery_days, 0.0, 1.0)
    return min_factor + (1.0 - min_factor) * progress


def _fatigue_factors(
    frame: pd.DataFrame,
    show_fewer: Mapping[int, pd.Timestamp],
    now: pd.Timestamp,
    min_factor: float,
    recovery_days: float,
) -> np.ndarray:
    """[N] factor of the tweets of authors the viewer asked to see fewer of (author -> time of
    the latest "show fewer"): :func:`fatigue_factor` of the days since; 1 for other authors."""
    factor = np.ones(len(frame))
    if show_fewer:
        authors = np.fromiter(show_fewer.keys(), dtype=np.int64, count=len(show_fewer))
        asked = pd.DatetimeIndex(pd.to_datetime(list(show_fewer.values()), utc=True))
        elapsed = (pd.to_datetime(now, utc=True) - asked) / pd.Timedelta(days=1)
        author_factor = fatigue_factor(np.asarray(elapsed), min_factor, recovery_days)
        order = np.argsort(authors)
        authors, author_factor = authors[order], author_factor[order]
        frame_authors = frame["author_id"].to_numpy(np.int64)
        at = np.minimum(np.searchsorted(authors, frame_authors), len(authors) - 1)
        hit = authors[at] == frame_authors
        factor[hit] = author_factor[at[hit]]
    return factor


def _diversity_factors(
    score: np.ndarray, author_ids: np.ndarray, decay: float, floor: float
) -> np.ndarray:
    """[N] factor: in score order (stable), an author's k-th tweet (k = 0, 1, ...) gets
    ``max(floor, decay ** k)``."""
    order = np.argsort(-score, kind="stable")
    authors = author_ids[order]
    by_author = np.argsort(authors, kind="stable")  # score order kept within an author
    sorted_authors = authors[by_author]
    run_start = np.r_[True, sorted_authors[1:] != sorted_authors[:-1]]
    starts = np.flatnonzero(run_start)
    rank_in_run = np.arange(len(authors)) - starts[np.cumsum(run_start) - 1]
    k = np.empty(len(score), dtype=np.int64)
    k[order[by_author]] = rank_in_run
    return np.maximum(floor, decay ** k.astype(np.float64))


def repetition_penalty(
    frame: pd.DataFrame, repeated: Collection[int] | np.ndarray, positions: int
) -> pd.DataFrame:
    """Reorder a final list: each tweet in `repeated` moves `positions` places down (or to the
    end), the others keep their relative order and fill the places left."""
    ids = frame["tweet_id"].to_numpy(np.int64)
    is_repeated = np.isin(ids, id_array(repeated))
    moved = np.flatnonzero(is_repeated)
    n = len(frame)
    if positions <= 0 or len(moved) == 0:
        return frame.reset_index(drop=True)
    # Targets ascend strictly, so they never collide; near the end they queue in order.
    target = np.minimum(moved + positions, n - len(moved) + np.arange(len(moved)))
    order = np.empty(n, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    taken[target] = True
    order[target] = moved
    order[~taken] = np.flatnonzero(~is_repeated)
    return frame.iloc[order].reset_index(drop=True)


def apply_heuristics(
    frame: pd.DataFrame,
    serve_cfg: ServeConfig,
    now: pd.Timestamp,
    show_fewer: Mapping[int, pd.Timestamp],
    repeated: Collection[int] | np.ndarray,
) -> pd.DataFrame:
    """Out-of-network scaling, "show fewer" fatigue, author diversity, a stable sort best first,
    then the repetition penalty on that order: the page order, with the final ``score`` and
    ``heuristic_factor``.

    repeated: tweet ids served to the viewer before. The discounts run on arrays and the frame
    is rebuilt once.
    """
    score = frame["score"].to_numpy(np.float64)
    total = np.ones(len(frame))
    for factor in (
        _out_of_network_factor(frame, serve_cfg.out_of_network_scale),
        _fatigue_factors(
            frame, show_fewer, now, serve_cfg.fatigue_min_factor, serve_cfg.fatigue_recovery_days
        ),
    ):
        score, total = discount(score, factor), total * factor
    factor = _diversity_factors(
        score,
        frame["author_id"].to_numpy(np.int64),
        serve_cfg.author_diversity_decay,
        serve_cfg.author_diversity_floor,
    )
    score, total = discount(score, factor), total * factor
    order = np.argsort(-score, kind="stable")
    ranked = frame.iloc[order].reset_index(drop=True)
    ranked["score"] = score[order]
    ranked[FACTOR_COLUMN] = total[order]
    return repetition_penalty(ranked, repeated, serve_cfg.repetition_penalty_positions)
