"""Moving failed batches out of the raw lake, whole and with their validation report."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pipelines import schema
from pipelines.validate.results import BatchOutcome

REPORT_NAME = "validation_report.json"


def quarantine_batch(raw: Path, quarantine: Path, outcome: BatchOutcome) -> BatchOutcome:
    """Move the failed batch's folder ``raw/<table>/day=<day>`` to ``quarantine/<table>/``.

    The folder moves as a whole by a rename (every file kept byte for byte) and gains a
    ``validation_report.json``. An existing quarantine folder of the same name is never
    overwritten: the new one gets a UTC timestamp suffix. Returns `outcome` with
    `quarantined_to` set.
    """
    now = datetime.now(UTC)
    source = schema.partition_dir(raw, outcome.table, outcome.day)
    target = free_path(schema.partition_dir(quarantine, outcome.table, outcome.day), now)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)  # an os.rename when raw and quarantine share a filesystem
    moved = dataclasses.replace(outcome, quarantined_to=target)
    report = {
        **moved.report(),
        "source": str(source),
        "quarantined_to": str(target),
        "quarantined_at": now.isoformat(),
    }
    (target / REPORT_NAME).write_text(json.dumps(report, indent=2, default=str))
    return moved


def free_path(wanted: Path, now: datetime) -> Path:
    """`wanted` if free, else `wanted` suffixed with the UTC time `now` (and a counter if taken)."""
    if not wanted.exists():
        return wanted
    stamped = wanted.with_name(f"{wanted.name}.{now.strftime('%Y%m%dT%H%M%S%fZ')}")
    candidate, counter = stamped, 1
    while candidate.exists():
        candidate = stamped.with_name(f"{stamped.name}-{counter}")
        counter += 1
    return candidate
