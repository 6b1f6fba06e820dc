"""How a simulated user behaves on what the service serves (pure numpy).

A session is a walk down the served items in order. The user views the first item; after each
viewed item it goes on with a chance that depends on what it just did (the **stopping rule**:
``traffic.continue_probability``, lower after a negative or a report, higher after an
engagement). Every viewed item draws its labels from the true engagement model at the served
moment, with **position bias**: the chance of each action on an item at position ``k`` (0-based,
in the whole visit) is scaled by ``1 / (1 + traffic.attention_decay * k)``. A viewed item always
gets a dwell, lognormal around the true model's mean log dwell with the world's ``DWELL_SIGMA``.
An item that is never viewed has no label at all.

What the user did is recorded twice: as the requests to post (a drawn negative is posted as one of
the event log's negative actions, in ``traffic.negative_shares``), and as the probabilities each
label was drawn from (the served truth: 0 for an item never viewed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipelines.config import FeedrankConfig
from pipelines.schema import BINARY_ACTIONS, DERIVED_ACTIONS, DWELL_THRESHOLD_MS, ENGAGEMENTS
from pipelines.world.truth import TRUTH_COLUMNS, TrueEngagement

# The actions a viewer does itself (the derived ones come from the author's side).
VIEWER_ACTIONS: tuple[str, ...] = tuple(a for a in BINARY_ACTIONS if a not in DERIVED_ACTIONS)
# What makes a user more likely to keep scrolling, and what makes it less likely.
ENGAGING_ACTIONS: tuple[str, ...] = (*ENGAGEMENTS, "profile_click")
REPELLING_ACTIONS: tuple[str, ...] = ("negative", "report")
# Truth columns that are a label's chance, scaled by the position bias like the draw itself.
BIASED_COLUMNS: frozenset[str] = frozenset(f"p_{action}" for action in BINARY_ACTIONS)


@dataclass(frozen=True)
class Behaviour:
    """The knobs of a simulated user's behaviour (``cfg.traffic``) and the dwell cap."""

    continue_probability: float
    continue_after_engagement: float
    continue_after_negative: float
    attention_decay: float
    negative_actions: tuple[str, ...]
    negative_shares: tuple[float, ...]
    max_dwell_ms: int

    @classmethod
    def of(cls, cfg: FeedrankConfig) -> Behaviour:
        traffic = cfg.traffic
        return cls(
            continue_probability=traffic.continue_probability,
            continue_after_engagement=traffic.continue_after_engagement,
            continue_after_negative=traffic.continue_after_negative,
            attention_decay=traffic.attention_decay,
            negative_actions=tuple(traffic.negative_shares),
            negative_shares=tuple(traffic.negative_shares.values()),
            max_dwell_ms=cfg.validate_.max_dwell_ms,
        )


@dataclass(frozen=True)
class Reaction:
    """What a user did with ``M`` served items, in served order.

    Attributes:
        viewed: ``[M]`` bool, the items the user looked at (a prefix of the items).
        labels: every BINARY_ACTIONS name -> ``[M]`` bool (False where not viewed).
        negative_action: ``[M]`` str, the negative action posted where ``labels["negative"]``,
            else "".
        dwell_ms: ``[M]`` int milliseconds on the item (0 where not viewed).
        truth: every TRUTH_COLUMNS name -> ``[M]`` float32, the chance each label was drawn from
            (position bias included; 0 where not viewed).
        goes_on: whether the user is still scrolling after the last item.
    """

    viewed: np.ndarray
    labels: dict[str, np.ndarray]
    negative_action: np.ndarray
    dwell_ms: np.ndarray
    truth: dict[str, np.ndarray]
    goes_on: bool

    def requests(self, item: int) -> list[tuple[str, int | None]]:
        """The engagements to post for item ``item`` as ``(action, dwell_ms)``, in an order the
        event log accepts (a derived action after its parent); empty when it was not viewed."""
        if not self.viewed[item]:
            return []
        posted: list[tuple[str, int | None]] = [("dwell", int(self.dwell_ms[item]))]
        for action in BINARY_ACTIONS:
            if not self.labels[action][item]:
                continue
            name = str(self.negative_action[item]) if action == "negative" else action
            posted.append((name, None))
        return posted


def attention(positions: np.ndarray, attention_decay: float) -> np.ndarray:
    """Position bias: ``[M]`` factor ``1 / (1 + attention_decay * k)`` of an action's chance at
    0-based position ``k``."""
    positions = np.asarray(positions, dtype=np.float64)
    if (positions < 0).any():
        raise ValueError(f"positions must be >= 0, got {positions.min()}")
    return 1.0 / (1.0 + attention_decay * positions)


def continue_chances(labels: Mapping[str, np.ndarray], behaviour: Behaviour) -> np.ndarray:
    """The stopping rule: ``[M]`` chance to go on after each item, had it been viewed with these
    labels. A negative or a report outweighs an engagement on the same item."""
    engaged = np.logical_or.reduce([labels[a] for a in ENGAGING_ACTIONS])
    repelled = np.logical_or.reduce([labels[a] for a in REPELLING_ACTIONS])
    chance = np.where(engaged, behaviour.continue_after_engagement, behaviour.continue_probability)
    return np.where(repelled, behaviour.continue_after_negative, chance)


def walk(goes_on_after: np.ndarray) -> tuple[np.ndarray, bool]:
    """``([M] viewed, still going after the last)`` of a walk that views the first item and each
    next one while ``goes_on_after`` of the item before holds."""
    if not len(goes_on_after):
        return np.zeros(0, dtype=bool), False
    viewed = np.concatenate([[True], np.logical_and.accumulate(goes_on_after[:-1])])
    return viewed, bool(viewed[-1] and goes_on_after[-1])


def react(
    rng: np.random.Generator, true: TrueEngagement, positions: np.ndarray, behaviour: Behaviour
) -> Reaction:
    """Draw what a user does with ``M`` served items whose true engagement at the served moment
    is ``true``, at ``positions`` (``[M]``, 0-based in the visit), walking them in order. Every
    draw is made for every item, viewed or not, so the random stream a session consumes does not
    depend on where it stopped."""
    size = len(true)
    if len(positions) != size:
        raise ValueError(f"{len(positions)} positions for {size} items")
    bias = attention(positions, behaviour.attention_decay)
    drawn = {a: rng.random(size) < true.probability[a] * bias for a in VIEWER_ACTIONS}
    for derived, parent in DERIVED_ACTIONS.items():
        drawn[derived] = drawn[parent] & (rng.random(size) < true.conditional[derived])
    kinds = rng.choice(
        np.array(behaviour.negative_actions), size=size, p=np.array(behaviour.negative_shares)
    )
    dwell = true.dwell_ms(rng)
    viewed, goes_on = walk(rng.random(size) < continue_chances(drawn, behaviour))
    labels = {action: drawn[action] & viewed for action in BINARY_ACTIONS}
    return Reaction(
        viewed=viewed,
        labels=labels,
        negative_action=np.where(labels["negative"], kinds, ""),
        dwell_ms=np.where(viewed, np.minimum(dwell, behaviour.max_dwell_ms), 0).astype(np.int64),
        truth=served_truth(true, bias, viewed),
        goes_on=goes_on,
    )


def served_truth(
    true: TrueEngagement, bias: np.ndarray, viewed: np.ndarray
) -> dict[str, np.ndarray]:
    """Every TRUTH_COLUMNS name -> ``[M]`` float32: the chance each label was drawn from. A label's
    chance carries the position bias ``bias`` (``[M]``, a derived action's through its parent);
    the dwell's does not (a viewed item always gets one); all are 0 where not ``viewed``."""
    columns = true.truth_columns()
    return {
        name: np.where(
            viewed, columns[name] * (bias if name in BIASED_COLUMNS else 1.0), 0.0
        ).astype(np.float32)
        for name in TRUTH_COLUMNS
    }


def realized_labels(reaction: Reaction, heads: Mapping[str, float]) -> dict[str, np.ndarray]:
    """``[M]`` realized label of each blend head in ``heads``: a binary action's label, `dwell`
    (dwelled at least DWELL_THRESHOLD_MS) and `dwell_time` (log seconds of the dwell; 0 where
    not viewed)."""
    out: dict[str, np.ndarray] = {}
    for head in heads:
        if head in reaction.labels:
            out[head] = reaction.labels[head].astype(np.float64)
        elif head == "dwell":
            out[head] = (reaction.viewed & (reaction.dwell_ms >= DWELL_THRESHOLD_MS)).astype(float)
        elif head == "dwell_time":
            seconds = np.maximum(reaction.dwell_ms, 1) / 1000.0
            out[head] = np.where(reaction.viewed, np.log(seconds), 0.0)
        else:
            raise ValueError(f"no realized label for blend head {head!r}")
    return out


def realized_value(reaction: Reaction, weights: Mapping[str, float]) -> np.ndarray:
    """``[M]`` blended value of what the user did: ``sum(weight * realized label)`` over the
    blend's heads (``cfg.blend.weights``)."""
    labels = realized_labels(reaction, weights)
    value = np.zeros(len(reaction.viewed))
    for head, weight in weights.items():
        value = value + weight * labels[head]
    return value
