"""What the service served, into the raw lake: a tiny hand-made lake and event log -> ingest_served
-> canonical impressions that pass the lake's validation (real Great Expectations)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog, ServedItem
from pipelines.ingest import served as served_module
from pipelines.ingest.served import (
    IMPRESSION_ID_OFFSET,
    SERVED_TRUTH_COLUMNS,
    ingest_served,
    request_id_int64,
)
from pipelines.validate import validate_lake
from tests.utils.factories import ts

pytestmark = pytest.mark.integration

DAY_1, DAY_2 = "2026-03-02", "2026-03-03"
UNKNOWN_TWEET, UNKNOWN_VIEWER = 999, 77
NOTHING = dict.fromkeys(
    ("tweets", "ingested", "days", "pending", "restored", "truth", "truth_unmatched"), 0
)


def write_lake(raw: Path) -> None:
    """Users 1-3; tweets 10 (by 1) and its reply 11 (by 2) on day 1; two old impressions."""
    users = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "created_at": [ts("2025-01-01")] * 3,
            "is_verified": [True, False, False],
            "follower_count": [1, 1, 0],
            "following_count": [0, 1, 1],
            "language": ["en"] * 3,
            "country": ["US", "GB", "DE"],
        }
    )
    follows = pd.DataFrame(
        {"follower_id": [2, 3], "followee_id": [1, 1], "created_at": [ts("2025-06-01")] * 2}
    )
    tweets = pd.DataFrame(
        {
            "tweet_id": [10, 11],
            "author_id": [1, 2],
            "created_at": [ts(f"{DAY_1} 08:00"), ts(f"{DAY_1} 09:00")],
            "text": ["hello world", "a reply"],
            "language": ["en", "en"],
            "has_image": [False, True],
            "has_video": [False, False],
            "has_url": [True, False],
            "hashtags": [["ml"], []],
            "conversation_id": [10, 10],
            "in_reply_to_tweet_id": pd.array([None, 10], dtype="Int64"),
            "toxicity": [0.1, 0.7],
        }
    )
    old = pd.DataFrame(
        {
            "impression_id": [100, 101],
            "viewer_id": [2, 3],
            "tweet_id": [10, 11],
            "served_at": [ts(f"{DAY_1} 12:00")] * 2,
            "surface": ["home", "conversation"],
            "position": [0, 1],
            "request_id": [100, 100],
            "model_version": ["v1"] * 2,
            "experiment_arm": ["control"] * 2,
            "dwell_ms": [1200, 0],
        }
    )
    for action in schema.BINARY_ACTIONS:
        old[action] = False
        old[f"{action}_at"] = pd.Series([pd.NaT] * 2, dtype="datetime64[us, UTC]")
    old.loc[0, "fav"], old.loc[0, "fav_at"] = True, ts(f"{DAY_1} 12:01")
    schema.write_partition(users, raw, "users", schema.STATIC_PARTITION, schema.USERS)
    schema.write_partition(follows, raw, "follows", schema.STATIC_PARTITION, schema.FOLLOWS)
    schema.write_partition(tweets, raw, "tweets", DAY_1, schema.TWEETS)
    schema.write_partition(old, raw, "impressions", DAY_1, schema.IMPRESSIONS)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    config = FeedrankConfig()
    write_lake(config.paths.raw)
    return config


class Served:
    """The event log of the tests: what was served, and the engagements on it."""

    def __init__(self, cfg: FeedrankConfig) -> None:
        self.events = EventLog(cfg.paths.serving_events)
        # Day 1, 18:00: viewer 2 gets tweets 10 and 11.
        self.evening = self.page(2, ts(f"{DAY_1} 18:00"), [(10, 1), (11, 2)])
        # Just after midnight: viewer 3 gets tweet 10 and a tweet the lake does not know.
        self.night = self.page(3, ts(f"{DAY_2} 00:30"), [(10, 1), (UNKNOWN_TWEET, 1)])
        # A viewer the lake does not know.
        self.stranger = self.page(UNKNOWN_VIEWER, ts(f"{DAY_2} 01:00"), [(11, 2)])

    def page(self, viewer: int, at: pd.Timestamp, tweets: list[tuple[int, int]]) -> str:
        request = uuid.uuid4().hex
        items = [
            ServedItem(tweet_id=t, author_id=a, position=i, source="in_network", score=0.5)
            for i, (t, a) in enumerate(tweets)
        ]
        self.events.log_served(request, uuid.uuid4().hex, viewer, at, items, "7", "challenger")
        return request

    def engage(
        self, request: str, viewer: int, tweet: int, action: str, at: str, **kw: int
    ) -> None:
        self.events.record_engagement(request, viewer, tweet, action, ts(at), **kw)


@pytest.fixture
def served(cfg: FeedrankConfig) -> Served:
    log = Served(cfg)
    evening = log.evening
    log.engage(evening, 2, 10, "fav", f"{DAY_1} 18:01")
    log.engage(evening, 2, 10, "reply", f"{DAY_1} 18:02")
    log.engage(evening, 2, 10, "reply_engaged_by_author", f"{DAY_1} 19:00")
    log.engage(evening, 2, 10, "dwell", f"{DAY_1} 18:03", dwell_ms=20_000)
    log.engage(evening, 2, 11, "block", f"{DAY_1} 18:05")
    log.engage(evening, 2, 11, "show_fewer", f"{DAY_1} 18:04")  # the first negative signal
    log.engage(evening, 2, 11, "dwell", f"{DAY_1} 18:05", dwell_ms=10**9)  # tab left open
    # A replica's clock 2 ms behind the one that served: the fav is kept at served_at.
    log.engage(log.night, 3, 10, "fav", f"{DAY_2} 00:29:59.998")
    return log


def impressions(cfg: FeedrankConfig, day: str) -> pd.DataFrame:
    return schema.read_table(cfg.paths.raw, "impressions", [day]).set_index("impression_id")


def part(cfg: FeedrankConfig, day: str) -> Path:
    return schema.partition_dir(cfg.paths.raw, "impressions", day) / "part.parquet"


def test_served_rows_join_the_lake_with_their_labels(cfg: FeedrankConfig, served: Served) -> None:
    summary = ingest_served(cfg)

    assert summary == {**NOTHING, "ingested": 3, "days": 2, "pending": 2}
    day_1 = impressions(cfg, DAY_1)
    new = [IMPRESSION_ID_OFFSET + 1, IMPRESSION_ID_OFFSET + 2]  # the log's first two rows
    assert sorted(day_1.index) == [100, 101, *new]
    assert day_1.loc[100, "fav"] and day_1.loc[100, "dwell_ms"] == 1200  # old rows untouched

    faved, blocked = day_1.loc[new[0]], day_1.loc[new[1]]
    assert (faved["viewer_id"], faved["tweet_id"], faved["position"]) == (2, 10, 0)
    assert faved["served_at"] == ts(f"{DAY_1} 18:00")
    assert faved["request_id"] == request_id_int64(served.evening) == blocked["request_id"]
    assert faved["request_id"] == int(served.evening[:15], 16)
    assert (faved["surface"], faved["model_version"], faved["experiment_arm"]) == (
        "home",
        "7",
        "challenger",
    )
    assert faved["fav"] and faved["fav_at"] == ts(f"{DAY_1} 18:01")
    assert faved["reply"] and faved["reply_engaged_by_author"]
    assert faved["reply_engaged_by_author_at"] == ts(f"{DAY_1} 19:00")
    assert not faved["negative"] and pd.isna(faved["negative_at"])
    assert faved["dwell_ms"] == 20_000
    assert blocked["negative"] and blocked["negative_at"] == ts(f"{DAY_1} 18:04")
    assert not blocked["fav"] and not blocked["report"]
    assert blocked["dwell_ms"] == cfg.validate_.max_dwell_ms

    day_2 = impressions(cfg, DAY_2)  # a partition the lake did not have
    assert list(day_2.index) == [IMPRESSION_ID_OFFSET + 3]
    night = day_2.iloc[0]
    assert (night["viewer_id"], night["tweet_id"], night["dwell_ms"]) == (3, 10, 0)
    assert night["fav"] and night["fav_at"] == night["served_at"] == ts(f"{DAY_2} 00:30")

    validated = validate_lake(cfg)
    assert validated["failed"] == 0
    assert validated["tables"]["impressions"]["rows"] == 5
    assert served.events.counts() == {"served": 5, "engagements": 8, "exported": 3, "synthetic": 0}


def test_a_rerun_adds_nothing_and_unknown_rows_stay_pending(
    cfg: FeedrankConfig, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pipelines.ingest.served"):
        ingest_served(cfg)
    held = " ".join(r.getMessage() for r in caplog.records)
    assert "2 served rows held back" in held
    assert str(UNKNOWN_TWEET) in held and str(UNKNOWN_VIEWER) in held
    before = {day: part(cfg, day).read_bytes() for day in (DAY_1, DAY_2)}

    assert ingest_served(cfg) == {**NOTHING, "pending": 2}
    assert {day: part(cfg, day).read_bytes() for day in (DAY_1, DAY_2)} == before
    assert served.events.counts()["exported"] == 3
    pending, _ = served.events.pending_export()
    assert sorted(zip(pending["viewer_id"], pending["tweet_id"], strict=True)) == [
        (3, UNKNOWN_TWEET),
        (UNKNOWN_VIEWER, 11),
    ]


def test_late_feedback_and_a_rebuilt_lake_are_exported_again(
    cfg: FeedrankConfig, served: Served
) -> None:
    ingest_served(cfg)
    # An engagement after the export: the row is rewritten with it, not duplicated.
    served.engage(served.evening, 2, 11, "fav", f"{DAY_1} 20:00")
    assert ingest_served(cfg)["ingested"] == 1
    day_1 = impressions(cfg, DAY_1)
    assert len(day_1) == 4
    assert day_1.loc[IMPRESSION_ID_OFFSET + 2, "fav"]
    assert day_1.loc[IMPRESSION_ID_OFFSET + 2, "negative"]

    # build_world replaces the lake: what was exported before comes back.
    for day in (DAY_1, DAY_2):
        part(cfg, day).unlink()
    write_lake(cfg.paths.raw)
    summary = ingest_served(cfg)
    assert (summary["restored"], summary["ingested"], summary["pending"]) == (3, 3, 2)
    assert len(impressions(cfg, DAY_1)) == 4 and len(impressions(cfg, DAY_2)) == 1
    assert validate_lake(cfg)["failed"] == 0


def test_a_failed_write_leaves_the_partition_and_the_rows_pending(
    cfg: FeedrankConfig, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = part(cfg, DAY_1).read_bytes()

    def crash(table: object, where: object) -> None:
        where.write(b"PAR1 half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(served_module.pq, "write_table", crash)
        ingest_served(cfg)

    assert part(cfg, DAY_1).read_bytes() == original
    assert [p.name for p in part(cfg, DAY_1).parent.iterdir()] == ["part.parquet"]
    assert served.events.counts()["exported"] == 0
    assert ingest_served(cfg)["ingested"] == 3


def test_without_an_event_log_nothing_happens(cfg: FeedrankConfig) -> None:
    before = part(cfg, DAY_1).read_bytes()
    assert ingest_served(cfg) == NOTHING
    assert not cfg.paths.serving_events.exists()
    assert part(cfg, DAY_1).read_bytes() == before


def posted_tweet(tweet_id: int, author_id: int, created_at: str) -> pd.DataFrame:
    """One root tweet as `POST /tweets` records it (the lake's tweet columns)."""
    return pd.DataFrame(
        {
            "tweet_id": [tweet_id],
            "author_id": [author_id],
            "created_at": [ts(created_at)],
            "text": ["fresh from the live service"],
            "language": ["en"],
            "has_image": [False],
            "has_video": [True],
            "has_url": [False],
            "hashtags": [["live", "ml"]],
            "conversation_id": [tweet_id],
            "in_reply_to_tweet_id": pd.array([None], dtype="Int64"),
            "toxicity": [0.2],
        }
    )


def test_posted_tweets_join_the_lake_before_the_impressions_that_show_them(
    cfg: FeedrankConfig,
) -> None:
    log = Served(cfg)
    log.events.post_tweets(posted_tweet(12, 1, f"{DAY_2} 00:10"), np.ones((1, 4), np.float32))
    fresh = log.page(2, ts(f"{DAY_2} 02:00"), [(12, 1)])

    summary = ingest_served(cfg)

    assert summary["tweets"] == 1
    tweets = schema.read_table(cfg.paths.raw, "tweets", [DAY_2]).set_index("tweet_id")
    assert list(tweets.index) == [12]
    assert tweets.loc[12, "created_at"] == ts(f"{DAY_2} 00:10")
    assert list(tweets.loc[12, "hashtags"]) == ["live", "ml"]
    assert pd.isna(tweets.loc[12, "in_reply_to_tweet_id"]) and tweets.loc[12, "has_video"]
    day_2 = impressions(cfg, DAY_2)
    shown = day_2[day_2["request_id"] == request_id_int64(fresh)]
    assert list(shown["tweet_id"]) == [12]  # known to the lake: not held back
    assert log.events.posted_after(exported=False)[0].empty
    assert len(schema.read_table(cfg.paths.raw, "tweets", [DAY_1])) == 2  # the day 1 tweets stay
    assert validate_lake(cfg)["failed"] == 0

    assert ingest_served(cfg)["tweets"] == 0  # exported once


def served_truth_rows(request_id: str, tweet_ids: list[int], p_fav: list[float]) -> pd.DataFrame:
    """Served truth as the traffic client writes it: the served row's key and probabilities."""
    n = len(tweet_ids)
    frame = pd.DataFrame({"request_id": [request_id] * n, "tweet_id": np.array(tweet_ids)})
    for column in SERVED_TRUTH_COLUMNS[2:]:
        frame[column] = np.full(n, 0.25, dtype=np.float32)
    frame["p_fav"] = np.array(p_fav, dtype=np.float32)
    return frame


def write_served_truth(cfg: FeedrankConfig, day: str, name: str, frame: pd.DataFrame) -> Path:
    path = cfg.paths.served_truth / f"day={day}" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def test_served_truth_is_keyed_by_the_impression_id_of_its_served_row(
    cfg: FeedrankConfig, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    write_served_truth(cfg, DAY_1, "a", served_truth_rows(served.evening, [10, 11], [0.6, 0.1]))
    write_served_truth(cfg, DAY_2, "b", served_truth_rows(served.night, [10], [0.3]))
    stray = uuid.uuid4().hex  # a request the log never served
    write_served_truth(cfg, DAY_2, "c", served_truth_rows(stray, [10], [0.9]))

    with caplog.at_level(logging.WARNING, logger="pipelines.ingest.served"):
        summary = ingest_served(cfg)

    assert (summary["truth"], summary["truth_unmatched"]) == (3, 1)
    assert stray in " ".join(r.getMessage() for r in caplog.records)
    truth_1 = schema.read_table(cfg.paths.truth, "truth", [DAY_1]).set_index("impression_id")
    evening = [IMPRESSION_ID_OFFSET + 1, IMPRESSION_ID_OFFSET + 2]  # the log's rows 1 and 2
    assert list(truth_1.index) == evening
    assert truth_1.loc[evening, "p_fav"].tolist() == pytest.approx([0.6, 0.1])
    assert truth_1.loc[evening[0], "mean_log_dwell_s"] == pytest.approx(0.25)
    truth_2 = schema.read_table(cfg.paths.truth, "truth", [DAY_2]).set_index("impression_id")
    assert list(truth_2.index) == [IMPRESSION_ID_OFFSET + 3]  # its served day's partition

    before = {day: schema.read_table(cfg.paths.truth, "truth", [day]) for day in (DAY_1, DAY_2)}
    assert ingest_served(cfg)["truth"] == 3  # a re-run rewrites the same rows, no duplicates
    for day, frame in before.items():
        pd.testing.assert_frame_equal(schema.read_table(cfg.paths.truth, "truth", [day]), frame)


def test_a_served_truth_file_without_a_probability_is_named(
    cfg: FeedrankConfig, served: Served
) -> None:
    broken = served_truth_rows(served.evening, [10], [0.5]).drop(columns="p_reply")
    path = write_served_truth(cfg, DAY_1, "broken", broken)
    with pytest.raises(ValueError, match=rf"{path.name}.*p_reply"):
        ingest_served(cfg)


def test_posted_tweets_a_rebuilt_lake_lost_are_written_again(cfg: FeedrankConfig) -> None:
    events = EventLog(cfg.paths.serving_events)
    events.post_tweets(posted_tweet(12, 1, f"{DAY_2} 00:10"))
    assert ingest_served(cfg)["tweets"] == 1

    # build_world replaces the lake: the posted tweet comes back, once.
    schema.partition_dir(cfg.paths.raw, "tweets", DAY_2).joinpath("part.parquet").unlink()
    assert ingest_served(cfg)["tweets"] == 1
    assert list(schema.read_table(cfg.paths.raw, "tweets", [DAY_2])["tweet_id"]) == [12]
    assert ingest_served(cfg)["tweets"] == 0
