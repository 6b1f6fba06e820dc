"""The Feast store of feedrank: apply, materialize, point-in-time training sets.

`feature_repo/` holds the declarative definitions and `feature_store.yaml` (project, registry,
offline store, and the sqlite online store the `feast` CLI uses). The pipeline reads that yaml the way
Feast does (``${FEEDRANK_HOME}`` expanded, to its config's state root) and swaps in the online store
its config names (`features.online_store`: sqlite under the state root, or redis at
`features.redis_connection`), so one config key moves serving from a file to Redis. The definitions
build their sources and TTLs from the same resolved config (:func:`configure_environment`).

Materialization contract (:func:`materialize`):

- incremental: a view is loaded in full once (all rows up to `end`), then each run reads only the
  window since the end it was last loaded to (Feast also records each load in the registry's
  materialization intervals, which tell us whether anyone else loaded the view since);
- idempotent: a rerun for an interval already loaded writes nothing, and a reload writes the same
  latest-per-key rows again, so the online state is the same;
- retryable: views load one at a time and a view's record is written only after its rows are (and
  dropped before a reload empties it), so a retry redoes exactly the views that did not finish;
- never stale: the daily pipeline rewrites its source files whole (a new encoder rewrites every
  embedding at the same event times), which an interval-based increment would never see. A digest of
  each view's definition and of its source rows up to the recorded end is kept next to the registry;
  when it changes, the view's online rows are dropped and reloaded in full.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any, Literal

import pandas as pd
import yaml

from pipelines.clock import SimClock
from pipelines.config import REPO_ROOT, FeedrankConfig, load_config
from pipelines.inputs import catalog
from pipelines.lake import lake_span

log = logging.getLogger(__name__)

FEATURE_REPO = REPO_ROOT / "feature_repo"
FEATURE_STORE_YAML = FEATURE_REPO / "feature_store.yaml"


def feature_service_name(cfg: FeedrankConfig) -> str:
    """The Feast FeatureService of the ranker feature set `cfg` trains and serves."""
    return catalog.FEATURE_SET_SERVICES[cfg.ranker.feature_set]


# Digest of what each view's online rows were loaded from, kept beside the registry.
MATERIALIZED_MANIFEST = "materialized.json"
# A first load takes every row up to `end`: the online store holds the latest row per key.
HISTORY_START = datetime(1970, 1, 1, tzinfo=UTC)

LoadMode = Literal["full", "reload", "incremental", "up_to_date"]


# Feast imports feature_repo/definitions.py itself, so the config cannot reach it as an argument:
# configure_environment writes the resolved config to a file under the feast folder and names that
# file in this variable, the one hand-over; definitions.py loads it (:func:`repo_feedrank_config`).
REPO_CONFIG_ENV = "FEEDRANK_REPO_CONFIG"


def configure_environment(cfg: FeedrankConfig) -> Path:
    """Hand `cfg` to the Feast repo: write it, with its state root resolved, under the feast folder
    and point REPO_CONFIG_ENV at the file. Returns the file."""
    os.environ.setdefault("MPLCONFIGDIR", str(cfg.paths.matplotlib))
    cfg.paths.feast.mkdir(parents=True, exist_ok=True)
    # The root as this process resolves it (FEEDRANK_HOME or paths.root), so the file alone says
    # where the state is.
    pinned = cfg.model_copy(
        update={"paths": cfg.paths.model_copy(update={"root": str(cfg.paths.root_dir)})}
    )
    text = yaml.safe_dump(pinned.model_dump(mode="json", by_alias=True), sort_keys=False)
    path = cfg.paths.feast_repo_config
    # Stores are opened on every push and by each serving replica: rewrite only a changed config,
    # atomically, so a concurrent reader never sees half a file.
    if not path.exists() or path.read_text() != text:
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)
    os.environ[REPO_CONFIG_ENV] = str(path)
    return path


def repo_feedrank_config() -> FeedrankConfig:
    """The config feature_repo/definitions.py builds its objects from: the file that
    :func:`configure_environment` wrote, or, for the `feast` CLI run by hand without it,
    :func:`load_config` (FEEDRANK_CONFIG, else the default config)."""
    handed = os.environ.get(REPO_CONFIG_ENV)
    if not handed:
        return load_config()
    if not Path(handed).is_file():
        raise FileNotFoundError(f"{REPO_CONFIG_ENV} names {handed}, which does not exist")
    return load_config(handed)


def online_store_settings(cfg: FeedrankConfig) -> dict[str, str]:
    """The `online_store` section of the Feast config that `cfg.features.online_store` names."""
    if cfg.features.online_store == "redis":
        return {"type": "redis", "connection_string": cfg.features.redis_connection}
    return {"type": "sqlite", "path": str(cfg.paths.feast_online_db)}


def repo_config(cfg: FeedrankConfig):  # -> feast.RepoConfig
    """feature_store.yaml, expanded as Feast expands it but with `cfg`'s state root as
    ${FEEDRANK_HOME}, and with the online store from `cfg`."""
    configure_environment(cfg)
    from feast.repo_config import RepoConfig

    variables = {**os.environ, "FEEDRANK_HOME": str(cfg.paths.root_dir)}
    raw = yaml.safe_load(Template(FEATURE_STORE_YAML.read_text()).safe_substitute(variables))
    raw["online_store"] = online_store_settings(cfg)
    config = RepoConfig(**raw)
    config.repo_path = FEATURE_REPO
    return config


def feature_store(cfg: FeedrankConfig):  # -> feast.FeatureStore (import is slow, kept lazy)
    config = repo_config(cfg)
    from feast import FeatureStore

    return FeatureStore(repo_path=str(FEATURE_REPO), config=config)


@contextmanager
def _inside_feature_repo() -> Iterator[None]:
    """Feast's apply chdirs into the repo and imports its files as top-level modules, as its CLI
    does; undo the chdir, and drop cached modules so the definitions re-read the handed config."""
    cwd = Path.cwd()
    for path in FEATURE_REPO.glob("*.py"):
        module = sys.modules.get(path.stem)
        if module is not None and Path(getattr(module, "__file__", "") or "") == path:
            del sys.modules[path.stem]
    if str(FEATURE_REPO) not in sys.path:
        sys.path.insert(0, str(FEATURE_REPO))
    try:
        yield
    finally:
        os.chdir(cwd)


def apply_repo(cfg: FeedrankConfig) -> list[str]:
    """`feast apply` on feature_repo/: registers entities, views and services; returns view names."""
    store = feature_store(cfg)
    from feast.repo_operations import apply_total

    with _inside_feature_repo():
        apply_total(store.config, Path(FEATURE_REPO), skip_source_validation=True)
    views = sorted(v.name for v in store.list_feature_views())
    log.info("feast: applied %d feature views: %s", len(views), views)
    return views


def apply_features(cfg: FeedrankConfig) -> dict[str, Any]:
    """`feast apply` on feature_repo/ (the `apply_features` step)."""
    return {"feature_views": len(apply_repo(cfg))}


def materialize_end(cfg: FeedrankConfig) -> datetime:
    """The default end of materialization, UTC: the midnight after the simulated clock's day
    (the rows stamped at the clock's own midnight are then in), or without a clock the midnight
    after the day that follows the lake's last day."""
    clock = SimClock.of(cfg)
    if clock.exists():
        return (clock.now().normalize() + pd.Timedelta(days=1)).to_pydatetime()
    return (lake_span(cfg).end + pd.Timedelta(days=1)).to_pydatetime()


def materialize(
    cfg: FeedrankConfig,
    end: datetime | None = None,
    *,
    feature_views: Sequence[str] | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """Bring the online store up to `end` (default: :func:`materialize_end`; naive times are UTC).

    Each view (default: every online view) is loaded in full the first time, then incrementally
    from the end it was last loaded to; a view already loaded to `end` or later is left as it is.
    See the module docstring for the idempotence and staleness contract. `full=True` drops and
    reloads every selected view (also the way to move a view back to an earlier `end`). Returns the
    seconds taken, the end and each view's load mode (full, reload, incremental or up_to_date).
    """
    store = feature_store(cfg)
    stop = _utc(end) if end is not None else materialize_end(cfg)
    views = _online_views(store, feature_views)
    manifest_path = cfg.paths.materialized_manifest
    manifest = _read_manifest(manifest_path)
    started = time.perf_counter()
    modes: dict[str, LoadMode] = {}
    for view in views:
        view_started = time.perf_counter()
        mode, window_start = _plan(view, manifest.get(view.name), stop, full)
        if mode == "reload":
            # Forget the old load first: a crash after the drop must lead to a reload, not an
            # increment on top of rows that are gone.
            manifest.pop(view.name, None)
            _write_manifest(manifest_path, manifest)
            _drop_online_rows(store, view)
        if mode != "up_to_date":
            store.materialize(start_date=window_start, end_date=stop, feature_views=[view.name])
            manifest[view.name] = _record(view, stop)
            _write_manifest(manifest_path, manifest)
        modes[view.name] = mode
        log.info(
            "feast: %s %s to %s in %.1f s",
            view.name,
            mode,
            stop,
            time.perf_counter() - view_started,
        )
    seconds = time.perf_counter() - started
    log.info("feast: materialized %d views up to %s in %.1f s", len(views), stop, seconds)
    return {"seconds": seconds, "end": stop.isoformat(), "views": modes}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _online_views(store: Any, names: Sequence[str] | None) -> list[Any]:
    """The batch views served online (on-demand views are computed at read time), by name."""
    views = {v.name: v for v in store.list_feature_views() if v.online}
    if names is None:
        return [views[name] for name in sorted(views)]
    unknown = sorted(set(names) - set(views))
    if unknown:
        raise ValueError(f"no online feature views named {unknown}; known: {sorted(views)}")
    return [views[name] for name in names]


def _plan(
    view: Any, record: dict[str, str] | None, stop: datetime, full: bool
) -> tuple[LoadMode, datetime]:
    """How to bring one view to `stop`, and where its materialization window starts."""
    registry_end = view.most_recent_end_time
    if registry_end is None and record is None:
        return "full", HISTORY_START
    if full or registry_end is None or record is None or not _still_valid(view, record):
        # Loaded from data that has changed since, or by someone else (`feast materialize`).
        return "reload", HISTORY_START
    loaded_end = datetime.fromisoformat(record["end"])
    return ("up_to_date" if loaded_end >= stop else "incremental"), loaded_end


def _still_valid(view: Any, record: dict[str, str]) -> bool:
    """The view's online rows are what the recorded load wrote: nobody has materialized it since
    (Feast's registry end is the one that load left) and neither its definition nor its source rows
    up to the loaded end have changed."""
    registry_end = _utc(view.most_recent_end_time).isoformat()
    return record.get("registry_end") == registry_end and record.get("digest") == _view_digest(
        view, datetime.fromisoformat(record["end"])
    )


def _record(view: Any, stop: datetime) -> dict[str, str]:
    """What a load of `view` up to `stop` leaves in the manifest."""
    before = view.most_recent_end_time
    # Feast's registry end is the latest end of any load (a load to an earlier end keeps it).
    registry_end = stop if before is None else max(_utc(before), stop)
    return {
        "end": stop.isoformat(),
        "registry_end": registry_end.isoformat(),
        "digest": _view_digest(view, stop),
    }


def _view_digest(view: Any, upto: datetime) -> str:
    """Digest of what the view's online rows are made of: its keys, features and source, and the
    source rows with event time <= `upto` (the rows a load up to `upto` reads: Feast's window is
    closed at both ends). Rows appended later leave it unchanged; a rewritten or late-arriving row
    changes it."""
    import hashlib

    source = view.batch_source
    path = getattr(source, "path", None)
    definition = (
        [column.name for column in view.entity_columns],
        [(feature.name, str(feature.dtype)) for feature in view.features],
        path or source.name,
        source.timestamp_field,
    )
    digest = hashlib.sha256(repr(definition).encode())
    if path and Path(path).exists():
        import duckdb

        query = (
            "SELECT count(*), sum(hash(t)::HUGEINT)::VARCHAR FROM read_parquet(?) AS t "
            f'WHERE t."{source.timestamp_field}" <= ?'
        )
        with duckdb.connect() as con:
            count, rows_hash = con.execute(query, [str(path), upto]).fetchone()  # type: ignore[misc]
        digest.update(f"{count}|{rows_hash}".encode())
    # Sources other than local files (a warehouse table) are trusted to be append-only.
    return digest.hexdigest()


def _drop_online_rows(store: Any, view: Any) -> None:
    """Empty the view's online table (sqlite drops and recreates it; redis deletes its fields)."""
    from feast.infra.provider import get_provider

    provider = get_provider(store.config)
    nothing: list[Any] = []
    provider.update_infra(store.project, [view], nothing, nothing, nothing, partial=True)
    provider.update_infra(store.project, nothing, [view], nothing, nothing, partial=True)


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else {}


def _write_manifest(path: Path, manifest: dict[str, dict[str, Any]]) -> None:
    # Written after each view, atomically, so a crash never leaves a half-written record.
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    partial.replace(path)


def historical_features(
    cfg: FeedrankConfig, entity_df: pd.DataFrame, service_name: str | None = None
) -> pd.DataFrame:
    """Point-in-time join of a feature service (default: the ranker's) onto `entity_df`.

    entity_df needs viewer_id, tweet_id, author_id and event_timestamp (the impression time), and
    the request data the service's on-demand views read: every feature value comes from a row
    whose event_timestamp is at or before it, never after.
    """
    store = feature_store(cfg)
    service = store.get_feature_service(service_name or feature_service_name(cfg))
    job = store.get_historical_features(entity_df=entity_df, features=service)
    return job.to_df()
