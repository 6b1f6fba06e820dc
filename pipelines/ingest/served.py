"""What the service served, into the raw lake: the impressions of the serving event log with their
outcome labels, as canonical `impressions` rows, so the next training run learns from them.

Ids: ``impression_id`` is ``IMPRESSION_ID_OFFSET`` + the log's row id (the simulated world's ids
stay far below it), ``request_id`` the first ``REQUEST_ID_HEX_DIGITS`` hex digits of the served
request id (60 bits: a stable, positive int64).

Labels: an action's bool and ``<action>_at`` from its recorded engagement; `negative` also from the
author controls (block, mute, show fewer), at the first of them; ``dwell_ms`` from the latest
`dwell`, else 0. Timestamps are kept at or after ``served_at`` (and a derived action at or after its
parent), the order the lake's validation asserts, so a few ms of clock skew between replicas cannot
quarantine a day of impressions.

The event log keeps, per served row, which version of its labels is in the lake: an engagement
recorded after an export makes the row pending again, and the next run rewrites it (a re-written
row replaces its earlier copy), so late feedback is not lost. Rows exported before the lake was
rebuilt (``build_world`` replaces it) are found missing and exported again.

Two more things the live world leaves behind join the lake here: the tweets posted to the service
(the log's ``posted`` table) become `tweets` rows of their created day, before the impressions so
that the impressions of a fresh tweet are known to the lake; and the served truth the traffic
client wrote (``cfg.paths.served_truth/day=*/*.parquet``: per ``request_id`` and ``tweet_id`` the
probabilities each label was drawn from) becomes `truth` rows keyed by the impression_id of the
served row, in the partition of its served day, so evaluation has an oracle on served days.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.event_log import NEGATIVE_ACTIONS, EventLog

log = logging.getLogger(__name__)

IMPRESSION_ID_OFFSET = 10**12
REQUEST_ID_HEX_DIGITS = 15
REPORTED_IDS = 5  # ids named per kind in the log line about held-back rows
# A served truth file's columns: the served row's key and the truth table's probabilities.
SERVED_TRUTH_COLUMNS: tuple[str, ...] = (
    "request_id",
    "tweet_id",
    *(name for name in schema.TRUTH.names if name != "impression_id"),
)


def request_id_int64(request_id: str) -> int:
    """The lake's int64 `request_id` of a served hex request id (stable across runs)."""
    return int(request_id[:REQUEST_ID_HEX_DIGITS], 16)


def ingest_served(cfg: FeedrankConfig) -> dict[str, int]:
    """Append the served impressions not yet in the lake to ``raw/impressions/day=<UTC day>``.

    Rows whose viewer or tweet the lake does not know (or whose tweet it says was created after
    the serving) are held back: they stay pending in the log and are reported. A partition is
    rewritten whole and atomically (temp file + rename), and only then are its rows marked
    exported, so a crash at any point leaves the lake valid and a re-run finishes the job.

    Posted tweets go in first (:func:`ingest_posted`), the served truth last
    (:func:`ingest_served_truth`).

    Returns:
        ``{"tweets": posted tweets written, "ingested": rows written, "days": partitions
        written, "pending": rows held back, "restored": exported rows found missing from the
        lake, "truth": served truth rows written, "truth_unmatched": truth rows naming no live
        served row}``; zeros without an event log.
    """
    summary = dict.fromkeys(
        ("tweets", "ingested", "days", "pending", "restored", "truth", "truth_unmatched"), 0
    )
    path = cfg.paths.serving_events
    if not path.exists():
        log.info("ingest_served: no serving event log at %s; nothing to ingest", path)
        return summary
    events = EventLog(path)
    try:
        with _exclusive(path.with_name("ingest_served.lock")):
            summary["tweets"] = ingest_posted(events, cfg.paths.raw)
            summary["restored"] = _restore_missing(events, cfg.paths.raw)
            summary.update(_ingest_impressions(cfg, events))
            summary.update(ingest_served_truth(events, cfg.paths.served_truth, cfg.paths.truth))
    finally:
        events.close()
    log.info("ingest_served: %s", summary)
    return summary


def _ingest_impressions(cfg: FeedrankConfig, events: EventLog) -> dict[str, int]:
    """The pending served rows the lake knows into its impressions; then marked exported."""
    served, engagements = events.pending_export()
    if served.empty:
        return {}
    rows = impression_rows(served, engagements, cfg.validate_.max_dwell_ms)
    known = _known_to_lake(rows, cfg.paths.raw)
    ready = rows[known]
    days = append_impressions(cfg.paths.raw, ready)
    events.mark_exported(served["row_id"][known].tolist(), served["version"][known].tolist())
    return {"ingested": len(ready), "days": len(days), "pending": int((~known).sum())}


def ingest_posted(events: EventLog, raw: Path) -> int:
    """The tweets posted to the service and not yet in the lake into ``raw/tweets/day=<created
    UTC day>`` (a tweet already there is replaced by the posted copy); each partition is written
    atomically and only then are its tweets marked exported. Tweets exported before but no longer
    in the lake (it was rebuilt) are written again. Returns how many were written."""
    pending, _ = events.posted_after(exported=False)
    exported, _ = events.posted_after(exported=True)
    in_lake = _read_columns(raw, "tweets", ["tweet_id"])["tweet_id"]
    missing = exported[~exported["tweet_id"].isin(in_lake)]
    if len(missing):
        log.warning(
            "ingest_served: %d posted tweets exported before are no longer in the lake; "
            "writing them again",
            len(missing),
        )
    posted = pd.concat([pending, missing], ignore_index=True) if len(missing) else pending
    if posted.empty:
        return 0
    tweets = posted.drop(columns="seq")
    day_of = tweets["created_at"].dt.strftime("%Y-%m-%d")
    for day in sorted(day_of.unique()):
        new = tweets[(day_of == day).to_numpy()]
        merge_partition(raw, "tweets", day, new, "tweet_id")
        events.mark_posted_exported(new["tweet_id"].tolist())
    log.info("ingest_served: %d posted tweets into the lake", len(tweets))
    return len(tweets)


def read_served_truth(served_truth: Path) -> pd.DataFrame:
    """Every served truth file (``day=*/*.parquet`` under `served_truth`) as one frame with the
    columns ``SERVED_TRUTH_COLUMNS``; empty (with them) when there is none.

    Raises ValueError naming the file that lacks a column."""
    frames = []
    for path in sorted(served_truth.glob("day=*/*.parquet")):
        frame = pd.read_parquet(path)
        missing = [c for c in SERVED_TRUTH_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"served truth file {path} lacks columns {missing}")
        frames.append(frame[list(SERVED_TRUTH_COLUMNS)])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SERVED_TRUTH_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def ingest_served_truth(events: EventLog, served_truth: Path, truth_root: Path) -> dict[str, int]:
    """The traffic's served truth into the `truth` table under `truth_root`, keyed by the
    impression_id of the live served row with the same ``(request_id, tweet_id)``, in the
    partition of its served UTC day (merged: a re-run writes the same rows again).

    Truth rows that name no live served row are counted and logged, never written."""
    truth = read_served_truth(served_truth)
    if truth.empty:
        return {"truth": 0, "truth_unmatched": 0}
    live = events.live_rows()[["row_id", "request_id", "tweet_id", "served_at"]]
    truth["tweet_id"] = truth["tweet_id"].astype(np.int64)
    joined = truth.merge(live, on=["request_id", "tweet_id"], how="left", validate="many_to_one")
    matched = joined["row_id"].notna().to_numpy()
    if not matched.all():
        log.warning(
            "ingest_served: %d served truth rows name no live served row (requests %s)",
            int((~matched).sum()),
            list(joined["request_id"][~matched].drop_duplicates().head(REPORTED_IDS)),
        )
    rows = joined[matched].copy()
    rows["impression_id"] = IMPRESSION_ID_OFFSET + rows["row_id"].astype(np.int64)
    day_of = rows["served_at"].dt.strftime("%Y-%m-%d")
    for day in sorted(day_of.unique()):
        merge_partition(truth_root, "truth", day, rows[(day_of == day).to_numpy()], "impression_id")
    return {"truth": len(rows), "truth_unmatched": int((~matched).sum())}


def impression_rows(
    served: pd.DataFrame, engagements: pd.DataFrame, max_dwell_ms: int
) -> pd.DataFrame:
    """Canonical `impressions` rows (``schema.IMPRESSIONS`` columns, one per served row, same
    order) of served rows and their engagements, as :meth:`EventLog.pending_export` gives them."""
    served_at = pd.to_datetime(served["served_at"], utc=True).reset_index(drop=True)
    row_ids = served["row_id"].to_numpy(np.int64)
    out = pd.DataFrame(
        {
            "impression_id": IMPRESSION_ID_OFFSET + row_ids,
            "viewer_id": served["viewer_id"].to_numpy(np.int64),
            "tweet_id": served["tweet_id"].to_numpy(np.int64),
            "served_at": served_at,
            "surface": served["surface"].to_numpy(object),
            "position": served["position"].to_numpy(np.int32),
            "request_id": np.asarray(
                [request_id_int64(r) for r in served["request_id"]], dtype=np.int64
            ),
            "model_version": served["model_version"].to_numpy(object),
            "experiment_arm": served["arm"].to_numpy(object),
        }
    )
    first = _first_times(engagements).reindex(row_ids)  # [N, labels]; NaT where none
    for action in schema.BINARY_ACTIONS:
        at = _column(first, action)
        parent = schema.DERIVED_ACTIONS.get(action)
        floor = served_at if parent is None else out[f"{parent}_at"].fillna(served_at)
        at = at.where(at.isna() | (at >= floor), floor)
        if parent is not None:  # only where the parent is (the log enforces it; kept here too)
            at = at.where(out[parent].to_numpy())
        out[action] = at.notna().to_numpy()
        out[f"{action}_at"] = at  # both on 0..N-1; `.to_numpy()` would drop the time zone
    dwell_ms = _latest_dwell(engagements).reindex(row_ids).fillna(0).clip(0, max_dwell_ms)
    out["dwell_ms"] = dwell_ms.to_numpy(np.int32)
    return out[list(schema.IMPRESSIONS.names)]


def _first_times(engagements: pd.DataFrame) -> pd.DataFrame:
    """First engagement time per served row and binary label `[rows, labels]` (author controls
    count as `negative`)."""
    label = engagements["action"].where(~engagements["action"].isin(NEGATIVE_ACTIONS), "negative")
    labelled = engagements.assign(label=label)
    labelled = labelled[labelled["label"].isin(schema.BINARY_ACTIONS)]
    if labelled.empty:
        return pd.DataFrame(index=pd.Index([], dtype=np.int64, name="row_id"))
    times = pd.to_datetime(labelled["at"], utc=True)
    return times.groupby([labelled["row_id"], labelled["label"]]).min().unstack("label")


def _column(first: pd.DataFrame, action: str) -> pd.Series:
    if action in first.columns:
        return pd.to_datetime(first[action], utc=True).reset_index(drop=True)
    return pd.Series(pd.NaT, index=range(len(first)), dtype="datetime64[us, UTC]")


def _latest_dwell(engagements: pd.DataFrame) -> pd.Series:
    """dwell_ms of the latest `dwell` per served row (by time, then recording order)."""
    dwells = engagements[engagements["action"] == "dwell"].sort_values(["at", "engagement_id"])
    return dwells.groupby("row_id")["dwell_ms"].last().astype(np.float64)


def _known_to_lake(rows: pd.DataFrame, raw: Path) -> np.ndarray:
    """Which rows the lake can take `[N]` bool: a known viewer, a known tweet created at or before
    the serving. The others are logged (a few ids of each kind) and held back."""
    users = _read_columns(raw, "users", ["user_id"])
    tweets = _read_columns(raw, "tweets", ["tweet_id", "created_at"]).drop_duplicates("tweet_id")
    created = pd.to_datetime(
        rows["tweet_id"].map(tweets.set_index("tweet_id")["created_at"]), utc=True
    )
    known_viewer = rows["viewer_id"].isin(users["user_id"]).to_numpy()
    known_tweet = created.notna().to_numpy()
    in_order = (created <= rows["served_at"]).to_numpy()
    known = known_viewer & known_tweet & in_order
    if not known.all():
        log.warning(
            "ingest_served: %d served rows held back (they stay pending in the event log): "
            "unknown viewers %s, unknown tweets %s, tweets created after serving %s",
            int((~known).sum()),
            _some(rows["viewer_id"][~known_viewer]),
            _some(rows["tweet_id"][~known_tweet]),
            _some(rows["tweet_id"][known_tweet & ~in_order]),
        )
    return known


def _some(ids: pd.Series) -> list[int]:
    return [int(i) for i in ids.drop_duplicates().head(REPORTED_IDS)]


def _read_columns(raw: Path, table: str, columns: list[str]) -> pd.DataFrame:
    """`columns` of every partition of `table` (an empty frame with them when there is none)."""
    frames = [
        pq.read_table(schema.partition_dir(raw, table, day) / schema.PART_FILE, columns=columns)
        for day in schema.list_partitions(raw, table)
        if (schema.partition_dir(raw, table, day) / schema.PART_FILE).exists()
    ]
    if not frames:
        return schema.TABLES[table].empty_table().select(columns).to_pandas()
    return pd.concat([f.to_pandas() for f in frames], ignore_index=True)


def append_impressions(raw: Path, rows: pd.DataFrame) -> list[str]:
    """Add `rows` to the impressions partitions of their served_at UTC day; a row whose
    impression_id is there already replaces it (its labels may have grown). Returns the days."""
    if rows.empty:
        return []
    day_of = pd.to_datetime(rows["served_at"], utc=True).dt.strftime("%Y-%m-%d")
    days = sorted(day_of.unique())
    for day in days:
        new = rows[(day_of == day).to_numpy()]
        merged = merge_partition(raw, "impressions", day, new, "impression_id")
        log.info(
            "ingest_served: impressions day=%s: %d rows, %d of them served now",
            day,
            merged,
            len(new),
        )
    return days


def merge_partition(root: Path, table: str, day: str, new: pd.DataFrame, key: str) -> int:
    """Merge `new` into the partition `day` of `table` under `root` (a row whose `key` is there
    already is replaced) and write it back atomically. Returns the partition's row count."""
    existing = schema.read_table(root, table, [day])
    merged = pd.concat([existing, new], ignore_index=True) if len(existing) else new
    merged = merged.drop_duplicates(key, keep="last")
    arrow_schema = schema.TRUTH if table == "truth" else schema.TABLES[table]
    _write_atomically(
        merged, schema.partition_dir(root, table, day) / schema.PART_FILE, arrow_schema
    )
    return len(merged)


def _write_atomically(frame: pd.DataFrame, path: Path, arrow_schema: pa.Schema) -> None:
    """Write `frame` conformed to `arrow_schema` to `path`: a reader sees the old file or the new
    one, never half of it."""
    table = pa.Table.from_pandas(
        frame[list(arrow_schema.names)], schema=arrow_schema, preserve_index=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _restore_missing(events: EventLog, raw: Path) -> int:
    """Mark pending again the exported rows that the lake no longer holds (it was rebuilt, or
    their partition quarantined); returns how many."""
    exported = events.exported_rows()
    if exported.empty:
        return 0
    impression_ids = IMPRESSION_ID_OFFSET + exported["row_id"].to_numpy(np.int64)
    day_of = exported["served_at"].dt.strftime("%Y-%m-%d").to_numpy()
    missing: list[int] = []
    for day in np.unique(day_of):
        path = schema.partition_dir(raw, "impressions", day) / schema.PART_FILE
        present = (
            pq.read_table(path, columns=["impression_id"]).column(0).to_numpy()
            if path.exists()
            else np.zeros(0, dtype=np.int64)
        )
        mine = day_of == day
        gone = ~np.isin(impression_ids[mine], present)
        missing += exported["row_id"][mine][gone].tolist()
    if missing:
        log.warning(
            "ingest_served: %d exported rows are no longer in the lake; exporting them again",
            len(missing),
        )
        events.mark_missing(missing)
    return len(missing)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One ingest at a time on this machine (a DAG run and a CLI run must not interleave their
    read-modify-write of a partition)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
