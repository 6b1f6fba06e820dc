"""The offline half of the `feedrank` command line: one command per step of the step table
(`pipelines.steps`), run-all, the DAG through Airflow, and the event log's maintenance.

Every step command runs the same step that the Airflow task runs. The `feedrank` entry point is
`serving.cli`, which adds the serving commands (this package never imports `serving`).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

from pipelines.config import REPO_ROOT, FeedrankConfig, load_config
from pipelines.steps import (
    REBUILD,
    STEPS,
    Step,
    StepOption,
    run_all,
    run_step,
    step_options,
)

app = typer.Typer(add_completion=False, help="feedrank: Twitter/X-style feed ranking, end to end.")
ConfigOption = Annotated[
    str, typer.Option("--config", "-c", help="Config name under configs/ or a YAML path.")
]


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    for noisy in (
        "feast",
        "great_expectations",
        "py.warnings",
        "mlflow",
        "alembic",
        "urllib3",
        "httpx",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _echo(result: Any) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


def _command(
    run: Callable[[str, dict[str, bool]], Any], options: Iterable[StepOption], about: str
) -> Callable[..., None]:
    """A command taking ``--config`` and one flag per option, that echoes ``run(config,
    {option: value})``; typer reads its parameters from the signature built here."""

    def command(config: str = "default", **flags: bool) -> None:
        setup_logging()
        _echo(run(config, flags))

    parameters = [
        inspect.Parameter(
            "config", inspect.Parameter.KEYWORD_ONLY, default="default", annotation=ConfigOption
        ),
        *(
            inspect.Parameter(
                option.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=False,
                annotation=Annotated[bool, typer.Option(option.flag, help=option.about)],
            )
            for option in options
        ),
    ]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = about
    return command


def _register(step: Step) -> None:
    def run(config: str, options: dict[str, bool]) -> Any:
        return run_step(step.name, config, options)

    app.command(name=step.name.replace("_", "-"))(_command(run, step.options, step.about))


for _step in STEPS:
    _register(_step)

app.command("run-all")(
    _command(
        run_all,
        step_options().values(),
        "Every step in dependency order in this process, without Airflow.",
    )
)


@app.command("mark-synthetic")
def mark_synthetic(
    since: Annotated[str, typer.Option(help="Start of the window (ISO 8601; naive = UTC).")],
    until: Annotated[str, typer.Option(help="End of the window, exclusive.")],
    config: ConfigOption = "default",
) -> None:
    """Mark the pages served in a time window synthetic: a load test logged as live traffic is
    then never exported for training (and the next lake rebuild leaves out what was)."""
    import pandas as pd

    from pipelines.event_log import EventLog

    path = load_config(config).paths.serving_events
    if not path.exists():
        typer.echo(f"no serving event log at {path}", err=True)
        raise typer.Exit(code=1)
    try:
        window = pd.Timestamp(since), pd.Timestamp(until)
    except ValueError as exc:
        raise typer.BadParameter(f"--since / --until must be ISO 8601 timestamps: {exc}") from exc
    events = EventLog(path)
    try:
        marked = events.mark_synthetic(*window)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        events.close()
    typer.echo(json.dumps({"marked_synthetic": marked, "since": since, "until": until}))


@app.command()
def traffic(
    days: Annotated[int, typer.Option(help="Simulated days to run.")] = 1,
    users: Annotated[
        int | None, typer.Option(help="Keep the sessions of this many users (a seeded draw).")
    ] = None,
    policy: Annotated[
        str, typer.Option(help="How the feed is ranked: served, chronological, oracle, random.")
    ] = "served",
    concurrency: Annotated[
        int | None, typer.Option(help="Requests in flight (default traffic.concurrency).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="The service (default the config's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the run (default the world's).")] = None,
    config: ConfigOption = "default",
) -> None:
    """Simulated users as HTTP clients of the running service, day by day on the simulated
    clock: prints each day's figures, then the whole run's as one JSON line."""
    from pipelines.clock import ClockNotSetError
    from pipelines.traffic.client import ServiceUnavailableError
    from pipelines.traffic.runner import TrafficError, run_traffic
    from pipelines.world.state import WorldStateMissingError

    setup_logging()
    cfg = load_config(config)
    given = {"concurrency": concurrency, "url": url}
    overrides = {key: value for key, value in given.items() if value is not None}
    try:
        knobs = type(cfg.traffic).model_validate(cfg.traffic.model_dump() | overrides)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    cfg = cfg.model_copy(update={"traffic": knobs})

    def print_day(figures: dict[str, Any]) -> None:
        shown = {k: v for k, v in figures.items() if k not in ("client", "served_truth")}
        client = {k: v for k, v in figures["client"].items() if k != "rejections"}
        typer.echo(json.dumps({**shown, **client}))

    try:
        report = run_traffic(cfg, days, users, policy, seed, on_day=print_day)
    except (TrafficError, WorldStateMissingError, ClockNotSetError) as error:
        typer.echo(f"feedrank traffic: {error}", err=True)
        raise typer.Exit(code=2) from error
    except ServiceUnavailableError as error:
        typer.echo(f"feedrank traffic: the service stopped answering: {error}", err=True)
        raise typer.Exit(code=1) from error
    shown = ("policy", "seed", "users", "clock", "run", "latency_ms", "retries", "rejected")
    typer.echo(json.dumps({key: report[key] for key in shown}))


@app.command()
def clock(
    advance_hours: Annotated[
        float | None, typer.Option(help="Move the simulated clock forward by this many hours.")
    ] = None,
    set_: Annotated[
        str | None, typer.Option("--set", help="Set the clock to this ISO 8601 time (UTC).")
    ] = None,
    config: ConfigOption = "default",
) -> None:
    """Print the simulated clock, after moving it when asked (it never goes back)."""
    from datetime import timedelta

    from pipelines.clock import ClockError, ClockNotSetError, SimClock

    if advance_hours is not None and set_ is not None:
        raise typer.BadParameter("give --advance-hours or --set, not both")
    sim_clock = SimClock.of(load_config(config))
    try:
        if advance_hours is not None:
            sim_clock.advance(timedelta(hours=advance_hours), reason="feedrank clock")
        elif set_ is not None:
            sim_clock.advance_to(set_, reason="feedrank clock")
        typer.echo(sim_clock.now().isoformat())
    except (ClockError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error
    except ClockNotSetError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from error


@app.command("import-trees")
def import_trees_command(
    platform: Annotated[
        str, typer.Option(help="Which dataset of the delab-trees package: twitter or reddit.")
    ] = "twitter",
    config: ConfigOption = "default",
) -> None:
    """Import the delab-trees package's real reply trees as conversations into a lake of their
    own (tweets and users, ids re-keyed, times repaired); prints a JSON summary last."""
    from pipelines.realtrees.importer import import_trees
    from pipelines.realtrees.source import PLATFORMS, TreesDataError

    if platform not in PLATFORMS:
        raise typer.BadParameter(f"--platform must be one of {list(PLATFORMS)}; got {platform!r}")
    setup_logging()
    try:
        summary = import_trees(load_config(config), platform)
    except TreesDataError as error:
        typer.echo(f"feedrank import-trees: {error}", err=True)
        raise typer.Exit(code=2) from error
    typer.echo(json.dumps(summary))


@app.command()
def airflow_env(config: ConfigOption = "default") -> None:
    """Print the environment Airflow needs for this repo (eval it in a shell)."""
    for key, value in airflow_environment(load_config(config)).items():
        typer.echo(f"export {key}={value}")


def airflow_environment(cfg: FeedrankConfig) -> dict[str, str]:
    """AIRFLOW_HOME under the state root, dags/ of this repo, sqlite metadata, no examples."""
    home = cfg.paths.airflow_home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "120",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "FEEDRANK_CONFIG": cfg.name,
        "FEEDRANK_HOME": str(cfg.paths.root_dir),
        "PYTHONPATH": str(REPO_ROOT),
        "MPLCONFIGDIR": str(cfg.paths.matplotlib),
    }


@app.command()
def dag_test(
    config: ConfigOption = "default",
    rebuild: Annotated[bool, typer.Option(help=REBUILD.about)] = False,
) -> None:
    """Run the `feed_training` DAG through Airflow (`airflow dags test`) on this config."""
    cfg = load_config(config)
    env = {**os.environ, **airflow_environment(cfg)}
    cfg.paths.airflow_home.mkdir(parents=True, exist_ok=True)
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    conf = json.dumps({"config": config, REBUILD.name: rebuild})
    # A native crash prints the Python stack of every thread (to find what crashed, and where).
    completed = subprocess.run(
        [airflow, "dags", "test", "feed_training", "--conf", conf],
        env={**env, "PYTHONFAULTHANDLER": "1"},
        check=False,
    )
    if completed.returncode > 0:
        raise typer.Exit(completed.returncode)
    # `dags test` can exit 0 with failed tasks: the run's recorded state is the verdict.
    runs = airflow_json(["dags", "list-runs", "feed_training"], env)
    latest = max(runs, key=lambda run: str(run.get("run_after") or run.get("start_date") or ""))
    typer.echo(f"feed_training run {latest.get('run_id')}: {latest.get('state')}")
    if completed.returncode < 0:
        # Killed by a signal. Seen (rarely) as a SIGSEGV while the interpreter tears down native
        # libraries after the run has finished and been recorded; a crash before that leaves the
        # run unfinished, which fails below.
        typer.echo(
            f"warning: airflow dags test was killed by signal {-completed.returncode} after "
            f"the run was recorded as {latest.get('state')}",
            err=True,
        )
    if latest.get("state") != "success":
        raise typer.Exit(1)


def airflow_json(arguments: list[str], env: dict[str, str]) -> Any:
    """Run an `airflow ... -o json` command; Airflow prints warnings before the JSON on stdout."""
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    completed = subprocess.run(
        [airflow, *arguments, "-o", "json"], env=env, check=True, capture_output=True, text=True
    )
    lines = completed.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith(("[", "{"))), None)
    if start is None:
        raise RuntimeError(f"no JSON in the output of airflow {' '.join(arguments)}")
    return json.loads("\n".join(lines[start:]))
