"""Data validation of the raw lake with Great Expectations, and quarantine of bad batches.

Entry point: :func:`validate_lake` validates every partition of every canonical table (GX Core 1.x
suites on pandas batches, one ephemeral context per process), moves failed partitions whole to the
quarantine with a ``validation_report.json``, and raises :class:`DataValidationError` if any failed.
Importing this package does not import GX (seconds); validating does.
"""

from pipelines.validate.lake import validate_batch, validate_lake
from pipelines.validate.results import BatchOutcome, DataValidationError, ExpectationOutcome

__all__ = [
    "BatchOutcome",
    "DataValidationError",
    "ExpectationOutcome",
    "validate_batch",
    "validate_lake",
]
