"""The figures of a simulated day: what was served, what users did with it, and what it was worth.

A :class:`DayTally` is filled page by page while the day runs and turned into the day's figures at
its end. The blended value of an item is the config's blend applied to its realized labels
(``sum(weight * label)``, ``pipelines.traffic.users.realized_value``); per impression it is divided
by every served item (viewed or not), per user-day by the users who opened a session that day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.schema import BINARY_ACTIONS
from pipelines.traffic.users import Reaction, realized_value


@dataclass
class DayTally:
    """Running counts of one simulated day of traffic under one policy."""

    day: str
    weights: Mapping[str, float]
    sessions_of: Counter[int] = field(default_factory=Counter)  # user_id -> sessions
    value_of: dict[int, float] = field(default_factory=dict)  # user_id -> blended value
    pages: int = 0
    conversations: int = 0
    impressions: Counter[str] = field(default_factory=Counter)  # surface -> items served
    viewed: int = 0
    labels: Counter[str] = field(default_factory=Counter)  # binary action -> items with it
    negative_actions: Counter[str] = field(default_factory=Counter)  # posted negative kinds
    page_diversity: list[float] = field(default_factory=list)  # distinct authors / items

    def add_session(self, user_id: int) -> None:
        self.sessions_of[user_id] += 1
        self.value_of.setdefault(user_id, 0.0)

    def add_page(self, user_id: int, surface: str, authors: np.ndarray, reaction: Reaction) -> None:
        """One served page (a feed page or a conversation) of ``M`` items by ``authors`` and what
        the user did with it. An empty page counts as a request and nothing else."""
        if surface == "home":
            self.pages += 1
        else:
            self.conversations += 1
        if not len(authors):
            return
        if surface == "home":
            self.page_diversity.append(len(np.unique(authors)) / len(authors))
        self.impressions[surface] += len(authors)
        self.viewed += int(reaction.viewed.sum())
        for action in BINARY_ACTIONS:
            self.labels[action] += int(reaction.labels[action].sum())
        self.negative_actions.update(str(k) for k in reaction.negative_action if k)
        value = float(realized_value(reaction, self.weights).sum())
        self.value_of[user_id] = self.value_of.get(user_id, 0.0) + value

    def figures(self) -> dict[str, Any]:
        """The day's figures (JSON-ready); rates are 0 where nothing was served."""
        impressions = sum(self.impressions.values())
        users = len(self.sessions_of)
        total_value = sum(self.value_of.values())
        return {
            "day": self.day,
            "users": users,
            "sessions": sum(self.sessions_of.values()),
            "pages": self.pages,
            "nonempty_pages": len(self.page_diversity),
            "conversations": self.conversations,
            "impressions": impressions,
            "impressions_by_surface": dict(self.impressions),
            "viewed": self.viewed,
            "engagements": {action: self.labels[action] for action in BINARY_ACTIONS},
            "negative_actions": dict(self.negative_actions),
            "value": total_value,
            "value_per_impression": _ratio(total_value, impressions),
            "value_per_user_day": _ratio(total_value, users),
            "negative_feedback_rate": _ratio(self.labels["negative"], impressions),
            "report_rate": _ratio(self.labels["report"], impressions),
            "author_diversity_per_page": (
                float(np.mean(self.page_diversity)) if self.page_diversity else 0.0
            ),
            "sessions_per_user_day": _ratio(sum(self.sessions_of.values()), users),
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def run_figures(days: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a whole run from its days' figures: totals, and the rates over the run."""
    impressions = sum(d["impressions"] for d in days)
    user_days = sum(d["users"] for d in days)
    sessions = sum(d["sessions"] for d in days)
    value = sum(d["value"] for d in days)
    negatives = sum(d["engagements"]["negative"] for d in days)
    reports = sum(d["engagements"]["report"] for d in days)
    pages = sum(d["pages"] for d in days)
    nonempty = sum(d["nonempty_pages"] for d in days)
    diversity = sum(d["author_diversity_per_page"] * d["nonempty_pages"] for d in days)
    return {
        "days": len(days),
        "user_days": user_days,
        "sessions": sessions,
        "pages": pages,
        "impressions": impressions,
        "viewed": sum(d["viewed"] for d in days),
        "engagements": {a: sum(d["engagements"][a] for d in days) for a in BINARY_ACTIONS},
        "value": value,
        "value_per_impression": _ratio(value, impressions),
        "value_per_user_day": _ratio(value, user_days),
        "negative_feedback_rate": _ratio(negatives, impressions),
        "report_rate": _ratio(reports, impressions),
        "author_diversity_per_page": _ratio(diversity, nonempty),
        "sessions_per_user_day": _ratio(sessions, user_days),
    }
