"""The feature service resolved once against the Feast registry: which views to read, how their
rows are keyed, and which on-demand views to compute on what."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.features.keys import KeyEncoder
from serving.features.values import column_kind


@dataclass(frozen=True)
class ViewPlan:
    """One feature view of the service: what to read and how its rows are keyed.

    join_keys: the view's join keys, in the order its cache keys hold them; request_columns: the
    hydrate columns that carry them (Feast's join_key_map may rename); features: names, in order.
    """

    name: str
    table: Any  # feast.FeatureView
    join_keys: tuple[str, ...]
    request_columns: tuple[str, ...]
    features: tuple[str, ...]
    kinds: tuple[str, ...]
    encoder: KeyEncoder
    missing: tuple[None, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "missing", (None,) * len(self.features))

    def keys(self, columns: Mapping[str, list[Any]]) -> list[Hashable]:
        """Cache keys, one per request row: the value itself for a one-key view, else a tuple."""
        if len(self.request_columns) == 1:
            return columns[self.request_columns[0]]
        return list(zip(*(columns[c] for c in self.request_columns), strict=True))


@dataclass(frozen=True)
class OnDemandPlan:
    """One on-demand view: its Feast object, what it reads, what it returns (name, ValueType)."""

    view: Any  # feast.OnDemandFeatureView
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ServicePlan:
    views: tuple[ViewPlan, ...]
    on_demand: tuple[OnDemandPlan, ...]


def plan_service(store: Any, service: Any, request_columns: Sequence[str]) -> ServicePlan:
    """Resolve a feature service against the registry into what hydration reads and computes.

    store: a feast.FeatureStore; service: a feast.FeatureService; request_columns: the entity and
    request-data columns every hydrate call provides.
    """
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    projections = service.feature_view_projections
    views = [
        _plan_view(store.get_feature_view(p.name), p, request_columns)
        for p in projections
        if p.name not in odfv_names
    ]
    on_demand = [
        _plan_on_demand(store.get_on_demand_feature_view(p.name), p, views, request_columns)
        for p in projections
        if p.name in odfv_names
    ]
    names = [f for view in views for f in view.features]
    names += [name for plan in on_demand for name, _ in plan.outputs]
    duplicated = sorted(
        {n for n in names if names.count(n) > 1} | (set(names) & {*request_columns})
    )
    if duplicated:
        raise ValueError(f"feature names {duplicated} are not unique in service {service.name}")
    return ServicePlan(views=tuple(views), on_demand=tuple(on_demand))


def _plan_view(table: Any, projection: Any, request_columns: Sequence[str]) -> ViewPlan:
    join_keys = tuple(column.name for column in table.entity_columns)
    value_types = [column.dtype.to_value_type().value for column in table.entity_columns]
    mapped = tuple(projection.join_key_map.get(key, key) for key in join_keys)
    lacking = sorted(set(mapped) - set(request_columns))
    if lacking:
        raise ValueError(f"view {table.name} is keyed by {lacking}, which hydrate lacks")
    return ViewPlan(
        name=table.name,
        table=table,
        join_keys=join_keys,
        request_columns=mapped,
        features=tuple(f.name for f in projection.features),
        kinds=tuple(column_kind(f.dtype.to_value_type().value) for f in projection.features),
        encoder=KeyEncoder(join_keys, value_types),
    )


def _plan_on_demand(
    odfv: Any, projection: Any, views: Sequence[ViewPlan], request_columns: Sequence[str]
) -> OnDemandPlan:
    """The SDK gives a pandas on-demand view the entity columns, the request data and the features
    of its declared sources (no others); the same inputs are handed over here."""
    if odfv.mode != "pandas" or odfv.aggregations or odfv.write_to_online_store:
        raise NotImplementedError(f"on-demand view {odfv.name}: only pandas transforms are run")
    sources = {p.name for p in odfv.source_feature_view_projections.values()}
    known = {view.name for view in views}
    if not sources <= known:
        # The SDK would read them and drop them from its answer; not done here.
        missing = sorted(sources - known)
        raise ValueError(f"on-demand view {odfv.name} reads views {missing} the service lacks")
    request_fields = [f.name for s in odfv.source_request_sources.values() for f in s.schema]
    lacking = sorted(set(request_fields) - set(request_columns))
    if lacking:
        raise ValueError(f"on-demand view {odfv.name} needs request data {lacking}")
    inputs = [c for c in request_columns if c in request_fields or c in _entity_columns(views)]
    inputs += [f for view in views if view.name in sources for f in view.features]
    outputs = tuple((f.name, f.dtype.to_value_type().value) for f in projection.features)
    return OnDemandPlan(view=odfv, inputs=tuple(inputs), outputs=outputs)


def _entity_columns(views: Iterable[ViewPlan]) -> set[str]:
    return {column for view in views for column in view.request_columns}
