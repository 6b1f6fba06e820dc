"""The serving request path without a model, over HTTP: a tiny world, fake features and a fake
ranker. Status codes of the FastAPI app (4xx name the field or id), pages and cursors, logging,
degradation, conversations, and the engine's arms and warm-up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipelines.inputs.spec import FeatureTable
from pipelines.schema import HEADS
from serving.api import make_api
from serving.candidates.world_index import WorldIndex
from serving.engine.errors import NotFoundError
from serving.engine.feed import FeedEngine
from serving.engine.ports import ArmModel
from serving.policy.experiments import assign_arm
from serving.schemas import FeedRequest
from tests.utils.fakes import FakeFeatures, fake_arm
from tests.utils.world import FEED_ORDER, ROOT, make_cfg, make_engine, tiny_world


@pytest.fixture()
def served_engine(tmp_path: Path) -> Iterator[tuple[FeedEngine, TestClient]]:
    engine = make_engine(make_cfg(tmp_path, max_limit=50))
    with TestClient(make_api(engine, engine.cfg.serve.max_body_bytes)) as test_client:
        yield engine, test_client
    engine.close()


@pytest.fixture()
def client(served_engine: tuple[FeedEngine, TestClient]) -> TestClient:
    return served_engine[1]


def _error_fields(response: Any) -> list[str]:
    return [str(error["loc"][-1]) for error in response.json()["detail"]]


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


def test_the_authors_side_of_a_reply_is_recorded_only_on_top_of_the_reply(
    client: TestClient,
) -> None:
    page = client.post("/feed", json={"user_id": 1, "limit": 2}).json()
    event = {"request_id": page["request_id"], "user_id": 1, "tweet_id": 103}
    early = client.post("/engagement", json={**event, "action": "reply_engaged_by_author"})
    assert early.status_code == 422 and _error_fields(early) == ["action"]
    assert client.post("/engagement", json={**event, "action": "reply"}).status_code == 200
    late = client.post("/engagement", json={**event, "action": "reply_engaged_by_author"})
    assert late.status_code == 200 and late.json()["recorded"] is True


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
    with TestClient(
        make_api(make_engine(cfg, features=features), cfg.serve.max_body_bytes)
    ) as client:
        body = client.post("/feed", json={"user_id": 1, "limit": 1}).json()
        assert (body["features"], body["ranking"], body["degraded"]) == ("default", "model", True)
        features.cached = True
        body = client.post("/feed", json={"user_id": 1}).json()
        assert body["features"] == "cached" and body["items"]


def test_a_slow_feature_store_is_cut_at_its_budget(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, feature_timeout_ms=50)
    features = FakeFeatures(delay_s=1.0)
    features.cached = True
    with TestClient(
        make_api(make_engine(cfg, features=features), cfg.serve.max_body_bytes)
    ) as client:
        body = client.post("/feed", json={"user_id": 1}).json()
    assert body["features"] == "cached" and len(body["items"]) == 3


def test_a_failing_model_gives_a_reverse_chronological_feed(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)

    async def broken(features: FeatureTable) -> Mapping[str, np.ndarray]:
        raise RuntimeError("ranker replica died")

    engine = make_engine(cfg, champion=ArmModel(version="v1", heads=HEADS, score=broken))
    with TestClient(make_api(engine, engine.cfg.serve.max_body_bytes)) as client:
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


def test_conversation_without_replies_has_empty_sections(client: TestClient) -> None:
    body = client.post("/conversation", json={"tweet_id": 101, "viewer_id": 1}).json()
    assert [s["replies"] for s in body["sections"]] == [[], [], []]
    assert (body["candidates_scored"], body["model_version"]) == (0, "none")


def test_conversation_bad_body_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/conversation", json={"tweet_id": ROOT, "viewer": 1})
    assert response.status_code == 422
    assert set(_error_fields(response)) == {"viewer_id", "viewer"}


def test_healthz_and_openapi(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body == {
        "status": "ok",
        "model_versions": {"champion": "v1"},
        "reply_model_versions": {"champion": "v1"},  # no conversation ranker: the feed's
        "challenger_share": 0.0,
    }
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
    import pydantic

    from pipelines.event_log import RECORDABLE_ACTIONS
    from serving.schemas import EngagementRequest

    body = {"request_id": "0" * 32, "user_id": 1, "tweet_id": 2}
    for action in RECORDABLE_ACTIONS:
        assert EngagementRequest(**body, action=action).action == action
    for action in ("like", "view", "FAV"):
        with pytest.raises(pydantic.ValidationError, match="action"):
            EngagementRequest(**body, action=action)
    schema = EngagementRequest.model_json_schema()["properties"]["action"]
    assert schema["enum"] == list(RECORDABLE_ACTIONS)
