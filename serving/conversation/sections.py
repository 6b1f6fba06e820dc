"""Health sections of a conversation page: ``main``, ``low_quality`` and ``abusive``.

A thread moves whole, decided by its top reply: the reply a reader meets first and the one the
thread answers the focal tweet with. Its answers (healthy or not) stay with it, in context; a
toxic answer below a healthy top reply does not drag the healthy reply down. A top reply is
``abusive`` when any of its labels reaches the abusive thresholds, else ``low_quality`` when any
reaches those, else ``main``. The labels: its toxicity, and where the scorer predicts them,
p(negative) and p(report) (``conversation.abusive`` / ``conversation.low_quality``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

import numpy as np

from pipelines.config import ConversationConfig, SectionThresholds
from serving.schemas import SectionName

SECTIONS: tuple[str, ...] = get_args(SectionName)  # main, low_quality, abusive: page order


def reaches(
    thresholds: SectionThresholds, toxicity: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> np.ndarray:
    """bool [K]: which replies reach any threshold (labels the scorer lacks are ignored)."""
    hit = np.asarray(toxicity, dtype=np.float64) >= thresholds.toxicity
    for head, threshold in (("negative", thresholds.negative), ("report", thresholds.report)):
        if threshold is not None and head in predictions:
            hit |= np.asarray(predictions[head], dtype=np.float64) >= threshold
    return hit


def health_sections(
    toxicity: np.ndarray, predictions: Mapping[str, np.ndarray], cfg: ConversationConfig
) -> np.ndarray:
    """Section index [K] into SECTIONS of K top replies from their toxicity [K] and the
    scorer's predictions (head -> [K])."""
    abusive = reaches(cfg.abusive, toxicity, predictions)
    low_quality = reaches(cfg.low_quality, toxicity, predictions)
    return np.where(abusive, 2, np.where(low_quality, 1, 0)).astype(np.int64)
