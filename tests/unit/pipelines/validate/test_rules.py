"""The pure parts of lake validation: check columns, reference keys, quarantine paths, messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from pipelines import schema
from pipelines.validate import rules
from pipelines.validate.quarantine import free_path
from pipelines.validate.results import BatchOutcome, DataValidationError, ExpectationOutcome
from tests.utils.factories import ts


@pytest.fixture
def keys() -> rules.ReferenceKeys:
    users = pd.DataFrame({"user_id": [1, 2, 3]})
    tweets = pd.DataFrame(
        {"tweet_id": [10, 11], "created_at": [ts("2026-03-02 08:00"), ts("2026-03-02 09:00")]}
    )
    return rules.ReferenceKeys.from_frames(users=[users], tweets=[tweets])


def test_every_table_has_rules_and_references_point_backwards() -> None:
    assert set(rules.VALIDATION_ORDER) == set(schema.TABLES)
    for position, table in enumerate(rules.VALIDATION_ORDER):
        assert set(rules.ID_COLUMNS[table]) <= set(schema.TABLES[table].names)
        assert set(rules.PRIMARY_KEYS[table]) <= set(schema.TABLES[table].names)
        for fk in rules.FOREIGN_KEYS[table]:
            assert fk.column in schema.TABLES[table].names
            assert rules.VALIDATION_ORDER.index(fk.target) <= position, (table, fk)


def test_unresolved_ids_keeps_only_unknown_non_null_ids() -> None:
    ids = pd.Series([1.0, None, 7.0, 3.0])  # a nullable int64 column as pandas reads it

    unknown = rules.unresolved_ids(ids, pd.Index([1, 2, 3]))

    assert unknown.isna().tolist() == [True, True, False, True]
    assert unknown.dropna().tolist() == [7]


def test_reference_keys_skip_frames_without_keys_and_keep_first_duplicate() -> None:
    first = pd.DataFrame({"tweet_id": [10, 11], "created_at": [ts("2026-03-02"), ts("2026-03-03")]})
    duplicate = pd.DataFrame({"tweet_id": [11], "created_at": [ts("2030-01-01")]})
    broken = pd.DataFrame({"id": [99]})

    keys = rules.ReferenceKeys.from_frames(users=[broken], tweets=[first, duplicate, broken])

    assert keys.user_ids.empty
    assert sorted(keys.ids("tweets")) == [10, 11]
    assert keys.tweet_created_at[11] == ts("2026-03-03")


def test_reference_keys_of_an_empty_lake_resolve_nothing() -> None:
    empty = rules.ReferenceKeys.from_frames(users=[], tweets=[])

    assert rules.unresolved_ids(pd.Series([1]), empty.ids("users")).tolist() == [1]
    assert rules.referenced_created_at(pd.Series([10]), empty).isna().all()
    with pytest.raises(ValueError, match="no reference keys"):
        empty.ids("impressions")


def test_referenced_created_at_looks_up_parents(keys: rules.ReferenceKeys) -> None:
    parents = pd.Series([None, 10.0, 99.0])

    created = rules.referenced_created_at(parents, keys)

    assert created.isna().tolist() == [True, False, True]
    assert created[1] == ts("2026-03-02 08:00")


def test_utc_day_labels_each_timestamp_with_its_utc_day() -> None:
    stamps = pd.Series(
        [ts("2026-03-02 23:59:59"), pd.NaT, ts("2026-03-03 00:00:00")], dtype="datetime64[us, UTC]"
    )

    assert rules.utc_day(stamps).tolist()[::2] == ["2026-03-02", "2026-03-03"]
    assert pd.isna(rules.utc_day(stamps)[1])


def test_tweets_check_columns(keys: rules.ReferenceKeys) -> None:
    tweets = pd.DataFrame(
        {
            "tweet_id": [10, 11, 12],
            "author_id": [1, 2, 42],
            "created_at": [ts("2026-03-02 08:00"), ts("2026-03-02 09:00"), ts("2026-03-02 07:00")],
            "conversation_id": [10, 10, 10],
            "in_reply_to_tweet_id": [None, 10.0, 11.0],
        }
    )

    checked = rules.add_check_columns("tweets", tweets, keys)

    assert checked["unknown_author_id"].dropna().tolist() == [42]
    assert checked["unknown_in_reply_to_tweet_id"].isna().all()
    assert checked["unknown_conversation_id"].isna().all()
    # reply 12 (07:00) answers 11 (09:00): the GX pair rule created_at > parent_created_at fails it
    assert (checked["created_at"] > checked["parent_created_at"]).tolist() == [False, True, False]
    assert checked["created_at_day"].tolist() == ["2026-03-02"] * 3
    assert list(tweets.columns) == list(checked.columns[: len(tweets.columns)])
    assert "unknown_author_id" not in tweets  # the batch itself is left alone


def test_impressions_check_columns(keys: rules.ReferenceKeys) -> None:
    frame = pd.DataFrame(
        {
            "viewer_id": [1, 5],
            "tweet_id": [11, 99],
            "served_at": [ts("2026-03-02 08:30"), ts("2026-03-03 10:00")],
        }
    )
    for action in schema.BINARY_ACTIONS:
        frame[action] = [False, False]
        frame[f"{action}_at"] = pd.Series([pd.NaT, pd.NaT], dtype="datetime64[us, UTC]")
    frame.loc[0, "fav"] = True
    frame.loc[0, "fav_at"] = ts("2026-03-02 08:31")

    checked = rules.add_check_columns("impressions", frame, keys)

    assert checked["unknown_viewer_id"].dropna().tolist() == [5]
    assert checked["unknown_tweet_id"].dropna().tolist() == [99]
    assert checked["tweet_created_at"][0] == ts("2026-03-02 09:00")  # served before created
    assert checked["has_fav_at"].tolist() == [True, False]
    assert checked["has_report_at"].tolist() == [False, False]
    assert checked["served_at_day"].tolist() == ["2026-03-02", "2026-03-03"]


def test_free_path_never_reuses_an_existing_folder(tmp_path: Path) -> None:
    wanted = tmp_path / "day=2026-03-02"
    now = datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)
    assert free_path(wanted, now) == wanted

    wanted.mkdir()
    stamped = free_path(wanted, now)
    assert stamped.name == "day=2026-03-02.20260304T050607000008Z"

    stamped.mkdir()
    assert free_path(wanted, now).name == "day=2026-03-02.20260304T050607000008Z-1"


def test_error_message_names_batches_and_failed_expectations() -> None:
    failed = ExpectationOutcome(
        type="expect_column_values_to_be_null",
        kwargs={"column": "unknown_tweet_id"},
        description="impressions.tweet_id resolves",
        success=False,
        unexpected_count=2,
        unexpected_values=[99, 98],
    )
    passed = ExpectationOutcome(
        type="expect_column_values_to_be_unique",
        kwargs={"column": "impression_id"},
        description=None,
        success=True,
    )
    batch = BatchOutcome(
        table="impressions",
        day="2026-03-03",
        rows=40,
        expectations=(failed, passed),
        quarantined_to=Path("/lake/quarantine/impressions/day=2026-03-03"),
    )

    error = DataValidationError([batch], total_batches=7)

    message = str(error)
    assert message.startswith("1 of 7 lake batches failed validation")
    assert "impressions day=2026-03-03" in message
    assert "expect_column_values_to_be_null(unknown_tweet_id)" in message
    assert "2 unexpected, e.g. [99, 98]" in message
    assert "impression_id" not in message
    assert error.failures == (batch,)
    assert batch.report()["failed_expectations"] == 1
