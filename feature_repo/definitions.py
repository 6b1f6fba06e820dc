"""feedrank's Feast definitions: entities, file sources, feature views and one service per model.

Every field (name, type, description), view, push source and service is stated once, as data, in
`pipelines.inputs.catalog`; this file declares the Feast objects by name and builds each from its
catalog entry. Sources are the parquet files of the resolved config's artifact map
(`cfg.paths.feature_table`), TTLs its `features.ttl_days`: the pipeline hands its config over with
`pipelines.features.store.configure_environment`. The same definitions serve training
(`get_historical_features`) and serving (`get_online_features`).
"""

from datetime import timedelta

import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.data_source import DataSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Array, FeastType, Float32, Float64, Int64, String

from pipelines.features.store import repo_feedrank_config
from pipelines.inputs import catalog

CFG = repo_feedrank_config()
TTLS: dict[str, timedelta] = {
    "features": timedelta(days=CFG.features.ttl_days),
    "graph": timedelta(days=catalog.GRAPH_TTL_DAYS),
}
FEAST_TYPES: dict[str, FeastType] = {
    "int64": Int64,
    "float64": Float64,
    "string": String,
    "float32_list": Array(Float32),
    "int64_list": Array(Int64),
    "string_list": Array(String),
}


def _entity(name: str) -> Entity:
    entry = catalog.entity(name)
    return Entity(
        name=entry.name,
        join_keys=[entry.join_key],
        value_type=ValueType.INT64,
        description=entry.description,
    )


def _schema(fields: tuple[catalog.Feature, ...]) -> list[Field]:
    return [
        Field(name=f.name, dtype=FEAST_TYPES[f.kind], description=f.description) for f in fields
    ]


def _file_source(table: str) -> FileSource:
    return FileSource(
        name=f"{table}_source",
        path=str(CFG.paths.feature_table(table)),
        timestamp_field="event_timestamp",
    )


def _push_source(view_name: str) -> PushSource:
    entry = catalog.view(view_name)
    if entry.push is None:
        raise ValueError(f"the catalog gives view {view_name!r} no push source")
    return PushSource(
        name=entry.push.name,
        batch_source=_file_source(entry.table),
        description=entry.push.description,
    )


def _feature_view(name: str, source: DataSource | None = None) -> FeatureView:
    """The catalog's view `name`, reading its batch table unless given its push source."""
    entry = catalog.view(name)
    if (source is None) != (entry.push is None):
        raise ValueError(f"view {name!r}: pass the push source exactly when the catalog has one")
    return FeatureView(
        name=entry.name,
        entities=[ENTITIES[entity] for entity in entry.entities],
        ttl=TTLS[entry.ttl],
        source=source if source is not None else _file_source(entry.table),
        schema=_schema(entry.fields),
        description=entry.description,
    )


def _request_source(name: str) -> RequestSource:
    entry = catalog.request_source(name)
    return RequestSource(
        name=entry.name, schema=_schema(entry.fields), description=entry.description
    )


# Feast compares inferred and declared on-demand fields including their description, so these
# fields carry none; their meanings go into the view's description.
def _on_demand_schema(name: str) -> list[Field]:
    return [
        Field(name=f.name, dtype=FEAST_TYPES[f.kind]) for f in catalog.on_demand_view(name).fields
    ]


def _on_demand_description(name: str) -> str:
    entry = catalog.on_demand_view(name)
    meanings = " ".join(f"{f.name}: {f.description}" for f in entry.fields)
    return f"{entry.description} {meanings}"


def _feature_service(
    name: str, views: dict[str, FeatureView | OnDemandFeatureView]
) -> FeatureService:
    entry = catalog.service(name)
    return FeatureService(
        name=entry.name,
        features=[views[view] for view in entry.views],
        description=entry.description,
    )


tweet = _entity("tweet")
author = _entity("author")
viewer = _entity("viewer")
ENTITIES = {entity.name: entity for entity in (tweet, author, viewer)}

tweet_content = _feature_view("tweet_content")
# Fresh counts reach the online store through this push source without a batch rerun; the batch
# file behind it is the same source the daily pipeline writes.
tweet_engagement_push = _push_source("tweet_engagement")
tweet_engagement = _feature_view("tweet_engagement", tweet_engagement_push)
author_stats = _feature_view("author_stats")
viewer_stats = _feature_view("viewer_stats")
viewer_author = _feature_view("viewer_author")
author_graph = _feature_view("author_graph")
viewer_graph = _feature_view("viewer_graph")
viewer_author_graph = _feature_view("viewer_author_graph")
# A tweet posted between two daily runs is embedded and pushed here (pipelines.features.freshness).
tweet_embedding_push = _push_source("tweet_embedding")
tweet_embedding = _feature_view("tweet_embedding", tweet_embedding_push)
viewer_embedding = _feature_view("viewer_embedding")
author_content = _feature_view("author_content")

request_context = _request_source("request_context")
conversation_context = _request_source("conversation_context")


@on_demand_feature_view(
    sources=[
        tweet_content,
        tweet_engagement,
        viewer_stats,
        tweet_embedding,
        viewer_embedding,
        author_graph,
        viewer_graph,
        request_context,
    ],
    schema=_on_demand_schema("request_time"),
    mode="pandas",
    description=_on_demand_description("request_time"),
)
def request_time(inputs: pd.DataFrame) -> pd.DataFrame:
    from pipelines.inputs.spec import request_time_values

    return request_time_values(inputs)


@on_demand_feature_view(
    sources=[
        tweet_content,
        tweet_engagement,
        author_stats,
        viewer_stats,
        viewer_author,
        viewer_graph,
        tweet_embedding,
        viewer_embedding,
        author_content,
    ],
    schema=_on_demand_schema("request_affinity"),
    mode="pandas",
    description=_on_demand_description("request_affinity"),
)
def request_affinity(inputs: pd.DataFrame) -> pd.DataFrame:
    from pipelines.inputs.spec import affinity_values

    return affinity_values(inputs)


@on_demand_feature_view(
    sources=[conversation_context],
    schema=_on_demand_schema("conversation"),
    mode="pandas",
    description=_on_demand_description("conversation"),
)
def conversation(inputs: pd.DataFrame) -> pd.DataFrame:
    from pipelines.inputs.spec import conversation_values

    return conversation_values(inputs)


VIEWS: dict[str, FeatureView | OnDemandFeatureView] = {
    view.name: view
    for view in (
        tweet_content,
        tweet_engagement,
        author_stats,
        viewer_stats,
        viewer_author,
        author_graph,
        viewer_graph,
        viewer_author_graph,
        tweet_embedding,
        viewer_embedding,
        author_content,
        request_time,
        request_affinity,
        conversation,
    )
}
# One service per ranker version (catalog.FEATURE_SET_SERVICES maps feature sets to them).
ranker_v1 = _feature_service("ranker_v1", VIEWS)
ranker_v2 = _feature_service("ranker_v2", VIEWS)
conversation_v1 = _feature_service("conversation_v1", VIEWS)
