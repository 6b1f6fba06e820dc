"""How much of the oracle's lead is latent state that no feature observes.

The oracle scores with the world's true probabilities. Among their inputs, two are never written to
any table: the viewer's affinity to the tweet's topic and the tweet's quality. The features only
estimate them (topic engagement rates, embeddings, engagement counts). This script re-simulates the
config's world (deterministic from its seed; the re-run's probabilities are checked against the
lake's truth, row by row), takes those two latent values per impression, and fits the LightGBM
baseline (the evaluation's own settings, subsample and early stopping) three times on the training
split:

- ``features``: the ranker's input matrix, as the evaluation does;
- ``+affinity``: plus the true topic affinity;
- ``+affinity+quality``: plus the true tweet quality.

It prints the held-out RCE per head (rows with truth, as the evaluation) beside the oracle's and the
share of the oracle's RCE each reaches, then one line of JSON. If the latent columns close most of
the gap, the gap is information the features lack, not model capacity.

Needs the pipeline's training set and arrays (`feedrank train-ranker`). Usage:
python benchmarks/oracle_gap.py --config default --heads fav,reply,retweet
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd
import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.evaluate.metrics import rce
from pipelines.evaluate.offline import with_truth
from pipelines.schema import read_table
from pipelines.train.baselines import fit_lightgbm, predict_lightgbm
from pipelines.world.simulate import Simulation

log = logging.getLogger("oracle_gap")

LATENT = ("topic_affinity", "tweet_quality")
VARIANTS = {"features": (), "+affinity": LATENT[:1], "+affinity+quality": LATENT}


def resimulate(cfg: FeedrankConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(latent per impression_id, truth per impression_id) of a fresh run of `cfg`'s world."""
    started = time.perf_counter()
    sim = Simulation.start(cfg)
    latent, truth = [], []
    for day in sim.days():
        if day.impressions is None or day.truth is None:
            continue
        latent.append(sim.latent(day.impressions))
        truth.append(day.truth)
        log.info("re-simulated %s (%.0f s)", day.label, time.perf_counter() - started)
    return pd.concat(latent, ignore_index=True), pd.concat(truth, ignore_index=True)


def check_same_world(lake_truth: pd.DataFrame, rerun_truth: pd.DataFrame, heads: list[str]) -> None:
    """Exit with the difference when the re-run is not the world the lake holds."""
    merged = lake_truth.merge(rerun_truth, on="impression_id", suffixes=("", "_rerun"))
    if len(merged) != len(lake_truth):
        raise typer.BadParameter(
            f"the re-run world has {len(rerun_truth)} impressions with truth, the lake "
            f"{len(lake_truth)}: the lake was built from another config or code; rebuild it"
        )
    for head in heads:
        gap = np.abs(merged[f"p_{head}"] - merged[f"p_{head}_rerun"]).max()
        if gap > 1e-6:
            raise typer.BadParameter(
                f"p_{head} differs by up to {gap:.3g} between the lake and the re-run world"
            )


def main(
    config: str = typer.Option("default", "--config", "-c"),
    heads: str = typer.Option(
        "fav,reply,retweet", help="Binary heads to measure, comma separated."
    ),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(config)
    wanted = [h.strip() for h in heads.split(",") if h.strip()]
    unknown = [h for h in wanted if h not in cfg.ranker.binary_heads]
    if unknown:
        raise typer.BadParameter(f"not binary heads of the config: {unknown}")
    if not cfg.paths.ranker_arrays(cfg.ranker.feature_set).is_file():
        typer.echo(
            f"no arrays at {cfg.paths.ranker_arrays(cfg.ranker.feature_set)}: run `feedrank train-ranker` first",
            err=True,
        )
        raise typer.Exit(code=1)
    arrays = np.load(cfg.paths.ranker_arrays(cfg.ranker.feature_set))
    ids = pd.read_parquet(cfg.paths.training_set, columns=["impression_id", "split"])
    ids_of = {
        split: ids.loc[ids["split"] == split, "impression_id"].to_numpy()
        for split in ("train", "test")
    }

    latent, rerun_truth = resimulate(cfg)
    lake_truth = read_table(cfg.paths.truth, "truth")
    check_same_world(lake_truth, rerun_truth, wanted)
    latent = latent.set_index("impression_id")

    columns = [cfg.ranker.heads.index(h) for h in wanted]
    only = cfg.model_copy(update={"ranker": cfg.ranker.model_copy(update={"heads": tuple(wanted)})})
    keep = with_truth(lake_truth, ids_of["test"])
    truth = lake_truth.set_index("impression_id").reindex(ids_of["test"][keep])
    y_test = arrays["y_test"][keep][:, columns]
    results: dict[str, dict[str, float]] = {
        "oracle": {h: rce(y_test[:, i], truth[f"p_{h}"].to_numpy()) for i, h in enumerate(wanted)}
    }
    for variant, extra in VARIANTS.items():
        x = {}
        for split in ("train", "test"):
            added = latent.reindex(ids_of[split])[list(extra)].to_numpy(np.float32)
            x[split] = np.hstack(
                [arrays[f"x_{split}"], added]
            )  # NaN for rows the world did not make
        started = time.perf_counter()
        boosters = fit_lightgbm(only, x["train"], arrays["y_train"][:, columns])
        predicted = predict_lightgbm(boosters, x["test"][keep])
        results[variant] = {h: rce(y_test[:, i], predicted[h]) for i, h in enumerate(wanted)}
        log.info(
            "%s fitted in %.0f s: %s", variant, time.perf_counter() - started, results[variant]
        )

    print(
        f"\nheld-out RCE (%), {int(keep.sum())} rows with truth; share of the oracle's in brackets"
    )
    print(f"{'model':>20} " + " ".join(f"{h:>18}" for h in wanted))
    for model, by_head in results.items():
        cells = [f"{by_head[h]:8.2f} ({by_head[h] / results['oracle'][h]:4.0%})" for h in wanted]
        print(
            f"{'lgbm ' + model if model != 'oracle' else model:>20} "
            + " ".join(f"{c:>18}" for c in cells)
        )
    print(json.dumps({"benchmark": "oracle_gap", "config": config, "rce": results}))


if __name__ == "__main__":
    typer.run(main)
