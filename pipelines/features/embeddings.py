"""Text-embedding features: the tweet embedding and the viewer's engaged-text profile.

``tweet_embedding`` is known when the tweet is posted. ``viewer_embedding`` is a daily snapshot at the
end of each day: the normalized mean of the embeddings of the viewer's last engaged tweets, counting
only engagements up to that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig


def tweet_embedding_table(tweets: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    """tweets (tweet_id, created_at) aligned with vectors [N, D] -> the Feast source frame."""
    if len(tweets) != len(vectors):
        raise ValueError(f"{len(tweets)} tweets but {len(vectors)} embeddings")
    return pd.DataFrame(
        {
            "tweet_id": tweets["tweet_id"].to_numpy(),
            "event_timestamp": tweets["created_at"].to_numpy(),
            "tweet_embedding": list(vectors.astype(np.float32)),
        }
    )


def viewer_embedding_table(
    cfg: FeedrankConfig,
    events: pd.DataFrame,
    tweet_ids: np.ndarray,
    vectors: np.ndarray,
    viewer_tower: Callable[[np.ndarray], np.ndarray] | None = None,
) -> pd.DataFrame:
    """Daily viewer profiles from engagement events (viewer_id, tweet_id, at) sorted by `at`.

    viewer_tower maps the normalized mean of engaged-tweet embeddings [V, D] to the viewer vector
    [V, D] (the two-tower model's viewer side); None keeps the normalized mean.
    """
    history = cfg.features.viewer_history_size
    row_of = pd.Series(np.arange(len(tweet_ids)), index=tweet_ids)
    rows = []
    start = pd.Timestamp(cfg.world.start_date, tz="UTC")
    for day in range(cfg.world.days):
        cutoff = start + timedelta(days=day + 1)
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
        rows.append(
            pd.DataFrame(
                {
                    "viewer_id": viewers.astype("int64"),
                    "event_timestamp": cutoff,
                    "viewer_embedding": list(profiles),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
