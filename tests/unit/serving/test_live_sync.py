"""A replica's sync with the shared event log: posted tweets indexed once, and engaged impressions
counted once each (as the lake counts them), live pages only, never what the lake holds already."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.event_log import EventLog, ServedItem
from serving.candidates.world_index import WorldIndex, timestamp_ns
from serving.live.sync import LiveSync
from tests.utils.world import HOUR, NOW, make_cfg, tiny_world


def serve(
    events: EventLog, request_id: str, tweet_id: int, at: pd.Timestamp, synthetic: bool = False
) -> None:
    item = ServedItem(tweet_id=tweet_id, author_id=5, position=0, source="x", score=1.0)
    events.log_served(
        request_id, "a" * 32, 1, at, [item], model_version="1", arm="champion", synthetic=synthetic
    )


def engagements_of_106(index: WorldIndex) -> int:
    rows = index.rows_of(np.array([106]))
    return int(index.engagement_counts(rows, timestamp_ns(NOW + 2 * HOUR))[0])


def test_an_impression_with_several_engagements_counts_once(tmp_path: Path) -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    events = EventLog(tmp_path / "events.db")
    sync = LiveSync(index, events)
    later = NOW + HOUR
    serve(events, "1" * 32, 106, later)
    for action in ("fav", "retweet", "negative"):
        events.record_engagement("1" * 32, 1, 106, action, later)
    assert sync.poll().engagements == 1
    assert engagements_of_106(index) == 1
    events.record_engagement("1" * 32, 1, 106, "reply", later)
    assert sync.poll().engagements == 0  # the same impression: counted already
    assert engagements_of_106(index) == 1


def test_synthetic_pages_and_impressions_in_the_lake_do_not_count(tmp_path: Path) -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    events = EventLog(tmp_path / "events.db")
    serve(events, "1" * 32, 106, NOW + HOUR, synthetic=True)
    serve(events, "2" * 32, 106, NOW)  # served at the lake's last moment: exported already
    events.record_engagement("1" * 32, 1, 106, "fav", NOW + HOUR)
    events.record_engagement("2" * 32, 1, 106, "fav", NOW + HOUR)
    assert LiveSync(index, events).poll().engagements == 0
    assert engagements_of_106(index) == 0
