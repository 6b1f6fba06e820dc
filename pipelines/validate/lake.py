"""Validation of the whole raw lake: every partition of every table, quarantine of failures."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.validate import rules
from pipelines.validate.results import BatchOutcome, DataValidationError, ExpectationOutcome

logger = logging.getLogger(__name__)

# Columns kept from the batches of referenced tables that passed, to resolve foreign keys.
REFERENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "tweets": ("tweet_id", "created_at"),
}


def validate_lake(cfg: FeedrankConfig) -> dict[str, Any]:
    """Validate every partition of every table under ``cfg.paths.raw``; quarantine the failures.

    Tables go in :data:`rules.VALIDATION_ORDER` (static users and follows first) and foreign keys
    resolve against batches already validated: users ids from users batches that passed, tweet ids
    for impressions from tweets batches that passed; a reply's parent and a conversation root may be
    any tweet present in raw. A failed batch is moved whole to ``cfg.paths.quarantine`` with its
    ``validation_report.json``. The summary is written to
    ``cfg.paths.reports/validation/summary.json`` in every case.

    Returns:
        ``{"batches": n, "failed": 0, "tables": {table: {...}}, ...}`` when every batch passed.

    Raises:
        DataValidationError: after validating everything, if any batch failed.
    """
    started = time.perf_counter()
    # Key columns of the batches that passed, per referenced table (users, tweets).
    passed: dict[str, list[pd.DataFrame]] = {"users": [], "tweets": []}
    outcomes: list[BatchOutcome] = []
    for table in rules.VALIDATION_ORDER:
        outcomes += _validate_table(cfg, table, passed)
    if not outcomes:
        logger.warning("validate: no partitions under %s; nothing was validated", cfg.paths.raw)
    summary = _summary(outcomes, time.perf_counter() - started)
    _write_summary(cfg.paths.validation_summary, summary)
    failures = [o for o in outcomes if not o.success]
    if failures:
        raise DataValidationError(failures, total_batches=len(outcomes))
    return summary


def _validate_table(
    cfg: FeedrankConfig, table: str, passed: dict[str, list[pd.DataFrame]]
) -> list[BatchOutcome]:
    """Validate every partition of `table`; adds the key columns of passing batches to `passed`."""
    started = time.perf_counter()
    keys = _reference_keys(table, cfg.paths.raw, passed)
    days = schema.list_partitions(cfg.paths.raw, table)
    outcomes: list[BatchOutcome] = []
    for done, day in enumerate(days, start=1):
        outcome, frame = _validate_partition(cfg, table, day, keys)
        outcomes.append(outcome)
        if outcome.success and frame is not None and table in passed:
            passed[table].append(frame[list(REFERENCE_COLUMNS[table])])
        logger.debug("validate %s %d/%d day=%s: %s", table, done, len(days), day, outcome.success)
    logger.info(
        "validate %s: %d/%d batches done, %d failed, %d rows (%.1f s)",
        table,
        len(outcomes),
        len(days),
        sum(not o.success for o in outcomes),
        sum(o.rows for o in outcomes),
        time.perf_counter() - started,
    )
    return outcomes


def validate_batch(
    cfg: FeedrankConfig, table: str, day: str, frame: pd.DataFrame, keys: rules.ReferenceKeys
) -> BatchOutcome:
    """Validate one batch (partition `day` of `table`) in two GX stages; moves nothing.

    The content stage runs only if the schema stage (exact column set) passed.
    """
    _quiet_gx_logging()
    # Imported here: GX takes seconds to import, and DAG files import this package at parse time.
    from pipelines.validate import engine, suites

    results = engine.run_suite(table, frame, suites.schema_suite(table))
    if all(r.success for r in results):
        checked = rules.add_check_columns(table, frame, keys)
        results += engine.run_suite(table, checked, suites.content_suite(table, day, cfg))
    return BatchOutcome(table=table, day=day, rows=len(frame), expectations=tuple(results))


def _quiet_gx_logging() -> None:
    """GX logs its own import and setup at INFO (dozens of lines); keep task logs for ours."""
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # leave a level someone chose alone
        gx_logger.setLevel(logging.WARNING)


def _validate_partition(
    cfg: FeedrankConfig, table: str, day: str, keys: rules.ReferenceKeys
) -> tuple[BatchOutcome, pd.DataFrame | None]:
    """Read, validate and, on failure, quarantine one partition; the frame is None if unreadable."""
    from pipelines.validate.quarantine import quarantine_batch

    path = schema.partition_dir(cfg.paths.raw, table, day) / schema.PART_FILE
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, ValueError) as error:  # missing or corrupt parquet: nothing GX can check
        outcome = _unreadable(table, day, path, error)
        frame = None
    else:
        outcome = validate_batch(cfg, table, day, frame, keys)
    if not outcome.success:
        outcome = quarantine_batch(cfg.paths.raw, cfg.paths.quarantine, outcome)
    return outcome, frame


def _unreadable(table: str, day: str, path: Path, error: Exception) -> BatchOutcome:
    failure = ExpectationOutcome(
        type="read_partition",
        kwargs={"path": str(path)},
        description="the partition's part.parquet can be read",
        success=False,
        exception=f"{type(error).__name__}: {error}",
    )
    return BatchOutcome(table=table, day=day, rows=0, expectations=(failure,))


def _reference_keys(
    table: str, raw: Path, passed: dict[str, list[pd.DataFrame]]
) -> rules.ReferenceKeys:
    """Keys `table`'s foreign keys resolve against (see :func:`validate_lake` for which batches)."""
    if table == "tweets":  # a tweet may point to any tweet in raw, including its own batch
        tweets = [
            _read_columns(raw, table, day, list(REFERENCE_COLUMNS["tweets"]))
            for day in schema.list_partitions(raw, table)
        ]
    else:
        tweets = passed["tweets"]
    return rules.ReferenceKeys.from_frames(users=passed["users"], tweets=tweets)


def _read_columns(raw: Path, table: str, day: str, columns: list[str]) -> pd.DataFrame:
    """Those of `columns` that one partition has (an empty frame when it cannot be read)."""
    path = schema.partition_dir(raw, table, day) / schema.PART_FILE
    try:
        present = [c for c in columns if c in pq.read_schema(path).names]
        return pq.read_table(path, columns=present).to_pandas()
    except (OSError, ValueError):
        return pd.DataFrame()


def _summary(outcomes: list[BatchOutcome], elapsed_s: float) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {}
    for table in rules.VALIDATION_ORDER:
        mine = [o for o in outcomes if o.table == table]
        tables[table] = {
            "batches": len(mine),
            "failed": sum(not o.success for o in mine),
            "rows": sum(o.rows for o in mine),
            "failed_days": [o.day for o in mine if not o.success],
        }
    return {
        "batches": len(outcomes),
        "failed": sum(not o.success for o in outcomes),
        "tables": tables,
        "quarantined": [str(o.quarantined_to) for o in outcomes if o.quarantined_to is not None],
        "elapsed_s": round(elapsed_s, 2),
    }


def _write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
