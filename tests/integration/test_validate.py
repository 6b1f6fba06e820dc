"""Lake validation with real Great Expectations on a tiny hand-built lake, and its quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.validate import DataValidationError, validate_lake
from tests.utils.factories import ts

pytestmark = pytest.mark.integration

DAY_1, DAY_2 = "2026-03-02", "2026-03-03"


def users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "created_at": [ts("2025-01-01")] * 3,
            "is_verified": [True, False, False],
            "follower_count": [2, 1, 0],
            "following_count": [0, 1, 2],
            "language": ["en"] * 3,
            "country": ["US", "GB", "DE"],
        }
    )


def follows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "follower_id": [2, 3, 3],
            "followee_id": [1, 1, 2],
            "created_at": [ts("2025-06-01")] * 3,
        }
    )


def tweets(day: str) -> pd.DataFrame:
    """Day 1: a root (10) and its reply (11). Day 2: a reply to the reply (12) and a root (13)."""
    if day == DAY_1:
        ids, authors, created = [10, 11], [1, 2], [f"{DAY_1} 08:00", f"{DAY_1} 09:00"]
        conversation, parent = [10, 10], [None, 10]
    else:
        ids, authors, created = [12, 13], [3, 1], [f"{DAY_2} 07:00", f"{DAY_2} 10:00"]
        conversation, parent = [10, 13], [11, None]
    return pd.DataFrame(
        {
            "tweet_id": ids,
            "author_id": authors,
            "created_at": [ts(c) for c in created],
            "text": ["hello world", "a reply"],
            "language": ["en", "en"],
            "has_image": [False, True],
            "has_video": [False, False],
            "has_url": [True, False],
            "hashtags": [["ml"], []],
            "conversation_id": conversation,
            "in_reply_to_tweet_id": pd.array(parent, dtype="Int64"),
            "toxicity": [0.1, 0.7],
        }
    )


def impressions(day: str) -> pd.DataFrame:
    """Three impressions served at noon of `day`; the first one was faved a minute later."""
    base = 100 if day == DAY_1 else 200
    served = ts(f"{day} 12:00")
    frame = pd.DataFrame(
        {
            "impression_id": [base, base + 1, base + 2],
            "viewer_id": [2, 3, 3],
            "tweet_id": [10, 11, 10] if day == DAY_1 else [12, 13, 11],
            "served_at": [served] * 3,
            "surface": ["home", "conversation", "home"],
            "position": [0, 1, 2],
            "request_id": [base, base, base + 1],
            "model_version": ["v1"] * 3,
            "experiment_arm": ["control"] * 3,
            "dwell_ms": [1200, 0, 30_000],
        }
    )
    for action in schema.BINARY_ACTIONS:
        frame[action] = False
        frame[f"{action}_at"] = pd.Series([pd.NaT] * 3, dtype="datetime64[us, UTC]")
    frame.loc[0, "fav"] = True
    frame.loc[0, "fav_at"] = served + pd.Timedelta(minutes=1)
    return frame


def write_lake(raw: Path) -> None:
    schema.write_partition(users(), raw, "users", schema.STATIC_PARTITION, schema.USERS)
    schema.write_partition(follows(), raw, "follows", schema.STATIC_PARTITION, schema.FOLLOWS)
    for day in (DAY_1, DAY_2):
        schema.write_partition(tweets(day), raw, "tweets", day, schema.TWEETS)
        schema.write_partition(impressions(day), raw, "impressions", day, schema.IMPRESSIONS)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedrankConfig:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    config = FeedrankConfig()
    write_lake(config.paths.raw)
    return config


def part(root: Path, table: str, day: str) -> Path:
    return schema.partition_dir(root, table, day) / "part.parquet"


def failed_rules(report: dict) -> set[tuple[str, str]]:
    """(type, the column or first column) of every failed expectation in a validation report."""
    out = set()
    for e in report["expectations"]:
        if not e["success"]:
            kwargs = e["kwargs"]
            out.add((e["type"], kwargs.get("column") or kwargs.get("column_A")))
    return out


def test_clean_lake_passes_and_writes_summary(cfg: FeedrankConfig) -> None:
    summary = validate_lake(cfg)

    assert summary["batches"] == 6
    assert summary["failed"] == 0
    assert summary["tables"]["impressions"] == {
        "batches": 2,
        "failed": 0,
        "rows": 6,
        "failed_days": [],
    }
    written = json.loads((cfg.paths.validation_summary).read_text())
    assert written["batches"] == 6
    assert not cfg.paths.quarantine.exists()


def test_corrupt_impressions_batch_is_quarantined_whole(cfg: FeedrankConfig) -> None:
    bad = impressions(DAY_2)
    bad["viewer_id"] = bad["viewer_id"].astype("Int64")
    bad.loc[0, "viewer_id"] = pd.NA  # a null id
    bad.loc[1, "tweet_id"] = 99_999  # an impression of a tweet the lake does not have
    bad.loc[0, "fav_at"] = bad.loc[0, "served_at"] - pd.Timedelta(seconds=5)  # faved before served
    written = schema.write_partition(bad, cfg.paths.raw, "impressions", DAY_2, schema.IMPRESSIONS)
    original_bytes = written.read_bytes()

    with pytest.raises(DataValidationError) as raised:
        validate_lake(cfg)

    message = str(raised.value)
    assert f"impressions day={DAY_2}" in message
    assert "unknown_tweet_id" in message and "viewer_id" in message
    assert [(f.table, f.day) for f in raised.value.failures] == [("impressions", DAY_2)]

    quarantined = schema.partition_dir(cfg.paths.quarantine, "impressions", DAY_2)
    assert not schema.partition_dir(cfg.paths.raw, "impressions", DAY_2).exists()
    assert (quarantined / "part.parquet").read_bytes() == original_bytes
    report = json.loads((quarantined / "validation_report.json").read_text())
    assert failed_rules(report) == {
        ("expect_column_values_to_not_be_null", "viewer_id"),
        ("expect_column_values_to_be_null", "unknown_tweet_id"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "fav_at"),
    }
    unknown = next(
        e for e in report["expectations"] if e["kwargs"].get("column") == "unknown_tweet_id"
    )
    assert unknown["unexpected_count"] == 1 and unknown["unexpected_values"] == [99_999]

    for table, day in [("users", "static"), ("follows", "static"), ("tweets", DAY_1),
                       ("tweets", DAY_2), ("impressions", DAY_1)]:  # fmt: skip
        assert part(cfg.paths.raw, table, day).exists(), (table, day)


def test_author_engaging_a_reply_that_never_happened_fails_its_batch(
    cfg: FeedrankConfig,
) -> None:
    bad = impressions(DAY_2)
    bad.loc[0, "reply"], bad.loc[0, "reply_at"] = False, pd.NaT
    bad.loc[0, "reply_engaged_by_author"] = True
    bad.loc[0, "reply_engaged_by_author_at"] = bad.loc[0, "served_at"] + pd.Timedelta(minutes=5)
    schema.write_partition(bad, cfg.paths.raw, "impressions", DAY_2, schema.IMPRESSIONS)

    with pytest.raises(DataValidationError):
        validate_lake(cfg)

    quarantined = schema.partition_dir(cfg.paths.quarantine, "impressions", DAY_2)
    report = json.loads((quarantined / "validation_report.json").read_text())
    assert failed_rules(report) == {("expect_column_pair_values_a_to_be_greater_than_b", "reply")}


def test_reply_older_than_its_parent_fails_its_batch(cfg: FeedrankConfig) -> None:
    bad = tweets(DAY_1)
    bad.loc[1, "created_at"] = ts(f"{DAY_1} 07:00")  # the reply (11) predates its parent (10)
    schema.write_partition(bad, cfg.paths.raw, "tweets", DAY_1, schema.TWEETS)

    with pytest.raises(DataValidationError) as raised:
        validate_lake(cfg)

    # Impressions of the quarantined tweets no longer resolve, so their batches fail too.
    failed = {(f.table, f.day) for f in raised.value.failures}
    assert failed == {("tweets", DAY_1), ("impressions", DAY_1), ("impressions", DAY_2)}
    report_path = schema.partition_dir(cfg.paths.quarantine, "tweets", DAY_1)
    report = json.loads((report_path / "validation_report.json").read_text())
    assert failed_rules(report) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "created_at")
    }
    assert part(cfg.paths.raw, "tweets", DAY_2).exists()


def test_second_quarantine_of_a_day_gets_a_timestamp_suffix(cfg: FeedrankConfig) -> None:
    bad = impressions(DAY_1)
    bad.loc[2, "surface"] = "explore"  # not a surface
    schema.write_partition(bad, cfg.paths.raw, "impressions", DAY_1, schema.IMPRESSIONS)
    with pytest.raises(DataValidationError):
        validate_lake(cfg)
    schema.write_partition(bad, cfg.paths.raw, "impressions", DAY_1, schema.IMPRESSIONS)
    with pytest.raises(DataValidationError):
        validate_lake(cfg)

    folders = sorted(p.name for p in (cfg.paths.quarantine / "impressions").iterdir())
    assert len(folders) == 2
    assert folders[0] == f"day={DAY_1}"
    assert folders[1].startswith(f"day={DAY_1}.")
    for name in folders:
        assert (cfg.paths.quarantine / "impressions" / name / "validation_report.json").exists()


def test_wrong_column_set_is_reported_by_the_schema_suite(cfg: FeedrankConfig) -> None:
    frame = follows().assign(weight=1.0)
    path = part(cfg.paths.raw, "follows", schema.STATIC_PARTITION)
    frame.to_parquet(path, index=False)

    with pytest.raises(DataValidationError, match="follows day=static"):
        validate_lake(cfg)

    quarantined = schema.partition_dir(cfg.paths.quarantine, "follows", schema.STATIC_PARTITION)
    report = json.loads((quarantined / "validation_report.json").read_text())
    assert [e["type"] for e in report["expectations"]] == ["expect_table_columns_to_match_set"]
    assert report["expectations"][0]["details"]["mismatched"]["unexpected"] == ["weight"]
