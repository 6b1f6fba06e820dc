"""Unit tests see no state root from the environment: each one sets its own, or uses the config's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_inherited_state_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDRANK_HOME", raising=False)
