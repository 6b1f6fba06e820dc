"""Outcomes of validating lake batches, and the error that stops the pipeline when one fails."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Unexpected values kept per failed expectation, in reports and error messages.
MAX_UNEXPECTED_VALUES = 5


@dataclass(frozen=True)
class ExpectationOutcome:
    """One GX expectation result in JSON-ready form.

    `kwargs` are the expectation's arguments (without GX's batch id); `unexpected_values` holds
    at most :data:`MAX_UNEXPECTED_VALUES` of the offending values; `observed_value` and `details`
    are set by table-level expectations (the observed columns, the mismatch); `exception` is the
    message when GX raised.
    """

    type: str
    kwargs: dict[str, Any]
    description: str | None
    success: bool
    unexpected_count: int | None = None
    unexpected_values: list[Any] = field(default_factory=list)
    observed_value: Any = None
    details: dict[str, Any] | None = None
    exception: str | None = None

    def label(self) -> str:
        """Short name of the rule, e.g. ``expect_column_values_to_be_null(unknown_tweet_id)``."""
        target = self.kwargs.get("column") or self.kwargs.get("column_list")
        if target is None and "column_A" in self.kwargs:
            target = f"{self.kwargs['column_A']}, {self.kwargs['column_B']}"
        return f"{self.type}({target})" if target is not None else self.type

    def summary(self) -> str:
        """One line: the rule, its description and what went wrong."""
        text = self.label()
        if self.description:
            text += f" [{self.description}]"
        if self.exception:
            return f"{text}: raised {self.exception}"
        if self.unexpected_count is not None:
            return f"{text}: {self.unexpected_count} unexpected, e.g. {self.unexpected_values}"
        if self.details is not None:
            return f"{text}: {self.details}"
        return text


@dataclass(frozen=True)
class BatchOutcome:
    """Validation outcome of one batch: one partition ``day`` of ``table``, ``rows`` rows."""

    table: str
    day: str
    rows: int
    expectations: tuple[ExpectationOutcome, ...]
    quarantined_to: Path | None = None

    @property
    def success(self) -> bool:
        return all(e.success for e in self.expectations)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(e for e in self.expectations if not e.success)

    def report(self) -> dict[str, Any]:
        """The JSON-ready validation report of this batch."""
        return {
            "table": self.table,
            "day": self.day,
            "rows": self.rows,
            "success": self.success,
            "evaluated_expectations": len(self.expectations),
            "failed_expectations": len(self.failed),
            "expectations": [asdict(e) for e in self.expectations],
        }


class DataValidationError(RuntimeError):
    """Raised by :func:`~pipelines.validate.validate_lake` when at least one batch failed.

    The message names every failed batch (table, day), where it was quarantined, and each failed
    expectation; `failures` holds the outcomes for programmatic use.
    """

    def __init__(self, failures: list[BatchOutcome], total_batches: int) -> None:
        self.failures = tuple(failures)
        lines = [f"{len(failures)} of {total_batches} lake batches failed validation:"]
        for batch in failures:
            lines.append(
                f"- {batch.table} day={batch.day} ({batch.rows} rows), "
                f"quarantined to {batch.quarantined_to}:"
            )
            lines += [f"    {e.summary()}" for e in batch.failed]
        super().__init__("\n".join(lines))
