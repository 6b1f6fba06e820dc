"""What the request paths need from outside, as protocols and plain records: online features, the
embedding retriever, and one ranker per experiment arm. The Ray Serve app (`serving.app`) binds
the real ones; unit tests pass fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from pipelines.inputs.spec import FeatureTable

# Scores feature rows (columns or a frame) into head -> probabilities [N]; awaitable (a Serve
# handle call).
Scorer = Callable[[FeatureTable], Awaitable[Mapping[str, np.ndarray]]]


# Texts [N] -> unit embeddings [N, D] float32 by the service's text encoder.
Embed = Callable[[list[str]], np.ndarray]
# Posted tweets (tweet_id, created_at), their embeddings [N, D] and the moment they were posted
# (the rows' event time) -> rows pushed to the online store (with the topic).
PushEmbeddings = Callable[[pd.DataFrame, np.ndarray, pd.Timestamp], int]
# The simulated world's truth: viewer id, candidates (tweet_id, author_id, in_network), now ->
# head -> true probability [N] of every blend head.
Oracle = Callable[[int, pd.DataFrame, pd.Timestamp], Mapping[str, np.ndarray]]


class FeatureHydrator(Protocol):
    """What the engine needs of `serving.features.hydrate.FastOnlineFeatures`: online
    features, and the two degraded answers for when the store is slow or down."""

    def hydrate(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> FeatureTable: ...

    def hydrate_cached(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> tuple[FeatureTable, float]: ...

    def hydrate_default(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> FeatureTable: ...


class Retriever(Protocol):
    """What the engine needs of `serving.candidates.retrieval.EmbeddingRetriever`."""

    def retrieve(self, viewer_id: int, seen: np.ndarray) -> pd.DataFrame: ...

    def add(self, tweet_ids: np.ndarray, vectors: np.ndarray, author_ids: np.ndarray) -> int: ...


@dataclass(frozen=True)
class ArmModel:
    """The ranker serving one experiment arm."""

    version: str
    heads: tuple[str, ...]
    score: Scorer
