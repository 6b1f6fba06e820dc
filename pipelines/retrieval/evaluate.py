"""Retrieval evaluation on the held-out later days: can the index find what viewers engaged with?

For every sampled viewer with an engagement (fav, reply, retweet, quote) in the held-out days, each
method retrieves up to ``max(ks)`` tweets from the same corpus using only what was known at the
split boundary, and is scored by recall@k and NDCG@k against the tweets the viewer engaged with.

- corpus: every root tweet (no ``in_reply_to_tweet_id``) created before the end of the world, so
  both the older tweets still in circulation and those posted during the held-out days; nothing
  else is filtered (``max_corpus`` keeps only the newest, for tests and quick looks).
- query: the viewer's last ``features.viewer_history_size`` engagements before the split (as
  :func:`pipelines.features.embeddings.viewer_embedding_table` builds profiles). Viewers with no
  engagement before the split have no query and are skipped (cold start is not retrieval's job).
- exclusions: tweets served to the viewer before the split and the viewer's own tweets.
- relevant: held-out engagements on corpus tweets that are neither the viewer's own nor served to
  it before the split; anything else is unreachable by construction and would only cap recall.

Methods, all on the same viewers and corpus:

- ``finetuned``: the fine-tuned encoder's tweet embeddings (the ``tweet_embedding`` feature
  source); viewer = viewer tower over the normalized mean of history embeddings, as the pipeline.
- ``untuned``: the pretrained MiniLM with the untrained projection (where fine-tuning starts);
  viewer = normalized mean of history embeddings (its viewer head is the identity).
- ``tfidf``: TF-IDF fitted on the corpus texts, rows L2-normalized; viewer = normalized mean.
- ``popularity``: engagement count before the split, the same list for everyone minus exclusions.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from pipelines.config import FeedrankConfig
from pipelines.evaluate.report import format_value, markdown_table, new_figure

log = logging.getLogger(__name__)

METHODS = ("finetuned", "untuned", "tfidf", "popularity")
DEFAULT_KS = (50, 200, 1000)
SCORE_CHUNK = 256  # viewers per dense [chunk, N] score matrix (tf-idf, popularity)
REPORT_FILE = "retrieval.md"
PLOT_FILE = "retrieval_recall.png"
_METRIC_KEY = re.compile(r"^(?P<method>\w+?)_(?P<metric>recall|ndcg)_at_(?P<k>\d+)$")


# --- metrics ---------------------------------------------------------------------------------


def _top_k(retrieved: Sequence[int] | np.ndarray, k: int) -> list[int]:
    """The first k real ids of a retrieved list [L] (-1 pads dropped), best first."""
    return [int(i) for i in np.asarray(retrieved).ravel().tolist() if i >= 0][:k]


def recall_at_k(retrieved: Sequence[int] | np.ndarray, relevant: set[int], k: int) -> float:
    """Share of the relevant ids found in the top k of ``retrieved`` [L] (unique ids, best first,
    -1 pads ignored). ``relevant`` must be non-empty: callers skip viewers without relevant items."""
    if not relevant:
        raise ValueError("recall@k needs at least one relevant item")
    return len(set(_top_k(retrieved, k)) & relevant) / len(relevant)


def ndcg_at_k(retrieved: Sequence[int] | np.ndarray, relevant: set[int], k: int) -> float:
    """Binary-relevance NDCG@k of ``retrieved`` [L] (unique ids, best first, -1 pads ignored).

    ``DCG = sum over ranks r <= k of [id_r relevant] / log2(r + 1)``; the ideal puts
    ``min(k, |relevant|)`` hits at the top. ``relevant`` must be non-empty.
    """
    if not relevant:
        raise ValueError("NDCG@k needs at least one relevant item")
    hits = np.asarray([i in relevant for i in _top_k(retrieved, k)], dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # [k], rank 1 first
    ideal = float(discounts[: min(k, len(relevant))].sum())
    return float((hits * discounts[: len(hits)]).sum()) / ideal


def retrieval_metrics(
    retrieved: Mapping[str, np.ndarray], relevant: Sequence[set[int]], ks: Sequence[int]
) -> dict[str, float]:
    """Mean recall@k and NDCG@k per method over the viewers.

    retrieved: method -> tweet ids [V, K] (-1 pads), row v for viewer v; relevant: [V] non-empty
    sets. Returns ``{"<method>_recall_at_<k>": ..., "<method>_ndcg_at_<k>": ...}``.
    """
    out: dict[str, float] = {}
    for method, ids in retrieved.items():
        if len(ids) != len(relevant):
            raise ValueError(f"{method}: {len(ids)} retrieved rows for {len(relevant)} viewers")
        for k in ks:
            rows = list(zip(ids, relevant, strict=True))
            out[f"{method}_recall_at_{k}"] = float(np.mean([recall_at_k(r, g, k) for r, g in rows]))
            out[f"{method}_ndcg_at_{k}"] = float(np.mean([ndcg_at_k(r, g, k) for r, g in rows]))
    return out


# --- scorers ---------------------------------------------------------------------------------


def history_profiles(histories: Sequence[Sequence[int] | np.ndarray], vectors: Any) -> Any:
    """Normalized mean of each viewer's history rows: histories [V] lists of row indices into
    ``vectors`` [M, D] (dense ndarray or scipy sparse) -> [V, D] of the same kind, unit rows
    (all-zero for an empty history). Repeated rows count as often as they appear."""
    from sklearn.preprocessing import normalize

    lengths = [len(h) for h in histories]
    columns = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=sum(lengths))
    rows = np.repeat(np.arange(len(histories)), lengths)
    pick = sparse.csr_matrix(
        (np.ones(len(columns)), (rows, columns)), shape=(len(histories), vectors.shape[0])
    )
    sums = pick @ vectors  # the mean's direction is the sum's
    if sparse.issparse(sums):
        return normalize(sparse.csr_matrix(sums), norm="l2")
    return normalize(np.asarray(sums, dtype=np.float64), norm="l2").astype(np.float32)


def tfidf_vectors(corpus_texts: Sequence[str], texts: Sequence[str]) -> sparse.csr_matrix:
    """TF-IDF fitted on ``corpus_texts`` [N] only, applied to ``texts`` [M] -> [M, F] sparse,
    L2-normalized rows (words unseen in the corpus are dropped)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(norm="l2").fit(list(corpus_texts))
    return sparse.csr_matrix(vectorizer.transform(list(texts)))


def tfidf_scores(profiles: Any, corpus: Any) -> np.ndarray:
    """Cosine scores of viewer profiles [V, F] against corpus rows [N, F] (both sparse, unit
    rows) -> dense [V, N] float64."""
    return np.asarray((profiles @ corpus.T).toarray(), dtype=np.float64)


def popularity_scores(corpus_ids: np.ndarray, engaged_tweet_ids: np.ndarray) -> np.ndarray:
    """Engagement count of each corpus tweet [N] from engagement events' tweet ids [E] (one per
    action, before the split) -> [N] float64."""
    counts = pd.Series(engaged_tweet_ids).value_counts()
    return counts.reindex(corpus_ids, fill_value=0).to_numpy(dtype=np.float64)


def rank_by_scores(
    scores: np.ndarray,
    tweet_ids: np.ndarray,
    author_ids: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    exclude_authors: Sequence[int],
) -> np.ndarray:
    """The k best tweets per query from dense scores [Q, N] over tweet_ids/author_ids [N],
    skipping each query's excluded tweet ids and its excluded author's tweets (the semantics of
    :meth:`pipelines.retrieval.TweetIndex.search`). Ties keep corpus order. -> ids [Q, k], -1 pads.
    """
    out = np.full((len(scores), k), -1, dtype=np.int64)
    for q, row in enumerate(np.asarray(scores, dtype=np.float64)):
        blocked = np.isin(tweet_ids, np.fromiter(exclude[q], dtype=np.int64))
        blocked |= author_ids == exclude_authors[q]
        allowed = np.flatnonzero(~blocked)
        best = allowed[np.argsort(-row[allowed], kind="stable")[:k]]
        out[q, : len(best)] = tweet_ids[best]
    return out


# --- the held-out task -----------------------------------------------------------------------


@dataclass
class RetrievalTask:
    """What every method sees. M texts/ids: the N corpus tweets first, then the other tweets in
    the viewers' histories (replies); V viewers, row v of each list for viewer v."""

    corpus_ids: np.ndarray  # [N] tweet ids
    corpus_authors: np.ndarray  # [N]
    tweet_ids: np.ndarray  # [M], corpus first
    texts: list[str]  # [M]
    viewer_ids: np.ndarray  # [V]
    histories: list[np.ndarray]  # [V] row indices into tweet_ids, oldest first
    seen: list[set[int]]  # [V] tweet ids served before the split
    relevant: list[set[int]]  # [V] non-empty
    popularity: np.ndarray  # [N] engagements before the split

    @property
    def corpus_size(self) -> int:
        return len(self.corpus_ids)


def _by_viewer(frame: pd.DataFrame, viewers: np.ndarray) -> list[set[int]]:
    """(viewer_id, tweet_id) rows -> one tweet-id set per viewer in `viewers` (empty if none)."""
    groups = {v: set(g.tolist()) for v, g in frame.groupby("viewer_id")["tweet_id"]}
    return [groups.get(v, set()) for v in viewers.tolist()]


def held_out_task(
    cfg: FeedrankConfig, max_viewers: int | None = 1000, max_corpus: int | None = None
) -> RetrievalTask:
    """Build the corpus, queries, exclusions and relevant sets (module docstring) from the raw
    lake. Viewers are sampled without replacement with ``cfg.world.seed``; ``max_corpus`` keeps
    the newest root tweets only."""
    from pipelines.features.batch import engagement_events
    from pipelines.features.training_set import split_boundary
    from pipelines.lake import lake_span
    from pipelines.schema import read_table

    boundary = split_boundary(cfg)
    lake_end = lake_span(cfg).end
    tweets = read_table(cfg.paths.raw, "tweets")
    impressions = read_table(cfg.paths.raw, "impressions")
    created = pd.to_datetime(tweets["created_at"], utc=True)
    corpus = tweets[tweets["in_reply_to_tweet_id"].isna() & (created < lake_end)]
    corpus = corpus.sort_values(["created_at", "tweet_id"], kind="stable")
    if max_corpus is not None:
        corpus = corpus.tail(max_corpus)
    corpus_ids = corpus["tweet_id"].to_numpy(dtype=np.int64)
    events = engagement_events(impressions, tweets)  # sorted by `at`
    held_out = pd.to_datetime(events["at"], utc=True) >= boundary
    before, after = events[~held_out], events[held_out]
    served = pd.to_datetime(impressions["served_at"], utc=True) < boundary
    served_before = impressions.loc[served, ["viewer_id", "tweet_id"]]

    # Relevant: reachable held-out engagements (in the corpus, not own, not seen before).
    after = after[after["tweet_id"].isin(corpus_ids) & (after["author_id"] != after["viewer_id"])]
    seen_pairs = pd.MultiIndex.from_frame(served_before.drop_duplicates())
    after = after[~pd.MultiIndex.from_frame(after[["viewer_id", "tweet_id"]]).isin(seen_pairs)]
    history = before.groupby("viewer_id", sort=True).tail(cfg.features.viewer_history_size)
    eligible = np.intersect1d(after["viewer_id"].unique(), history["viewer_id"].unique())
    if max_viewers is not None and len(eligible) > max_viewers:
        rng = np.random.default_rng(cfg.world.seed)
        eligible = np.sort(rng.choice(eligible, size=max_viewers, replace=False))
    viewers = eligible.astype(np.int64)

    history = history[history["viewer_id"].isin(viewers)]
    extra = np.setdiff1d(history["tweet_id"].unique(), corpus_ids)
    tweet_ids = np.concatenate([corpus_ids, extra.astype(np.int64)])
    text_of = tweets.set_index("tweet_id")["text"]
    row_of = pd.Series(np.arange(len(tweet_ids)), index=tweet_ids)
    rows = pd.Series(row_of.reindex(history["tweet_id"]).to_numpy(), index=history["viewer_id"])
    rows_by_viewer = {v: g.to_numpy(dtype=np.int64) for v, g in rows.groupby(level=0)}
    return RetrievalTask(
        corpus_ids=corpus_ids,
        corpus_authors=corpus["author_id"].to_numpy(dtype=np.int64),
        tweet_ids=tweet_ids,
        texts=text_of.reindex(tweet_ids).fillna("").astype(str).tolist(),
        viewer_ids=viewers,
        histories=[rows_by_viewer[v] for v in viewers.tolist()],
        seen=_by_viewer(served_before, viewers),
        relevant=_by_viewer(after, viewers),
        popularity=popularity_scores(corpus_ids, before["tweet_id"].to_numpy()),
    )


# --- methods ---------------------------------------------------------------------------------


def _index_retrieval(
    task: RetrievalTask,
    vectors: np.ndarray,
    k: int,
    viewer_tower: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Dense vectors [M, D] (task rows) -> exact FAISS search of the corpus -> ids [V, k]."""
    from pipelines.retrieval.index import TweetIndex

    profiles = history_profiles(task.histories, vectors)
    if viewer_tower is not None:
        profiles = viewer_tower(profiles)
    n = task.corpus_size
    index = TweetIndex.build(task.corpus_ids, vectors[:n], task.corpus_authors, kind="flat")
    found = index.search(profiles, k, exclude=task.seen, exclude_authors=list(task.viewer_ids))
    return found.tweet_ids


def _scored_retrieval(
    task: RetrievalTask, scores_of: Callable[[slice], np.ndarray], k: int
) -> np.ndarray:
    """Dense scores [chunk, N] per chunk of viewers -> ids [V, k] with the same exclusions."""
    parts = []
    for start in range(0, len(task.viewer_ids), SCORE_CHUNK):
        chunk = slice(start, start + SCORE_CHUNK)
        parts.append(
            rank_by_scores(
                scores_of(chunk),
                task.corpus_ids,
                task.corpus_authors,
                k,
                task.seen[chunk],
                task.viewer_ids[chunk].tolist(),
            )
        )
    return np.concatenate(parts) if parts else np.empty((0, k), dtype=np.int64)


def finetuned_retrieval(cfg: FeedrankConfig, task: RetrievalTask, k: int) -> np.ndarray:
    """The fine-tuned encoder's feature-table embeddings + its viewer tower -> ids [V, k]."""
    from pipelines.models.text_encoder import TextEmbedder

    table = pd.read_parquet(
        cfg.paths.feature_table("tweet_embedding"), columns=["tweet_id", "tweet_embedding"]
    ).set_index("tweet_id")["tweet_embedding"]
    rows = table.reindex(task.tweet_ids)
    if rows.isna().any():
        raise ValueError(f"{int(rows.isna().sum())} tweets have no tweet_embedding: rerun embed")
    vectors = np.stack(rows.to_numpy()).astype(np.float32)
    embedder = TextEmbedder.load(cfg.paths.encoder_dir)

    def viewer_tower(profiles: np.ndarray) -> np.ndarray:
        return embedder.embed_viewers(profiles[:, None, :])

    return _index_retrieval(task, vectors, k, viewer_tower)


def untuned_retrieval(cfg: FeedrankConfig, task: RetrievalTask, k: int) -> np.ndarray:
    """The pretrained encoder before fine-tuning, viewer = normalized mean -> ids [V, k]."""
    from pipelines.models.text_encoder import TextEmbedder

    vectors = TextEmbedder.pretrained(cfg.encoder).embed(task.texts)
    return _index_retrieval(task, vectors, k)


def tfidf_retrieval(task: RetrievalTask, k: int) -> np.ndarray:
    """TF-IDF cosine, viewer = normalized mean of history rows -> ids [V, k]."""
    vectors = tfidf_vectors(task.texts[: task.corpus_size], task.texts)
    corpus, profiles = vectors[: task.corpus_size], history_profiles(task.histories, vectors)
    return _scored_retrieval(task, lambda chunk: tfidf_scores(profiles[chunk], corpus), k)


def popularity_retrieval(task: RetrievalTask, k: int) -> np.ndarray:
    """Most engaged tweets before the split, per viewer minus its exclusions -> ids [V, k]."""

    def scores_of(chunk: slice) -> np.ndarray:
        viewers = len(task.viewer_ids[chunk])
        return np.broadcast_to(task.popularity, (viewers, task.corpus_size))

    return _scored_retrieval(task, scores_of, k)


def measure_retrieval(
    cfg: FeedrankConfig,
    ks: Sequence[int] = DEFAULT_KS,
    max_viewers: int | None = 1000,
    max_corpus: int | None = None,
    methods: Sequence[str] = METHODS,
) -> dict[str, float]:
    """Recall@k and NDCG@k of every method on the held-out days (module docstring).

    Returns ``{"viewers": V, "corpus_tweets": N, "<method>_recall_at_<k>": ...,
    "<method>_ndcg_at_<k>": ..., "<method>_seconds": ...}``; only the first two (``V`` = 0, with
    a warning) when no viewer has both a history and a reachable held-out engagement.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown retrieval methods {unknown}; known: {list(METHODS)}")
    task = held_out_task(cfg, max_viewers, max_corpus)
    log.info("retrieval eval: %d viewers, %d corpus tweets", len(task.viewer_ids), task.corpus_size)
    counts = {"viewers": float(len(task.viewer_ids)), "corpus_tweets": float(task.corpus_size)}
    if not len(task.viewer_ids):
        log.warning(
            "retrieval eval: no viewer has a history and a held-out engagement with a corpus "
            "tweet not seen before; nothing to measure"
        )
        return counts
    k = max(ks)
    runners: dict[str, Callable[[], np.ndarray]] = {
        "finetuned": lambda: finetuned_retrieval(cfg, task, k),
        "untuned": lambda: untuned_retrieval(cfg, task, k),
        "tfidf": lambda: tfidf_retrieval(task, k),
        "popularity": lambda: popularity_retrieval(task, k),
    }
    retrieved, seconds = {}, {}
    for method in methods:
        started = time.perf_counter()
        retrieved[method] = runners[method]()
        seconds[f"{method}_seconds"] = round(time.perf_counter() - started, 2)
        log.info("retrieval eval: %s in %.1f s", method, seconds[f"{method}_seconds"])
    metrics = retrieval_metrics(retrieved, task.relevant, ks)
    return {**counts, **metrics, **seconds}


# --- report ----------------------------------------------------------------------------------


def _metric_grid(metrics: Mapping[str, float]) -> tuple[list[str], list[int]]:
    """Methods and ks named by ``<method>_<recall|ndcg>_at_<k>`` keys, in order of appearance."""
    methods: dict[str, None] = {}
    ks: dict[int, None] = {}
    for key in metrics:
        match = _METRIC_KEY.match(key)
        if match:
            methods[match["method"]] = None
            ks[int(match["k"])] = None
    return list(methods), sorted(ks)


def retrieval_report(metrics: Mapping[str, float], images: Sequence[str] = ()) -> str:
    """Markdown: one row per method, recall@k then NDCG@k columns, and links to ``images``."""
    methods, ks = _metric_grid(metrics)
    header = ["method", *(f"recall@{k}" for k in ks), *(f"ndcg@{k}" for k in ks)]
    rows = [
        [m]
        + [format_value(metrics.get(f"{m}_recall_at_{k}")) for k in ks]
        + [format_value(metrics.get(f"{m}_ndcg_at_{k}")) for k in ks]
        for m in methods
    ]
    lines = ["# Retrieval on the held-out days", ""]
    if "viewers" in metrics:
        corpus = int(metrics.get("corpus_tweets", 0))
        lines += [f"Viewers: {int(metrics['viewers'])}. Corpus: {corpus} root tweets.", ""]
    lines += [*markdown_table(header, rows), ""]
    lines += [f"![{Path(name).stem}]({name})" for name in images]
    return "\n".join(lines)


def plot_recall(metrics: Mapping[str, float], path: Path) -> Path:
    """Grouped bars: recall@k (x = k), one bar per method; saved as png at ``path``."""
    methods, ks = _metric_grid(metrics)
    fig = new_figure(max(5.0, 1.6 * len(ks) + 2.0), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(ks), dtype=np.float64)
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        values = [float(metrics.get(f"{method}_recall_at_{k}", np.nan)) for k in ks]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, label=method)
    ax.set_xticks(x, [f"@{k}" for k in ks])
    ax.set_ylabel("recall")
    ax.set_ylim(bottom=0.0)  # recall is small on a large corpus: let the top follow the data
    ax.set_title("Retrieval recall on the held-out days")
    ax.legend()
    fig.savefig(path, dpi=110)
    return path


def log_retrieval(cfg: FeedrankConfig, metrics: Mapping[str, float]) -> Path:
    """Write the report (md, png, json) to the artifact map's `retrieval_reports` and log it with
    the metrics (prefixed ``retrieval_``) to the MLflow run ``retrieval-<cfg.name>``. Returns the
    markdown path."""
    import mlflow

    from pipelines.release.registry import configure_mlflow

    report_dir = cfg.paths.retrieval_reports
    report_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_recall(metrics, report_dir / PLOT_FILE)
    report = report_dir / REPORT_FILE
    report.write_text(retrieval_report(metrics, images=[plot.name]))
    cfg.paths.retrieval_metrics.write_text(json.dumps(dict(metrics), indent=2))
    configure_mlflow(cfg)
    with mlflow.start_run(run_name=f"retrieval-{cfg.name}"):
        mlflow.log_params({k: str(v)[:500] for k, v in cfg.flat().items()})
        mlflow.log_metrics({f"retrieval_{k}": float(v) for k, v in metrics.items() if v == v})
        for path in (report, plot, cfg.paths.retrieval_metrics):
            mlflow.log_artifact(str(path), artifact_path="retrieval")
    return report


def evaluate_retrieval(cfg: FeedrankConfig) -> dict[str, Any]:
    """Recall and NDCG@k of out-of-network retrieval on the held-out days: the fine-tuned encoder
    vs the untuned MiniLM, TF-IDF and popularity; report and plot logged to MLflow. Returns the
    recalls."""
    metrics = measure_retrieval(cfg)
    log_retrieval(cfg, metrics)
    return {k: v for k, v in metrics.items() if "recall_at" in k or k == "viewers"}
