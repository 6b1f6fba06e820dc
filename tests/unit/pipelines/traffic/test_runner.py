"""The traffic runner's day plan on a tiny bootstrapped world: ticks, seeded users and sessions,
the tweets it posts, the conversations it can open and the served truth it writes. The run
against a live service is tests/integration/test_traffic.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.config import FeedrankConfig
from pipelines.schema import TRUTH
from pipelines.traffic.client import RetryPolicy, ServiceClient
from pipelines.traffic.runner import (
    Served,
    TrafficError,
    check_request,
    chosen_users,
    conversations_at,
    day_sessions,
    feed_policy_of,
    linearized_replies,
    probe_policy,
    tick_of,
    tweet_payloads,
)
from pipelines.traffic.users import Behaviour, react
from pipelines.world.simulate import Simulation, build_world
from pipelines.world.truth import true_engagement

TINY = {"n_users": 80, "days": 7, "mean_following": 8, "n_topics": 4, "seed": 3}


TINY_CONFIG = {"world": TINY, "ranker": {"test_days": 2}}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state root of a bootstrapped tiny world (built once for the module)."""
    root = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEEDRANK_HOME", str(root))
        build_world(FeedrankConfig.model_validate(TINY_CONFIG))
    return root


@pytest.fixture
def tiny(tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FeedrankConfig, Simulation]:
    """The tiny world, loaded as traffic loads it, with FEEDRANK_HOME at its root for the test
    (a session's own state root must not leak in)."""
    monkeypatch.setenv("FEEDRANK_HOME", str(tiny_root))
    cfg = FeedrankConfig.model_validate(TINY_CONFIG)
    return cfg, Simulation.load(cfg)


def test_a_tick_covers_the_moments_after_the_last_tick_up_to_its_own_time() -> None:
    start, tick = pd.Timestamp("2026-03-09", tz="UTC"), pd.Timedelta(minutes=15)
    times = pd.DatetimeIndex(
        [start, start + pd.Timedelta(seconds=1), start + tick, start + tick + pd.Timedelta(1)]
        + [start + pd.Timedelta(days=1)]
    )
    assert tick_of(times, start, tick, 96).tolist() == [1, 1, 1, 2, 96]


def test_the_chosen_users_are_a_seeded_draw_of_distinct_users() -> None:
    ids = np.arange(1, 101)
    first, again = chosen_users(ids, 10, seed=5), chosen_users(ids, 10, seed=5)
    assert first is not None and again is not None
    assert first.tolist() == again.tolist() and len(set(first.tolist())) == 10
    other = chosen_users(ids, 10, seed=6)
    assert other is not None and other.tolist() != first.tolist()
    assert chosen_users(ids, None, seed=5) is None


def test_a_days_sessions_and_their_streams_do_not_depend_on_which_users_are_kept(
    tiny: tuple[FeedrankConfig, Simulation],
) -> None:
    _, sim = tiny
    everyone = day_sessions(sim, sim.next_day, seed=11, chosen=None)
    kept = chosen_users(sim.user_ids, 20, seed=11)
    assert kept is not None
    some = day_sessions(sim, sim.next_day, seed=11, chosen=kept)
    assert everyone and some and {s.user_id for s in some} <= set(kept.tolist())
    same = [s for s in everyone if s.user_id in set(kept.tolist())]
    assert [(s.user_id, s.start) for s in same] == [(s.user_id, s.start) for s in some]
    assert [s.rng.random() for s in same] == [s.rng.random() for s in some]
    starts = [s.start for s in everyone]
    assert starts == sorted(starts) and starts[0] >= sim.day_start(sim.next_day)


def test_posted_tweets_carry_the_lakes_columns_with_a_null_parent_for_roots(
    tiny: tuple[FeedrankConfig, Simulation],
) -> None:
    cfg, _ = tiny
    sim = Simulation.load(cfg)
    tweets = sim.post_day(sim.next_day)
    payloads = tweet_payloads(tweets)
    assert len(payloads) == len(tweets)
    roots = [p for p in payloads if p["in_reply_to_tweet_id"] is None]
    replies = [p for p in payloads if p["in_reply_to_tweet_id"] is not None]
    assert roots and replies
    assert all(p["conversation_id"] == p["tweet_id"] for p in roots)
    first = payloads[0]
    assert pd.Timestamp(first["created_at"]) == tweets["created_at"].iloc[0]
    assert str(pd.Timestamp(first["created_at"]).tz) == "UTC"
    assert isinstance(first["hashtags"], list) and isinstance(first["toxicity"], float)


def test_a_conversation_has_only_the_replies_posted_by_the_tick(
    tiny: tuple[FeedrankConfig, Simulation],
) -> None:
    cfg, _ = tiny
    sim = Simulation.load(cfg)
    start = sim.day_start(sim.next_day)
    before, replies_before = conversations_at(sim, start)
    tweets = sim.post_day(sim.next_day)
    roots, at_start = conversations_at(sim, start)
    _, at_end = conversations_at(sim, start + pd.Timedelta(days=1))
    assert at_start[: len(replies_before)].tolist() == replies_before.tolist()
    assert at_start[len(replies_before) :].sum() == 0
    new_replies = int(tweets["in_reply_to_tweet_id"].notna().sum())
    assert at_end.sum() - at_start.sum() == new_replies
    assert (roots[: len(before)] == before).all()


def test_linearized_replies_follow_sections_then_each_subtree_depth_first() -> None:
    answer = {
        "sections": [
            {"name": "main", "replies": [{"tweet_id": 1, "replies": [{"tweet_id": 2}]}]},
            {"name": "low_quality", "replies": [{"tweet_id": 3, "replies": []}]},
        ]
    }
    assert [r["tweet_id"] for r in linearized_replies(answer)] == [1, 2, 3]


def test_the_served_truth_has_the_contracts_columns_and_types(
    tiny: tuple[FeedrankConfig, Simulation],
) -> None:
    cfg, sim = tiny
    tweet_ids = sim.tweet_ids(np.arange(4))
    at = sim.day_start(sim.next_day)
    true = true_engagement(sim, np.full(4, 7), tweet_ids, pd.DatetimeIndex([at] * 4))
    reaction = react(np.random.default_rng(0), true, np.arange(4), Behaviour.of(cfg))
    served = Served()
    served.add(7, "ab" * 16, tweet_ids, reaction)
    table = served.truth_table()
    expected = [("request_id", pa.string()), ("tweet_id", pa.int64())] + [
        (f.name, pa.float32()) for f in TRUTH if f.name != "impression_id"
    ]
    assert [(f.name, f.type) for f in table.schema] == expected
    assert table.num_rows == 4 and table.column("request_id").to_pylist() == ["ab" * 16] * 4
    assert Served().truth_table().num_rows == 0


@pytest.mark.parametrize(
    ("days", "users", "policy", "message"),
    [
        (0, None, "served", "days must be >= 1"),
        (1, 0, "served", "users must be in 1..80"),
        (1, None, "ranker", "unknown policy 'ranker'"),
    ],
)
def test_a_run_asked_for_nonsense_is_refused_naming_what_is_wrong(
    tiny: tuple[FeedrankConfig, Simulation], days: int, users: int | None, policy: str, message: str
) -> None:
    cfg, _ = tiny
    with pytest.raises(TrafficError, match=message):
        check_request(cfg, days, users, policy)


def test_a_policy_the_service_refuses_stops_the_run_before_any_day_is_spent() -> None:
    asked: list[dict[str, object]] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        return httpx.Response(422, json={"detail": "the oracle needs the world's state"})

    async def probe() -> None:
        async with ServiceClient(
            "http://service",
            concurrency=1,
            retry=RetryPolicy(0, 0.01, 0.01),
            timeout_s=1,
            transport=httpx.MockTransport(refuse),
        ) as client:
            await probe_policy(client, "oracle", 7)

    with pytest.raises(TrafficError, match="does not serve the 'oracle' policy.*world's state"):
        asyncio.run(probe())
    assert asked == [{"user_id": 7, "limit": 1, "synthetic": True, "policy": "oracle"}]
    assert feed_policy_of("served") is None and feed_policy_of("random") == "random"


def test_simulated_users_scroll_past_tweets_the_world_does_not_know(
    tiny: tuple[FeedrankConfig, Simulation],
) -> None:
    from pipelines.traffic.runner import known_items
    from pipelines.world.state import TWEET_ID_BASE

    _, sim = tiny
    last = TWEET_ID_BASE + len(sim.world.tweets) - 1
    items = [{"tweet_id": last}, {"tweet_id": last + 1}, {"tweet_id": TWEET_ID_BASE - 1}]
    assert known_items(sim, items) == [{"tweet_id": last}]


def test_linearized_replies_skip_ads_and_more_replies_markers_and_unknown_fields() -> None:
    answer = {
        "ancestors": [{"tweet_id": 9}],
        "sections": [
            {
                "name": "main",
                "replies": [
                    {"tweet_id": 1, "score": 0.5, "replies": [{"tweet_id": 2, "replies": []}]},
                    {"tweet_id": 7, "is_ad": True},
                    {"more_replies": 4},
                ],
            },
            {"name": "abusive", "replies": [{"tweet_id": 3, "is_ad": False}]},
        ],
    }
    assert [r["tweet_id"] for r in linearized_replies(answer)] == [1, 2, 3]
