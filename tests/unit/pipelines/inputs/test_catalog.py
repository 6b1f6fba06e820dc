"""The feature catalog is the one statement of each feature: the ranker's lists derive from it in
the model's input order, and the Feast repo builds its objects from it and from the config it is
handed."""

from __future__ import annotations

import importlib.util
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from pipelines.config import REPO_ROOT, FeedrankConfig, PathsConfig, load_config
from pipelines.features.store import (
    REPO_CONFIG_ENV,
    configure_environment,
    repo_feedrank_config,
)
from pipelines.inputs import catalog, spec

REPO = REPO_ROOT

# The model's inputs as trained models know them; a change here is a change of every model's input
# layout, so these are literal on purpose.
REQUEST = (
    "in_network", "same_language", "tweet_age_hours", "hour_of_day", "day_of_week",
    "viewer_tweet_similarity", "tweet_engagements_decayed", "season", "days_to_holiday",
    "va_social_similarity",
)  # fmt: skip
TWEET = ("tweet_length", "has_image", "has_video", "has_url", "is_reply", "tweet_toxicity")
TWEET_ENGAGEMENT = (
    "tweet_impressions_window", "tweet_engagements_window", "tweet_favs_window",
    "tweet_replies_window", "tweet_retweets_window", "tweet_engagements_total",
    "tweet_engagements_1h", "tweet_engagements_3d", "tweet_engagements_7d", "tweet_favs_3d",
    "tweet_replies_3d", "tweet_retweets_2h",
)  # fmt: skip
AFFINITY = (
    "va_hashtag_similarity", "vt_hashtag_similarity", "va_content_similarity",
    "author_topic_engagement_rate", "tweet_network_engagements_3d", "tweet_network_favs_3d",
    "va_engaged_tweets_norm", "viewer_topic_engagement_rate", "viewer_topic_lift",
)  # fmt: skip
AUTHOR = (
    "author_follower_count", "author_following_count", "author_is_verified",
    "author_engagement_rate", "author_tweets_window", "author_follower_ratio", "author_pagerank",
    "author_tweets_total",
)  # fmt: skip
VIEWER = ("viewer_following_count", "viewer_engagement_rate")
VIEWER_AUTHOR = (
    "va_impressions", "va_engagements", "va_common_followees", "va_engaged_tweets",
    "va_engaged_share",
)  # fmt: skip
DENSE = REQUEST + AFFINITY + TWEET + TWEET_ENGAGEMENT + AUTHOR + VIEWER + VIEWER_AUTHOR
SKELETON = (
    "in_network", "same_language", "tweet_age_hours", "hour_of_day", "day_of_week",
    "viewer_tweet_similarity", "tweet_length", "has_image", "has_video", "has_url", "is_reply",
    "tweet_impressions_window", "tweet_engagements_window", "tweet_favs_window",
    "tweet_replies_window", "tweet_retweets_window", "tweet_engagements_total",
    "author_follower_count", "author_following_count", "author_is_verified",
    "author_engagement_rate", "author_tweets_window", "viewer_following_count",
    "viewer_engagement_rate", "va_impressions", "va_engagements",
)  # fmt: skip
FROM_TEXT = (
    "viewer_tweet_similarity", "va_content_similarity", "author_topic_engagement_rate",
    "viewer_topic_engagement_rate", "viewer_topic_lift",
)  # fmt: skip
LOG = frozenset(
    TWEET_ENGAGEMENT
    + ("tweet_engagements_decayed", "tweet_length", "tweet_age_hours", "author_follower_count")
    + ("author_following_count", "author_tweets_window", "viewer_following_count")
    + ("va_impressions", "va_engagements", "author_follower_ratio", "author_pagerank")
    + ("va_common_followees", "author_tweets_total", "va_engaged_tweets")
    + ("tweet_network_engagements_3d", "tweet_network_favs_3d", "viewer_topic_lift")
    + ("conv_reply_descendants", "conv_size", "conv_age_hours", "conv_reply_age_hours")
)
CONVERSATION = (
    "conv_reply_depth", "conv_root_author_replied", "conv_is_root_author",
    "conv_reply_descendants", "conv_size", "conv_age_hours", "conv_reply_age_hours",
    "conv_replier_follows_root_author", "conv_root_author_follows_replier",
    "conv_descendant_share",
)  # fmt: skip
EMBEDDINGS = ("tweet_embedding", "viewer_embedding")


def test_the_spec_lists_derive_from_the_catalog_in_the_models_input_order() -> None:
    assert spec.REQUEST_FEATURES == REQUEST
    assert spec.TWEET_FEATURES == TWEET
    assert spec.TWEET_ENGAGEMENT_FEATURES == TWEET_ENGAGEMENT
    assert spec.AFFINITY_FEATURES == AFFINITY
    assert spec.AUTHOR_FEATURES == AUTHOR
    assert spec.VIEWER_FEATURES == VIEWER
    assert spec.VIEWER_AUTHOR_FEATURES == VIEWER_AUTHOR
    assert spec.DENSE_FEATURES == DENSE
    assert spec.SKELETON_DENSE_FEATURES == SKELETON
    no_text = tuple(name for name in DENSE if name not in FROM_TEXT)
    assert spec.CONVERSATION_FEATURES == CONVERSATION
    assert {
        "full": DENSE,
        "skeleton": SKELETON,
        "no_text": no_text,
        "conversation": DENSE + CONVERSATION,  # the feed's inputs first, in their positions
    } == spec.FEATURE_SETS
    assert spec.LOG_FEATURES == LOG
    assert spec.EMBEDDING_FEATURES == EMBEDDINGS
    assert spec.feature_names(2, "full")[-4:] == [
        "tweet_embedding_0",
        "tweet_embedding_1",
        "viewer_embedding_0",
        "viewer_embedding_1",
    ]


def test_every_field_has_a_description_and_a_known_dtype_kind() -> None:
    for field in catalog.all_fields():
        assert field.description.strip(), field.name
        assert field.kind in catalog.DTYPE_KINDS, field.name
    for holder in (*catalog.ENTITIES, *catalog.VIEWS, *catalog.ON_DEMAND_VIEWS):
        assert holder.description.strip(), holder.name
    for view in catalog.VIEWS:
        if view.push is not None:
            assert view.push.description.strip(), view.push.name


def test_field_names_are_unique_across_views_and_request_sources() -> None:
    counts = Counter(field.name for field in catalog.all_fields())
    assert [name for name, count in counts.items() if count > 1] == []
    holders = [h.name for h in (*catalog.VIEWS, *catalog.REQUEST_SOURCES, *catalog.ON_DEMAND_VIEWS)]
    assert len(holders) == len(set(holders))


def test_dense_positions_number_each_group_from_zero_without_gaps() -> None:
    groups = {**catalog.DENSE_GROUPS, **catalog.CONVERSATION_DENSE_GROUPS}
    for group, views in groups.items():
        positions = sorted(
            field.dense
            for view in views
            for field in catalog.fields_of(view)
            if field.dense is not None
        )
        assert positions == list(range(len(positions))), group
    grouped = {view for views in groups.values() for view in views}
    for field in catalog.all_fields():
        if field.dense is not None:
            assert field.kind in ("int64", "float64"), field.name
    for holder in (*catalog.VIEWS, *catalog.ON_DEMAND_VIEWS):
        if any(field.dense is not None for field in holder.fields):
            assert holder.name in grouped, f"{holder.name} has dense fields but no group"


def test_the_model_flags_are_consistent() -> None:
    dense = {field.name for field in catalog.conversation_dense_inputs()}  # the feed's and more
    for field in catalog.all_fields():
        # Only dense inputs are log-transformed or in the reduced sets.
        if field.log or field.skeleton:
            assert field.name in dense, field.name
        if field.vector:
            assert field.kind == "float32_list" and field.dense is None, field.name
            # A text-free feature set drops every vector input (spec.embedding_features).
            assert field.reads_text, field.name
    assert {field.name for field in catalog.all_fields() if field.reads_text} >= set(FROM_TEXT)


def test_views_services_and_groups_name_what_the_catalog_declares() -> None:
    entities = {entity.name for entity in catalog.ENTITIES}
    views = {view.name for view in (*catalog.VIEWS, *catalog.ON_DEMAND_VIEWS)}
    for view in catalog.VIEWS:
        assert view.entities and set(view.entities) <= entities, view.name
        assert view.ttl in ("features", "graph"), view.name
    for group_views in catalog.DENSE_GROUPS.values():
        assert set(group_views) <= views
    for service in catalog.SERVICES:
        assert set(service.views) <= views, service.name
    assert set(catalog.FEATURE_SET_SERVICES.values()) <= {
        service.name for service in catalog.SERVICES
    }
    assert set(spec.FEATURE_SETS) == set(catalog.FEATURE_SET_SERVICES)


def test_the_on_demand_views_output_what_specs_functions_return() -> None:
    now = pd.Timestamp("2026-03-05 10:00", tz="UTC").timestamp()
    rows = pd.DataFrame(
        {
            "request_time_s": [now, now],
            "viewer_follows_author": [1, 0],
            "tweet_created_s": [now - 3600.0, np.nan],
            "tweet_language": ["en", None],
            "viewer_language": ["en", "en"],
        }
    )
    assert set(spec.ON_DEMAND_COLUMNS) == {view.name for view in catalog.ON_DEMAND_VIEWS}
    for view in catalog.ON_DEMAND_VIEWS:
        out = spec.ON_DEMAND_COLUMNS[view.name](rows)
        assert list(out) == [field.name for field in view.fields], view.name
        assert all(field.kind == "float64" for field in view.fields), view.name
        assert all(values.dtype == np.float64 for values in out.values()), view.name


def test_the_decay_constant_is_the_one_batch_and_spec_use() -> None:
    from pipelines.features import batch

    assert spec.ENGAGEMENT_DECAY_HOURS is catalog.ENGAGEMENT_DECAY_HOURS
    assert batch.ENGAGEMENT_DECAY_HOURS is catalog.ENGAGEMENT_DECAY_HOURS


@pytest.fixture
def no_handed_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore the hand-over variable after the test (configure_environment sets it)."""
    monkeypatch.setenv(REPO_CONFIG_ENV, "")


def _edited_config(tmp_path: Path) -> FeedrankConfig:
    cfg = load_config("smoke")
    return cfg.model_copy(
        update={
            "paths": PathsConfig(root=str(tmp_path / "state")),
            "features": cfg.features.model_copy(update={"ttl_days": 7}),
        }
    )


@pytest.mark.usefixtures("no_handed_config")
def test_the_repo_is_handed_the_config_as_modified_in_memory(tmp_path: Path) -> None:
    cfg = _edited_config(tmp_path)
    path = configure_environment(cfg)
    assert path.parent == cfg.paths.feast
    handed = repo_feedrank_config()
    assert handed == load_config(path) == cfg
    assert handed.name == "smoke" and handed.features.ttl_days == 7
    assert handed.paths.feature_table("author_stats") == cfg.paths.feature_table("author_stats")


@pytest.mark.usefixtures("no_handed_config")
def test_the_handed_config_pins_the_state_root_the_pipeline_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path / "home"))
    configure_environment(FeedrankConfig())
    monkeypatch.delenv("FEEDRANK_HOME")
    assert repo_feedrank_config().paths.root_dir == tmp_path / "home"


@pytest.mark.usefixtures("no_handed_config")
def test_without_a_handed_config_the_repo_loads_the_named_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_CONFIG", "smoke")
    assert repo_feedrank_config() == load_config("smoke")
    monkeypatch.setenv(REPO_CONFIG_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(FileNotFoundError, match="gone.yaml"):
        repo_feedrank_config()


def _definitions() -> ModuleType:
    """A fresh import of feature_repo/definitions.py (Feast imports it the same way)."""
    path = REPO / "feature_repo" / "definitions.py"
    module_spec = importlib.util.spec_from_file_location("feature_catalog_definitions", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("no_handed_config")
def test_the_feast_objects_are_built_from_the_catalog_and_the_handed_config(
    tmp_path: Path,
) -> None:
    from feast import FeatureService, FeatureView, PushSource
    from feast.on_demand_feature_view import OnDemandFeatureView

    cfg = _edited_config(tmp_path)
    configure_environment(cfg)
    module = vars(_definitions())
    views = {v.name: v for v in module.values() if isinstance(v, FeatureView)}
    assert sorted(views) == sorted(view.name for view in catalog.VIEWS)
    for entry in catalog.VIEWS:
        view = views[entry.name]
        assert [(f.name, f.description) for f in view.features] == [
            (f.name, f.description) for f in entry.fields
        ]
        assert sorted(view.entities) == sorted(entry.entities)
        days = cfg.features.ttl_days if entry.ttl == "features" else catalog.GRAPH_TTL_DAYS
        assert view.ttl == timedelta(days=days)
        assert view.batch_source.path == str(cfg.paths.feature_table(entry.name))
        if entry.push is not None:
            assert isinstance(view.stream_source, PushSource)
            assert view.stream_source.name == entry.push.name
    on_demand = {v.name: v for v in module.values() if isinstance(v, OnDemandFeatureView)}
    for entry in catalog.ON_DEMAND_VIEWS:
        # Feast keeps no description on on-demand fields; the view's description carries them.
        assert [f.name for f in on_demand[entry.name].features] == [f.name for f in entry.fields]
        assert all(f.description in on_demand[entry.name].description for f in entry.fields)
    services = {s.name: s for s in module.values() if isinstance(s, FeatureService)}
    for entry in catalog.SERVICES:
        projections = services[entry.name].feature_view_projections
        assert [p.name for p in projections] == list(entry.views)
