"""The Feast store of feedrank: apply, materialize, point-in-time training sets.

`feature_repo/` holds the declarative definitions; this module points Feast at the run's state root
(through FEEDRANK_HOME, which `feature_store.yaml` and the definitions read) and runs the operations.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from pipelines.config import REPO_ROOT, FeedrankConfig

log = logging.getLogger(__name__)

FEATURE_REPO = REPO_ROOT / "feature_repo"
FEATURE_SERVICE = "ranker_v1"


def configure_environment(cfg: FeedrankConfig) -> None:
    """Export what the Feast repo reads: the state root and the feature windows."""
    os.environ["FEEDRANK_HOME"] = str(cfg.paths.root_dir)
    os.environ["FEEDRANK_FEATURE_TTL_DAYS"] = str(cfg.features.ttl_days)
    os.environ["FEEDRANK_TWEET_WINDOW_HOURS"] = str(cfg.features.tweet_window_hours)
    os.environ.setdefault("MPLCONFIGDIR", str(cfg.paths.root_dir / "mpl"))
    cfg.paths.feast.mkdir(parents=True, exist_ok=True)


def feature_store(cfg: FeedrankConfig):  # -> feast.FeatureStore (import is slow, kept lazy)
    configure_environment(cfg)
    from feast import FeatureStore

    return FeatureStore(repo_path=str(FEATURE_REPO))


def apply_repo(cfg: FeedrankConfig) -> list[str]:
    """`feast apply` on feature_repo/: registers entities, views and services; returns view names."""
    store = feature_store(cfg)
    from feast.repo_operations import apply_total

    # Feast imports the repo's files as top-level modules, as its CLI does from inside the repo.
    if str(FEATURE_REPO) not in sys.path:
        sys.path.insert(0, str(FEATURE_REPO))
    apply_total(store.config, Path(FEATURE_REPO), skip_source_validation=True)
    views = sorted(v.name for v in store.list_feature_views())
    log.info("feast: applied %d feature views: %s", len(views), views)
    return views


def materialize(cfg: FeedrankConfig, end: datetime | None = None) -> dict[str, float]:
    """Load the latest feature values up to `end` (default: the world's end) into the online store.

    Feast's materialize upserts by entity key, so a rerun over the same interval leaves the same
    online state: the task is safe to retry.
    """
    store = feature_store(cfg)
    start = datetime.combine(cfg.world.start_date, datetime.min.time()) - timedelta(days=30)
    stop = end or datetime.combine(cfg.world.start_date, datetime.min.time()) + timedelta(
        days=cfg.world.days + 1
    )
    started = time.perf_counter()
    store.materialize(start_date=start, end_date=stop)
    seconds = time.perf_counter() - started
    log.info("feast: materialized %s .. %s in %.1f s", start, stop, seconds)
    return {"seconds": seconds}


def historical_features(cfg: FeedrankConfig, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the ranker's feature service onto `entity_df`.

    entity_df needs viewer_id, tweet_id, author_id and event_timestamp (the impression time): every
    feature value comes from a row whose event_timestamp is at or before it, never after.
    """
    store = feature_store(cfg)
    service = store.get_feature_service(FEATURE_SERVICE)
    job = store.get_historical_features(entity_df=entity_df, features=service)
    return job.to_df()
