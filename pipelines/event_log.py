"""The serving event log: served impressions, engagements on them and author controls (SQLite).

Serving writes it and the `ingest_served` step reads it into the raw lake, so it lives here:
`serving/` imports `pipelines/`, never the other way round.

One file per machine (``cfg.paths.serving_events``) shared by every serving replica, in WAL mode:
readers never wait for the writer, writers queue on SQLite's lock (``BUSY_TIMEOUT_S``). Every call
is one transaction, committed with ``synchronous=FULL`` before it returns, so a logged event
survives a crash of the process or the machine. Rows are only ever inserted; the only updates
are the bookkeeping columns ``version``, ``exported_version`` and ``synthetic`` of `served`.

Tables:

- ``served``: one row per served item (an impression). ``id`` is never reused (AUTOINCREMENT);
  ``(request_id, tweet_id)`` is unique. ``version`` counts the engagements recorded on the row and
  ``exported_version`` is the version last written to the raw lake (NULL: never), so an engagement
  that arrives after an export makes the row pending again instead of being lost to training.
  ``synthetic`` (0/1) marks load-test and probe pages: served and logged, but no viewer saw them,
  so they are never exported, and the feed does not count them as seen by the viewer.
  ``section`` is the health section a conversation reply was shown in (NULL on the home feed).
- ``engagements``: one row per (request_id, tweet_id, action), pointing at its ``served`` row.
- ``posted``: tweets posted to the live service (``POST /tweets``), one row per ``tweet_id``, in
  posting order (``seq``), with the lake's tweet columns, the text embedding the service computed
  (float32 bytes) and whether the row is in the raw lake yet (``exported``). Every replica reads
  the rows after its last ``seq`` to index them; `ingest_served` exports them to the lake.

Timestamps are stored as integer microseconds since the epoch, UTC (a naive timestamp is taken
as UTC, the lake's convention).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import schema

# What a viewer may record on a served item: the binary actions a viewer does, a dwell, and the
# author controls. A derived action (`reply_engaged_by_author`) comes from the author's side and is
# accepted only on top of its parent action (see `EventLog.record_engagement`).
AUTHOR_CONTROLS: tuple[str, ...] = ("block", "mute", "show_fewer")
ENGAGEMENT_ACTIONS: tuple[str, ...] = (
    *(a for a in schema.BINARY_ACTIONS if a not in schema.DERIVED_ACTIONS),
    "dwell",
    *AUTHOR_CONTROLS,
)
RECORDABLE_ACTIONS: tuple[str, ...] = (*ENGAGEMENT_ACTIONS, *schema.DERIVED_ACTIONS)
# The `negative` label of an impression: an explicit negative or any author control.
NEGATIVE_ACTIONS: tuple[str, ...] = ("negative", *AUTHOR_CONTROLS)
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another replica's transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS served (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    viewer_id INTEGER NOT NULL,
    tweet_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    source TEXT NOT NULL,
    score REAL NOT NULL,
    served_at_us INTEGER NOT NULL,
    surface TEXT NOT NULL,
    model_version TEXT NOT NULL,
    arm TEXT NOT NULL,
    synthetic INTEGER NOT NULL DEFAULT 0,
    section TEXT,
    version INTEGER NOT NULL DEFAULT 0,
    exported_version INTEGER,
    UNIQUE (request_id, tweet_id)
);
CREATE INDEX IF NOT EXISTS served_session ON served (session_id);
CREATE INDEX IF NOT EXISTS served_viewer ON served (viewer_id, served_at_us);
-- Covers served_to (every feed request): what a viewer was served, distinct and in order,
-- from the index alone.
CREATE INDEX IF NOT EXISTS served_viewer_live ON served (viewer_id, synthetic, tweet_id);
CREATE TABLE IF NOT EXISTS engagements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    served_id INTEGER NOT NULL REFERENCES served (id),
    request_id TEXT NOT NULL,
    viewer_id INTEGER NOT NULL,
    tweet_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    dwell_ms INTEGER,
    UNIQUE (request_id, tweet_id, action)
);
CREATE INDEX IF NOT EXISTS engagements_served ON engagements (served_id);
CREATE INDEX IF NOT EXISTS engagements_viewer ON engagements (viewer_id, action);
"""
# Tables added after the first release: created in place in an older log by `_upgrade`.
_ADDED_TABLES = """
CREATE TABLE IF NOT EXISTS posted (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tweet_id INTEGER NOT NULL UNIQUE,
    author_id INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    text TEXT NOT NULL,
    language TEXT NOT NULL,
    has_image INTEGER NOT NULL,
    has_video INTEGER NOT NULL,
    has_url INTEGER NOT NULL,
    hashtags TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    in_reply_to_tweet_id INTEGER,
    toxicity REAL NOT NULL,
    embedding BLOB,
    exported INTEGER NOT NULL DEFAULT 0
);
-- Covers tweet_activity (the live counts of a tweet): its served rows by time.
CREATE INDEX IF NOT EXISTS served_tweet ON served (tweet_id, served_at_us);
"""
# The columns of a posted tweet, as the lake's `tweets` table names them.
POSTED_COLUMNS: tuple[str, ...] = tuple(schema.TWEETS.names)


def _pending(table: str = "") -> str:
    """SQL condition: the served row is live traffic whose latest labels are not in the lake."""
    prefix = f"{table}." if table else ""
    return (
        f"({prefix}synthetic = 0 AND "
        f"({prefix}exported_version IS NULL OR {prefix}exported_version <> {prefix}version))"
    )


# Columns added to `served` after its first release: (name, definition) for logs made before.
_ADDED_SERVED_COLUMNS = (("synthetic", "INTEGER NOT NULL DEFAULT 0"), ("section", "TEXT"))
# What a viewer was served (live pages only), read on every feed request from an index alone.
SERVED_TO_SQL = "SELECT DISTINCT tweet_id FROM served WHERE viewer_id = ? AND synthetic = 0"


def _upgrade(connection: sqlite3.Connection) -> None:
    """Bring a log written by an older release up to `_SCHEMA`: missing tables and columns (its
    rows get the defaults) and the index `served_to` reads, in place of the one it replaces."""
    connection.executescript(_ADDED_TABLES)  # every statement is IF NOT EXISTS
    present = {row[1] for row in connection.execute("PRAGMA table_info(served)")}
    for name, definition in _ADDED_SERVED_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE served ADD COLUMN {name} {definition}")
    indexes = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    if "served_viewer_live" not in indexes:
        connection.execute(
            "CREATE INDEX served_viewer_live ON served (viewer_id, synthetic, tweet_id)"
        )
    if "served_viewer_tweet" in indexes:
        connection.execute("DROP INDEX served_viewer_tweet")


class UnservedItemError(LookupError):
    """An engagement names an item that was not served in that request, or not to that viewer."""


class InvalidActionError(ValueError):
    """An engagement's action is not one a client may record, or lacks what it requires."""


@dataclass(frozen=True)
class ServedItem:
    """One item of a served page; `position` is 0-based in the whole feed visit (a
    conversation page: in its reading order); `section` is the conversation section it was
    shown in (None on the home feed)."""

    tweet_id: int
    author_id: int
    position: int
    source: str
    score: float
    section: str | None = None


@dataclass(frozen=True)
class EngagementRecord:
    """A recorded engagement; `new` is False when it repeats one recorded earlier (whose fields
    it then carries)."""

    id: int
    request_id: str
    viewer_id: int
    tweet_id: int
    author_id: int
    action: str
    at: pd.Timestamp
    dwell_ms: int | None
    new: bool


@dataclass(frozen=True)
class AuthorControls:
    """A viewer's controls over authors: blocked and muted author ids `[A]` (int64, sorted), and
    per author shown fewer of, the latest time it was asked."""

    blocked: np.ndarray
    muted: np.ndarray
    show_fewer: dict[int, pd.Timestamp]


def to_micros(at: pd.Timestamp) -> int:
    """Microseconds since the epoch, UTC (a naive timestamp is taken as UTC)."""
    stamp = pd.Timestamp(at)
    if pd.isna(stamp):
        raise ValueError("a timestamp is required, got NaT")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)


def from_micros(micros: int) -> pd.Timestamp:
    return pd.Timestamp(int(micros), unit="us", tz="UTC")


def _require_hex(name: str, value: str) -> None:
    try:
        int(value, 16)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a hex string, got {value!r}") from None


def _tags(hashtags: object) -> list[str]:
    """A posted tweet's hashtags (a list, an array read from parquet, or null) as strings."""
    if isinstance(hashtags, list | tuple | np.ndarray):
        return [str(tag) for tag in hashtags]
    if hashtags is None or (isinstance(hashtags, float) and np.isnan(hashtags)):
        return []
    raise ValueError(f"hashtags must be a list of strings, got {hashtags!r}")


def _check_action(action: str, dwell_ms: int | None) -> None:
    """InvalidActionError for an action the log does not record, or a `dwell` without
    ``dwell_ms >= 0``."""
    if action not in RECORDABLE_ACTIONS:
        raise InvalidActionError(
            f"unknown action {action!r}; one of {list(ENGAGEMENT_ACTIONS)} is expected"
        )
    if action == "dwell" and (dwell_ms is None or dwell_ms < 0):
        raise InvalidActionError(f"action 'dwell' requires dwell_ms >= 0, got {dwell_ms}")


class EventLog:
    """The append-only event log at `path` (created with its folder on first use).

    Safe to share between threads and between processes (SQLite's file locks); every method is one
    transaction. Each thread that uses it gets its own connection, kept until :meth:`close`: use
    it from long-lived threads (a pool), not one new thread per call.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    # ----------------------------------------------------------------------------- connections

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        # A forked child must not reuse its parent's connection (SQLite forbids it).
        if connection is None or self._local.pid != os.getpid():
            connection = self._connect()
            with self._lock:
                self._connections.append(connection)
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def _connect(self) -> sqlite3.Connection:
        """A new connection, the file in WAL mode with its tables. Serialized across threads and
        processes by a lock file: switching a new file to WAL fails ("database is locked", no busy
        wait) while another connection opens it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(f"{self.path.name}.init.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            # Autocommit mode: transactions are opened explicitly by `_transaction`.
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")  # durable at commit, power loss too
                connection.execute("PRAGMA foreign_keys=ON")
                (tables,) = connection.execute(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                    ("engagements",),
                ).fetchone()
                if not tables:
                    connection.executescript(_SCHEMA + _ADDED_TABLES)
                _upgrade(connection)
            except BaseException:
                connection.close()
                raise
        return connection

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction; a writer takes SQLite's write lock up front (BEGIN IMMEDIATE) so its
        reads and writes see one state even with other replicas writing."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------------------- serving

    def log_served(
        self,
        request_id: str,
        session_id: str,
        viewer_id: int,
        served_at: pd.Timestamp,
        items: Sequence[ServedItem],
        model_version: str,
        arm: str,
        surface: str = "home",
        synthetic: bool = False,
    ) -> None:
        """Log one served page (all its items or none). A `synthetic` page (load tests, probes)
        is served and logged like any other, but never exported to the lake as impressions: no
        viewer saw it, so its missing engagements are not labels.

        Raises ValueError for a malformed request (ids not hex, an unknown surface, a negative
        position) and for an item already logged under this request_id: a log is never
        overwritten.
        """
        _require_hex("request_id", request_id)
        _require_hex("session_id", session_id)
        if surface not in schema.SURFACES:
            raise ValueError(f"surface must be one of {list(schema.SURFACES)}, got {surface!r}")
        if any(item.position < 0 for item in items):
            raise ValueError("positions must be >= 0")
        served_us = to_micros(served_at)
        rows = [
            (
                request_id,
                session_id,
                int(viewer_id),
                int(item.tweet_id),
                int(item.author_id),
                int(item.position),
                str(item.source),
                float(item.score),
                served_us,
                surface,
                model_version,
                arm,
                int(synthetic),
                item.section,
            )
            for item in items
        ]
        try:
            with self._transaction(write=True) as db:
                db.executemany(
                    "INSERT INTO served (request_id, session_id, viewer_id, tweet_id, author_id, "
                    "position, source, score, served_at_us, surface, model_version, arm, "
                    "synthetic, section) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"request {request_id} repeats a tweet or was logged already: {exc}"
            ) from exc

    def served_to(self, viewer_id: int, since: pd.Timestamp | None = None) -> np.ndarray:
        """Distinct tweet ids served to the viewer (at or after `since`) on live pages, sorted
        `[T]`; synthetic pages were seen by nobody."""
        query, parameters = SERVED_TO_SQL, [viewer_id]
        if since is not None:
            query += " AND served_at_us >= ?"
            parameters.append(to_micros(since))
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY tweet_id", parameters).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # ------------------------------------------------------------------------------ feedback

    def record_engagement(
        self,
        request_id: str,
        viewer_id: int,
        tweet_id: int,
        action: str,
        at: pd.Timestamp,
        dwell_ms: int | None = None,
    ) -> EngagementRecord:
        """Record `action` of the viewer on `tweet_id` as served in `request_id`.

        Idempotent per (request_id, tweet_id, action): a repeat returns the first record with
        ``new=False`` and counts nothing. `dwell_ms` is kept as given; only a `dwell` needs it.

        Raises:
            InvalidActionError: an action outside ENGAGEMENT_ACTIONS, a `dwell` without
                ``dwell_ms >= 0``, or `reply_engaged_by_author` with no reply recorded before it
                (the author engages with the viewer's reply, so the reply must exist).
            UnservedItemError: (request_id, tweet_id) was not served, or not to this viewer.
        """
        _check_action(action, dwell_ms)
        at_us = to_micros(at)
        with self._transaction(write=True) as db:
            served_id, author_id = self._served_item(db, request_id, viewer_id, tweet_id)
            existing = self._engagement(db, request_id, tweet_id, action)
            if existing is not None:
                return existing
            parent = schema.DERIVED_ACTIONS.get(action)
            if parent is not None and self._engagement(db, request_id, tweet_id, parent) is None:
                raise InvalidActionError(
                    f"{action!r} needs a {parent!r} of viewer {viewer_id} on tweet {tweet_id} in "
                    f"request {request_id}, and none is recorded"
                )
            cursor = db.execute(
                "INSERT INTO engagements (served_id, request_id, viewer_id, tweet_id, author_id, "
                "action, at_us, dwell_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    served_id,
                    request_id,
                    int(viewer_id),
                    int(tweet_id),
                    author_id,
                    action,
                    at_us,
                    None if dwell_ms is None else int(dwell_ms),
                ),
            )
            # The impression's labels changed: the lake's copy (if any) is stale until re-exported.
            db.execute("UPDATE served SET version = version + 1 WHERE id = ?", (served_id,))
            row_id = cursor.lastrowid
        assert row_id is not None
        return EngagementRecord(
            id=row_id,
            request_id=request_id,
            viewer_id=int(viewer_id),
            tweet_id=int(tweet_id),
            author_id=int(author_id),
            action=action,
            at=from_micros(at_us),
            dwell_ms=None if dwell_ms is None else int(dwell_ms),
            new=True,
        )

    @staticmethod
    def _served_item(
        db: sqlite3.Connection, request_id: str, viewer_id: int, tweet_id: int
    ) -> tuple[int, int]:
        """``(served row id, author_id)`` of `tweet_id` as served to the viewer in `request_id`;
        UnservedItemError when it was not served, or not to this viewer."""
        served = db.execute(
            "SELECT id, viewer_id, author_id FROM served WHERE request_id = ? AND tweet_id = ?",
            (request_id, int(tweet_id)),
        ).fetchone()
        if served is None or served[1] != int(viewer_id):
            whom = "" if served is None else f" to viewer {viewer_id}"
            raise UnservedItemError(
                f"tweet {tweet_id} was not served{whom} in request {request_id}"
            )
        return served[0], served[2]

    @staticmethod
    def _engagement(
        db: sqlite3.Connection, request_id: str, tweet_id: int, action: str
    ) -> EngagementRecord | None:
        row = db.execute(
            "SELECT id, viewer_id, author_id, at_us, dwell_ms FROM engagements "
            "WHERE request_id = ? AND tweet_id = ? AND action = ?",
            (request_id, int(tweet_id), action),
        ).fetchone()
        if row is None:
            return None
        return EngagementRecord(
            id=row[0],
            request_id=request_id,
            viewer_id=row[1],
            tweet_id=int(tweet_id),
            author_id=row[2],
            action=action,
            at=from_micros(row[3]),
            dwell_ms=row[4],
            new=False,
        )

    def author_controls(self, viewer_id: int) -> AuthorControls:
        """The viewer's blocks, mutes and show-fewer requests, by the served item's author."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT action, author_id, MAX(at_us) FROM engagements "
                "WHERE viewer_id = ? AND action IN (?, ?, ?) GROUP BY action, author_id",
                (viewer_id, *AUTHOR_CONTROLS),
            ).fetchall()

        def authors(action: str) -> np.ndarray:
            return np.sort(np.asarray([r[1] for r in rows if r[0] == action], dtype=np.int64))

        return AuthorControls(
            blocked=authors("block"),
            muted=authors("mute"),
            show_fewer={int(r[1]): from_micros(r[2]) for r in rows if r[0] == "show_fewer"},
        )

    def counts(self) -> dict[str, int]:
        """Rows served, engagements recorded, served rows whose latest labels are exported, and
        synthetic served rows (never exported)."""
        with self._transaction() as db:
            served, exported, synthetic = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(synthetic = 0 AND exported_version = version), 0), "
                "COALESCE(SUM(synthetic), 0) FROM served"
            ).fetchone()
            (engagements,) = db.execute("SELECT COUNT(*) FROM engagements").fetchone()
        return {
            "served": served,
            "engagements": engagements,
            "exported": exported,
            "synthetic": synthetic,
        }

    # ------------------------------------------------------------------ export (for training)

    def pending_export(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Served live rows (not synthetic) not in the lake with their latest labels, and their
        engagements.

        Returns ``(served, engagements)`` read in one transaction: `served` has ``row_id,
        version, request_id, session_id, viewer_id, tweet_id, author_id, position, source, score,
        served_at, surface, model_version, arm``; `engagements` has ``engagement_id, row_id,
        action, at, dwell_ms`` (timestamps UTC).
        """
        with self._transaction() as db:
            served = pd.read_sql_query(
                "SELECT id AS row_id, version, request_id, session_id, viewer_id, tweet_id, "
                "author_id, position, source, score, served_at_us, surface, model_version, arm "
                f"FROM served WHERE {_pending()} ORDER BY id",
                db,
            )
            engagements = pd.read_sql_query(
                "SELECT e.id AS engagement_id, e.served_id AS row_id, e.action, e.at_us, "
                "e.dwell_ms FROM engagements e JOIN served s ON s.id = e.served_id "
                f"WHERE {_pending('s')} "
                "ORDER BY e.id",
                db,
            )
        served["served_at"] = pd.to_datetime(served.pop("served_at_us"), unit="us", utc=True)
        engagements["at"] = pd.to_datetime(engagements.pop("at_us"), unit="us", utc=True)
        return served, engagements

    def mark_synthetic(self, since: pd.Timestamp, until: pd.Timestamp) -> int:
        """Mark every served row of ``[since, until)`` synthetic; returns how many changed.

        For load tests logged as live traffic (before the flag existed, or by a client that did
        not send it): from then on they are never exported, the next lake rebuild leaves them out
        (`ingest_served` restores live rows only), and they no longer count as seen.
        """
        if until <= since:
            raise ValueError(f"until ({until}) must be after since ({since})")
        with self._transaction(write=True) as db:
            changed = db.execute(
                "UPDATE served SET synthetic = 1 WHERE synthetic = 0 "
                "AND served_at_us >= ? AND served_at_us < ?",
                (to_micros(since), to_micros(until)),
            ).rowcount
        return int(changed)

    def exported_rows(self) -> pd.DataFrame:
        """``row_id, served_at`` of every live served row marked as present in the lake."""
        return self._live_served("", "AND exported_version IS NOT NULL")

    def live_rows(self) -> pd.DataFrame:
        """``row_id, request_id, tweet_id, source, served_at`` of every live (not synthetic)
        served row, in id order: what joins the traffic's served truth and the candidate source
        to the lake's impressions."""
        return self._live_served("request_id, tweet_id, source, ")

    def _live_served(self, columns: str, condition: str = "") -> pd.DataFrame:
        """``row_id``, `columns` and ``served_at`` of the live served rows meeting `condition`,
        in id order."""
        with self._transaction() as db:
            frame = pd.read_sql_query(
                f"SELECT id AS row_id, {columns}served_at_us FROM served "
                f"WHERE synthetic = 0 {condition} ORDER BY id",
                db,
            )
        frame["served_at"] = pd.to_datetime(frame.pop("served_at_us"), unit="us", utc=True)
        return frame

    def mark_exported(self, row_ids: Sequence[int], versions: Sequence[int]) -> None:
        """Record that each row's labels as of `versions` (from `pending_export`) are in the
        lake; a row engaged with since then stays pending."""
        with self._transaction(write=True) as db:
            db.executemany(
                "UPDATE served SET exported_version = ? WHERE id = ?",
                [(int(v), int(r)) for r, v in zip(row_ids, versions, strict=True)],
            )

    # ------------------------------------------------------------------------ posted tweets

    def post_tweets(self, tweets: pd.DataFrame, embeddings: np.ndarray | None = None) -> int:
        """Record tweets posted to the service (all or none); returns how many were new.

        tweets: the lake's tweet columns (``POSTED_COLUMNS``; `hashtags` a list per row,
        `in_reply_to_tweet_id` null for a root); embeddings: ``[N, D]`` float32 row-aligned, or
        None. A tweet_id posted before is left as it was (a retry records nothing twice).
        """
        missing = [c for c in POSTED_COLUMNS if c not in tweets.columns]
        if missing:
            raise ValueError(f"posted tweets lack columns {missing}")
        if embeddings is not None and len(embeddings) != len(tweets):
            raise ValueError(f"{len(tweets)} tweets but {len(embeddings)} embeddings")
        vectors = (
            [None] * len(tweets)
            if embeddings is None
            else [np.asarray(v, dtype=np.float32).tobytes() for v in embeddings]
        )
        rows = [
            (
                int(row["tweet_id"]),
                int(row["author_id"]),
                to_micros(row["created_at"]),
                str(row["text"]),
                str(row["language"]),
                int(bool(row["has_image"])),
                int(bool(row["has_video"])),
                int(bool(row["has_url"])),
                json.dumps(_tags(row["hashtags"])),
                int(row["conversation_id"]),
                None if pd.isna(row["in_reply_to_tweet_id"]) else int(row["in_reply_to_tweet_id"]),
                float(row["toxicity"]),
                vector,
            )
            for row, vector in zip(tweets.to_dict("records"), vectors, strict=True)
        ]
        with self._transaction(write=True) as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO posted (tweet_id, author_id, created_at_us, text, "
                "language, has_image, has_video, has_url, hashtags, conversation_id, "
                "in_reply_to_tweet_id, toxicity, embedding) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return int(db.total_changes - before)

    def posted_after(
        self, seq: int = 0, *, exported: bool | None = None
    ) -> tuple[pd.DataFrame, list[np.ndarray | None]]:
        """Posted tweets with ``seq`` over `seq`, in posting order: (the lake's tweet columns
        plus ``seq``, their embeddings or None each). `exported` False: only those not yet in
        the lake."""
        query = (
            "SELECT seq, tweet_id, author_id, created_at_us, text, language, has_image, "
            "has_video, has_url, hashtags, conversation_id, in_reply_to_tweet_id, toxicity, "
            "embedding FROM posted WHERE seq > ?"
        )
        if exported is not None:
            query += f" AND exported = {int(exported)}"
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY seq", (int(seq),)).fetchall()
        names = ["seq", *POSTED_COLUMNS[:2], "created_at_us", *POSTED_COLUMNS[3:], "embedding"]
        frame = pd.DataFrame(rows, columns=names)
        embeddings = [
            None if blob is None else np.frombuffer(blob, dtype=np.float32)
            for blob in frame.pop("embedding")
        ]
        frame.insert(
            3, "created_at", pd.to_datetime(frame.pop("created_at_us"), unit="us", utc=True)
        )
        for column in ("has_image", "has_video", "has_url"):
            frame[column] = frame[column].astype(bool)
        frame["hashtags"] = [json.loads(tags) for tags in frame["hashtags"]]
        frame["in_reply_to_tweet_id"] = frame["in_reply_to_tweet_id"].astype("Int64")
        frame["toxicity"] = frame["toxicity"].astype(np.float32)
        return frame, embeddings

    def mark_posted_exported(self, tweet_ids: Sequence[int]) -> None:
        """Record that these posted tweets are in the raw lake."""
        with self._transaction(write=True) as db:
            db.executemany(
                "UPDATE posted SET exported = 1 WHERE tweet_id = ?", [(int(t),) for t in tweet_ids]
            )

    # ------------------------------------------------------------------- live counts (serving)

    def engaged_after(self, after_id: int, actions: Sequence[str]) -> pd.DataFrame:
        """Live impressions (not synthetic) whose first action among `actions` has an engagement
        id over `after_id`: ``id`` (that engagement's), tweet_id, viewer_id, ``at`` and the
        impression's ``served_at`` (UTC), by id. One row per impression however many of the
        actions it got (as the lake counts them)."""
        marks = ", ".join("?" * len(actions))
        with self._transaction() as db:
            frame = pd.read_sql_query(
                "SELECT e.id, e.tweet_id, e.viewer_id, e.at_us, s.served_at_us FROM engagements e "
                "JOIN served s ON s.id = e.served_id "
                f"WHERE e.id > ? AND s.synthetic = 0 AND e.action IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM engagements p WHERE p.served_id = e.served_id "
                f"AND p.action IN ({marks}) AND p.id < e.id) ORDER BY e.id",
                db,
                params=[int(after_id), *actions, *actions],
            )
        frame["at"] = pd.to_datetime(frame.pop("at_us"), unit="us", utc=True)
        frame["served_at"] = pd.to_datetime(frame.pop("served_at_us"), unit="us", utc=True)
        return frame

    def tweet_activity(
        self, tweet_ids: Sequence[int], served_after: pd.Timestamp
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What live pages (not synthetic) served after `served_after` did for these tweets:
        ``(served, engagements)``; `served` has tweet_id, viewer_id, served_at; `engagements`
        has tweet_id, viewer_id, action, at (UTC), one row per recorded action."""
        ids = [int(t) for t in tweet_ids]
        marks = ", ".join("?" * len(ids))
        since = to_micros(served_after)
        where = f"s.tweet_id IN ({marks}) AND s.served_at_us > ? AND s.synthetic = 0"
        with self._transaction() as db:
            served = pd.read_sql_query(
                f"SELECT s.tweet_id, s.viewer_id, s.served_at_us FROM served s WHERE {where}",
                db,
                params=[*ids, since],
            )
            engagements = pd.read_sql_query(
                "SELECT e.tweet_id, e.viewer_id, e.action, e.at_us FROM engagements e "
                f"JOIN served s ON s.id = e.served_id WHERE {where}",
                db,
                params=[*ids, since],
            )
        served["served_at"] = pd.to_datetime(served.pop("served_at_us"), unit="us", utc=True)
        engagements["at"] = pd.to_datetime(engagements.pop("at_us"), unit="us", utc=True)
        return served, engagements

    def mark_missing(self, row_ids: Sequence[int]) -> None:
        """Record that these rows are no longer in the lake (it was rebuilt): pending again."""
        with self._transaction(write=True) as db:
            db.executemany(
                "UPDATE served SET exported_version = NULL WHERE id = ?",
                [(int(r),) for r in row_ids],
            )
