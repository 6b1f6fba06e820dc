"""The out-of-network embedding source: the viewer's text profile queried against the tweet index.

The viewer vector is the `viewer_embedding` feature the ranker reads too (Feast online store); the
index is the one the pipeline built with the same encoder (`pipelines.retrieval`). Tweets the
viewer authored or was already served are excluded inside the search, so they never take a slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.retrieval.index import TweetIndex

log = logging.getLogger(__name__)

ViewerVectors = Callable[[int], np.ndarray | None]


class EmbeddingRetriever:
    """Top-k tweets by cosine similarity to a viewer's embedding.

    Args:
        index: the tweet index.
        viewer_vector: viewer id -> its embedding [D], or None when the store has none.
        k: tweets retrieved per request.
    """

    def __init__(self, index: TweetIndex, viewer_vector: ViewerVectors, k: int) -> None:
        self.index = index
        self.viewer_vector = viewer_vector
        self.k = k

    @classmethod
    def load(cls, cfg: FeedrankConfig) -> EmbeddingRetriever | None:
        """The pipeline's index and Feast's online viewer embeddings; None (and a log line) when
        no index has been built, so the feed still serves its other sources."""
        directory = cfg.paths.tweet_index
        if cfg.retrieval.embedding_candidates == 0:
            return None
        try:
            index = TweetIndex.load(directory)
        except FileNotFoundError as error:
            log.warning("embedding retrieval off: %s", error)
            return None
        import faiss

        # Process-wide: this process serves (one query per search), it does not build indexes.
        faiss.omp_set_num_threads(cfg.serve.search_threads)
        from pipelines.features.store import feature_store

        store = feature_store(cfg)

        def viewer_vector(viewer_id: int) -> np.ndarray | None:
            row = store.get_online_features(
                features=["viewer_embedding:viewer_embedding"],
                entity_rows=[{"viewer_id": int(viewer_id)}],
            ).to_dict()
            vector = row["viewer_embedding"][0]
            return None if vector is None else np.asarray(vector, dtype=np.float32)

        return cls(index, viewer_vector, cfg.retrieval.embedding_candidates)

    def add(self, tweet_ids: np.ndarray, vectors: np.ndarray, author_ids: np.ndarray) -> int:
        """Index tweets posted to the live service (ids [N], unit vectors [N, D], authors [N]);
        ids already indexed are left as they are. Returns how many were added. Not safe while a
        search runs: the engine calls it on the thread that searches."""
        ids = np.asarray(tweet_ids, dtype=np.int64)
        new = np.flatnonzero([int(t) not in self.index.authors for t in ids.tolist()])
        if len(new) == 0:
            return 0
        return self.index.add(ids[new], np.asarray(vectors)[new], np.asarray(author_ids)[new])

    def retrieve(self, viewer_id: int, seen: np.ndarray) -> pd.DataFrame:
        """[<= k rows] tweet_id, author_id, score: best first, none authored by or served to the
        viewer. Empty for a viewer without an embedding."""
        vector = self.viewer_vector(viewer_id)
        if vector is None or vector.shape != (self.index.dim,):
            return pd.DataFrame({"tweet_id": [], "author_id": [], "score": []}).astype(
                {"tweet_id": np.int64, "author_id": np.int64, "score": np.float32}
            )
        found = self.index.search(
            vector[None, :], self.k, exclude=[seen], exclude_authors=[viewer_id]
        )
        ids, scores = found.row(0)
        authors = self.index.author_of(ids)
        return pd.DataFrame({"tweet_id": ids, "author_id": authors, "score": scores})
