"""The /conversation page through the real Ray Serve app over HTTP: the smoke pipeline's lake,
Feast online store and registry champion, with a conversation config small enough that the smoke
world's conversations exercise every source and the load shedding.

A reply clicked shows the chain above it and the replies below it; requests over the in-flight
limit fetch fewer candidates and say so; every reply shown is logged as served with its position
and section, and an engagement on one is recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pipelines.config import FeedrankConfig
from pipelines.traffic.runner import linearized_replies
from serving.candidates.world_index import WorldIndex
from tests.conftest import _free_port

pytestmark = pytest.mark.integration

RECENT = 4  # replies the recent-replies cache holds in this module's config


@dataclass(frozen=True)
class Served:
    cfg: FeedrankConfig
    index: WorldIndex
    client: httpx.Client


@pytest.fixture(scope="module")
def served(trained_cfg: FeedrankConfig) -> Iterator[Served]:
    """The app on a free port, with a 4-reply cache, one request in flight before it sheds load
    and a generous deadline (shedding comes from load alone)."""
    from serving.run import start, stop, wait_healthy

    conversation = trained_cfg.conversation.model_copy(
        update={
            "recent_replies": RECENT,
            "top_replies": 2,
            "degraded_share": 0.5,
            "max_in_flight": 1,
        }
    )
    serve = trained_cfg.serve.model_copy(
        update={"host": "127.0.0.1", "port": _free_port(), "request_deadline_ms": 60_000}
    )
    cfg = trained_cfg.model_copy(update={"serve": serve, "conversation": conversation})
    try:
        url = start(cfg)
        wait_healthy(url, timeout=300)
        with httpx.Client(base_url=url, timeout=120) as client:
            yield Served(cfg, WorldIndex.load(cfg), client)
    finally:
        stop()
        import ray

        ray.shutdown()


def _viewer(index: WorldIndex) -> int:
    return next(user for user in range(1, index.n_users + 1) if index.has_user(user))


def _deepest_reply(index: WorldIndex) -> tuple[int, int]:
    """(reply id, its depth) of the deepest reply of the largest conversation."""
    root = int(index.conversation_sizes().idxmax())
    replies = index.replies(root)
    parents = dict(zip(replies["tweet_id"], replies["in_reply_to_tweet_id"], strict=True))

    def depth(tweet: int) -> int:
        return 1 if parents[tweet] == root else 1 + depth(parents[tweet])

    deepest = max(parents, key=depth)
    return int(deepest), depth(deepest)


def _ask(served: Served, tweet_id: int) -> dict[str, Any]:
    body = {"tweet_id": tweet_id, "viewer_id": _viewer(served.index)}
    response = served.client.post("/conversation", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_reply_clicked_shows_its_ancestors_and_the_replies_below_it(served: Served) -> None:
    reply, depth = _deepest_reply(served.index)
    body = _ask(served, reply)
    assert body["focal_tweet_id"] == reply
    ancestors = [a["tweet_id"] for a in body["ancestors"]]
    assert len(ancestors) == depth and ancestors[0] == body["root"]["tweet_id"]
    parent = served.index.tweet(reply)["in_reply_to_tweet_id"]
    assert ancestors[-1] == parent
    # its parent's page has the reply among the replies below it
    above = _ask(served, int(parent))
    assert reply in {r["tweet_id"] for r in linearized_replies(above)}
    assert [a["tweet_id"] for a in above["ancestors"]] == ancestors[:-1]


def test_a_root_page_is_ranked_by_the_champion_in_three_sections(served: Served) -> None:
    root = int(served.index.conversation_sizes().idxmax())
    body = _ask(served, root)
    assert [s["name"] for s in body["sections"]] == ["main", "low_quality", "abusive"]
    assert body["sources"]["recent_replies"] == RECENT
    assert body["candidates_scored"] == sum(body["sources"].values())
    assert (body["ranking"], body["degraded"]) == ("model", False)
    assert (
        body["model_version"]
        == served.client.get("/healthz").json()["reply_model_versions"][body["arm"]]
    )
    for reply in linearized_replies(body):
        assert set(served.cfg.blend.weights) <= set(reply["predictions"])


def test_requests_over_the_in_flight_limit_fetch_fewer_and_say_so(served: Served) -> None:
    root = int(served.index.conversation_sizes().idxmax())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _ask(served, root), range(16)))
    loaded = [a for a in answers if "load" in a["degraded_reasons"]]
    assert loaded, "no request saw another in flight"
    for answer in loaded:
        assert answer["degraded"] and answer["sources"]["recent_replies"] == RECENT // 2
    calm = [a for a in answers if not a["degraded"]]
    assert all(a["sources"]["recent_replies"] == RECENT for a in calm)


def test_every_shown_reply_is_logged_with_its_position_and_section(served: Served) -> None:
    root = int(served.index.conversation_sizes().idxmax())
    body = _ask(served, root)
    shown = [
        (reply["tweet_id"], reply["position"], section["name"])
        for section in body["sections"]
        for reply in linearized_replies({"sections": [section]})
    ]
    assert [position for _, position, _ in shown] == list(range(len(shown)))
    with sqlite3.connect(served.cfg.paths.serving_events) as db:
        rows = db.execute(
            "SELECT tweet_id, position, section, surface, model_version, arm FROM served "
            "WHERE request_id = ? ORDER BY position",
            (body["request_id"],),
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == shown
    assert {(r[3], r[4], r[5]) for r in rows} == {
        ("conversation", body["model_version"], body["arm"])
    }
    fav = {
        "request_id": body["request_id"],
        "user_id": _viewer(served.index),
        "tweet_id": shown[-1][0],
        "action": "fav",
    }
    recorded = served.client.post("/engagement", json=fav)
    assert recorded.status_code == 200 and recorded.json()["recorded"] is True
