"""What the full feature set adds: the ranker trained on the small skeleton set vs the full set.

skeleton: the 26 dense features of the first ranker and the text embeddings (Feast service
`ranker_v1`); full: every dense feature of the design, the text embeddings and the sparse ids
(hashed viewer, author, tweet, country, recent hashtags, text n-grams) that the ranker embeds
(`ranker_v2`).

Both train with Ray Train on the same training set and split (the one the pipeline built; run the
pipeline first), are scored on the same held-out days, and the per-head RCE of each and the lift
(full − skeleton, in RCE points) are logged to MLflow as one run. Prints one line of JSON, last.
Usage: python benchmarks/feature_value.py --config default
"""

from __future__ import annotations

import json
import logging

import numpy as np
import typer

from pipelines.config import FeedrankConfig, load_config
from pipelines.evaluate.metrics import head_metrics
from pipelines.models.bundle import RankerBundle
from pipelines.train.ranker import model_inputs, train_ranker


def rce_per_head(cfg: FeedrankConfig) -> dict[str, float]:
    """Train the ranker of `cfg` and return its held-out RCE per head."""
    train_ranker(cfg)
    arrays = np.load(cfg.paths.ranker_arrays(cfg.ranker.feature_set))
    inputs = [arrays[f"{name}_test"] for name in model_inputs(cfg.ranker)]
    predictions = RankerBundle.load(cfg.paths.ranker_dir(cfg.ranker.feature_set)).predict_matrix(
        *inputs
    )
    y = arrays["y_test"]
    return {
        head: head_metrics(y[:, i], predictions[head])["rce"]
        for i, head in enumerate(cfg.ranker.heads)
    }


# The variants compared on the same split: the skeleton set, the full dense set without the sparse
# ids, and the full set (the default ranker).
VARIANTS: dict[str, dict[str, object]] = {
    "skeleton": {"feature_set": "skeleton"},
    "full_dense": {"feature_set": "full", "sparse_buckets": 0},
    "full": {"feature_set": "full"},
    # full_dense without the text: no embeddings and nothing derived from them (the encoder's value)
    "no_text": {"feature_set": "no_text"},
}


def main(config: str = typer.Option("default", "--config", "-c")) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    base = load_config(config)
    results: dict[str, dict[str, float]] = {}
    # Serving loads the champion from MLflow, so retraining models/ranker here changes nothing served.
    for name, update in VARIANTS.items():
        ranker = base.ranker.model_copy(update=update)
        print(f"training the ranker on the {name} feature set")
        results[name] = rce_per_head(base.model_copy(update={"ranker": ranker}))
    heads = base.ranker.heads
    lift = {head: results["full"][head] - results["skeleton"][head] for head in heads}
    dense_lift = {head: results["full_dense"][head] - results["skeleton"][head] for head in heads}
    sparse_lift = {head: results["full"][head] - results["full_dense"][head] for head in heads}
    text_lift = {head: results["full_dense"][head] - results["no_text"][head] for head in heads}

    import mlflow

    from pipelines.release.registry import configure_mlflow

    configure_mlflow(base)
    with mlflow.start_run(run_name=f"feature_value-{base.name}"):
        mlflow.log_params({"config": base.name, "comparison": "full vs skeleton feature set"})
        for feature_set, per_head in results.items():
            mlflow.log_metrics({f"{feature_set}_rce_{h}": v for h, v in per_head.items()})
        mlflow.log_metrics({f"rce_lift_{h}": v for h, v in lift.items()})
        mlflow.log_metrics({f"rce_lift_dense_{h}": v for h, v in dense_lift.items()})
        mlflow.log_metrics({f"rce_lift_sparse_{h}": v for h, v in sparse_lift.items()})
        mlflow.log_metrics({f"rce_lift_text_{h}": v for h, v in text_lift.items()})
    figures = {
        "benchmark": "feature_value",
        "config": base.name,
        **results,
        "rce_lift": lift,
        "rce_lift_dense": dense_lift,
        "rce_lift_sparse": sparse_lift,
        "rce_lift_text": text_lift,
    }
    print(json.dumps(figures, default=float))


if __name__ == "__main__":
    typer.run(main)
