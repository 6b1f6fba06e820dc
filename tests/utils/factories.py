"""Small builders of test values shared by the test tiers."""

from __future__ import annotations

import pandas as pd


def ts(text: str) -> pd.Timestamp:
    """A UTC timestamp from text, e.g. ``ts("2026-03-02 10:00")``."""
    return pd.Timestamp(text, tz="UTC")
