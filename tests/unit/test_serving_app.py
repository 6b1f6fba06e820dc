"""The serving request path without a model: a tiny world, fake features and a fake ranker.

Covers the world index's candidate sources, the HTTP status codes of the FastAPI app (4xx name the
field or id), and the Ray Serve composition in local testing mode (no cluster, no HTTP).
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from pipelines.config import FeedrankConfig, PathsConfig, ServeConfig
from pipelines.event_log import EventLog
from pipelines.features.spec import FeatureTable
from pipelines.schema import HEADS, STATIC_PARTITION, TABLES, write_partition
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


def _columns(candidates: pd.DataFrame, age_h: float) -> dict[str, np.ndarray]:
    """The candidates plus one feature, as columns (what FastOnlineFeatures returns)."""
    columns = {name: candidates[name].to_numpy() for name in candidates.columns}
    return {**columns, "tweet_age_h": np.full(len(candidates), age_h)}


class FakeFeatures:
    """Stands in for FastOnlineFeatures: echoes the candidates plus one feature column, as
    columns; can fail or be slow (the store), and answer from a 'cache' or with defaults (the
    degraded paths)."""

    def __init__(
        self,
        cfg: FeedrankConfig | None = None,
        fail: bool = False,
        delay_s: float = 0.0,
        batch_ttl_s: float | None = None,
    ) -> None:
        self.calls: list[tuple[int, pd.Timestamp]] = []
        self.fail, self.delay_s, self.cached = fail, delay_s, False

    @classmethod
    def for_serving(cls, cfg: FeedrankConfig) -> FakeFeatures:
        return cls(cfg)

    def hydrate(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        self.calls.append((viewer_id, now))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("online store is down")
        return _columns(candidates, 1.0)

    def hydrate_cached(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> tuple[dict[str, np.ndarray], float]:
        return _columns(candidates, np.nan), (1.0 if self.cached else 0.0)

    def hydrate_default(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> dict[str, np.ndarray]:
        return _columns(candidates, np.nan)


def fake_predictions(features: FeatureTable) -> dict[str, np.ndarray]:
    """A deterministic 'model': p(fav) grows with tweet_id % 10, other heads are small."""
    ids = np.asarray(features["tweet_id"])
    out = {head: np.zeros(len(ids)) for head in HEADS}
    out["fav"] = (ids % 10) / 10.0 + 0.05
    return out


def fake_arm(version: str) -> ArmModel:
    async def score(features: FeatureTable) -> Mapping[str, np.ndarray]:
        return fake_predictions(features)

    return ArmModel(version=version, heads=HEADS, score=score)


def make_engine(
    cfg: FeedrankConfig,
    challenger: bool = False,
    features: FakeFeatures | None = None,
    champion: ArmModel | None = None,
) -> FeedEngine:
    """An engine over the tiny world; with an event log when `cfg` has its own state root."""
    frames = tiny_world()
    index = WorldIndex.from_frames(cfg, **frames)
    arms = {"champion": champion or fake_arm("v1")}
    if challenger:
        arms["challenger"] = fake_arm("v2")
    events = EventLog(cfg.paths.serving_events) if cfg.paths.root != ".feedrank" else None
    return FeedEngine(cfg, index, features or FakeFeatures(), arms, events=events)


@pytest.fixture()
def served_engine(tmp_path: Path) -> Iterator[tuple[FeedEngine, TestClient]]:
    engine = make_engine(make_cfg(tmp_path, max_limit=50))
    with TestClient(make_api(engine)) as test_client:
        yield engine, test_client
    engine.close()


@pytest.fixture()
def client(served_engine: tuple[FeedEngine, TestClient]) -> TestClient:
    return served_engine[1]


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
# User 1 follows 2 and 3 and last visited at NOW - 30 min: 101 and 103 (by 2) are from before the
# visit (in_network_backlog), 104 (by 4) is trending out of network; 102 was seen. Fake p(fav) =
# tweet_id % 10 / 10 + 0.05 and blend fav 0.5: 103 -> 0.175, 104 -> 0.225 * 0.75 (out of network)
# = 0.16875, 101 -> 0.075 * 0.5 (the second tweet of author 2) = 0.0375.
FEED_ORDER = [103, 104, 101]


def test_feed_runs_sources_filters_model_and_heuristics(client: TestClient) -> None:
    response = client.post("/feed", json={"user_id": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["tweet_id"] for item in body["items"]] == FEED_ORDER
    assert [item["score"] for item in body["items"]] == pytest.approx([0.175, 0.16875, 0.0375])
    assert [item["position"] for item in body["items"]] == [0, 1, 2]
    assert [item["source"] for item in body["items"]] == [
        "in_network_backlog",
        "out_of_network_trending",
        "in_network_backlog",
    ]
    assert [item["in_network"] for item in body["items"]] == [True, False, True]
    assert set(body["items"][0]["predictions"]) == set(HEADS)
    assert body["candidate_sources"]["in_network_backlog"] == 2
    assert body["candidate_sources"]["out_of_network_trending"] == 1
    assert set(body["filtered"]) == {"own", "blocked_or_muted", "seen", "duplicates"}
    assert (body["features"], body["ranking"], body["degraded"]) == ("online", "model", False)
    assert body["model_version"] == "v1" and body["arm"] == "champion"
    assert body["candidates_scored"] == 3 and len(body["request_id"]) == 32
    assert body["next_cursor"] is None
    timings = body["timings_ms"]
    assert list(timings) == ["candidates", "features", "score", "rank", "log", "total"]
    assert all(ms >= 0 for ms in timings.values())
    stages = sum(ms for stage, ms in timings.items() if stage != "total")
    assert stages <= timings["total"] + 0.01  # each lap is a part of the whole


def test_an_empty_feed_times_only_what_ran(client: TestClient) -> None:
    timings = client.post("/feed", json={"user_id": 5}).json()["timings_ms"]
    assert list(timings) == ["candidates", "total"]


def test_pages_follow_the_cursor_without_repeats(client: TestClient) -> None:
    pages, cursor = [], None
    for _ in range(3):
        body = client.post("/feed", json={"user_id": 1, "limit": 1, "cursor": cursor}).json()
        pages.append(body)
        cursor = body["next_cursor"]
    assert [page["items"][0]["tweet_id"] for page in pages] == FEED_ORDER
    assert [page["items"][0]["position"] for page in pages] == [0, 1, 2]
    assert pages[0]["next_cursor"] and pages[1]["next_cursor"] and cursor is None


@pytest.mark.parametrize("cursor", ["garbage", "x" * 40])
def test_a_bad_cursor_is_422_naming_it(client: TestClient, cursor: str) -> None:
    response = client.post("/feed", json={"user_id": 1, "cursor": cursor})
    assert response.status_code == 422
    assert _error_fields(response) == ["cursor"]


def test_another_users_cursor_is_422(client: TestClient) -> None:
    cursor = client.post("/feed", json={"user_id": 1, "limit": 1}).json()["next_cursor"]
    response = client.post("/feed", json={"user_id": 2, "cursor": cursor})
    assert response.status_code == 422 and "another user" in response.text


def test_every_served_item_is_logged_with_request_position_version_and_arm(
    served_engine: tuple[FeedEngine, TestClient],
) -> None:
    engine, client = served_engine
    body = client.post("/feed", json={"user_id": 1, "limit": 2}).json()
    assert engine.events is not None
    assert engine.events.served_to(1).tolist() == sorted(FEED_ORDER[:2])
    served, _ = engine.events.pending_export()
    assert served["request_id"].tolist() == [body["request_id"]] * 2
    assert served["position"].tolist() == [0, 1]
    assert set(served["model_version"]) == {"v1"} and set(served["arm"]) == {"champion"}
    # the next visit does not serve them again
    again = client.post("/feed", json={"user_id": 1}).json()
    assert [item["tweet_id"] for item in again["items"]] == [101]


def test_a_synthetic_page_is_served_and_logged_but_not_exported(
    served_engine: tuple[FeedEngine, TestClient],
) -> None:
    engine, client = served_engine
    probe = client.post("/feed", json={"user_id": 1, "limit": 2, "synthetic": True})
    assert probe.status_code == 200 and len(probe.json()["items"]) == 2
    assert engine.events is not None
    assert engine.events.counts()["synthetic"] == 2
    assert engine.events.pending_export()[0].empty
    live = client.post("/feed", json={"user_id": 2, "limit": 1}).json()
    served, _ = engine.events.pending_export()
    assert served["request_id"].tolist() == [live["request_id"]]
    bad = client.post("/feed", json={"user_id": 1, "synthetic": "maybe"})
    assert bad.status_code == 422 and _error_fields(bad) == ["synthetic"]


def test_the_next_page_of_a_synthetic_visit_is_synthetic_without_the_flag(
    served_engine: tuple[FeedEngine, TestClient],
) -> None:
    engine, client = served_engine
    first = client.post("/feed", json={"user_id": 1, "limit": 1, "synthetic": True}).json()
    second = client.post("/feed", json={"user_id": 1, "limit": 1, "cursor": first["next_cursor"]})
    assert second.status_code == 200 and len(second.json()["items"]) == 1
    assert engine.events is not None
    assert engine.events.counts()["synthetic"] == 2
    assert engine.events.pending_export()[0].empty
    # A live visit's pages stay live.
    live = client.post("/feed", json={"user_id": 2, "limit": 1}).json()
    client.post("/feed", json={"user_id": 2, "limit": 1, "cursor": live["next_cursor"]})
    assert len(engine.events.pending_export()[0]) == 2


def test_engagement_is_validated_against_what_was_served(client: TestClient) -> None:
    page = client.post("/feed", json={"user_id": 1, "limit": 2}).json()
    event = {"request_id": page["request_id"], "user_id": 1, "tweet_id": 103, "action": "fav"}
    first = client.post("/engagement", json=event)
    assert first.status_code == 200, first.text
    assert first.json() == {**{k: event[k] for k in ("request_id", "tweet_id", "action")},
                            "recorded": True}  # fmt: skip
    assert client.post("/engagement", json=event).json()["recorded"] is False
    for bad, field in [
        ({"tweet_id": 101}, "tweet_id"),  # not served in that request
        ({"user_id": 2}, "tweet_id"),  # served to another user
        ({"action": "dwell"}, "dwell_ms"),
        ({"action": "like"}, "action"),
        ({"request_id": "not-hex"}, "request_id"),
        ({"dwell_ms": -5, "action": "dwell"}, "dwell_ms"),
    ]:
        response = client.post("/engagement", json={**event, **bad})
        assert response.status_code == 422, bad
        assert _error_fields(response) == [field], bad
    dwell = client.post("/engagement", json={**event, "action": "dwell", "dwell_ms": 4200})
    assert dwell.status_code == 200


def test_blocking_an_author_removes_its_tweets_from_later_feeds(client: TestClient) -> None:
    page = client.post("/feed", json={"user_id": 1, "limit": 1}).json()  # serves 103 (author 2)
    event = {"request_id": page["request_id"], "user_id": 1, "tweet_id": 103, "action": "block"}
    assert client.post("/engagement", json=event).status_code == 200
    later = client.post("/feed", json={"user_id": 1}).json()
    assert [item["tweet_id"] for item in later["items"]] == [104]  # 101 is by author 2 too
    assert later["filtered"]["blocked_or_muted"] == 1


def test_show_fewer_discounts_the_author_for_a_while(client: TestClient) -> None:
    page = client.post("/feed", json={"user_id": 1, "limit": 1}).json()  # serves 103 (author 2)
    event = {
        "request_id": page["request_id"],
        "user_id": 1,
        "tweet_id": 103,
        "action": "show_fewer",
    }
    assert client.post("/engagement", json=event).status_code == 200
    later = client.post("/feed", json={"user_id": 1}).json()
    # 101 (author 2) at fatigue 0.2: 0.075 * 0.2 = 0.015 (it is the author's only tweet left)
    assert [item["tweet_id"] for item in later["items"]] == [104, 101]
    assert later["items"][1]["score"] == pytest.approx(0.015, rel=1e-3)


def test_a_failing_feature_store_degrades_to_cached_then_default_features(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path)
    features = FakeFeatures(fail=True)
    with TestClient(make_api(make_engine(cfg, features=features))) as client:
        body = client.post("/feed", json={"user_id": 1, "limit": 1}).json()
        assert (body["features"], body["ranking"], body["degraded"]) == ("default", "model", True)
        features.cached = True
        body = client.post("/feed", json={"user_id": 1}).json()
        assert body["features"] == "cached" and body["items"]


def test_a_slow_feature_store_is_cut_at_its_budget(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, feature_timeout_ms=50)
    features = FakeFeatures(delay_s=1.0)
    features.cached = True
    with TestClient(make_api(make_engine(cfg, features=features))) as client:
        body = client.post("/feed", json={"user_id": 1}).json()
    assert body["features"] == "cached" and len(body["items"]) == 3


def test_a_failing_model_gives_a_reverse_chronological_feed(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)

    async def broken(features: FeatureTable) -> Mapping[str, np.ndarray]:
        raise RuntimeError("ranker replica died")

    engine = make_engine(cfg, champion=ArmModel(version="v1", heads=HEADS, score=broken))
    with TestClient(make_api(engine)) as client:
        body = client.post("/feed", json={"user_id": 1}).json()
    assert (body["ranking"], body["degraded"]) == ("reverse_chronological", True)
    assert [item["tweet_id"] for item in body["items"]] == [101, 104, 103]  # newest first


def test_an_oversized_body_is_413_naming_the_limit(client: TestClient) -> None:
    response = client.post("/feed", json={"user_id": 1, "padding": "x" * 20_000})
    assert response.status_code == 413
    assert "16384" in response.json()["detail"]


def test_feed_limit_cuts_the_page(client: TestClient) -> None:
    body = client.post("/feed", json={"user_id": 1, "limit": 1}).json()
    assert [item["tweet_id"] for item in body["items"]] == FEED_ORDER[:1]


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
    assert set(sections["main"][0]["predictions"]) == set(HEADS)
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
    heads = HEADS

    def predict(self, features: FeatureTable) -> dict[str, np.ndarray]:
        return fake_predictions(features)


def _fake_registry(aliases: dict[str, str]) -> types.ModuleType:
    module = types.ModuleType("pipelines.release.registry")

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
    online = types.ModuleType("pipelines.features.online_fast")
    online.FastOnlineFeatures = FakeFeatures  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pipelines.features.online_fast", online)
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
    assert [s.name for s in conversation.result().sections] == ["main", "low_quality"]


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


def test_warm_up_reads_features_for_viewers_with_candidates(tmp_path: Path) -> None:
    features = FakeFeatures()
    engine = make_engine(make_cfg(tmp_path), features=features)
    try:
        assert engine.warm_up(viewers=2) == 2
        assert [viewer for viewer, _ in features.calls] == [1, 2]  # the first with candidates
        assert engine.events is not None and engine.events.counts()["served"] == 0
    finally:
        engine.close()


def test_the_api_accepts_exactly_the_actions_the_event_log_records() -> None:
    from typing import get_args

    from pipelines.event_log import ENGAGEMENT_ACTIONS
    from serving.schemas import Action

    assert set(get_args(Action)) == set(ENGAGEMENT_ACTIONS)
