"""The serving request path without a model: a tiny world, fake features and a fake ranker.

Covers the world index's candidate sources, the HTTP status codes of the FastAPI app (4xx name the
field or id), and the Ray Serve composition in local testing mode (no cluster, no HTTP).
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from pipelines.config import ALL_HEADS, FeedrankConfig, PathsConfig, ServeConfig
from pipelines.schema import STATIC_PARTITION, TABLES, write_partition
from serving.api import make_api
from serving.engine import ArmModel, FeedEngine, NotFoundError
from serving.rules import assign_arm
from serving.schemas import FeedRequest
from serving.world_index import WorldIndex

NOW = pd.Timestamp("2026-03-10 12:00", tz="UTC")
HOUR = pd.Timedelta(hours=1)
ROOT = 201  # a conversation: 202 (by 2) and 203 (by 5, toxic) answer it, 204 (by 3) answers 202


def _conform(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """Fill the canonical columns a test does not care about with neutral values."""
    out = frame.copy()
    for field in schema:
        if field.name in out.columns:
            continue
        if pa.types.is_boolean(field.type):
            out[field.name] = False
        elif pa.types.is_integer(field.type):
            out[field.name] = 0
        elif pa.types.is_floating(field.type):
            out[field.name] = 0.0
        elif pa.types.is_timestamp(field.type):
            out[field.name] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
        elif pa.types.is_list(field.type):
            out[field.name] = [[] for _ in range(len(out))]
        else:
            out[field.name] = ""
    return out[schema.names]


def tiny_world() -> dict[str, pd.DataFrame]:
    """Five users; user 1 follows 2 and 3; the last impression is served at NOW."""
    tweets = pd.DataFrame(
        [
            # tweet_id, author_id, age (h), parent, toxicity
            (101, 2, 1, None, 0.0),  # in-network for user 1
            (102, 3, 2, None, 0.0),  # in-network but already seen by user 1
            (103, 2, 100, None, 0.0),  # in-network but older than the lookback
            (104, 4, 3, None, 0.0),  # out-of-network, engaged (a fav by user 5)
            (105, 1, 1, None, 0.0),  # user 1's own tweet
            (106, 5, 4, None, 0.0),  # out-of-network, never engaged
            (ROOT, 4, 5, None, 0.0),
            (202, 2, 4, ROOT, 0.1),
            (203, 5, 4, ROOT, 0.9),
            (204, 3, 3, 202, 0.0),
        ],
        columns=["tweet_id", "author_id", "age_h", "in_reply_to_tweet_id", "toxicity"],
    )
    tweets = tweets.assign(
        created_at=NOW - tweets.pop("age_h") * HOUR,
        conversation_id=np.where(tweets["tweet_id"] >= ROOT, ROOT, tweets["tweet_id"]),
        text=[f"tweet {t}" for t in tweets["tweet_id"]],
        in_reply_to_tweet_id=tweets["in_reply_to_tweet_id"].astype("float64"),
    )
    impressions = pd.DataFrame(
        {
            "impression_id": [1, 2],
            "viewer_id": [1, 5],
            "tweet_id": [102, 104],
            "served_at": [NOW - HOUR / 2, NOW],
            "fav": [False, True],
        }
    )
    return {
        "users": _conform(pd.DataFrame({"user_id": [1, 2, 3, 4, 5]}), TABLES["users"]),
        "follows": _conform(
            pd.DataFrame({"follower_id": [1, 1, 2], "followee_id": [2, 3, 1]}), TABLES["follows"]
        ),
        "tweets": _conform(tweets, TABLES["tweets"]),
        "impressions": _conform(impressions, TABLES["impressions"]),
    }


def make_cfg(root: Path | None = None, **serve: Any) -> FeedrankConfig:
    paths = PathsConfig(root=str(root)) if root is not None else PathsConfig()
    return FeedrankConfig(paths=paths, serve=ServeConfig(**serve))


class FakeFeatures:
    """Stands in for OnlineFeatures: echoes the candidates plus one feature column."""

    def __init__(self, cfg: FeedrankConfig | None = None) -> None:
        self.calls: list[tuple[int, pd.Timestamp]] = []

    def hydrate(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
        self.calls.append((viewer_id, now))
        return candidates.assign(tweet_age_h=1.0)


def fake_predictions(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """A deterministic 'model': p(fav) grows with tweet_id % 10, other heads are small."""
    ids = features["tweet_id"].to_numpy()
    out = {head: np.full(len(ids), 0.001) for head in ALL_HEADS}
    out["fav"] = (ids % 10) / 10.0
    return out


def fake_arm(version: str) -> ArmModel:
    async def score(features: pd.DataFrame) -> Mapping[str, np.ndarray]:
        return fake_predictions(features)

    return ArmModel(version=version, heads=ALL_HEADS, score=score)


def make_engine(cfg: FeedrankConfig, challenger: bool = False) -> FeedEngine:
    frames = tiny_world()
    index = WorldIndex.from_frames(cfg, **frames)
    arms = {"champion": fake_arm("v1")}
    if challenger:
        arms["challenger"] = fake_arm("v2")
    return FeedEngine(cfg, index, FakeFeatures(), arms)


@pytest.fixture()
def client() -> Iterator[TestClient]:
    engine = make_engine(make_cfg(max_limit=50))
    with TestClient(make_api(engine)) as test_client:
        yield test_client
    engine.close()


def _error_fields(response: Any) -> list[str]:
    return [str(error["loc"][-1]) for error in response.json()["detail"]]


# --------------------------------------------------------------------------------- world index


def test_world_index_clock_and_lookups() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    assert index.now == NOW
    assert index.has_user(1) and not index.has_user(99)
    assert index.has_tweet(204) and not index.has_tweet(999)
    assert index.is_root(ROOT) and not index.is_root(202) and not index.is_root(999)
    assert index.followees(1).tolist() == [2, 3]
    assert index.seen(1).tolist() == [102]
    assert index.last_visit(1) == NOW - HOUR / 2
    assert index.last_visit(3) is None


def test_candidates_filter_seen_old_own_and_split_sources() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    candidates = index.candidates(1)
    assert list(candidates.columns) == ["tweet_id", "author_id", "in_network", "source"]
    assert candidates["tweet_id"].tolist() == [101, 104]
    assert candidates["in_network"].tolist() == [True, False]
    assert candidates["source"].tolist() == ["in_network", "out_of_network"]
    assert candidates["tweet_id"].dtype == np.int64
    # User 5 has seen 104 (the only engaged tweet) and follows nobody.
    assert index.candidates(5).empty


def test_candidates_respect_the_caps() -> None:
    index = WorldIndex.from_frames(make_cfg(max_candidates=1), **tiny_world())
    assert index.candidates(1)["tweet_id"].tolist() == [104]  # out-of-network keeps its quota
    index = WorldIndex.from_frames(make_cfg(out_of_network_candidates=0), **tiny_world())
    assert index.candidates(1)["tweet_id"].tolist() == [101]


def test_replies_are_the_conversation_without_its_root() -> None:
    index = WorldIndex.from_frames(make_cfg(), **tiny_world())
    replies = index.replies(ROOT)
    assert replies["tweet_id"].tolist() == [202, 203, 204]
    assert replies["in_reply_to_tweet_id"].tolist() == [ROOT, ROOT, 202]
    assert index.replies(101).empty


def test_world_index_loads_from_the_lake(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    write_lake(cfg)
    index = WorldIndex.load(cfg)
    assert index.now == NOW
    assert index.candidates(1)["tweet_id"].tolist() == [101, 104]


def write_lake(cfg: FeedrankConfig) -> None:
    for table, frame in tiny_world().items():
        write_partition(frame, cfg.paths.raw, table, STATIC_PARTITION, TABLES[table])


# ---------------------------------------------------------------------------------------- HTTP


def test_feed_ranks_by_blended_score(client: TestClient) -> None:
    response = client.post("/feed", json={"user_id": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["tweet_id"] for item in body["items"]] == [104, 101]
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["items"][0]["predictions"]) == set(ALL_HEADS)
    assert body["items"][0]["source"] == "out_of_network"
    assert body["items"][1]["in_network"] is True
    assert body["model_version"] == "v1" and body["arm"] == "champion"
    assert body["candidates_scored"] == 2 and body["request_id"]


def test_feed_limit_cuts_the_page(client: TestClient) -> None:
    body = client.post("/feed", json={"user_id": 1, "limit": 1}).json()
    assert [item["tweet_id"] for item in body["items"]] == [104]


def test_feed_of_a_user_without_candidates_is_empty(client: TestClient) -> None:
    body = client.post("/feed", json={"user_id": 5}).json()
    assert body["items"] == [] and body["candidates_scored"] == 0


def test_feed_unknown_user_is_404_naming_it(client: TestClient) -> None:
    response = client.post("/feed", json={"user_id": 99})
    assert response.status_code == 404
    assert "user 99" in response.json()["detail"]


def test_feed_limit_over_config_max_is_422_naming_limit(client: TestClient) -> None:
    response = client.post("/feed", json={"user_id": 1, "limit": 51})
    assert response.status_code == 422
    assert _error_fields(response) == ["limit"]
    assert "50" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 1, "limit": 0}, "limit"),
        ({"user_id": 0}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"limit": 5}, "user_id"),
        ({"user_id": 1, "usr_id": 1}, "usr_id"),
    ],
)
def test_feed_bad_body_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/feed", json=body)
    assert response.status_code == 422
    assert field in _error_fields(response)


def test_feed_non_json_body_is_422(client: TestClient) -> None:
    response = client.post(
        "/feed", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_conversation_tree_and_sections(client: TestClient) -> None:
    response = client.post("/conversation", json={"tweet_id": ROOT, "viewer_id": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["root"] == {"tweet_id": ROOT, "author_id": 4, "text": f"tweet {ROOT}"}
    sections = {s["name"]: s["replies"] for s in body["sections"]}
    assert [s["name"] for s in body["sections"]] == ["main", "low_quality"]
    assert [r["tweet_id"] for r in sections["main"]] == [202]
    assert [r["tweet_id"] for r in sections["main"][0]["replies"]] == [204]
    assert [r["tweet_id"] for r in sections["low_quality"]] == [203]
    assert sections["low_quality"][0]["toxicity"] == pytest.approx(0.9)
    assert set(sections["main"][0]["predictions"]) == set(ALL_HEADS)
    assert body["model_version"] == "v1" and body["arm"] == "champion"


def test_conversation_without_replies_has_empty_sections(client: TestClient) -> None:
    body = client.post("/conversation", json={"tweet_id": 101, "viewer_id": 1}).json()
    assert [s["replies"] for s in body["sections"]] == [[], []]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"tweet_id": 999, "viewer_id": 1}, "tweet 999"),
        ({"tweet_id": 202, "viewer_id": 1}, "tweet 202"),  # a reply, not a root
        ({"tweet_id": ROOT, "viewer_id": 77}, "user 77"),
    ],
)
def test_conversation_unknown_ids_are_404_naming_them(
    client: TestClient, body: dict[str, int], named: str
) -> None:
    response = client.post("/conversation", json=body)
    assert response.status_code == 404
    assert named in response.json()["detail"]


def test_conversation_bad_body_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/conversation", json={"tweet_id": ROOT, "viewer": 1})
    assert response.status_code == 422
    assert set(_error_fields(response)) == {"viewer_id", "viewer"}


def test_healthz_and_openapi(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "model_versions": {"champion": "v1"}, "challenger_share": 0.0}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/feed", "/conversation", "/healthz"} <= set(paths)


# ------------------------------------------------------------------------------ engine rules


def test_users_are_served_by_the_ranker_of_their_arm() -> None:
    cfg = make_cfg(challenger_share=0.5)
    engine = make_engine(cfg, challenger=True)
    try:
        for user_id in range(1, 6):
            response = asyncio.run(engine.feed(FeedRequest(user_id=user_id)))
            arm = assign_arm(user_id, 0.5)
            assert response.arm == arm
            assert response.model_version == {"champion": "v1", "challenger": "v2"}[arm]
        assert engine.health().challenger_share == 0.5
    finally:
        engine.close()


def test_engine_raises_not_found_for_unknown_users() -> None:
    engine = make_engine(make_cfg())
    with pytest.raises(NotFoundError, match="user 42"):
        asyncio.run(engine.feed(FeedRequest(user_id=42)))
    engine.close()


def test_engine_refuses_a_ranker_without_the_blended_heads() -> None:
    cfg = make_cfg()
    index = WorldIndex.from_frames(cfg, **tiny_world())
    arm = ArmModel(version="v0", heads=("fav",), score=fake_arm("v0").score)
    with pytest.raises(ValueError, match="report"):
        FeedEngine(cfg, index, FakeFeatures(), {"champion": arm})


# ------------------------------------------------------------------------- Serve composition


class FakeRanker:
    version = "7"
    heads = ALL_HEADS

    def predict(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        return fake_predictions(features)


def _fake_registry(aliases: dict[str, str]) -> types.ModuleType:
    module = types.ModuleType("pipelines.registry")

    def load_ranker(cfg: FeedrankConfig, alias: str) -> FakeRanker | None:
        if alias not in aliases:
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
    online = types.ModuleType("pipelines.features.online")
    online.OnlineFeatures = FakeFeatures  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pipelines.features.online", online)
    monkeypatch.setitem(sys.modules, "pipelines.registry", _fake_registry({"champion": "7"}))
    yield


def test_build_app_without_a_champion_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, fake_components: None
) -> None:
    from serving.app import build_app

    monkeypatch.setitem(sys.modules, "pipelines.registry", _fake_registry({}))
    with pytest.raises(RuntimeError, match="champion"):
        build_app({"config": "default"})


def test_build_app_rejects_unknown_args(fake_components: None) -> None:
    from pydantic import ValidationError

    from serving.app import build_app

    with pytest.raises(ValidationError, match="confg"):
        build_app({"confg": "default"})


def test_serve_app_in_local_testing_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_components: None
) -> None:
    from ray import serve

    from serving.app import AppArgs, build_app, portable_config
    from serving.schemas import ConversationRequest

    monkeypatch.setitem(
        sys.modules, "pipelines.registry", _fake_registry({"champion": "7", "challenger": "8"})
    )
    cfg = make_cfg(tmp_path, challenger_share=0.5)
    write_lake(cfg)
    app = build_app(AppArgs(resolved=portable_config(cfg)))
    handle = serve.run(app, name="feedrank-test", _local_testing_mode=True)
    health = handle.health.remote().result()
    assert health.model_versions == {"champion": "7", "challenger": "8"}
    feed = handle.feed.remote(FeedRequest(user_id=1)).result()
    assert [item.tweet_id for item in feed.items] == [104, 101]
    assert feed.model_version == {"champion": "7", "challenger": "8"}[feed.arm]
    conversation = handle.conversation.remote(ConversationRequest(tweet_id=ROOT, viewer_id=1))
    assert [s.name for s in conversation.result().sections] == ["main", "low_quality"]
