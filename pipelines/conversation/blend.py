"""The conversation score's blend weights, tuned by grid search for time spent.

The score of a reply is ``sum_h weight_h * p_h`` over the reply ranker's heads. The weights are
not set by hand: every combination of `conversation_blend.grid` is tried on the held-out days, and
the one whose score orders each conversation request's replies best by realized dwell (mean
NDCG@k, gain = dwell in seconds) wins. The held-out requests are split in two by request id: the
search sees one half (`tune`), the other half (`check`) measures the chosen weights on requests
it did not see, against the hand weights (`conversation_blend.weights`). Only requests that
showed at least two replies take part: a single reply is in its only order whatever the weights,
and its NDCG of 1 would only pull every combination towards the same figure.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping

import numpy as np

from pipelines.config import ConversationBlendConfig
from pipelines.evaluate.metrics import mean_ndcg_at_k
from pipelines.handoffs import ConversationBlend
from pipelines.ranking import blend_scores

log = logging.getLogger(__name__)


def grid_weights(blend: ConversationBlendConfig) -> Iterator[dict[str, float]]:
    """Every combination of the grid, each as full weights (heads off the grid keep their hand
    weight), in the grid's order; the combination of all-zero weights is left out (it ranks by
    nothing: ties keep the logged order, which is not a ranking)."""
    heads = list(blend.grid)
    for values in itertools.product(*(blend.grid[head] for head in heads)):
        weights = {**blend.weights, **dict(zip(heads, values, strict=True))}
        if any(weight != 0.0 for weight in weights.values()):
            yield weights


def dwell_gains(dwell_ms: np.ndarray) -> np.ndarray:
    """[N] realized dwell in seconds (the gain of the time-spent NDCG); a missing dwell is 0."""
    return np.nan_to_num(np.asarray(dwell_ms, dtype=np.float64), nan=0.0) / 1000.0


def dwell_ndcg(
    requests: np.ndarray,
    gains: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    k: int,
) -> float:
    """Mean NDCG@k per request of the blended score against realized dwell gains [N]."""
    return mean_ndcg_at_k(requests, gains, blend_scores(predictions, weights), k)


class TooFewRequestsError(ValueError):
    """The held-out requests cannot tune the blend (a half empty, or no dwell to order by)."""


def hand_blend(blend: ConversationBlendConfig, k: int) -> ConversationBlend:
    """The hand weights kept, as a search that tried nothing (every figure NaN): what a run
    whose held-out requests cannot tune the blend serves with."""
    nan = float("nan")
    return ConversationBlend(
        weights=dict(blend.weights),
        hand_weights=dict(blend.weights),
        k=k,
        combinations=0,
        tune_requests=0,
        check_requests=0,
        tune_ndcg_hand=nan,
        tune_ndcg_tuned=nan,
        check_ndcg_hand=nan,
        check_ndcg_tuned=nan,
    )


def ranked_rows(requests: np.ndarray) -> np.ndarray:
    """[N] bool: the rows of requests with at least two rows (an order to choose)."""
    _, codes, sizes = np.unique(np.asarray(requests), return_inverse=True, return_counts=True)
    return np.asarray(sizes[codes] >= 2)


def tune_half(requests: np.ndarray) -> np.ndarray:
    """[N] bool: the rows of the requests the search sees (even request ids); the others check."""
    return np.asarray(requests, dtype=np.int64) % 2 == 0


def search_blend(
    requests: np.ndarray,
    dwell_ms: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    blend: ConversationBlendConfig,
    k: int,
) -> ConversationBlend:
    """Grid search of the blend weights on the `tune` half of the held-out rows (of requests
    with at least two replies).

    Args:
        requests: [N] conversation request of each held-out row.
        dwell_ms: [N] realized dwell of each row, ms.
        predictions: head -> [N] the reply ranker's predictions of those rows.
        blend: the grid and the hand weights.
        k: NDCG cut-off.

    The first combination with the highest NDCG wins (the grid's order breaks ties). Raises
    ValueError when the tune half has no request with a positive dwell (nothing to tune on).
    """
    gains = dwell_gains(dwell_ms)
    ranked = ranked_rows(requests)
    requests, gains = np.asarray(requests)[ranked], gains[ranked]
    predictions = {head: np.asarray(p)[ranked] for head, p in predictions.items()}
    tune = tune_half(requests)
    if tune.all() or not tune.any():
        raise TooFewRequestsError(
            "conversation blend: the held-out requests of two or more replies do not fill both "
            f"halves (tune {int(tune.sum())} rows, check {int((~tune).sum())})"
        )
    tune_predictions = {head: np.asarray(p)[tune] for head, p in predictions.items()}
    best: tuple[float, dict[str, float]] | None = None
    combinations = 0
    for weights in grid_weights(blend):
        combinations += 1
        value = dwell_ndcg(requests[tune], gains[tune], tune_predictions, weights, k)
        if value == value and (best is None or value > best[0]):
            best = (value, weights)
    if best is None:
        raise TooFewRequestsError(
            "conversation blend: no held-out request of the tune half has a positive dwell"
        )
    check = ~tune
    check_predictions = {head: np.asarray(p)[check] for head, p in predictions.items()}

    def on_check(weights: Mapping[str, float]) -> float:
        return dwell_ndcg(requests[check], gains[check], check_predictions, weights, k)

    search = ConversationBlend(
        weights=best[1],
        hand_weights=dict(blend.weights),
        k=k,
        combinations=combinations,
        tune_requests=int(np.unique(requests[tune]).size),
        check_requests=int(np.unique(requests[check]).size),
        tune_ndcg_hand=dwell_ndcg(requests[tune], gains[tune], tune_predictions, blend.weights, k),
        tune_ndcg_tuned=best[0],
        check_ndcg_hand=on_check(blend.weights),
        check_ndcg_tuned=on_check(best[1]),
    )
    log.info(
        "conversation blend: %d combinations; chosen %s; dwell NDCG@%d on unseen requests: "
        "hand %.4f, tuned %.4f",
        combinations,
        search.weights,
        k,
        search.check_ndcg_hand,
        search.check_ndcg_tuned,
    )
    return search
