"""Experiment arms: each user's stable arm, drawn from a salted hash of their id."""

from __future__ import annotations

import hashlib

from serving.schemas import Arm

EXPERIMENT_SALT = "feedrank-exp-1"


def arm_bucket(user_id: int, salt: str = EXPERIMENT_SALT) -> float:
    """A stable uniform draw in [0, 1) for a user: the first 8 bytes of sha256("salt:user_id").

    Stable across processes and Python versions (unlike ``hash``), so a user keeps their arm on
    every replica; a new salt reshuffles users for a new experiment.
    """
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_arm(
    user_id: int,
    challenger_share: float,
    salt: str = EXPERIMENT_SALT,
    *,
    has_challenger: bool = True,
) -> Arm:
    """The experiment arm of a user: `challenger` for a stable `challenger_share` of users.

    Everyone is on `champion` when there is no challenger.
    """
    if has_challenger and arm_bucket(user_id, salt) < challenger_share:
        return "challenger"
    return "champion"
