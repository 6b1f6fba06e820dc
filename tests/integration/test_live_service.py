"""The live service through the real app: FastAPI's TestClient on `serving.api.make_api` around the
engine `serving.app` builds (the smoke pipeline's lake, Feast online store and registry champion,
the event log, the text encoder and both push sources).

A tweet posted to POST /tweets is a candidate of a follower's next feed, and a fav posted to
POST /engagement reaches the online store through the push source within seconds, so the next
feed hydrates the new counts for that tweet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pipelines.clock import SimClock, bootstrap_end
from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog
from serving.api import make_api
from serving.candidates.world_index import read_columns
from serving.engine.feed import FeedEngine

pytestmark = pytest.mark.integration

DEADLINE_S = 15.0


class Hydrated:
    """The engine's real online features, recording what each request hydrated."""

    def __init__(self, features: Any) -> None:
        self.features = features
        self.seen: list[tuple[pd.DataFrame, Any]] = []

    def hydrate(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp) -> Any:
        columns = self.features.hydrate(viewer_id, candidates, now)
        self.seen.append((candidates.copy(), columns))
        return columns

    def hydrate_cached(
        self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp
    ) -> tuple[Any, float]:
        return self.features.hydrate_cached(viewer_id, candidates, now)  # type: ignore[no-any-return]

    def hydrate_default(self, viewer_id: int, candidates: pd.DataFrame, now: pd.Timestamp) -> Any:
        return self.features.hydrate_default(viewer_id, candidates, now)


@dataclass(frozen=True)
class Live:
    cfg: FeedrankConfig
    engine: FeedEngine
    client: TestClient
    hydrated: Hydrated


@pytest.fixture(scope="module")
def live(trained_cfg: FeedrankConfig) -> Iterator[Live]:
    from serving.app import _local_arm_model, _with_challenger, engine_for_serving

    cfg = trained_cfg
    clock = SimClock.of(cfg)
    ours = not clock.exists()
    if ours:  # what the bootstrap does: the world's now is the end of its last day
        clock.set(bootstrap_end(cfg), reason="the live service test")
    pool = ThreadPoolExecutor(1)
    champion = _local_arm_model(cfg, "champion", pool)
    assert champion is not None, "the smoke pipeline promoted no champion"
    engine = engine_for_serving(cfg, _with_challenger(champion, None))
    hydrated = Hydrated(engine.features)
    engine.features = hydrated
    api = make_api(engine, cfg.serve.max_body_bytes, cfg.serve.max_tweets_body_bytes)
    with TestClient(api) as client:
        yield Live(cfg, engine, client, hydrated)
    engine.close()
    pool.shutdown()
    if ours:
        clock.path.unlink()


def author_with_two_followers(cfg: FeedrankConfig) -> tuple[int, int, int]:
    """(author, follower, another follower) of the smoke world."""
    follows = read_columns(cfg.paths.raw, "follows", ["follower_id", "followee_id"])
    follows = follows[follows["follower_id"] != follows["followee_id"]]
    counts = follows.groupby("followee_id")["follower_id"].nunique()
    author = int(counts[counts >= 2].index[0])
    followers = sorted(follows.loc[follows["followee_id"] == author, "follower_id"].tolist())
    return author, int(followers[0]), int(followers[1])


def new_tweet(live: Live, author: int) -> dict[str, Any]:
    """A root tweet by `author`, posted now, with a real tweet's text."""
    tweets = read_columns(live.cfg.paths.raw, "tweets", ["tweet_id", "text"])
    tweet_id = int(tweets["tweet_id"].max()) + 1000
    return {
        "tweet_id": tweet_id,
        "author_id": author,
        "created_at": live.engine.now().isoformat(),
        "text": str(tweets["text"].iloc[0]),
        "language": "en",
        "has_image": False,
        "has_video": False,
        "has_url": False,
        "hashtags": [],
        "conversation_id": tweet_id,
        "in_reply_to_tweet_id": None,
        "toxicity": 0.0,
    }


def online_counts(cfg: FeedrankConfig, tweet_id: int) -> dict[str, Any]:
    from pipelines.features.store import feature_store

    names = ["tweet_favs_window", "tweet_impressions_window", "tweet_engagements_total"]
    row = (
        feature_store(cfg)
        .get_online_features(
            features=[f"tweet_engagement:{name}" for name in names],
            entity_rows=[{"tweet_id": tweet_id}],
        )
        .to_dict()
    )
    return {name: row[name][0] for name in names}


def wait_for(check: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {DEADLINE_S} s")
        time.sleep(0.2)


def test_a_posted_tweet_and_its_fav_reach_the_next_feed_through_the_online_store(
    live: Live,
) -> None:
    author, follower, other_follower = author_with_two_followers(live.cfg)
    tweet = new_tweet(live, author)
    tweet_id = tweet["tweet_id"]

    response = live.client.post("/tweets", json={"tweets": [tweet]})
    assert response.status_code == 200, response.text
    assert response.json() == {"posted": 1, "repeated": 0}
    assert live.client.post("/tweets", json={"tweets": [tweet]}).json()["repeated"] == 1
    posted, vectors = EventLog(live.cfg.paths.serving_events).posted_after(0)
    assert tweet_id in posted["tweet_id"].tolist()
    assert vectors[posted["tweet_id"].tolist().index(tweet_id)] is not None

    # A candidate of the follower's next feed at once: newest first, it leads the page.
    page = live.client.post(
        "/feed", json={"user_id": follower, "limit": 1, "policy": "chronological"}
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert [item["tweet_id"] for item in body["items"]] == [tweet_id]
    assert body["items"][0]["source"] == "in_network_recent"

    fav = {"request_id": body["request_id"], "user_id": follower, "tweet_id": tweet_id}
    recorded = live.client.post("/engagement", json={**fav, "action": "fav"})
    assert recorded.status_code == 200, recorded.text

    # Through the push source into the online store, within seconds.
    counts = wait_for(
        lambda: c if (c := online_counts(live.cfg, tweet_id))["tweet_favs_window"] == 1.0 else None,
        "the fav in the online store",
    )
    assert counts["tweet_impressions_window"] == 1.0
    assert counts["tweet_engagements_total"] == 1.0

    # The next feed (another follower's; synthetic, so it moves no count) hydrates them.
    def hydrated_favs() -> float | None:
        live.hydrated.seen.clear()
        feed = live.client.post(
            "/feed", json={"user_id": other_follower, "limit": 5, "synthetic": True}
        )
        assert feed.status_code == 200, feed.text
        for candidates, columns in live.hydrated.seen:
            rows = np.flatnonzero(candidates["tweet_id"].to_numpy() == tweet_id)
            if len(rows) and columns["tweet_favs_window"][rows[0]] == 1.0:
                return float(columns["tweet_impressions_window"][rows[0]])
        return None

    assert wait_for(hydrated_favs, "the fav in the next feed's features") == 1.0


# --------------------------------------------------------- pushes behind a later materialization

DAY = pd.Timestamp("2026-03-02", tz="UTC")


def pushed_counts(tweet_ids: list[int], favs: int, at: pd.Timestamp) -> pd.DataFrame:
    """A push frame of these tweets at `at`, each with `favs` favs (by viewers 1..favs)."""
    from pipelines.features.freshness import tweet_engagement_at

    events = pd.DataFrame(
        {
            "viewer_id": np.tile(np.arange(1, favs + 1), len(tweet_ids)),
            "tweet_id": np.repeat(tweet_ids, favs),
            "action": "fav",
            "at": at - pd.Timedelta(minutes=1),
        }
    )
    views = events[["tweet_id", "at"]].rename(columns={"at": "served_at"})
    return tweet_engagement_at(np.asarray(tweet_ids), views, events, at)


def test_pushes_at_the_clocks_now_reach_a_replica_holding_later_materialized_rows(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.features.batch import write_feature_table
    from pipelines.features.freshness import push_tweet_engagement
    from pipelines.features.store import apply_repo, materialize
    from serving.features.hydrate import FastOnlineFeatures

    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    cfg = FeedrankConfig()
    apply_repo(cfg)
    # Materialized rows end two days on (windows closing after the world's last event) ...
    later = DAY + pd.Timedelta(days=2)
    table = pushed_counts([1, 2], 1, later)
    table["tweet_engagement_snapshot_s"] = later.timestamp()
    write_feature_table(cfg, "tweet_engagement", table)
    materialize(
        cfg, (later + pd.Timedelta(hours=1)).to_pydatetime(), feature_views=["tweet_engagement"]
    )
    # ... while the clock, and every push, stands at the end of the first day.
    now = DAY + pd.Timedelta(days=1)
    SimClock.of(cfg).set(now)
    fast = FastOnlineFeatures(cfg, cache_ttl_s=3600.0)
    assert fast.replica.replicate()["tweet_engagement"] == 2
    candidates = pd.DataFrame({"tweet_id": [1, 2], "author_id": [5, 5], "in_network": 0})

    def favs() -> list[float]:
        return fast.hydrate(7, candidates, now)["tweet_favs_window"].tolist()

    assert favs() == [1.0, 1.0]
    push_tweet_engagement(cfg, pushed_counts([1], 3, now))
    assert fast.replica.sync() >= 1
    assert favs() == [3.0, 1.0]
    # A second push in the same clock second (whole seconds in the store) is not missed.
    push_tweet_engagement(cfg, pushed_counts([2], 4, now + pd.Timedelta(microseconds=1)))
    fast.replica.sync()
    assert favs() == [3.0, 4.0]
    fast.close()
