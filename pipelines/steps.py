"""The steps of the `feed_training` pipeline: one function each, called by the DAG and the CLI.

Each step takes a config name (or object), reads what earlier steps left under the state root, writes
its own outputs there and returns a small JSON-able summary (an Airflow XCom). Steps are idempotent:
a retry recomputes the same outputs from the same inputs.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig, load_config

log = logging.getLogger(__name__)

STEP_ORDER = (
    "build_world",
    "ingest_served",
    "validate",
    "compute_features",
    "train_encoder",
    "embed",
    "build_index",
    "evaluate_retrieval",
    "apply_features",
    "materialize",
    "build_training_set",
    "train_ranker",
    "evaluate",
    "register",
    "promote",
)


def _cfg(config: str | FeedrankConfig | None) -> FeedrankConfig:
    return config if isinstance(config, FeedrankConfig) else load_config(config)


def _timed(name: str, started: float, summary: dict[str, Any]) -> dict[str, Any]:
    summary = {**summary, "seconds": round(time.perf_counter() - started, 2)}
    log.info(
        "step %s done in %.1f s: %s",
        name,
        summary["seconds"],
        {k: v for k, v in summary.items() if not isinstance(v, list | dict)},
    )
    return summary


def build_world(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Simulate the world (DESIGN section 4) into the raw lake, truth stored apart."""
    from pipelines.world.simulate import build_world as simulate

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("build_world", started, simulate(cfg))


def ingest_served(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """The impressions the service served, with their engagements as labels, from the serving
    event log into the raw lake (after `build_world`, which replaces the lake; before `validate`)."""
    from pipelines.ingest.served import ingest_served as ingest

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("ingest_served", started, ingest(cfg))


def validate(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Great Expectations suites on every raw batch; failing batches go to quarantine (raises)."""
    from pipelines.validate import validate_lake

    started, cfg = time.perf_counter(), _cfg(config)
    summary = validate_lake(cfg)
    return _timed("validate", started, {"batches": summary["batches"], "failed": summary["failed"]})


def compute_features(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Batch feature tables (the Feast sources) from the validated lake."""
    from pipelines.features.batch import compute_batch_features

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("compute_features", started, compute_batch_features(cfg))


def train_encoder(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Fine-tune the two-tower text encoder on engagement pairs with Ray Train."""
    from pipelines.train.encoder import train_encoder as fit
    from pipelines.train.encoder import write_training_pairs
    from pipelines.train.ray_runtime import ray_session

    started, cfg = time.perf_counter(), _cfg(config)
    pairs_path = cfg.paths.encoder_pairs
    pairs = write_training_pairs(cfg, pairs_path)
    with ray_session(cfg):
        result = fit(cfg, pairs_path, cfg.paths.encoder_dir)
    (cfg.paths.encoder_training).write_text(json.dumps(result, default=float))
    return _timed(
        "train_encoder",
        started,
        {
            "pairs": pairs,
            "loss_first": result["loss_first"],
            "loss_last": result["loss_last"],
            "steps": result["steps"],
        },
    )


def embed(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Tweet and viewer embeddings from the fine-tuned encoder, written as Feast sources."""
    from pipelines.features.batch import engagement_events, write_feature_table
    from pipelines.features.embeddings import (
        author_content_table,
        topic_clusters,
        tweet_embedding_table,
        viewer_embedding_table,
    )
    from pipelines.features.training_set import split_boundary
    from pipelines.models.text_encoder import TextEmbedder
    from pipelines.schema import read_table
    from pipelines.train.batch_inference import embed_texts

    started, cfg = time.perf_counter(), _cfg(config)
    tweets = read_table(cfg.paths.raw, "tweets")
    vectors = embed_texts(cfg, cfg.paths.encoder_dir, tweets["text"].tolist())
    # Topic centroids from the tweets posted before the held-out days.
    fit_rows = (pd.to_datetime(tweets["created_at"], utc=True) < split_boundary(cfg)).to_numpy()
    topics, centroids = topic_clusters(
        vectors, fit_rows, cfg.features.topic_clusters, cfg.world.seed
    )
    np.save(cfg.paths.topic_centroids, centroids)  # fresh tweets get their topic from these
    write_feature_table(cfg, "tweet_embedding", tweet_embedding_table(tweets, vectors, topics))
    embedder = TextEmbedder.load(cfg.paths.encoder_dir)
    impressions = read_table(cfg.paths.raw, "impressions")
    events = engagement_events(impressions, tweets)
    authors = author_content_table(cfg, tweets, vectors, topics, impressions, events)
    write_feature_table(cfg, "author_content", authors)

    def viewer_tower(profiles: np.ndarray) -> np.ndarray:
        return embedder.embed_viewers(profiles[:, None, :])

    viewers = viewer_embedding_table(
        cfg, events, tweets["tweet_id"].to_numpy(), vectors, viewer_tower, topics, impressions
    )
    write_feature_table(cfg, "viewer_embedding", viewers)
    return _timed("embed", started, {"tweets": len(tweets), "viewer_rows": len(viewers)})


def build_index(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """FAISS index of the tweet embeddings for out-of-network retrieval (versioned with the
    encoder that built them)."""
    from pipelines.retrieval import build_index as build

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("build_index", started, build(cfg))


def evaluate_retrieval(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Recall and NDCG@k of out-of-network retrieval on the held-out days: the fine-tuned encoder
    vs the untuned MiniLM, TF-IDF and popularity; report and plot logged to MLflow."""
    from pipelines.evaluate.retrieval import evaluate_retrieval as run
    from pipelines.evaluate.retrieval import log_retrieval

    started, cfg = time.perf_counter(), _cfg(config)
    metrics = run(cfg)
    log_retrieval(cfg, metrics, cfg.paths.retrieval_reports)
    recalls = {k: v for k, v in metrics.items() if "recall_at" in k or k == "viewers"}
    return _timed("evaluate_retrieval", started, recalls)


def apply_features(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """`feast apply` on feature_repo/."""
    from pipelines.features.store import apply_repo

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("apply_features", started, {"feature_views": apply_repo(cfg)})


def materialize(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Load the latest feature values into the online store (idempotent)."""
    from pipelines.features.store import materialize as run

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("materialize", started, run(cfg))


def build_training_set(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Point-in-time training set from Feast's get_historical_features."""
    from pipelines.features.training_set import build_training_set as build

    started, cfg = time.perf_counter(), _cfg(config)
    return _timed("build_training_set", started, build(cfg))


def train_ranker(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Multi-task parallel MaskNet with Ray Train (TorchTrainer, DDP)."""
    from pipelines.train.ranker import train_ranker as fit

    started, cfg = time.perf_counter(), _cfg(config)
    result = fit(cfg)
    return _timed(
        "train_ranker",
        started,
        {
            "train_rows": result["train_rows"],
            "final_train_loss": result["final"].get("train_loss"),
            "final_val_loss": result["final"].get("val_loss"),
        },
    )


def evaluate(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Ranker vs LightGBM vs oracle on the held-out days; report with plots."""
    from pipelines.evaluate.offline import evaluate as run

    started, cfg = time.perf_counter(), _cfg(config)
    metrics = run(cfg)["metrics"]
    keys = ("ranker_ndcg", "lgbm_ndcg", "logreg_ndcg", "oracle_ndcg")
    return _timed("evaluate", started, {k: metrics[k] for k in keys if k in metrics})


def register(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Log the run to MLflow and register the ranker as `challenger`."""
    from pipelines.registry import log_and_register, write_json

    started, cfg = time.perf_counter(), _cfg(config)
    metrics = json.loads((cfg.paths.evaluation / "metrics.json").read_text())
    training = json.loads(
        (cfg.paths.ranker_dir(cfg.ranker.feature_set) / "training.json").read_text()
    )
    encoder = json.loads((cfg.paths.encoder_training).read_text())
    history = training.get("history", [])
    metrics["encoder_loss_first"] = float(encoder["loss_first"])
    metrics["encoder_loss_last"] = float(encoder["loss_last"])
    metrics["ranker_train_seconds"] = float(training["seconds"])
    validation = cfg.paths.validation_summary
    result = log_and_register(
        cfg,
        cfg.paths.ranker_dir(cfg.ranker.feature_set),
        cfg.paths.encoder_dir,
        cfg.paths.evaluation,
        metrics,
        history,
        # The index belongs to the encoder version that built it: both are artifacts of this run.
        extra_artifacts={"validation": validation, "tweet_index": cfg.paths.tweet_index},
        series={"encoder_loss": [float(p["loss"]) for p in encoder.get("loss_curve", [])]},
    )
    write_json(cfg.paths.registration, result)
    return _timed("register", started, result)


def promote(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Gate the challenger against the serving champion (bootstrap NDCG gain, RCE per head), or
    against LightGBM while there is no champion; it becomes `champion` only if it passes."""
    from pipelines.evaluate.gate import compare_with_champion
    from pipelines.registry import promote as decide

    started, cfg = time.perf_counter(), _cfg(config)
    registration = json.loads((cfg.paths.registration).read_text())
    metrics = json.loads((cfg.paths.evaluation / "metrics.json").read_text())
    comparison = compare_with_champion(cfg, cfg.paths.evaluation)
    decision = decide(cfg, registration["run_id"], registration["version"], metrics, comparison)
    return _timed("promote", started, decision)


def run_all(config: str | FeedrankConfig | None = None) -> dict[str, Any]:
    """Every step in order, in this process (the DAG runs the same functions as tasks)."""
    cfg = _cfg(config)
    return {name: globals()[name](cfg) for name in STEP_ORDER}
