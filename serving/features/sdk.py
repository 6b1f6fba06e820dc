"""The reference read of online features: the Feast SDK's `get_online_features` with the feature
service, to a frame. Slower than :class:`~serving.features.hydrate.FastOnlineFeatures`, which
serves the same values and is checked against this reader."""

from __future__ import annotations

import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.features.store import feature_service_name, feature_store


class OnlineFeatures:
    """Reads the ranker's features for one viewer and many candidates from Feast's online store."""

    def __init__(self, cfg: FeedrankConfig) -> None:
        self.cfg = cfg
        self.store = feature_store(cfg)
        self.service = self.store.get_feature_service(feature_service_name(cfg))

    def hydrate(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
        """candidates (tweet_id, author_id, in_network) -> one feature row per candidate, same order.

        Keys missing from the store come back as missing values (the model maps them to defaults).
        """
        if candidates.empty:
            raise ValueError("no candidates to hydrate")
        rows = {
            "tweet_id": candidates["tweet_id"].astype("int64").tolist(),
            "author_id": candidates["author_id"].astype("int64").tolist(),
            "viewer_id": [int(viewer_id)] * len(candidates),
            # request data for the `request_time` on-demand view
            "request_time_s": [pd.Timestamp(now).timestamp()] * len(candidates),
            "viewer_follows_author": candidates["in_network"].astype("int64").tolist(),
        }
        return self.store.get_online_features(features=self.service, entity_rows=rows).to_df()
