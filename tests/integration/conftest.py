"""Integration fixtures shared by the online-store tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.config import FeaturesConfig, FeedrankConfig


def redis_connection() -> str:
    """FEEDRANK_TEST_REDIS, flushed; a missing server fails the test unless run by hand outside CI."""
    address = os.environ.get("FEEDRANK_TEST_REDIS")
    if not address:
        if os.environ.get("CI"):
            pytest.fail("FEEDRANK_TEST_REDIS is unset in CI: run the tests through `make test`")
        pytest.skip("FEEDRANK_TEST_REDIS unset (host:port of a disposable redis-server)")
    import redis

    host, _, port = address.split(",")[0].partition(":")
    try:
        redis.Redis(host=host, port=int(port or 6379), socket_connect_timeout=5).flushdb()
    except redis.RedisError as error:
        pytest.fail(f"no redis-server at FEEDRANK_TEST_REDIS={address}: {error}")
    return address


@pytest.fixture(params=["sqlite", "redis"])
def backend_cfg(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FeedrankConfig:
    """A config in a fresh state root, once per online store backend (sqlite, then Redis)."""
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    if request.param == "redis":
        return FeedrankConfig(
            features=FeaturesConfig(online_store="redis", redis_connection=redis_connection())
        )
    return FeedrankConfig()
