"""The step table: one declaration from which the DAG, the CLI and run_all come."""

from __future__ import annotations

import graphlib
import inspect
import json

import pytest
from typer.testing import CliRunner

from pipelines import steps
from pipelines.steps import STEPS, Step, execution_order, run_step, step_options

FAKE = "tests.unit.pipelines.test_steps:fake_step"


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


def test_a_step_summary_is_json_with_no_figure_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Step("fake", "tests.unit.pipelines.test_steps:fake_step", "a fake step")
    monkeypatch.setitem(steps.STEPS_BY_NAME, "fake", fake)
    summary = run_step("fake", "smoke")
    assert summary["gain"] is None and summary["high"] is None and summary["share"] == 0.5
    json.dumps(summary, allow_nan=False)  # what an Airflow XCom takes


def fake_step(cfg):  # type: ignore[no-untyped-def]
    """A step that returns scalars (some not finite: a gate with nothing to compare) and a list."""
    return {
        "rows": 3,
        "name": cfg.name,
        "curve": [1, 2],
        "gain": float("nan"),
        "high": float("inf"),
        "share": 0.5,
    }


def test_the_cli_has_one_command_per_step_and_the_serving_commands() -> None:
    from serving.cli import app

    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for step in STEPS:
        assert step.name.replace("_", "-") in result.output
    assert "serve" in result.output and "dag-test" in result.output


SWITCHED = Step(
    "build_world",
    "tests.unit.pipelines.test_steps:switched_step",
    "a step with the rebuild switch",
    options=(steps.REBUILD,),
)


def switched_step(cfg, rebuild: bool = False):  # type: ignore[no-untyped-def]
    """A step that reports the switch it was given."""
    return {"name": cfg.name, "rebuild": rebuild}


def test_a_step_gets_the_options_it_declares_and_no_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(steps.STEPS_BY_NAME, "build_world", SWITCHED)
    monkeypatch.setitem(steps.STEPS_BY_NAME, "fake", Step("fake", FAKE, "a fake step"))
    assert run_step("build_world", "smoke", {"rebuild": True})["rebuild"] is True
    assert run_step("build_world", "smoke")["rebuild"] is False
    assert run_step("fake", "smoke", {"rebuild": True})["rows"] == 3  # not its switch


def test_an_unknown_or_non_switch_option_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown step options \['rebiuld'\].*rebuild"):
        run_step("build_world", "smoke", {"rebiuld": True})
    with pytest.raises(ValueError, match="switches"):
        run_step("build_world", "smoke", {"rebuild": "yes"})  # type: ignore[dict-item]


def test_the_only_switch_today_is_build_worlds_rebuild() -> None:
    assert step_options() == {"rebuild": steps.REBUILD}
    assert steps.STEPS_BY_NAME["build_world"].options == (steps.REBUILD,)


@pytest.mark.parametrize(
    ("arguments", "rebuild"),
    [
        (["build-world", "--config", "smoke", "--rebuild"], True),
        (["build-world", "--config", "smoke"], False),
    ],
)
def test_build_world_rebuilds_only_when_asked_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, arguments: list[str], rebuild: bool
) -> None:
    from pipelines.cli import app

    monkeypatch.setitem(steps.STEPS_BY_NAME, "build_world", SWITCHED)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rebuild"] is rebuild


def test_run_all_passes_rebuild_to_the_steps_that_take_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines import cli

    given: dict[str, dict[str, bool]] = {}

    def record(name: str, cfg: object, options: dict[str, bool] | None = None) -> dict[str, str]:
        given[name] = steps.options_for(steps.STEPS_BY_NAME[name], options)
        return {"step": name}

    monkeypatch.setattr(steps, "run_step", record)
    result = CliRunner().invoke(cli.app, ["run-all", "--config", "smoke", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert given["build_world"] == {"rebuild": True}
    assert all(given[step.name] == {} for step in STEPS if step.name != "build_world")


def test_every_declared_switch_is_a_keyword_parameter_of_its_steps_function() -> None:
    for step in STEPS:
        parameters = inspect.signature(step.function()).parameters
        for option in step.options:
            assert option.name in parameters, (step.name, option.name)
            assert parameters[option.name].default is False, (step.name, option.name)
