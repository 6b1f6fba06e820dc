"""The Ray Serve composition in local testing mode (no cluster, no HTTP): the app builder, its
arguments, both ranker placements, and a challenger alias that moved onto the champion's model."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import FeedrankConfig
from serving.schemas import FeedRequest
from tests.utils.fakes import FakeFeatures, FakeRanker
from tests.utils.world import FEED_ORDER, ROOT, make_cfg, write_lake


def _fake_registry(aliases: dict[str, str]) -> types.ModuleType:
    module = types.ModuleType("pipelines.release.registry")

    def load_ranker(cfg: FeedrankConfig, alias: str) -> FakeRanker | None:
        # This registry holds feed rankers only: no conversation ranker is registered.
        conversation = cfg.tracking.ranker_model_name == cfg.tracking.conversation_model_name
        if alias not in aliases or conversation:
            return None
        ranker = FakeRanker()
        ranker.version = aliases[alias]
        return ranker

    def alias_version(cfg: FeedrankConfig, alias: str) -> str | None:
        return aliases.get(alias)

    module.load_ranker = load_ranker  # type: ignore[attr-defined]
    module.alias_version = alias_version  # type: ignore[attr-defined]
    return module


@pytest.fixture()
def fake_components(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    online = types.ModuleType("serving.features.hydrate")
    online.FastOnlineFeatures = FakeFeatures  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "serving.features.hydrate", online)
    monkeypatch.setitem(
        sys.modules, "pipelines.release.registry", _fake_registry({"champion": "7"})
    )
    yield


def test_build_app_without_a_champion_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, fake_components: None
) -> None:
    from serving.app import build_app

    monkeypatch.setitem(sys.modules, "pipelines.release.registry", _fake_registry({}))
    with pytest.raises(RuntimeError, match="champion"):
        build_app({"config": "default"})


def test_build_app_rejects_unknown_args(fake_components: None) -> None:
    from pydantic import ValidationError

    from serving.app import build_app

    with pytest.raises(ValidationError, match="confg"):
        build_app({"confg": "default"})


@pytest.mark.parametrize("placement", ["ingress", "deployment"])
def test_serve_app_in_local_testing_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_components: None, placement: str
) -> None:
    from ray import serve

    from serving.app import AppArgs, build_app, portable_config
    from serving.schemas import ConversationRequest

    monkeypatch.setitem(
        sys.modules,
        "pipelines.release.registry",
        _fake_registry({"champion": "7", "challenger": "8"}),
    )
    cfg = make_cfg(tmp_path, challenger_share=0.5, ranker_placement=placement)
    write_lake(cfg)
    app = build_app(AppArgs(resolved=portable_config(cfg)))
    # ingress: FeedService alone loads the rankers; deployment: one Ranker deployment per arm.
    bound = {type(arg).__name__ for arg in app._bound_deployment.init_args}
    assert ("Application" in bound) == (placement == "deployment")
    assert app._bound_deployment.max_ongoing_requests == cfg.serve.max_ongoing_requests
    assert app._bound_deployment.num_replicas == cfg.serve.ingress_replicas
    handle = serve.run(app, name="feedrank-test", _local_testing_mode=True)
    health = handle.health.remote().result()
    assert health.model_versions == {"champion": "7", "challenger": "8"}
    feed = handle.feed.remote(FeedRequest(user_id=1)).result()
    assert [item.tweet_id for item in feed.items] == FEED_ORDER
    assert feed.model_version == {"champion": "7", "challenger": "8"}[feed.arm]
    conversation = handle.conversation.remote(ConversationRequest(tweet_id=ROOT, viewer_id=1))
    assert [s.name for s in conversation.result().sections] == ["main", "low_quality", "abusive"]
    handle.close.remote().result()  # the replica's live threads stop with it


@pytest.mark.parametrize("placement", ["ingress", "deployment"])
def test_a_challenger_alias_on_the_champions_model_serves_one_arm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_components: None, placement: str
) -> None:
    from ray import serve

    from serving.app import AppArgs, build_app, portable_config

    # The alias moved between build (7 and 8) and the replicas' start (both on 7).
    aliases = {"champion": "7", "challenger": "8"}
    monkeypatch.setitem(sys.modules, "pipelines.release.registry", _fake_registry(aliases))
    cfg = make_cfg(tmp_path, challenger_share=0.5, ranker_placement=placement)
    write_lake(cfg)
    app = build_app(AppArgs(resolved=portable_config(cfg)))
    aliases["challenger"] = "7"
    handle = serve.run(app, name="feedrank-test", _local_testing_mode=True)
    assert handle.health.remote().result().model_versions == {"champion": "7"}
    handle.close.remote().result()
