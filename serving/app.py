"""The Ray Serve application: a FastAPI ingress and the rankers of the experiment arms.

With ``serve.ranker_placement: deployment`` the ingress is composed with one ranker deployment
per arm:

    FeedService (ingress: world index, online features, experiment router)
      ├── ChampionRanker    (the registry model with alias `champion`)
      └── ChallengerRanker  (alias `challenger`, bound only when it exists and differs)

With ``ingress`` (the default) every FeedService replica loads the same aliases itself and scores
on a thread of its own, with no hop between processes.

Run it with ``serve run serving.app:build_app config=default`` or :func:`serving.run.start`. The
registry and the online feature store are imported inside the deployments, so this module imports
without them.
"""

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.handle import DeploymentHandle

from pipelines.clock import ClockReader, SimClock
from pipelines.config import FeedrankConfig, load_config
from pipelines.event_log import EventLog
from pipelines.inputs.spec import FeatureTable
from pipelines.models.bundle import InputSpec, frame_inputs, pack_inputs, unpack_inputs
from serving.api import make_api
from serving.candidates.retrieval import EmbeddingRetriever
from serving.candidates.world_index import WorldIndex
from serving.engine.conversation_scorer import ConversationScorer
from serving.engine.feed import FeedEngine
from serving.engine.ports import ArmModel, FeatureHydrator, Oracle
from serving.live.counts import EngagementPusher
from serving.policy.cursor import CursorCodec, load_key
from serving.schemas import (
    Arm,
    ConversationRequest,
    ConversationResponse,
    EngagementRequest,
    EngagementResponse,
    FeedRequest,
    FeedResponse,
    HealthResponse,
    PostTweetsRequest,
    PostTweetsResponse,
)

APP_NAME = "feedrank"
log = logging.getLogger(__name__)


class AppArgs(BaseModel):
    """Arguments of the app builder (``serve run serving.app:build_app config=smoke``)."""

    model_config = ConfigDict(extra="forbid")

    config: str = Field("default", description="Config name (configs/<name>.yaml) or YAML path.")
    resolved: dict[str, Any] | None = Field(
        None,
        description="A whole config tree (FeedrankConfig.model_dump); wins over `config`. "
        "serving.run.start passes the config it was given this way.",
    )

    def load(self) -> FeedrankConfig:
        if self.resolved is not None:
            return FeedrankConfig.model_validate(self.resolved)
        return load_config(self.config)


def portable_config(cfg: FeedrankConfig) -> dict[str, Any]:
    """`cfg` as a plain dict for replicas, with the state root made absolute.

    Replicas may run with another working directory or environment, so the root that this process
    resolved (FEEDRANK_HOME or paths.root) is pinned into the dict.
    """
    pinned = cfg.model_copy(
        update={"paths": cfg.paths.model_copy(update={"root": str(cfg.paths.root_dir)})}
    )
    return pinned.model_dump(mode="json", by_alias=True)


@serve.deployment(name="Ranker")
class Ranker:
    """One registered ranker, found by its MLflow alias when the replica starts."""

    def __init__(self, config: dict[str, Any], alias: str) -> None:
        from pipelines.release.registry import load_ranker

        cfg = FeedrankConfig.model_validate(config)
        model = load_ranker(cfg, alias)
        if model is None:
            raise no_ranker(cfg, alias)
        self._model = model
        self._alias = alias
        _set_torch_threads(cfg.serve.ranker_threads)

    def score(self, features: FeatureTable) -> dict[str, np.ndarray]:
        """features: [N rows] every model feature column -> head -> probabilities [N]."""
        return self._model.predict(features)

    def score_packed(self, packed: np.ndarray, dense_width: int) -> dict[str, np.ndarray]:
        """The model's inputs packed into one array by the ingress (:func:`pack_inputs`: x
        [N, F] and sparse ids [N, S]) -> head -> predictions [N]. One array crosses the object
        store, not a frame of ~100 object columns."""
        return self._model.predict_matrix(*unpack_inputs(packed, dense_width))

    def input_spec(self) -> InputSpec | None:
        """How the ingress builds this model's inputs; None: send it the feature frame."""
        return getattr(self._model, "input_spec", None)

    def version(self) -> str:
        return str(self._model.version)

    def heads(self) -> tuple[str, ...]:
        return tuple(self._model.heads)


class ServiceEncoder:
    """The fine-tuned text encoder of POST /tweets, loaded once on first use (a replica that is
    never posted to never loads it); CPU, batched by ``encoder.embed_batch_size``."""

    def __init__(self, cfg: FeedrankConfig) -> None:
        self.cfg = cfg
        self._embedder: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Texts [N] -> unit embeddings [N, D] float32."""
        with self._lock:
            if self._embedder is None:
                from pipelines.models.text_encoder import TextEmbedder

                self._embedder = TextEmbedder.load(self.cfg.paths.encoder_dir)
            return np.asarray(
                self._embedder.embed(texts, batch_size=self.cfg.encoder.embed_batch_size),
                dtype=np.float32,
            )


def engine_for_serving(
    cfg: FeedrankConfig, arms: Mapping[Arm, ArmModel], oracle: Oracle | None = None
) -> FeedEngine:
    """The engine of one serving replica, wired to the real parts: the lake's world index, the
    online features (held in memory and synced), the tweet index, the event log, the simulated
    clock, the text encoder, both push sources and the registered conversation ranker (when
    there is one). Its live threads are started; `oracle`: the world's truth for the oracle
    policy (None: that policy answers 422)."""
    from pipelines.features.freshness import push_tweet_embeddings
    from serving.features.hydrate import FastOnlineFeatures

    index = WorldIndex.load(cfg)
    clock = ClockReader(SimClock.of(cfg), fallback=index.now)
    features = FastOnlineFeatures.for_serving(cfg)
    events = EventLog(cfg.paths.serving_events)

    def push_embeddings(tweets: pd.DataFrame, vectors: np.ndarray, at: pd.Timestamp) -> int:
        return push_tweet_embeddings(cfg, tweets, vectors, at)

    engine = FeedEngine(
        cfg,
        index,
        features,
        arms,
        retriever=EmbeddingRetriever.load(cfg),
        events=events,
        cursors=CursorCodec(load_key(cfg.paths.cursor_key), cfg.serve.cursor_ttl_s),
        clock=clock,
        embed=ServiceEncoder(cfg).embed,
        push_embeddings=push_embeddings,
        counts=EngagementPusher.for_serving(cfg, events, clock, after_push=features.replica.sync),
        oracle=oracle,
        reply_scorers=conversation_scorers(cfg, index, features, clock),
    )
    engine.start_live()
    return engine


def conversation_scorers(
    cfg: FeedrankConfig,
    index: WorldIndex,
    features: FeatureHydrator,
    clock: Callable[[], pd.Timestamp],
) -> dict[Arm, ConversationScorer]:
    """The conversation ranker of each experiment arm: the registered conversation `champion`,
    and for the challenger arm a distinct conversation `challenger` when there is one (else the
    champion too). Empty when no conversation ranker is registered: the conversation path then
    scores replies with the arm's feed ranker."""
    from serving.engine.conversation_scorer import NoConversationModelError, load_scorer

    try:
        champion = load_scorer(cfg, "champion", index, features, clock)
    except NoConversationModelError as exc:
        log.warning("conversation: %s; replies are scored by the feed ranker", exc)
        return {}
    scorers: dict[Arm, ConversationScorer] = {"champion": champion, "challenger": champion}
    try:
        challenger = load_scorer(cfg, "challenger", index, features, clock)
    except NoConversationModelError:
        return scorers
    if challenger.version != champion.version:
        scorers["challenger"] = challenger
    return scorers


def no_ranker(cfg: FeedrankConfig, alias: str) -> RuntimeError:
    """The error for a registry without a model under `alias`: there is nothing to serve."""
    return RuntimeError(
        f"no ranker has alias {alias!r} in the registry of config {cfg.name!r}; "
        "train and promote one first"
    )


def _with_challenger(champion: ArmModel, challenger: ArmModel | None) -> dict[Arm, ArmModel]:
    """The arms: the champion, and the challenger when there is one of another version (an
    alias move between build and start can make both the same model)."""
    arms: dict[Arm, ArmModel] = {"champion": champion}
    if challenger is not None and challenger.version != champion.version:
        arms["challenger"] = challenger
    return arms


def _set_torch_threads(threads: int) -> None:
    import torch

    # Ray caps a replica's intra-op threads at its CPU share (one thread for 0.5 CPU).
    torch.set_num_threads(threads)


def _local_arm_model(cfg: FeedrankConfig, alias: str, executor: Executor) -> ArmModel | None:
    """The ranker with registry `alias`, loaded into this process and scored on `executor`
    (torch releases the GIL, so the event loop goes on meanwhile); None when no model has it."""
    from pipelines.release.registry import load_ranker

    model = load_ranker(cfg, alias)
    if model is None:
        return None

    def score(features: FeatureTable) -> Any:
        return asyncio.get_running_loop().run_in_executor(executor, model.predict, features)

    return ArmModel(version=str(model.version), heads=tuple(model.heads), score=score)


async def _arm_model(handle: DeploymentHandle) -> ArmModel:
    version: str = await handle.version.remote()
    heads: tuple[str, ...] = await handle.heads.remote()
    spec: InputSpec | None = await handle.input_spec.remote()

    def score(features: FeatureTable) -> Any:
        if spec is None:
            return handle.score.remote(features)
        x, ids = frame_inputs(features, spec)
        # One array to the ranker replica; a DeploymentResponse, awaited by the engine.
        return handle.score_packed.remote(pack_inputs(x, ids), x.shape[1])

    return ArmModel(version=version, heads=tuple(heads), score=score)


@serve.deployment(name="FeedService")
@serve.ingress()
class FeedService:
    """HTTP ingress and experiment router; also callable by handle (`feed`, `conversation`).

    Scores with the Ranker deployments it is bound to, or, bound to none (``serve.
    ranker_placement: ingress``), with the registry's champion and challenger loaded here.
    """

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self,
        config: dict[str, Any],
        champion: DeploymentHandle | None = None,
        challenger: DeploymentHandle | None = None,
    ) -> None:
        cfg = FeedrankConfig.model_validate(config)
        if champion is None:
            arms = self._load_arms(cfg)
        else:
            arms = _with_challenger(
                await _arm_model(champion),
                None if challenger is None else await _arm_model(challenger),
            )
        from serving.policy.oracle import WorldOracle

        # The oracle policy exists only where a simulated world's truth does.
        self.engine = engine_for_serving(cfg, arms, oracle=WorldOracle.if_simulated(cfg))
        self.max_body_bytes = cfg.serve.max_body_bytes
        self.tweets_body_bytes = cfg.serve.max_tweets_body_bytes
        self.engine.warm_up()
        # What is loaded now (world index, feature replica, models) lives as long as the
        # replica: out of the collector's sight, a full collection no longer walks it mid-request.
        gc.collect()
        gc.freeze()

    def _load_arms(self, cfg: FeedrankConfig) -> dict[Arm, ArmModel]:
        self._ranker_pool = ThreadPoolExecutor(1, thread_name_prefix="ranker")
        _set_torch_threads(cfg.serve.ranker_threads)
        champion = _local_arm_model(cfg, "champion", self._ranker_pool)
        if champion is None:
            raise no_ranker(cfg, "champion")
        return _with_challenger(champion, _local_arm_model(cfg, "challenger", self._ranker_pool))

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Serve after __init__: the routes close over this replica's engine."""
        return make_api(self.engine, self.max_body_bytes, self.tweets_body_bytes)

    async def feed(self, request: FeedRequest) -> FeedResponse:
        return await self.engine.feed(request)

    async def engagement(self, request: EngagementRequest) -> EngagementResponse:
        return await self.engine.engagement(request)

    async def conversation(self, request: ConversationRequest) -> ConversationResponse:
        return await self.engine.conversation(request)

    async def post_tweets(self, request: PostTweetsRequest) -> PostTweetsResponse:
        return await self.engine.post_tweets(request)

    def health(self) -> HealthResponse:
        return self.engine.health()

    def close(self) -> None:
        """Stop the replica's live threads (index sync, count push) after a last push of the
        counts that moved; Serve calls it (through ``__del__``) when the replica shuts down."""
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()

    def __del__(self) -> None:
        self.close()


def alias_version(cfg: FeedrankConfig, alias: str) -> str | None:
    """The version behind a registry alias, or None when the alias does not exist."""
    from pipelines.release.registry import alias_version as registry_alias_version

    return registry_alias_version(cfg, alias)


def build_app(args: dict[str, Any] | AppArgs) -> Application:
    """The app builder: FeedService alone (``serve.ranker_placement: ingress``), or bound to the
    champion (and a distinct challenger) Ranker deployment.

    Raises RuntimeError when the registry has no champion: there is nothing to serve.
    """
    app_args = args if isinstance(args, AppArgs) else AppArgs.model_validate(args)
    cfg = app_args.load()
    config = portable_config(cfg)
    actor = {"num_cpus": cfg.serve.replica_cpus}

    champion_version = alias_version(cfg, "champion")
    if champion_version is None:
        raise no_ranker(cfg, "champion")
    ingress = cast(Deployment, FeedService)
    ingress = ingress.options(
        num_replicas=cfg.serve.ingress_replicas,
        max_ongoing_requests=cfg.serve.max_ongoing_requests,
    )
    if cfg.serve.ranker_placement == "ingress":
        return ingress.options(ray_actor_options=actor).bind(config)
    ranker = cast(Deployment, Ranker)  # the decorator made it a Deployment; mypy sees the class
    champion = ranker.options(name="ChampionRanker", ray_actor_options=actor).bind(
        config, "champion"
    )
    challenger = None
    challenger_version = alias_version(cfg, "challenger")
    if challenger_version is not None and challenger_version != champion_version:
        challenger = ranker.options(name="ChallengerRanker", ray_actor_options=actor).bind(
            config, "challenger"
        )
    return ingress.options(ray_actor_options=actor).bind(config, champion, challenger)
