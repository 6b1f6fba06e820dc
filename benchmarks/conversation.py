"""Conversation ranking: the ranker against heuristics on real reply trees, and `/conversation`
latency.

Real trees (`pipelines.realtrees`): the delab-trees package's conversations, ids re-keyed and
times repaired, cut when half of each tree's replies has arrived (and at 20%); the candidates are
the top-level replies present then, the gain what each thread gains after the cut. The
conversation ranker (the feed ranker's ParallelMaskNet, trained on the training trees, its epoch
picked on validation trees), an 11-feature logistic regression, most-replies-so-far,
chronological, reverse chronological and random rank the held-out trees; NDCG@10 and capped
recall@10 per tree, macro-averaged with bootstrap intervals, on all evaluable trees and on trees
with at least 20 candidates. Also the early cut, a split in time, the ranker's paired gains and
the section shares at the configured toxicity thresholds.

Latency: `/conversation` at 3,200 candidates over HTTP beside the same work in process
(:func:`measure_latency`; ``--skip-latency`` leaves it out).

Prints progress and the tables, writes the report (markdown, plot, JSON) under the state root's
``reports/conversation`` and logs it to MLflow, then prints one line of JSON, last, with
``real_trees`` {``all``, ``ge20``} -> model -> {``ndcg10``, ``ci``, ``recall10``} and ``latency``
{``http_p99_ms``, ``in_process_p99_ms``}.
Usage: python benchmarks/conversation.py --config default [--platform reddit] [--skip-latency]
"""

from __future__ import annotations

import json
import logging
from typing import Any

import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.realtrees.evaluate import MODELS, STRATA, run_benchmark
from pipelines.realtrees.report import PROTOCOLS, gains_table, log_report, table, write_report
from pipelines.realtrees.source import PLATFORMS, TreesDataError

log = logging.getLogger("conversation")


def measure_latency(cfg: FeedrankConfig) -> dict[str, float]:
    """p99 of `/conversation` at 3,200 candidates over HTTP, and of the same work in process:
    ``{"http_p99_ms", "in_process_p99_ms"}``.

    Measured on the serving path of the conversation product, which this benchmark does not own;
    it is filled in where that path is wired into the service.
    """
    raise NotImplementedError(
        "measure_latency: the /conversation latency is measured once the conversation serving "
        "path is merged; run with --skip-latency until then"
    )


def real_trees_json(figures: dict[str, Any]) -> dict[str, Any]:
    """The ``{stratum: {model: {ndcg10, ci, recall10}}}`` block of a protocol."""
    return {
        stratum: {
            model: {key: figures[stratum][model][key] for key in ("ndcg10", "ci", "recall10")}
            for model in MODELS
        }
        for stratum in STRATA
    }


def main(
    config: str = typer.Option("default", "--config", "-c"),
    platform: str | None = typer.Option(
        None, help=f"Dataset of the package: {', '.join(PLATFORMS)} (default trees.platform)."
    ),
    max_trees: int | None = typer.Option(
        None, min=10, help="A seeded draw of this many trees (smoke runs; default all)."
    ),
    skip_latency: bool = typer.Option(False, help="Leave out the /conversation latency."),
    mlflow: bool = typer.Option(True, help="Log the report to MLflow."),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(config)
    if max_trees is not None:
        cfg = cfg.model_copy(
            update={"trees": cfg.trees.model_copy(update={"max_trees": max_trees})}
        )
    if platform is not None and platform not in PLATFORMS:
        raise typer.BadParameter(f"--platform must be one of {list(PLATFORMS)}; got {platform!r}")
    latency: dict[str, Any] = (
        {"http_p99_ms": None, "in_process_p99_ms": None, "skipped": True}
        if skip_latency
        else measure_latency(cfg)
    )
    try:
        figures = run_benchmark(cfg, platform)
    except TreesDataError as error:
        typer.echo(f"conversation benchmark: {error}", err=True)
        raise typer.Exit(code=2) from error
    for protocol in PROTOCOLS:
        print(f"\n{protocol} ({figures['platform']})\n{table(figures[protocol])}")
        print(f"\n{gains_table(figures[protocol])}")
    print(f"\nsection shares: {figures['real_trees']['sections']}")
    files = write_report(cfg, figures)
    if mlflow:
        log_report(cfg, figures, files)
    summary = {
        "platform": figures["platform"],
        "real_trees": real_trees_json(figures["real_trees"]),
        "real_trees_early_cut": real_trees_json(figures["real_trees_early_cut"]),
        "real_trees_time_split": real_trees_json(figures["real_trees_time_split"]),
        "ranker_minus": {s: figures["real_trees"][s]["ranker_minus"] for s in STRATA},
        "sections": figures["real_trees"]["sections"],
        "trees": figures["real_trees"]["trees"],
        "repair": figures["repair"],
        "seconds": figures["seconds"],
        "latency": latency,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
