"""The serving event log: what was served, engagements validated against it, author controls."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.event_log import (
    ENGAGEMENT_ACTIONS,
    SERVED_TO_SQL,
    EventLog,
    InvalidActionError,
    ServedItem,
    UnservedItemError,
)

T0 = pd.Timestamp("2026-03-12 12:00", tz="UTC")
VIEWER, OTHER = 7, 8


def hex_id() -> str:
    return uuid.uuid4().hex


def items(*tweets: int, start: int = 0) -> list[ServedItem]:
    """Served items of `tweets` in that order; tweet t is by author t // 10."""
    return [
        ServedItem(
            tweet_id=t, author_id=t // 10, position=start + i, source="in_network", score=1.0
        )
        for i, t in enumerate(tweets)
    ]


@pytest.fixture
def events(tmp_path: Path) -> Iterator[EventLog]:
    log = EventLog(tmp_path / "serving" / "events.db")
    yield log
    log.close()


def serve(events: EventLog, *tweets: int, viewer: int = VIEWER, session: str | None = None) -> str:
    request = hex_id()
    events.log_served(
        request, session or hex_id(), viewer, T0, items(*tweets), model_version="3", arm="champion"
    )
    return request


def test_the_log_is_created_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "events.db"
    log = EventLog(path)
    assert not path.exists()  # nothing until used
    assert log.counts() == {"served": 0, "engagements": 0, "exported": 0, "synthetic": 0}
    assert path.exists()
    log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_served_items_read_back_per_viewer(events: EventLog) -> None:
    session = hex_id()
    serve(events, 101, 102, 103, session=session)
    events.log_served(
        hex_id(), session, VIEWER, T0 + pd.Timedelta(minutes=1), items(104, 105, start=3), "3", "x"
    )
    serve(events, 201, viewer=OTHER)
    serve(events, 101, 106)  # another visit of the same viewer, repeating tweet 101
    assert events.served_to(VIEWER).tolist() == [101, 102, 103, 104, 105, 106]
    assert events.served_to(OTHER).tolist() == [201]
    assert events.served_to(VIEWER, since=T0 + pd.Timedelta(seconds=30)).tolist() == [104, 105]
    assert events.served_to(VIEWER).dtype == np.int64
    assert events.counts() == {"served": 8, "engagements": 0, "exported": 0, "synthetic": 0}


def test_what_a_viewer_was_served_is_read_from_an_index_alone(events: EventLog) -> None:
    # served_to runs on every feed request: no table rows, no sort for DISTINCT / ORDER BY
    serve(events, 101, 102)
    with sqlite3.connect(events.path) as db:
        plan = db.execute(f"EXPLAIN QUERY PLAN {SERVED_TO_SQL} ORDER BY tweet_id", (VIEWER,))
        details = " | ".join(row[-1] for row in plan.fetchall())
    assert "COVERING INDEX served_viewer_live" in details and "TEMP B-TREE" not in details


def test_a_logged_page_is_never_overwritten(events: EventLog) -> None:
    request = serve(events, 101, 102)
    with pytest.raises(ValueError, match=request):
        events.log_served(request, hex_id(), OTHER, T0, items(102, 999), "4", "challenger")
    # all or nothing: 999 was not logged either, and 102 still belongs to the first viewer
    assert events.served_to(OTHER).tolist() == []
    assert events.counts()["served"] == 2
    with pytest.raises(ValueError, match="hex"):
        events.log_served("not-hex", hex_id(), VIEWER, T0, items(1), "3", "champion")
    with pytest.raises(ValueError, match="surface"):
        events.log_served(hex_id(), hex_id(), VIEWER, T0, items(1), "3", "champion", "search")


def test_an_engagement_must_name_an_item_served_to_that_viewer(events: EventLog) -> None:
    request = serve(events, 101, 102)
    with pytest.raises(UnservedItemError, match=rf"tweet 103 .*{request}"):
        events.record_engagement(request, VIEWER, 103, "fav", T0)
    with pytest.raises(UnservedItemError, match=rf"tweet 101 .*viewer {OTHER}.*{request}"):
        events.record_engagement(request, OTHER, 101, "fav", T0)
    unknown = hex_id()
    with pytest.raises(UnservedItemError, match=unknown):
        events.record_engagement(unknown, VIEWER, 101, "fav", T0)
    assert isinstance(UnservedItemError("x"), LookupError)
    assert events.counts()["engagements"] == 0


def test_only_known_actions_and_dwell_with_its_duration(events: EventLog) -> None:
    request = serve(events, 101)
    for bad in ("like", "", "dwell_ms"):
        with pytest.raises(InvalidActionError, match="unknown action"):
            events.record_engagement(request, VIEWER, 101, bad, T0)
    for dwell_ms in (None, -1):
        with pytest.raises(InvalidActionError, match="dwell_ms"):
            events.record_engagement(request, VIEWER, 101, "dwell", T0, dwell_ms)
    assert isinstance(InvalidActionError("x"), ValueError)
    assert "reply_engaged_by_author" not in ENGAGEMENT_ACTIONS
    assert {"fav", "reply", "negative", "dwell", "block", "mute", "show_fewer"} <= set(
        ENGAGEMENT_ACTIONS
    )
    record = events.record_engagement(request, VIEWER, 101, "dwell", T0, 0)
    assert (record.new, record.dwell_ms) == (True, 0)


def test_the_author_engaging_with_a_reply_needs_the_reply(events: EventLog) -> None:
    request = serve(events, 101)
    with pytest.raises(InvalidActionError, match="reply"):
        events.record_engagement(request, VIEWER, 101, "reply_engaged_by_author", T0)
    events.record_engagement(request, VIEWER, 101, "reply", T0 + pd.Timedelta(seconds=5))
    later = T0 + pd.Timedelta(minutes=3)
    record = events.record_engagement(request, VIEWER, 101, "reply_engaged_by_author", later)
    assert record.new and record.at == later


def test_a_repeated_engagement_returns_the_first_record(events: EventLog) -> None:
    request = serve(events, 101, 102)
    first = events.record_engagement(request, VIEWER, 101, "fav", T0 + pd.Timedelta(seconds=1))
    again = events.record_engagement(request, VIEWER, 101, "fav", T0 + pd.Timedelta(seconds=9))
    assert first.new and not again.new
    assert (again.id, again.at, again.author_id) == (first.id, first.at, 10)
    dwell = events.record_engagement(request, VIEWER, 101, "dwell", T0, 1200)
    assert events.record_engagement(request, VIEWER, 101, "dwell", T0, 99).dwell_ms == 1200
    assert dwell.new
    events.record_engagement(request, VIEWER, 102, "fav", T0)  # same action, another item
    assert events.counts() == {"served": 2, "engagements": 3, "exported": 0, "synthetic": 0}


def test_author_controls_by_the_served_items_author(events: EventLog) -> None:
    first = serve(events, 101, 201, 301, 401)  # authors 10, 20, 30, 40
    second = serve(events, 102, 302)  # authors 10, 30
    events.record_engagement(first, VIEWER, 101, "block", T0)
    events.record_engagement(first, VIEWER, 201, "mute", T0)
    events.record_engagement(first, VIEWER, 301, "show_fewer", T0 + pd.Timedelta(hours=1))
    events.record_engagement(second, VIEWER, 302, "show_fewer", T0 + pd.Timedelta(hours=3))
    events.record_engagement(first, VIEWER, 401, "negative", T0)  # not a control of the author
    events.record_engagement(second, VIEWER, 102, "block", T0)  # author 10 again
    controls = events.author_controls(VIEWER)
    assert controls.blocked.tolist() == [10]
    assert controls.muted.tolist() == [20]
    assert controls.show_fewer == {30: T0 + pd.Timedelta(hours=3)}
    other = events.author_controls(OTHER)
    assert (other.blocked.size, other.muted.size, other.show_fewer) == (0, 0, {})


def test_two_replicas_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    shared = EventLog(path)  # one object used by two threads, plus a second "replica"
    replica = EventLog(path)
    pages, errors = 60, []

    def work(log: EventLog, viewer: int) -> None:
        try:
            for page in range(pages):
                request = hex_id()
                tweets = [viewer * 10_000 + page * 3 + k for k in range(3)]
                log.log_served(request, hex_id(), viewer, T0, items(*tweets), "3", "champion")
                log.record_engagement(request, viewer, tweets[0], "fav", T0)
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(shared, 1)),
        threading.Thread(target=work, args=(shared, 2)),
        threading.Thread(target=work, args=(replica, 3)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = EventLog(path)
    assert check.counts() == {
        "served": 3 * pages * 3,
        "engagements": 3 * pages,
        "exported": 0,
        "synthetic": 0,
    }
    for viewer in (1, 2, 3):
        assert len(check.served_to(viewer)) == pages * 3
    for log in (shared, replica, check):
        log.close()


def test_replicas_opening_a_new_log_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a fresh file to WAL fails at once ("database is locked") while another
    # connection opens it: without the open lock, a few of these rounds fail.
    errors: list[Exception] = []

    def first_use(log: EventLog) -> None:
        try:
            log.counts()
        except Exception as exc:
            errors.append(exc)

    for round_ in range(20):
        logs = [EventLog(tmp_path / f"round{round_}.db") for _ in range(4)]
        threads = [threading.Thread(target=first_use, args=(log,)) for log in logs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for log in logs:
            log.close()
        assert errors == [], f"round {round_}: {errors}"


def test_synthetic_pages_are_logged_but_never_exported(events: EventLog) -> None:
    live = serve(events, 101, 102)
    probe = hex_id()
    events.log_served(probe, hex_id(), OTHER, T0, items(103, 104), "3", "champion", synthetic=True)
    events.record_engagement(probe, OTHER, 103, "fav", T0 + pd.Timedelta(seconds=5))
    events.record_engagement(live, VIEWER, 102, "fav", T0 + pd.Timedelta(seconds=5))
    served, engagements = events.pending_export()
    assert served["request_id"].tolist() == [live, live]
    assert engagements["row_id"].isin(served["row_id"]).all() and len(engagements) == 1
    assert events.counts() == {"served": 4, "engagements": 2, "exported": 0, "synthetic": 2}
    events.mark_exported(served["row_id"].tolist(), served["version"].tolist())
    assert events.pending_export()[0].empty  # the synthetic rows never become pending
    assert events.counts()["exported"] == 2
    assert events.exported_rows()["row_id"].tolist() == served["row_id"].tolist()
    # Nobody saw them: they do not count as served to that viewer.
    assert events.served_to(OTHER).tolist() == []
    assert events.served_to(VIEWER).tolist() == [101, 102]


def test_a_load_test_logged_as_live_is_marked_synthetic_after_the_fact(events: EventLog) -> None:
    early = serve(events, 101)
    events.log_served(
        hex_id(), hex_id(), VIEWER, T0 + pd.Timedelta(minutes=5), items(102), "3", "a"
    )
    late = hex_id()
    events.log_served(late, hex_id(), VIEWER, T0 + pd.Timedelta(hours=1), items(103), "3", "a")
    served, _ = events.pending_export()
    events.mark_exported(served["row_id"].tolist(), served["version"].tolist())
    marked = events.mark_synthetic(T0 + pd.Timedelta(minutes=1), T0 + pd.Timedelta(minutes=10))
    assert marked == 1
    # The exported row is neither restored to the lake nor pending; the others are untouched.
    exported = events.exported_rows()
    assert exported["row_id"].tolist() == served["row_id"][[0, 2]].tolist()
    assert events.pending_export()[0].empty
    assert events.served_to(VIEWER).tolist() == [101, 103]
    assert events.counts()["synthetic"] == 1 and events.counts()["exported"] == 2
    assert {early, late} == set(served["request_id"][[0, 2]])
    with pytest.raises(ValueError, match="after since"):
        events.mark_synthetic(T0, T0)


def test_a_log_from_before_the_synthetic_column_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old = EventLog(path)
    request = serve(old, 101)
    old.close()
    with sqlite3.connect(path) as db:  # the served table and its index as the last release made
        db.execute("DROP INDEX served_viewer_live")
        db.execute("ALTER TABLE served DROP COLUMN synthetic")
        db.execute("CREATE INDEX served_viewer_tweet ON served (viewer_id, tweet_id)")
    upgraded = EventLog(path)
    served, _ = upgraded.pending_export()
    assert served["request_id"].tolist() == [request]  # old rows are live traffic
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "served_viewer_live" in indexes and "served_viewer_tweet" not in indexes
    upgraded.log_served(hex_id(), hex_id(), VIEWER, T0, items(102), "3", "champion", synthetic=True)
    assert upgraded.counts()["synthetic"] == 1
    upgraded.close()


def test_the_cli_marks_a_window_synthetic_and_names_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    runner = CliRunner()
    missing = runner.invoke(
        app, ["mark-synthetic", "--since", "2026-03-12", "--until", "2026-03-13"]
    )
    assert missing.exit_code == 1 and "no serving event log" in missing.output
    log = EventLog(tmp_path / "serving" / "events.db")
    serve(log, 101, 102)
    args = ["mark-synthetic", "--since", "2026-03-12T11:00", "--until", "2026-03-12T13:00"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert '"marked_synthetic": 2' in done.output
    assert log.counts()["synthetic"] == 2
    bad = runner.invoke(app, ["mark-synthetic", "--since", "yesterday-ish", "--until", "x"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
    log.close()
