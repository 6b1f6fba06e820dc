"""The engine on the live service: the simulated clock, POST /tweets (checked, embedded, pushed,
recorded, candidates at once, indexed by every replica), engagement counts marked for the push,
the feed policies, and conversations logged as served."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pipelines.clock import SimClock
from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog
from pipelines.ranking import blend_scores
from pipelines.schema import HEADS
from serving.api import make_api
from serving.candidates.world_index import WorldIndex
from serving.engine.feed import FeedEngine
from serving.engine.ports import Oracle
from serving.live.counts import EngagementPusher, TweetHistory
from tests.utils.fakes import FakeFeatures, fake_arm
from tests.utils.world import FEED_ORDER, HOUR, NOW, ROOT, make_cfg, tiny_world

DIM = 4
LATER = NOW + HOUR


class Store:
    """Where the engine's pushes land (the real Feast push is the integration test's)."""

    def __init__(self) -> None:
        self.embeddings: list[pd.DataFrame] = []
        self.counts: list[pd.DataFrame] = []

    def push_embeddings(self, tweets: pd.DataFrame, vectors: np.ndarray, at: pd.Timestamp) -> int:
        self.embeddings.append(tweets.assign(vector=list(vectors), at=at))
        return len(tweets)

    def push_counts(self, frame: pd.DataFrame) -> int:
        self.counts.append(frame)
        return len(frame)


class Vectors:
    """The tweet-index port: what was added."""

    def __init__(self) -> None:
        self.added: list[int] = []

    def retrieve(self, viewer_id: int, seen: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"tweet_id": [], "author_id": []}, dtype=np.int64)

    def add(self, tweet_ids: np.ndarray, vectors: np.ndarray, author_ids: np.ndarray) -> int:
        assert vectors.shape == (len(tweet_ids), DIM)
        self.added.extend(int(t) for t in tweet_ids)
        return len(tweet_ids)


def embed(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: one unit vector per text, by its length."""
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
    vectors[np.arange(len(texts)), [len(t) % DIM for t in texts]] = 1.0
    return vectors


def engine_on(
    cfg: FeedrankConfig, store: Store, vectors: Vectors | None = None, oracle: Oracle | None = None
) -> FeedEngine:
    """A replica over the tiny world, on the event log and clock of `cfg`."""
    frames = tiny_world()
    index = WorldIndex.from_frames(cfg, **frames)
    events = EventLog(cfg.paths.serving_events)
    clock = SimClock.of(cfg)
    impressions = frames["impressions"]
    counts = EngagementPusher(
        TweetHistory.from_impressions(impressions), events, clock.now, store.push_counts
    )
    return FeedEngine(
        cfg,
        index,
        FakeFeatures(),
        {"champion": fake_arm("v1")},
        retriever=vectors,
        events=events,
        clock=clock.now,
        embed=embed,
        push_embeddings=store.push_embeddings,
        counts=counts,
        oracle=oracle,
    )


@pytest.fixture()
def cfg(tmp_path: Path) -> FeedrankConfig:
    cfg = make_cfg(tmp_path, max_limit=50)
    SimClock.of(cfg).set(LATER)
    return cfg


@pytest.fixture()
def store() -> Store:
    return Store()


@pytest.fixture()
def client(cfg: FeedrankConfig, store: Store) -> Iterator[TestClient]:
    engine = engine_on(cfg, store, Vectors())
    with TestClient(make_api(engine, 16_384, 1_000_000)) as test_client:
        yield test_client
    engine.close()


def tweet(tweet_id: int, author_id: int, **fields: Any) -> dict[str, Any]:
    """A POST /tweets item: a root at NOW + 15 min unless `fields` say otherwise."""
    return {
        "tweet_id": tweet_id,
        "author_id": author_id,
        "created_at": (NOW + HOUR / 4).isoformat(),
        "text": f"a new tweet {tweet_id}",
        "language": "en",
        "has_image": False,
        "has_video": False,
        "has_url": False,
        "hashtags": ["news"],
        "conversation_id": tweet_id,
        "in_reply_to_tweet_id": None,
        "toxicity": 0.0,
        **fields,
    }


def feed_ids(client: TestClient, user_id: int = 1, **body: Any) -> list[int]:
    response = client.post("/feed", json={"user_id": user_id, "limit": 50, **body})
    assert response.status_code == 200, response.text
    return [item["tweet_id"] for item in response.json()["items"]]


# ------------------------------------------------------------------------------------- clock


def test_the_engine_stamps_with_the_simulated_clock(cfg: FeedrankConfig, store: Store) -> None:
    engine = engine_on(cfg, store)
    assert engine.now() == LATER
    SimClock.of(cfg).advance(HOUR)
    assert engine.now() == LATER + HOUR
    with TestClient(make_api(engine, 16_384)) as client:
        client.post("/feed", json={"user_id": 1})
    served, _ = EventLog(cfg.paths.serving_events).pending_export()
    assert (served["served_at"] == LATER + HOUR).all()
    engine.close()


# ------------------------------------------------------------------------------ POST /tweets


def test_a_posted_tweet_is_a_candidate_of_a_followers_next_feed(
    client: TestClient, cfg: FeedrankConfig, store: Store
) -> None:
    assert 301 not in feed_ids(client)
    response = client.post("/tweets", json={"tweets": [tweet(301, 2)]})
    assert response.status_code == 200, response.text
    assert response.json() == {"posted": 1, "repeated": 0}
    assert 301 in feed_ids(client)
    # Embedded once, pushed with its creation time, recorded with its embedding.
    assert store.embeddings[0]["tweet_id"].tolist() == [301]
    assert (store.embeddings[0]["at"] == LATER).all()  # known online from the clock's now
    posted, vectors = EventLog(cfg.paths.serving_events).posted_after(0)
    assert posted["tweet_id"].tolist() == [301]
    assert vectors[0] is not None and vectors[0].shape == (DIM,)


def test_posting_again_counts_repeats_lake_tweets_included(client: TestClient) -> None:
    client.post("/tweets", json={"tweets": [tweet(301, 2)]})
    lake_tweet = tweet(101, 2, created_at=(NOW - HOUR).isoformat(), conversation_id=101)
    response = client.post("/tweets", json={"tweets": [tweet(301, 2), lake_tweet, tweet(302, 4)]})
    assert response.json() == {"posted": 1, "repeated": 2}


def test_a_reply_may_answer_a_tweet_of_the_same_batch(client: TestClient) -> None:
    reply = tweet(302, 3, in_reply_to_tweet_id=301, conversation_id=301)
    response = client.post("/tweets", json={"tweets": [reply, tweet(301, 2)]})
    assert response.status_code == 200, response.text
    conversation = client.post("/conversation", json={"tweet_id": 301, "viewer_id": 1}).json()
    assert [r["tweet_id"] for r in conversation["sections"][0]["replies"]] == [302]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"author_id": 99}, "author_id"),
        ({"created_at": (LATER + HOUR).isoformat()}, "created_at"),
        ({"in_reply_to_tweet_id": 999, "conversation_id": ROOT}, "in_reply_to_tweet_id"),
        ({"in_reply_to_tweet_id": ROOT, "conversation_id": 998}, "conversation_id"),
        ({"conversation_id": 5}, "conversation_id"),
        ({"toxicity": 1.5}, "toxicity"),
        ({"created_at": "2026-03-10T12:00:00"}, "created_at"),
        ({"hashtags": "news"}, "hashtags"),
    ],
)
def test_a_bad_tweet_is_422_naming_its_field_and_nothing_is_recorded(
    client: TestClient, cfg: FeedrankConfig, fields: dict[str, Any], field: str
) -> None:
    bad = {**tweet(302, 2), **fields}
    response = client.post("/tweets", json={"tweets": [tweet(301, 2), bad]})
    assert response.status_code == 422, response.text
    loc = response.json()["detail"][0]["loc"]
    assert ".".join(str(part) for part in loc) == f"body.tweets.1.{field}"
    posted, _ = EventLog(cfg.paths.serving_events).posted_after(0)
    assert posted.empty


def test_more_than_a_thousand_tweets_is_422(client: TestClient) -> None:
    many = [tweet(10_000 + i, 2) for i in range(1001)]
    response = client.post("/tweets", json={"tweets": many})
    assert response.status_code in (413, 422)


def test_another_replica_indexes_posted_tweets_with_their_stored_embeddings(
    cfg: FeedrankConfig, store: Store
) -> None:
    receiving, other_vectors = engine_on(cfg, store, Vectors()), Vectors()
    other = engine_on(cfg, store, other_vectors)
    with TestClient(make_api(receiving, 16_384, 1_000_000)) as client:
        assert client.post("/tweets", json={"tweets": [tweet(301, 2)]}).status_code == 200
    assert not other.index.has_tweet(301)
    assert other.live is not None
    synced = other.live.poll()
    assert (synced.tweets, synced.vectors) == (1, 1)
    assert other.index.has_tweet(301) and other_vectors.added == [301]
    assert len(store.embeddings) == 1  # only the receiving replica embedded and pushed
    receiving.close()
    other.close()


# ----------------------------------------------------------------------- engagement counts


def test_served_items_and_engagements_are_marked_for_the_count_push(
    cfg: FeedrankConfig, store: Store
) -> None:
    engine = engine_on(cfg, store)
    assert engine.counts is not None and engine.live is not None
    with TestClient(make_api(engine, 16_384)) as client:
        page = client.post("/feed", json={"user_id": 1}).json()
        assert engine.counts.pending() == len(FEED_ORDER)
        engine.counts.flush()
        impressions = store.counts[-1].set_index("tweet_id")["tweet_impressions_window"]
        assert impressions.to_dict() == {101: 1.0, 103: 1.0, 104: 2.0}  # 104: one in the lake
        first = page["items"][0]["tweet_id"]
        body = {"request_id": page["request_id"], "user_id": 1, "tweet_id": first}
        assert client.post("/engagement", json={**body, "action": "fav"}).status_code == 200
        client.post("/engagement", json={**body, "action": "negative"})
    assert engine.counts.pending() == 1  # the fav; a negative moves no count
    engine.counts.flush()
    assert store.counts[-1]["tweet_favs_window"].tolist() == [1.0]
    # Every replica counts the live engagement for its own sources too.
    assert engine.live.poll().engagements == 1
    engine.close()


def test_a_synthetic_page_moves_no_count(cfg: FeedrankConfig, store: Store) -> None:
    engine = engine_on(cfg, store)
    with TestClient(make_api(engine, 16_384)) as client:
        client.post("/feed", json={"user_id": 1, "synthetic": True})
    assert engine.counts is not None and engine.counts.pending() == 0
    engine.close()


# ---------------------------------------------------------------------------------- policies


def oracle(viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp) -> Mapping[str, Any]:
    """True probabilities: a fav as likely as the tweet id is small, nothing else."""
    fav = 1.0 / candidates["tweet_id"].to_numpy(np.float64)
    return {head: fav if head == "fav" else np.zeros(len(fav)) for head in HEADS}


@pytest.fixture()
def policy_client(cfg: FeedrankConfig, store: Store) -> Iterator[TestClient]:
    engine = engine_on(cfg, store, oracle=oracle)
    with TestClient(make_api(engine, 16_384)) as test_client:
        yield test_client
    engine.close()


def test_the_chronological_policy_serves_the_same_candidates_newest_first(
    policy_client: TestClient, cfg: FeedrankConfig
) -> None:
    response = policy_client.post("/feed", json={"user_id": 1, "policy": "chronological"})
    body = response.json()
    assert [item["tweet_id"] for item in body["items"]] == [101, 104, 103]
    assert sorted(item["tweet_id"] for item in body["items"]) == sorted(FEED_ORDER)
    assert (body["policy"], body["model_version"], body["ranking"]) == (
        "chronological",
        "policy:chronological",
        "policy",
    )
    assert not body["degraded"]
    served, _ = EventLog(cfg.paths.serving_events).pending_export()
    assert set(served["model_version"]) == {"policy:chronological"}


def test_the_random_policy_shuffles_the_same_candidates(policy_client: TestClient) -> None:
    # Synthetic pages leave the candidates unseen, so every request ranks the same ones.
    orders = {tuple(feed_ids(policy_client, 1, policy="random", synthetic=True)) for _ in range(12)}
    assert all(sorted(order) == sorted(FEED_ORDER) for order in orders)
    assert len(orders) > 1  # seeded per request, so requests differ


def test_the_oracle_policy_orders_by_the_blend_of_true_probabilities(
    policy_client: TestClient, cfg: FeedrankConfig
) -> None:
    body = policy_client.post("/feed", json={"user_id": 1, "policy": "oracle"}).json()
    assert [item["tweet_id"] for item in body["items"]] == [101, 103, 104]
    truth = {head: np.array([1.0 / 101 if head == "fav" else 0.0]) for head in HEADS}
    assert body["items"][0]["score"] == pytest.approx(blend_scores(truth, cfg.blend.weights)[0])
    assert body["model_version"] == "policy:oracle"


def test_the_oracle_policy_without_world_truth_is_422_naming_policy(client: TestClient) -> None:
    response = client.post("/feed", json={"user_id": 1, "policy": "oracle"})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "policy"] and "no simulated world truth" in error["msg"]


def test_an_unknown_policy_is_422(client: TestClient) -> None:
    assert client.post("/feed", json={"user_id": 1, "policy": "best"}).status_code == 422


# ------------------------------------------------------------------------------ conversation


def test_every_reply_shown_is_logged_as_served_so_it_takes_engagements(
    cfg: FeedrankConfig, store: Store
) -> None:
    engine = engine_on(cfg, store)
    client = TestClient(make_api(engine, 16_384))
    answer = client.post("/conversation", json={"tweet_id": ROOT, "viewer_id": 1}).json()
    shown = [202, 204, 203]  # main: 202 then its reply 204; low quality: 203
    assert engine.counts is not None and engine.counts.pending() == 3  # their impressions
    served, _ = EventLog(cfg.paths.serving_events).pending_export()
    assert served["request_id"].unique().tolist() == [answer["request_id"]]
    assert served.sort_values("position")["tweet_id"].tolist() == shown
    assert set(served["surface"]) == {"conversation"}
    assert served["session_id"].nunique() == 1
    fav = {"request_id": answer["request_id"], "user_id": 1, "tweet_id": 204, "action": "fav"}
    response = client.post("/engagement", json=fav)
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] is True
    engine.close()
