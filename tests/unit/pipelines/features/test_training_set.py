"""The training set's rows: the window's home-feed impressions with their origin (a real lake and a
real event log in a temporary state root; the Feast join is tested in the integration tier)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog, ServedItem
from pipelines.features.training_set import UNKNOWN_SOURCE, entity_frame, impression_sources
from pipelines.ingest.served import IMPRESSION_ID_OFFSET, ingest_served
from pipelines.lake import training_days
from tests.utils.factories import ts
from tests.utils.lake import WORLD_POLICY, write_impressions, write_static

WORLD_DAYS = [f"2026-03-0{d}" for d in range(2, 7)]  # the 2nd to the 6th
SERVED_DAY = "2026-03-07"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    """Five world days, then a served day: viewer 2's home page (tweets 10 and 11 from two
    candidate sources) and viewer 3's conversation page; window of 4 days."""
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    config = FeedrankConfig.model_validate(
        {"train": {"window_days": 4, "served_holdout_days": 1}, "ranker": {"test_days": 2}}
    )
    write_static(config, WORLD_DAYS[0])
    for day in WORLD_DAYS:
        write_impressions(config, day)
    events = EventLog(config.paths.serving_events)
    try:
        home = [
            ServedItem(tweet_id=10, author_id=1, position=0, source="in_network", score=0.9),
            ServedItem(tweet_id=11, author_id=2, position=1, source="embedding", score=0.4),
        ]
        reply = [ServedItem(tweet_id=11, author_id=2, position=0, source="reply", score=0.1)]
        at = ts(f"{SERVED_DAY} 09:00")
        events.log_served(uuid.uuid4().hex, uuid.uuid4().hex, 2, at, home, "7", "control")
        events.log_served(
            uuid.uuid4().hex, uuid.uuid4().hex, 3, at, reply, "7", "control", "conversation"
        )
    finally:
        events.close()
    assert ingest_served(config)["ingested"] == 3
    return config


def test_the_training_rows_are_the_windows_home_impressions_with_their_origin(
    cfg: FeedrankConfig,
) -> None:
    days = training_days(cfg)
    assert days.train == ("2026-03-04", "2026-03-05", "2026-03-06")
    assert days.holdout == (SERVED_DAY,) and days.served_holdout

    frame = entity_frame(cfg, days).set_index("impression_id")

    assert set(frame["surface"]) == {"home"}  # the conversation rows are not the ranker's task
    assert frame["served_at"].min() >= days.window_start  # the 2nd and 3rd fell out
    world = frame[~frame["served"]]
    assert len(world) == 3 and set(world["source"]) == {WORLD_POLICY}
    served = frame[frame["served"]].sort_values("position")
    assert list(served.index) == [IMPRESSION_ID_OFFSET + 1, IMPRESSION_ID_OFFSET + 2]
    assert list(served["source"]) == ["in_network", "embedding"]
    assert list(served["position"]) == [0, 1]
    assert (served["served_at"] >= days.boundary).all()
    assert (world["served_at"] < days.boundary).all()


def test_a_served_row_the_event_log_no_longer_has_gets_an_unknown_source(
    cfg: FeedrankConfig,
) -> None:
    frame = entity_frame(cfg, training_days(cfg))
    cfg.paths.serving_events.unlink()  # the log replaced (its WAL files go with its connection)
    sources = impression_sources(cfg, frame)
    assert set(sources[frame["served"].to_numpy()]) == {UNKNOWN_SOURCE}
    assert set(sources[~frame["served"].to_numpy()]) == {WORLD_POLICY}
