"""Small builders of test values shared by the test tiers."""

from __future__ import annotations

import pandas as pd

T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")  # the start of hand-made event streams


def ts(text: str) -> pd.Timestamp:
    """A UTC timestamp from text, e.g. ``ts("2026-03-02 10:00")``."""
    return pd.Timestamp(text, tz="UTC")


def at(hours: float) -> pd.Timestamp:
    """`hours` after T0."""
    return T0 + pd.Timedelta(hours=hours)
