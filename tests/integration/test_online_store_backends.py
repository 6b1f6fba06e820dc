"""The online store by config, for real: sqlite (the default) and a live redis-server.

Each backend is loaded in full, reloaded idempotently, extended incrementally with a newer row and
reloaded when a source is rewritten in place, and must serve the latest value of every key after
each step. `make test` starts a disposable redis-server and exports FEEDRANK_TEST_REDIS (host:port);
this test flushes that database.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.features.batch import write_feature_table

pytestmark = pytest.mark.integration

DAY = pd.Timestamp("2026-03-02", tz="UTC")
END = (DAY + pd.Timedelta(days=2)).to_pydatetime()
LATER_END = (DAY + pd.Timedelta(days=4)).to_pydatetime()
VIEWS = ["author_stats", "viewer_author"]
FEATURES = [
    "author_stats:author_follower_count",
    "author_stats:author_engagement_rate",
    "viewer_author:va_engagements",
]
# viewer 1 reads authors 1 and 2; author 3 is never written.
ENTITY_ROWS = [{"viewer_id": 1, "author_id": a} for a in (1, 2, 3)]


def _author_stats(rows: list[tuple[int, int, int, float]]) -> pd.DataFrame:
    """rows of (author_id, day offset, follower count, engagement rate)."""
    frame = pd.DataFrame(
        rows,
        columns=["author_id", "day", "author_follower_count", "author_engagement_rate"],
    )
    return frame.assign(event_timestamp=DAY + pd.to_timedelta(frame.pop("day"), unit="D"))


def _write(cfg: FeedrankConfig, view: str, frame: pd.DataFrame) -> None:
    """Write a view's source; declared features the test does not set get a filler value, so the
    test follows schema changes of the views it reads."""
    from pipelines.features.store import feature_store

    fillers: dict[str, Any] = {"Int64": 0, "Int32": 0, "Float64": 0.0, "Float32": 0.0}
    for field in feature_store(cfg).get_feature_view(view).features:
        if field.name not in frame:
            kind = str(field.dtype)
            filler = [[0.0]] * len(frame) if kind.startswith("Array") else fillers.get(kind, "")
            frame = frame.assign(**{field.name: filler})
    write_feature_table(cfg, view, frame)


HISTORY = [(1, 0, 100, 0.1), (1, 1, 110, 0.2), (2, 0, 50, 0.5), (2, 1, 55, 0.4)]


def _online(cfg: FeedrankConfig) -> dict[str, list[Any]]:
    from pipelines.features.store import feature_store

    store = feature_store(cfg)
    return store.get_online_features(features=FEATURES, entity_rows=ENTITY_ROWS).to_dict()


def test_materialize_is_incremental_idempotent_and_never_stale(backend_cfg: FeedrankConfig) -> None:
    cfg = backend_cfg
    from pipelines.features.store import apply_repo, feature_store, materialize

    assert feature_store(cfg).config.online_store.type == cfg.features.online_store
    apply_repo(cfg)
    _write(cfg, "author_stats", _author_stats(HISTORY))
    _write(
        cfg,
        "viewer_author",
        pd.DataFrame(
            {
                "viewer_id": [1, 1],
                "author_id": [2, 2],
                "event_timestamp": [DAY, DAY + pd.Timedelta(days=1)],
                "va_engagements": [0, 1],
            }
        ),
    )

    first = materialize(cfg, END, feature_views=VIEWS)
    assert first["views"] == {"author_stats": "full", "viewer_author": "full"}
    loaded = _online(cfg)
    assert loaded["author_follower_count"] == [110, 55, None]
    assert loaded["author_engagement_rate"] == [0.2, 0.4, None]
    assert loaded["va_engagements"] == [None, 1, None]

    # A rerun of the same interval (after `apply`, as every pipeline run does) writes nothing; a
    # forced reload writes the same rows again.
    apply_repo(cfg)
    rerun = materialize(cfg, END, feature_views=VIEWS)
    assert set(rerun["views"].values()) == {"up_to_date"}
    assert _online(cfg) == loaded
    forced = materialize(cfg, END, feature_views=VIEWS, full=True)
    assert set(forced["views"].values()) == {"reload"}
    assert _online(cfg) == loaded

    # A newer row arrives: only the window since END is read, and its value is served.
    _write(cfg, "author_stats", _author_stats([*HISTORY, (1, 3, 130, 0.3)]))
    later = materialize(cfg, LATER_END, feature_views=VIEWS)
    assert later["views"] == {"author_stats": "incremental", "viewer_author": "incremental"}
    served = _online(cfg)
    assert served["author_follower_count"] == [130, 55, None]
    assert served["va_engagements"] == loaded["va_engagements"]

    # History rewritten in place at the same event time (as a new encoder rewrites embeddings):
    # an incremental window would miss it, so the view is dropped and reloaded.
    rewritten = [(a, d, f + 1 if a == 2 else f, r) for a, d, f, r in HISTORY]
    _write(cfg, "author_stats", _author_stats([*rewritten, (1, 3, 130, 0.3)]))
    fixed = materialize(cfg, LATER_END, feature_views=VIEWS)
    assert fixed["views"] == {"author_stats": "reload", "viewer_author": "up_to_date"}
    assert _online(cfg)["author_follower_count"] == [130, 56, None]
