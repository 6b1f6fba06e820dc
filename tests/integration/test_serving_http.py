"""The Ray Serve app over real HTTP: real Ray, the Feast online store and the registry's champion.

Needs the session fixture `trained_cfg` (tests/conftest.py: the smoke pipeline, run on demand): a config whose lake, feature store and
MLflow registry hold a smoke-scale world with a `champion` ranker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pipelines.config import FeedrankConfig, load_config
from serving.candidates.world_index import WorldIndex
from serving.policy.experiments import assign_arm
from serving.run import wait_healthy

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    url: str
    cfg: FeedrankConfig
    index: WorldIndex
    health: dict[str, Any]
    client: httpx.Client


@pytest.fixture(scope="module")
def served(served_cfg: FeedrankConfig, served_url: str) -> Iterator[Served]:
    """The session's app (tests/conftest.py), with a client and the world index beside it."""
    health = wait_healthy(served_url, timeout=300)
    with httpx.Client(base_url=served_url, timeout=60) as client:
        yield Served(served_url, served_cfg, WorldIndex.load(served_cfg), health, client)


def busiest_user(index: WorldIndex, users: range) -> int:
    """A user with feed candidates (the one with the most, among the first ids)."""
    from serving.candidates.sources import CandidateGenerator, FeedContext

    generator = CandidateGenerator(index, load_config("smoke").serve)
    sizes = {
        user: len(generator.generate(FeedContext.of(index, user)))
        for user in users
        if index.has_user(user)
    }
    user = max(sizes, key=lambda u: sizes[u])
    assert sizes[user] > 0, "the smoke world has no user with feed candidates"
    return user


def largest_conversation(index: WorldIndex) -> tuple[int, int]:
    """(root tweet id, reply count) of the conversation with the most replies."""
    sizes = index.conversation_sizes()
    assert not sizes.empty, "the smoke world has no replies"
    return int(sizes.idxmax()), int(sizes.max())


def expected_version(served: Served, user_id: int) -> tuple[str, str]:
    versions: dict[str, str] = served.health["model_versions"]
    arm = assign_arm(
        user_id, served.cfg.serve.challenger_share, has_challenger="challenger" in versions
    )
    return arm, versions[arm]


def test_healthz_reports_the_champion(served: Served) -> None:
    response = served.client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["model_versions"]["champion"]


def test_feed_is_ranked_by_blended_score(served: Served) -> None:
    user_id = busiest_user(served.index, range(1, 200))
    response = served.client.post("/feed", json={"user_id": user_id, "limit": 15})
    assert response.status_code == 200, response.text
    body = response.json()
    items = body["items"]
    assert 0 < len(items) <= 15
    assert body["candidates_scored"] >= len(items)
    assert len({item["tweet_id"] for item in items}) == len(items)
    assert [item["position"] for item in items] == list(range(len(items)))
    assert (body["features"], body["ranking"], body["degraded"]) == ("online", "model", False)
    weights = served.cfg.blend.weights
    binary = set(served.cfg.ranker.binary_heads)
    for item in items:
        predictions = item["predictions"]
        assert set(weights) <= set(predictions)
        assert all(0.0 <= p <= 1.0 for head, p in predictions.items() if head in binary)
        blended = sum(weight * predictions[head] for head, weight in weights.items())
        # heuristics only discount: a final score is never above the blend of its predictions
        assert item["score"] <= blended + 1e-9 or math.isclose(item["score"], blended)
        assert item["source"] in body["candidate_sources"]
        if item["source"].startswith("in_network"):
            assert item["in_network"]
        if item["source"].startswith("out_of_network"):
            assert not item["in_network"]
    assert sum(body["candidate_sources"].values()) >= body["candidates_scored"]
    arm, version = expected_version(served, user_id)
    assert (body["arm"], body["model_version"]) == (arm, version)
    assert len(body["request_id"]) == 32


def test_pages_follow_the_cursor_without_repeats(served: Served) -> None:
    user_id = busiest_user(served.index, range(1, 200))
    first = served.client.post("/feed", json={"user_id": user_id, "limit": 3}).json()
    assert first["next_cursor"], first
    body = {"user_id": user_id, "limit": 3, "cursor": first["next_cursor"]}
    second = served.client.post("/feed", json=body).json()
    ids = [item["tweet_id"] for page in (first, second) for item in page["items"]]
    assert len(ids) == len(set(ids)) and len(ids) > 3
    assert [item["position"] for item in second["items"]][0] == 3
    other = served.client.post("/feed", json={**body, "user_id": user_id + 1})
    assert other.status_code in (404, 422)
    if other.status_code == 422:
        assert [e["loc"][-1] for e in other.json()["detail"]] == ["cursor"]


def test_engagement_on_a_served_item_is_recorded_once(served: Served) -> None:
    user_id = busiest_user(served.index, range(1, 200))
    page = served.client.post("/feed", json={"user_id": user_id, "limit": 2}).json()
    item = page["items"][0]
    event = {
        "request_id": page["request_id"],
        "user_id": user_id,
        "tweet_id": item["tweet_id"],
        "action": "fav",
    }
    first = served.client.post("/engagement", json=event)
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] is True
    assert served.client.post("/engagement", json=event).json()["recorded"] is False
    unserved = served.client.post("/engagement", json={**event, "tweet_id": 10**12})
    assert unserved.status_code == 422
    assert [e["loc"][-1] for e in unserved.json()["detail"]] == ["tweet_id"]
    bad_action = served.client.post("/engagement", json={**event, "action": "like"})
    assert bad_action.status_code == 422
    assert [e["loc"][-1] for e in bad_action.json()["detail"]] == ["action"]
    no_dwell = served.client.post("/engagement", json={**event, "action": "dwell"})
    assert no_dwell.status_code == 422
    assert [e["loc"][-1] for e in no_dwell.json()["detail"]] == ["dwell_ms"]


def test_an_oversized_body_is_413(served: Served) -> None:
    huge = {"user_id": 1, "limit": 5, "padding": "x" * (served.cfg.serve.max_body_bytes + 1)}
    response = served.client.post("/feed", json=huge)
    assert response.status_code == 413
    assert str(served.cfg.serve.max_body_bytes) in response.json()["detail"]


def test_feed_unknown_user_is_404_naming_it(served: Served) -> None:
    unknown = 10**9 + 7
    response = served.client.post("/feed", json={"user_id": unknown})
    assert response.status_code == 404
    assert str(unknown) in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "somebody"}, "user_id"),
        ({"user_id": 1, "limt": 5}, "limt"),
        ({"user_id": 1, "limit": 0}, "limit"),
    ],
)
def test_feed_bad_body_is_422_naming_the_field(
    served: Served, body: dict[str, Any], field: str
) -> None:
    response = served.client.post("/feed", json=body)
    assert response.status_code == 422
    assert field in [error["loc"][-1] for error in response.json()["detail"]]


def test_feed_limit_over_the_configured_max_is_422(served: Served) -> None:
    too_many = served.cfg.serve.max_limit + 1
    response = served.client.post("/feed", json={"user_id": 1, "limit": too_many})
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == ["limit"]


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node["replies"])


def test_conversation_is_a_scored_tree_in_sections(served: Served) -> None:
    root_id, n_replies = largest_conversation(served.index)
    viewer = busiest_user(served.index, range(1, 50))
    response = served.client.post("/conversation", json={"tweet_id": root_id, "viewer_id": viewer})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["root"]["tweet_id"] == root_id
    assert [section["name"] for section in body["sections"]] == ["main", "low_quality", "abusive"]
    main, low_quality, abusive = (section["replies"] for section in body["sections"])
    conversation = served.cfg.conversation
    assert all(node["toxicity"] < conversation.low_quality.toxicity for node in main)
    assert all(node["toxicity"] < conversation.abusive.toxicity for node in low_quality)
    every = list(_walk(main + low_quality + abusive))
    collapsed = sum(s["more_replies"] for s in body["sections"])
    collapsed += sum(node["more_replies"] for node in every)
    assert len(every) + collapsed == n_replies == body["candidates_scored"]
    for node in every:  # below the top level, the best thread first
        scores = [child["thread_score"] for child in node["replies"]]
        assert scores == sorted(scores, reverse=True)
    assert (body["arm"], body["model_version"]) == expected_version(served, viewer)
    # Every reply shown was logged as served: an engagement on one is recorded.
    fav = {
        "request_id": body["request_id"],
        "user_id": viewer,
        "tweet_id": every[-1]["tweet_id"],
        "action": "fav",
    }
    recorded = served.client.post("/engagement", json=fav)
    assert recorded.status_code == 200, recorded.text


def test_a_tweet_by_an_unknown_author_is_422_naming_the_field(served: Served) -> None:
    tweet = {
        "tweet_id": 10**12,
        "author_id": 10**9 + 7,
        "created_at": "2020-01-01T00:00:00+00:00",
        "text": "hello",
        "language": "en",
        "has_image": False,
        "has_video": False,
        "has_url": False,
        "hashtags": [],
        "conversation_id": 10**12,
        "in_reply_to_tweet_id": None,
        "toxicity": 0.0,
    }
    response = served.client.post("/tweets", json={"tweets": [tweet]})
    assert response.status_code == 422, response.text
    assert [e["loc"][-1] for e in response.json()["detail"]] == ["tweets.0.author_id"]


def test_conversation_of_an_unknown_tweet_is_404(served: Served) -> None:
    viewer = busiest_user(served.index, range(1, 50))
    response = served.client.post("/conversation", json={"tweet_id": 10**12, "viewer_id": viewer})
    assert response.status_code == 404
    assert str(10**12) in response.json()["detail"]


def test_openapi_docs_are_served(served: Served) -> None:
    assert served.client.get("/docs").status_code == 200
    paths = served.client.get("/openapi.json").json()["paths"]
    assert {"/feed", "/engagement", "/conversation", "/tweets", "/healthz"} <= set(paths)
