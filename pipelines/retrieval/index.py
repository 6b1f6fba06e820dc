"""Out-of-network retrieval: a FAISS index over tweet text embeddings, queried by viewer embedding.

The index is versioned with the encoder that built it: `build_index` writes it next to the encoder
(``models/tweet_index``) and the register step logs it as an MLflow artifact of the same run. A
tweet posted after the daily build is added by :meth:`TweetIndex.add` (see
:func:`embed_fresh_tweets`), so it is retrievable without waiting for the next DAG run.

Embeddings are unit length, so inner product is cosine similarity. ``flat`` is exact search;
``hnsw`` is the approximate graph index for large corpora (same API).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.handoffs import EncoderTraining
from pipelines.schema import id_array

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw"]
INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
TWEETS_FILE = "tweets.parquet"
HNSW_NEIGHBOURS = 32  # graph degree M of the HNSW index
HNSW_SEARCH_DEPTH = 128  # efSearch: candidates explored per query


@dataclass
class RetrievedBatch:
    """Search results for Q queries: tweet ids [Q, k] (-1 pads short rows) and scores [Q, k]."""

    tweet_ids: np.ndarray
    scores: np.ndarray

    def row(self, query: int) -> tuple[np.ndarray, np.ndarray]:
        """One query's (tweet ids, scores), padding dropped, best first."""
        keep = self.tweet_ids[query] >= 0
        return self.tweet_ids[query][keep], self.scores[query][keep]


class TweetIndex:
    """Tweet embeddings in a FAISS inner-product index, with each tweet's author.

    Args:
        index: a ``faiss.IndexIDMap2`` whose ids are tweet ids.
        authors: tweet id -> author id of every indexed tweet.
        dim: embedding size D.
        kind: "flat" (exact) or "hnsw" (approximate).
    """

    def __init__(self, index: Any, authors: dict[int, int], dim: int, kind: IndexKind) -> None:
        self.index = index
        self.authors = authors
        self.dim = dim
        self.kind: IndexKind = kind
        self._author_table: tuple[pd.Index, np.ndarray] | None = None  # see author_of

    @classmethod
    def empty(cls, dim: int, kind: IndexKind = "flat") -> TweetIndex:
        import faiss

        inner: Any
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = HNSW_SEARCH_DEPTH
        elif kind == "flat":
            inner = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"unknown index kind {kind!r}: flat or hnsw")
        return cls(faiss.IndexIDMap2(inner), {}, dim, kind)

    @classmethod
    def build(
        cls,
        tweet_ids: np.ndarray,
        vectors: np.ndarray,
        author_ids: np.ndarray,
        kind: IndexKind = "flat",
    ) -> TweetIndex:
        """tweet_ids [N], vectors [N, D] (unit rows), author_ids [N] -> an index of all N."""
        index = cls.empty(int(vectors.shape[1]), kind)
        index.add(tweet_ids, vectors, author_ids)
        return index

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, tweet_ids: np.ndarray, vectors: np.ndarray, author_ids: np.ndarray) -> int:
        """Index more tweets (ids already indexed are replaced); returns how many were added."""
        ids = np.asarray(tweet_ids, dtype=np.int64)
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (len(ids), self.dim):
            raise ValueError(f"vectors must be [{len(ids)}, {self.dim}]; got {matrix.shape}")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("tweet ids to index must be unique")
        known = [i for i in ids.tolist() if i in self.authors]
        if known:
            if self.kind == "hnsw":
                raise ValueError(f"an HNSW index cannot replace tweets {known[:5]}")
            self.index.remove_ids(np.asarray(known, dtype=np.int64))
        self.index.add_with_ids(matrix, ids)
        self.authors.update(zip(ids.tolist(), np.asarray(author_ids).tolist(), strict=True))
        self._author_table = None
        return len(ids)

    def author_of(self, tweet_ids: np.ndarray) -> np.ndarray:
        """[N] author id of each tweet id [N]; -1 where the index does not hold the tweet."""
        if self._author_table is None:  # built on first use, dropped by `add`
            tweets = pd.Index(np.fromiter(self.authors, dtype=np.int64, count=len(self.authors)))
            values = np.fromiter(self.authors.values(), dtype=np.int64, count=len(self.authors))
            self._author_table = tweets, np.append(values, -1)  # position -1: not indexed
        tweets, values = self._author_table
        return values[tweets.get_indexer(np.asarray(tweet_ids, dtype=np.int64))]

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[Collection[int]] | None = None,
        exclude_authors: Sequence[int] | None = None,
    ) -> RetrievedBatch:
        """The k best tweets for each query [Q, D], skipping each query's excluded tweet ids and
        the tweets of its excluded author (the viewer's own tweets).

        Over-fetches by the number of exclusions so that exclusions never shorten the answer
        when the index holds enough other tweets.
        """
        matrix = np.ascontiguousarray(queries, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"queries must be [Q, {self.dim}]; got {matrix.shape}")
        n = len(matrix)
        excluded = [id_array(e) for e in exclude] if exclude is not None else [id_array([])] * n
        own = list(exclude_authors) if exclude_authors is not None else [-1] * n
        if len(excluded) != n or len(own) != n:
            raise ValueError("exclude and exclude_authors need one entry per query")
        out_ids = np.full((n, k), -1, dtype=np.int64)
        out_scores = np.full((n, k), -np.inf, dtype=np.float32)
        if len(self) == 0 or k <= 0:
            return RetrievedBatch(out_ids, out_scores)
        fetch = min(len(self), k + max((len(e) for e in excluded), default=0))
        while True:
            scores, ids = self.index.search(matrix, fetch)
            short = False
            for q in range(n):
                found = ids[q]
                keep = (found >= 0) & ~np.isin(found, excluded[q])
                if own[q] >= 0:
                    keep &= self.author_of(found) != own[q]
                kept = np.flatnonzero(keep)[:k]
                out_ids[q, : len(kept)] = found[kept]
                out_scores[q, : len(kept)] = scores[q][kept]
                short |= len(kept) < k
            # The viewer's own tweets are not counted in `fetch`: widen until k or everything.
            if not short or fetch >= len(self):
                return RetrievedBatch(out_ids, out_scores)
            fetch = min(len(self), fetch * 2)

    def save(self, directory: Path, meta: dict[str, Any] | None = None) -> Path:
        import faiss

        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(directory / INDEX_FILE))
        pd.DataFrame(
            {"tweet_id": list(self.authors), "author_id": list(self.authors.values())}
        ).to_parquet(directory / TWEETS_FILE, index=False)
        info = {"dim": self.dim, "kind": self.kind, "size": len(self), **(meta or {})}
        (directory / META_FILE).write_text(json.dumps(info, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> TweetIndex:
        import faiss

        directory = Path(directory)
        if not (directory / INDEX_FILE).is_file():
            raise FileNotFoundError(f"no tweet index under {directory}: run `feedrank build-index`")
        meta = json.loads((directory / META_FILE).read_text())
        tweets = pd.read_parquet(directory / TWEETS_FILE)
        authors = dict(zip(tweets["tweet_id"].tolist(), tweets["author_id"].tolist(), strict=True))
        index: Any = faiss.read_index(str(directory / INDEX_FILE))
        if meta["kind"] == "hnsw":
            inner: Any = faiss.downcast_index(index.index)
            inner.hnsw.efSearch = HNSW_SEARCH_DEPTH
        return cls(index, authors, int(meta["dim"]), meta["kind"])


def build_index(cfg: FeedrankConfig, kind: IndexKind | None = None) -> dict[str, Any]:
    """Index every embedded tweet (the `tweet_embedding` feature source) under models/tweet_index."""
    from pipelines.schema import read_table

    started = time.perf_counter()
    embeddings = pd.read_parquet(cfg.paths.feature_table("tweet_embedding"))
    tweets = read_table(cfg.paths.raw, "tweets")[["tweet_id", "author_id"]]
    rows = embeddings.merge(tweets, on="tweet_id", how="inner", validate="one_to_one")
    vectors = np.stack(rows["tweet_embedding"].to_numpy()).astype(np.float32)
    chosen = kind or cfg.retrieval.index_kind
    index = TweetIndex.build(
        rows["tweet_id"].to_numpy(), vectors, rows["author_id"].to_numpy(), chosen
    )
    run = EncoderTraining.read(cfg).run_name if cfg.paths.encoder_training.exists() else None
    directory = index.save(cfg.paths.tweet_index, {"encoder_run": run})
    seconds = time.perf_counter() - started
    log.info("retrieval: indexed %d tweets (%s) in %.1f s", len(index), chosen, seconds)
    return {"tweets": len(index), "kind": chosen, "dir": str(directory), "seconds": seconds}


def embed_fresh_tweets(cfg: FeedrankConfig, tweets: pd.DataFrame, index: TweetIndex) -> int:
    """Embed newly posted tweets (tweet_id, author_id, text, created_at) with the current encoder,
    add them to `index` and push their embeddings to the online store: the path a tweet takes to
    retrieval and ranking between two daily runs. Returns the number of tweets embedded."""
    from pipelines.features.freshness import push_tweet_embeddings
    from pipelines.models.text_encoder import TextEmbedder

    missing = [c for c in ("tweet_id", "author_id", "text", "created_at") if c not in tweets]
    if missing:
        raise ValueError(f"fresh tweets are missing columns {missing}")
    if tweets.empty:
        return 0
    vectors = TextEmbedder.load(cfg.paths.encoder_dir).embed(tweets["text"].astype(str).tolist())
    index.add(tweets["tweet_id"].to_numpy(), vectors, tweets["author_id"].to_numpy())
    push_tweet_embeddings(cfg, tweets[["tweet_id", "created_at"]], vectors)
    return len(tweets)
