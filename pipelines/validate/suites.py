"""The Great Expectations suites of the lake's raw tables.

Every table partition (a *batch*) is validated in two stages:

1. the *schema* suite on the frame as read: its column set equals the canonical schema's;
2. the *content* suite on the frame plus the check columns of :mod:`pipelines.validate.rules`:
   ids not null, keys unique, value ranges, timestamp order, foreign keys, partition day.

Stage 2 runs only when stage 1 passes (the check columns need the canonical columns).
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from pipelines import schema
from pipelines.config import FeedrankConfig
from pipelines.validate import rules

# Share of a daily batch's rows that must fall on the partition's UTC day. The simulated world files
# a session's impressions under the day the session started (a few per 40k cross midnight).
PARTITION_DAY_MOSTLY = 0.99


def schema_suite(table: str) -> gx.ExpectationSuite:
    """Stage 1 of `table`: the batch has exactly the canonical columns (any order)."""
    columns = gxe.ExpectTableColumnsToMatchSet(
        column_set=list(schema.TABLES[table].names),
        exact_match=True,
        description=f"columns of {table} equal pipelines.schema.TABLES[{table!r}]",
    )
    return _suite(f"{table}.schema", [columns])


def content_suite(table: str, day: str, cfg: FeedrankConfig) -> gx.ExpectationSuite:
    """Stage 2 of partition `day` of `table`: every row and cross-row rule, one expectation each."""
    expectations = [
        *_completeness(table),
        *_uniqueness(table),
        *_value_ranges(table, cfg),
        *_action_timestamps(table),
        *_time_orders(table),
        *_foreign_keys(table),
        *_partition_day(table, day),
    ]
    return _suite(f"{table}.content", expectations)


def _suite(name: str, expectations: list[Expectation]) -> gx.ExpectationSuite:
    # Passed to the constructor on purpose: `ExpectationSuite.add_expectation` looks the suite up in
    # the current context's store, so it fails before any context exists and costs a lookup each.
    return gx.ExpectationSuite(name=name, expectations=expectations)


def _completeness(table: str) -> list[Expectation]:
    # Null action labels need no rule of their own: they fail `<a>_at is set iff <a>` below.
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{table}.{c} is never null")
        for c in rules.ID_COLUMNS[table]
    ]


def _uniqueness(table: str) -> list[Expectation]:
    key = rules.PRIMARY_KEYS[table]
    if len(key) == 1:
        return [
            gxe.ExpectColumnValuesToBeUnique(
                column=key[0], description=f"{table}.{key[0]} is unique"
            )
        ]
    return [
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=list(key), description=f"({', '.join(key)}) is unique in {table}"
        )
    ]


def _value_ranges(table: str, cfg: FeedrankConfig) -> list[Expectation]:
    if table == "users":
        return [
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, description=f"{c} >= 0")
            for c in ("follower_count", "following_count")
        ]
    if table == "tweets":
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column="toxicity", min_value=0, max_value=1, description="toxicity in [0, 1]"
            )
        ]
    if table == "impressions":
        max_dwell_ms = cfg.validate_.max_dwell_ms
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column="position", min_value=0, description="position >= 0"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="dwell_ms",
                min_value=0,
                max_value=max_dwell_ms,
                description=f"dwell_ms in [0, validate.max_dwell_ms = {max_dwell_ms}]",
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="surface",
                value_set=list(schema.SURFACES),
                description=f"surface in {list(schema.SURFACES)}",
            ),
        ]
    return []


def _action_timestamps(table: str) -> list[Expectation]:
    """`<a>_at` is null iff `a` is False, and never before served_at, for every binary action;
    a derived action (reply engaged by the author) only where, and after, its parent action."""
    if table != "impressions":
        return []
    out: list[Expectation] = []
    for action in schema.BINARY_ACTIONS:
        at = f"{action}_at"
        has_at = rules.action_time_check_column(action)
        out += [
            # One pair expectation rather than two with row conditions: GX applies a row condition
            # through DataFrame.query on the whole batch, ~30 ms each on a 40k-row impressions day.
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A=action,
                column_B=has_at,
                ignore_row_if="neither",
                description=f"{at} is set iff {action} is True ({has_at} == {action})",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=at,
                column_B="served_at",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                description=f"{at} >= served_at",
            ),
        ]
    for action, parent in schema.DERIVED_ACTIONS.items():
        out += [
            # Booleans compare False < True: the parent is True wherever the derived action is.
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=parent,
                column_B=action,
                or_equal=True,
                description=f"{action} only where {parent} (the author engages with a reply)",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{action}_at",
                column_B=f"{parent}_at",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                description=f"{action}_at >= {parent}_at",
            ),
        ]
    return out


def _time_orders(table: str) -> list[Expectation]:
    return [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=order.event_column,
            column_B=order.check_column,
            or_equal=not order.strict,
            ignore_row_if="either_value_is_missing",  # unresolved references fail the FK rule
            description=order.description,
        )
        for order in rules.TIME_ORDERS[table]
    ]


def _foreign_keys(table: str) -> list[Expectation]:
    return [
        gxe.ExpectColumnValuesToBeNull(
            column=fk.check_column,
            description=f"{table}.{fk.column} resolves to a {fk.target} id of the lake "
            f"({fk.check_column} holds the ones that do not)",
        )
        for fk in rules.FOREIGN_KEYS[table]
    ]


def _partition_day(table: str, day: str) -> list[Expectation]:
    """Rows of a daily table's partition `day` have their partitioning timestamp on that UTC day.

    Holds for :data:`PARTITION_DAY_MOSTLY` of the rows: a batch written under the wrong day fails,
    a session that started before midnight and spilled a few impressions past it does not.
    """
    if table not in schema.DAILY_TABLES:
        return []
    column = schema.DAILY_TABLES[table]
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=rules.day_check_column(column),
            value_set=[day],
            mostly=PARTITION_DAY_MOSTLY,
            description=f"{table}.{column} falls on the partition's UTC day "
            f"(for at least {PARTITION_DAY_MOSTLY:.0%} of the rows)",
        )
    ]
