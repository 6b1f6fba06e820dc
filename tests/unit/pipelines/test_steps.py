"""The step table: one declaration from which the DAG, the CLI and run_all come."""

from __future__ import annotations

import graphlib
import inspect

import pytest
from typer.testing import CliRunner

from pipelines import steps
from pipelines.steps import STEPS, Step, execution_order, run_step


def test_every_step_names_a_function_of_one_config_in_the_module_its_name_says() -> None:
    for step in STEPS:
        function = step.function()
        assert callable(function), step.name
        assert list(inspect.signature(function).parameters)[:1] == ["cfg"], step.name
        assert function.__doc__, f"{step.target} has no docstring"


def test_the_execution_order_runs_every_step_after_its_upstream() -> None:
    order = execution_order()
    assert sorted(order) == sorted(step.name for step in STEPS)
    for step in STEPS:
        for upstream in step.upstream:
            assert order.index(upstream) < order.index(step.name)


def test_a_cycle_or_an_unknown_upstream_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    cyclic = (Step("a", "m:f", "a", ("b",)), Step("b", "m:f", "b", ("a",)))
    monkeypatch.setattr(steps, "STEPS", cyclic)
    with pytest.raises(graphlib.CycleError):
        execution_order()
    monkeypatch.setattr(steps, "STEPS", (Step("a", "m:f", "a", ("nope",)),))
    with pytest.raises(ValueError, match="nope"):
        execution_order()


def test_an_unknown_step_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="build_world"):
        run_step("no_such_step", "smoke")


def test_a_step_summary_keeps_scalars_and_its_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Step("fake", "tests.unit.pipelines.test_steps:fake_step", "a fake step")
    monkeypatch.setitem(steps.STEPS_BY_NAME, "fake", fake)
    summary = run_step("fake", "smoke")
    assert summary["rows"] == 3 and summary["name"] == "smoke"
    assert "curve" not in summary and summary["seconds"] >= 0


def fake_step(cfg):  # type: ignore[no-untyped-def]
    """A step that returns scalars and a list."""
    return {"rows": 3, "name": cfg.name, "curve": [1, 2]}


def test_the_cli_has_one_command_per_step_and_the_serving_commands() -> None:
    from serving.cli import app

    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for step in STEPS:
        assert step.name.replace("_", "-") in result.output
    assert "serve" in result.output and "dag-test" in result.output
