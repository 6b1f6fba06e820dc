"""Text-embedding features: the tweet embedding and the viewer's engaged-text profile.

``tweet_embedding`` is known when the tweet is posted. ``viewer_embedding`` is a daily snapshot at the
end of each day: the normalized mean of the embeddings of the viewer's last engaged tweets, counting
only engagements up to that moment. `author_content` summarizes what each author writes about.
:func:`embed` (the `embed` step) computes all three with the fine-tuned encoder.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.inputs.spec import epoch_seconds
from pipelines.lake import LakeSpan, lake_span


def tweet_embedding_table(
    tweets: pd.DataFrame, vectors: np.ndarray, topics: np.ndarray | None = None
) -> pd.DataFrame:
    """tweets (tweet_id, created_at) aligned with vectors [N, D] and topic ids [N] -> Feast source."""
    if len(tweets) != len(vectors):
        raise ValueError(f"{len(tweets)} tweets but {len(vectors)} embeddings")
    table = pd.DataFrame(
        {
            "tweet_id": tweets["tweet_id"].to_numpy(),
            "event_timestamp": tweets["created_at"].to_numpy(),
            "tweet_embedding": list(vectors.astype(np.float32)),
        }
    )
    if topics is not None:
        table["tweet_topic"] = np.asarray(topics, dtype=np.int64)
    return table


def topic_clusters(
    vectors: np.ndarray, fit_rows: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Topic id of every tweet: k-means on the text embeddings of `fit_rows` (bool [N]), then the
    nearest centroid for all [N]. Returns (topics [N] int64, centroids [K, D] float32). The world's
    topics are latent; the encoder makes them legible."""
    from sklearn.cluster import KMeans

    fit = vectors[fit_rows] if fit_rows.any() else vectors
    k = max(1, min(k, len(fit)))
    model = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(fit.astype(np.float64))
    topics = model.predict(vectors.astype(np.float64)).astype(np.int64)
    return topics, model.cluster_centers_.astype(np.float32)


def nearest_topic(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, D] vectors, [K, D] centroids -> [N] index of the nearest centroid (squared L2)."""
    distances = (
        (vectors**2).sum(axis=1, keepdims=True) - 2 * vectors @ centroids.T + (centroids**2).sum(1)
    )
    return distances.argmin(axis=1).astype(np.int64)


TOPIC_RATE_PRIOR = 20.0  # pseudo-impressions pulling an author's topic rate to the topic's rate


def author_content_table(
    span: LakeSpan,
    tweets: pd.DataFrame,
    vectors: np.ndarray,
    topics: np.ndarray,
    impressions: pd.DataFrame,
    events: pd.DataFrame,
) -> pd.DataFrame:
    """Daily author snapshots (the lake's start, then each day's end) of what the author writes
    about.

    author_content_embedding: unit mean of the embeddings of the author's tweets posted before the
    snapshot. author_topic_rates [K]: engagements / impressions of the author's tweets per topic,
    smoothed toward the topic's global rate, counting impressions and engagements before it.
    """
    k = int(topics.max()) + 1 if len(topics) else 1
    authors = np.unique(tweets["author_id"].to_numpy())
    row_of_author = pd.Series(np.arange(len(authors)), index=authors)
    topic_of = pd.Series(topics, index=tweets["tweet_id"].to_numpy())
    author_of = pd.Series(tweets["author_id"].to_numpy(), index=tweets["tweet_id"].to_numpy())
    created = epoch_seconds(tweets["created_at"]).to_numpy()
    tweet_authors = row_of_author.reindex(tweets["author_id"]).to_numpy()

    def keyed(tweet_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        rows = row_of_author.reindex(author_of.reindex(tweet_ids).to_numpy()).to_numpy()
        topic = topic_of.reindex(tweet_ids).to_numpy()
        known = ~(np.isnan(rows) | np.isnan(topic))
        return rows[known].astype(int) * k + topic[known].astype(int), known

    view_keys, view_known = keyed(impressions["tweet_id"])
    served = epoch_seconds(impressions["served_at"]).to_numpy()[view_known]
    event_keys, event_known = keyed(events["tweet_id"])
    engaged_at = epoch_seconds(events["at"]).to_numpy()[event_known]
    frames = []
    for stamp in span.midnights():
        cutoff = stamp.timestamp()
        posted = created < cutoff
        sums = np.zeros((len(authors), vectors.shape[1]))
        np.add.at(sums, tweet_authors[posted].astype(int), vectors[posted])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        views = np.bincount(view_keys[served < cutoff], minlength=len(authors) * k)
        engaged = np.bincount(event_keys[engaged_at < cutoff], minlength=len(authors) * k)
        views, engaged = views.reshape(-1, k), engaged.reshape(-1, k)
        topic_rate = (engaged.sum(axis=0) + 1.0) / (views.sum(axis=0) + 10.0)  # [K]
        rates = (engaged + TOPIC_RATE_PRIOR * topic_rate) / (views + TOPIC_RATE_PRIOR)
        frames.append(
            pd.DataFrame(
                {
                    "author_id": authors.astype("int64"),
                    "event_timestamp": stamp,
                    "author_content_embedding": list(
                        (sums / np.maximum(norms, 1e-9)).astype(np.float32)
                    ),
                    "author_topic_rates": list(rates.astype(np.float32)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def viewer_embedding_table(
    cfg: FeedrankConfig,
    span: LakeSpan,
    events: pd.DataFrame,
    tweet_ids: np.ndarray,
    vectors: np.ndarray,
    viewer_tower: Callable[[np.ndarray], np.ndarray] | None = None,
    topics: np.ndarray | None = None,
    impressions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Daily viewer profiles (at the end of each day of `span`) from engagement events
    (viewer_id, tweet_id, at) sorted by `at`.

    viewer_tower maps the normalized mean of engaged-tweet embeddings [V, D] to the viewer vector
    [V, D] (the two-tower model's viewer side); None keeps the normalized mean. With the topic
    of every tweet (`topics` [T], aligned with `tweet_ids`) and the impressions, each row also
    gets viewer_topic_rates [K] (:func:`viewer_topic_rates`).
    """
    history = cfg.features.viewer_history_size
    row_of = pd.Series(np.arange(len(tweet_ids)), index=tweet_ids)
    rates = None
    if topics is not None and impressions is not None:
        rates = ViewerTopicCounts(tweet_ids, topics, impressions, events)
    rows = []
    for cutoff in span.midnights()[1:]:
        known = events[events["at"] < cutoff]
        last = known.groupby("viewer_id", sort=True).tail(history)
        positions = row_of.reindex(last["tweet_id"]).to_numpy()
        keep = ~np.isnan(positions)
        last, positions = last[keep], positions[keep].astype(int)
        viewers, inverse = np.unique(last["viewer_id"].to_numpy(), return_inverse=True)
        sums = np.zeros((len(viewers), vectors.shape[1]))
        np.add.at(sums, inverse, vectors[positions])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        profiles = (sums / np.maximum(norms, 1e-9)).astype(np.float32)
        if viewer_tower is not None and len(profiles):
            profiles = viewer_tower(profiles).astype(np.float32)
        day_rows = pd.DataFrame(
            {
                "viewer_id": viewers.astype("int64"),
                "event_timestamp": cutoff,
                "viewer_embedding": list(profiles),
            }
        )
        if rates is not None:
            day_rows["viewer_topic_rates"] = list(rates.before(cutoff.timestamp(), viewers))
        rows.append(day_rows)
    return pd.concat(rows, ignore_index=True)


VIEWER_TOPIC_PRIOR = 5.0  # pseudo-impressions pulling a viewer's topic rate to its overall rate


class ViewerTopicCounts:
    """Impressions and engagements of every viewer per tweet topic, queryable as of a moment.

    ``before(cutoff, viewers)`` gives ``[V, K]`` float32 rates: engagements / impressions of the
    viewer on each topic before `cutoff`, smoothed toward the viewer's own overall rate (itself
    smoothed toward the global rate) with VIEWER_TOPIC_PRIOR pseudo-impressions. It estimates
    how much more than usual the viewer engages with a topic: its latent interest.
    """

    def __init__(
        self,
        tweet_ids: np.ndarray,
        topics: np.ndarray,
        impressions: pd.DataFrame,
        events: pd.DataFrame,
    ) -> None:
        self.k = int(topics.max()) + 1 if len(topics) else 1
        topic_of = pd.Series(topics, index=tweet_ids)

        def keyed(frame: pd.DataFrame, at: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            topic = topic_of.reindex(frame["tweet_id"].to_numpy()).to_numpy()
            known = ~np.isnan(topic)
            return (
                frame["viewer_id"].to_numpy()[known].astype(np.int64),
                topic[known].astype(np.int64),
                epoch_seconds(frame[at]).to_numpy()[known],
            )

        self.views = keyed(impressions, "served_at")
        self.engaged = keyed(events, "at")

    def _counts(
        self, table: tuple[np.ndarray, np.ndarray, np.ndarray], cutoff: float, viewers: np.ndarray
    ) -> np.ndarray:
        viewer, topic, at = table
        row = pd.Series(np.arange(len(viewers)), index=viewers).reindex(viewer).to_numpy()
        keep = (at < cutoff) & ~np.isnan(row)
        keys = row[keep].astype(np.int64) * self.k + topic[keep]
        counts = np.bincount(keys, minlength=len(viewers) * self.k)
        return counts.reshape(len(viewers), self.k).astype(np.float64)

    def before(self, cutoff: float, viewers: np.ndarray) -> np.ndarray:
        views = self._counts(self.views, cutoff, viewers)
        engaged = self._counts(self.engaged, cutoff, viewers)
        overall = (engaged.sum() + 1.0) / (views.sum() + 10.0)
        viewer_rate = (engaged.sum(axis=1) + 10.0 * overall) / (views.sum(axis=1) + 10.0)
        rates = (engaged + VIEWER_TOPIC_PRIOR * viewer_rate[:, None]) / (views + VIEWER_TOPIC_PRIOR)
        return rates.astype(np.float32)


def embed(cfg: FeedrankConfig) -> dict[str, int]:
    """Tweet, author and viewer embedding features from the fine-tuned encoder, written as Feast
    sources; the topic centroids (fitted on the days before the held-out ones) are saved so that
    fresh tweets get their topic from the same clusters."""
    from pipelines.features.batch import engagement_events, write_feature_table
    from pipelines.features.training_set import split_boundary
    from pipelines.models.batch_inference import embed_texts
    from pipelines.models.text_encoder import TextEmbedder
    from pipelines.schema import read_table

    tweets = read_table(cfg.paths.raw, "tweets")
    vectors = embed_texts(cfg, cfg.paths.encoder_dir, tweets["text"].tolist())
    fit_rows = (pd.to_datetime(tweets["created_at"], utc=True) < split_boundary(cfg)).to_numpy()
    topics, centroids = topic_clusters(
        vectors, fit_rows, cfg.features.topic_clusters, cfg.world.seed
    )
    np.save(cfg.paths.topic_centroids, centroids)
    write_feature_table(cfg, "tweet_embedding", tweet_embedding_table(tweets, vectors, topics))
    impressions = read_table(cfg.paths.raw, "impressions")
    events = engagement_events(impressions, tweets)
    span = lake_span(cfg)
    authors = author_content_table(span, tweets, vectors, topics, impressions, events)
    write_feature_table(cfg, "author_content", authors)
    embedder = TextEmbedder.load(cfg.paths.encoder_dir)

    def viewer_tower(profiles: np.ndarray) -> np.ndarray:
        return embedder.embed_viewers(profiles[:, None, :])

    viewers = viewer_embedding_table(
        cfg, span, events, tweets["tweet_id"].to_numpy(), vectors, viewer_tower, topics, impressions
    )
    write_feature_table(cfg, "viewer_embedding", viewers)
    return {"tweets": len(tweets), "viewer_rows": len(viewers)}
