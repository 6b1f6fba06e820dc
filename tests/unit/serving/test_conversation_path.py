"""The /conversation path through the engine and its HTTP app, with fake features and rankers:
a reply clicked shows its ancestors and the replies below it, degradation (a failing or slow
ranker gives the heuristic order; load and overruns fetch fewer candidates, and say so), the
product order, ads, and every shown reply logged with its position and section."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pipelines.config import FeedrankConfig
from pipelines.event_log import EventLog
from pipelines.traffic.runner import linearized_replies
from serving.api import make_api
from serving.conversation.order import product_groups
from serving.conversation.scoring import CANDIDATE_COLUMNS, ScoredReplies
from serving.engine.feed import FeedEngine
from serving.schemas import ConversationRequest, ConversationResponse
from tests.unit.serving.conversation_world import (
    BIG_ROOT,
    ROOT_AUTHOR,
    conversation_cfg,
    conversation_frames,
    conversation_index,
)
from tests.utils.fakes import FakeFeatures, fake_arm
from tests.utils.world import ROOT, make_cfg, make_engine

VIEWER = 10  # follows 2..9 in the generated world


class RecordingScorer:
    """A reply scorer that scores by tweet id (newest best), records what it was given, and can
    fail or be slow."""

    def __init__(self, fail: bool = False, delay_s: float = 0.0, version: str = "conv-1") -> None:
        self.fail, self.delay_s, self.version = fail, delay_s, version
        self.calls: list[tuple[int, int, pd.DataFrame]] = []

    async def score(self, viewer_id: int, root_id: int, candidates: pd.DataFrame) -> ScoredReplies:
        self.calls.append((viewer_id, root_id, candidates))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("the reply ranker is down")
        ids = candidates["tweet_id"].to_numpy(np.float64)
        scores = (ids - ids.min()) / max(np.ptp(ids), 1.0)
        return ScoredReplies(scores, {"negative": np.zeros(len(ids)), "fav": scores}, self.version)


def big_engine(
    cfg: FeedrankConfig, scorer: RecordingScorer, frames: dict[str, pd.DataFrame] | None = None
) -> FeedEngine:
    index = conversation_index(cfg, frames or conversation_frames(300))
    return FeedEngine(
        cfg,
        index,
        FakeFeatures(),
        {"champion": fake_arm("v1")},
        events=EventLog(cfg.paths.serving_events),
        reply_scorers={"champion": scorer},
    )


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture()
def tiny_client(home: Path) -> Iterator[tuple[FeedEngine, TestClient]]:
    engine = make_engine(make_cfg(home))
    with TestClient(make_api(engine, engine.cfg.serve.max_body_bytes)) as client:
        yield engine, client
    engine.close()


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node["replies"])


def _served_rows(cfg: FeedrankConfig) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cfg.paths.serving_events) as db:
        return db.execute(
            "SELECT request_id, tweet_id, position, section, surface, model_version, arm, source "
            "FROM served ORDER BY id"
        ).fetchall()


def _ask(engine: FeedEngine, tweet_id: int, viewer_id: int = VIEWER) -> ConversationResponse:
    return asyncio.run(
        engine.conversation(ConversationRequest(tweet_id=tweet_id, viewer_id=viewer_id))
    )


# ---------------------------------------------------------------------------- the tiny world


def test_a_root_page_has_three_sections_of_scored_threads(
    tiny_client: tuple[FeedEngine, TestClient],
) -> None:
    _, client = tiny_client
    response = client.post("/conversation", json={"tweet_id": ROOT, "viewer_id": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["root"] == {"tweet_id": ROOT, "author_id": 4, "text": f"tweet {ROOT}"}
    assert (body["focal_tweet_id"], body["ancestors"]) == (ROOT, [])
    sections = {s["name"]: s["replies"] for s in body["sections"]}
    assert list(sections) == ["main", "low_quality", "abusive"]
    assert [r["tweet_id"] for r in sections["main"]] == [202]
    assert [r["tweet_id"] for r in sections["main"][0]["replies"]] == [204]
    assert [r["tweet_id"] for r in sections["abusive"]] == [203]  # toxicity 0.9
    # the default scorer: the arm's feed ranker (fake p(fav) = 0.25 for 202), blend fav 0.5
    assert sections["main"][0]["score"] == pytest.approx(0.125)
    assert sections["main"][0]["predictions"]["fav"] == pytest.approx(0.25)
    assert body["sources"] == {"recent_replies": 3, "top_replies": 0, "ancestors": 0}
    assert (body["ranking"], body["degraded"], body["degraded_reasons"]) == ("model", False, [])
    assert (body["model_version"], body["arm"]) == ("v1", "champion")


def test_a_reply_clicked_shows_its_ancestors_root_first_and_the_replies_below_it(
    tiny_client: tuple[FeedEngine, TestClient],
) -> None:
    _, client = tiny_client
    response = client.post("/conversation", json={"tweet_id": 202, "viewer_id": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["focal_tweet_id"] == 202 and body["root"]["tweet_id"] == ROOT
    assert [a["tweet_id"] for a in body["ancestors"]] == [ROOT]
    every = [node["tweet_id"] for s in body["sections"] for node in _walk(s["replies"])]
    assert every == [204]  # not 203, a sibling of 202
    leaf = client.post("/conversation", json={"tweet_id": 204, "viewer_id": 1}).json()
    assert [a["tweet_id"] for a in leaf["ancestors"]] == [ROOT, 202]
    assert all(not s["replies"] for s in leaf["sections"]) and leaf["model_version"] == "none"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"tweet_id": 999, "viewer_id": 1}, "tweet 999"),
        ({"tweet_id": ROOT, "viewer_id": 77}, "user 77"),
    ],
)
def test_an_unknown_tweet_or_viewer_is_404_naming_it(
    tiny_client: tuple[FeedEngine, TestClient], body: dict[str, int], named: str
) -> None:
    response = tiny_client[1].post("/conversation", json=body)
    assert response.status_code == 404 and named in response.json()["detail"]


def test_every_shown_reply_is_logged_with_its_position_section_version_and_arm(
    tiny_client: tuple[FeedEngine, TestClient],
) -> None:
    engine, client = tiny_client
    body = client.post("/conversation", json={"tweet_id": ROOT, "viewer_id": 1}).json()
    rows = _served_rows(engine.cfg)
    read = [(r["tweet_id"], r["position"]) for r in linearized_replies(body)]
    assert [(row[1], row[2]) for row in rows] == read == [(202, 0), (204, 1), (203, 2)]
    assert [row[3] for row in rows] == ["main", "main", "abusive"]
    assert {(row[0], row[4], row[5], row[6]) for row in rows} == {
        (body["request_id"], "conversation", "v1", "champion")
    }
    fav = {"request_id": body["request_id"], "user_id": 1, "tweet_id": 203, "action": "fav"}
    assert client.post("/engagement", json=fav).json()["recorded"] is True


def test_a_synthetic_conversation_request_logs_its_replies_as_synthetic(
    tiny_client: tuple[FeedEngine, TestClient],
) -> None:
    engine, client = tiny_client
    client.post("/conversation", json={"tweet_id": ROOT, "viewer_id": 1})
    probe = {"tweet_id": ROOT, "viewer_id": 1, "synthetic": True}
    body = client.post("/conversation", json=probe).json()
    with sqlite3.connect(engine.cfg.paths.serving_events) as db:
        flags = dict(
            db.execute(
                "SELECT request_id, MAX(synthetic) FROM served GROUP BY request_id"
            ).fetchall()
        )
    assert len(flags) == 2
    assert flags.pop(body["request_id"]) == 1
    assert list(flags.values()) == [0]


# ----------------------------------------------------------------- a generated conversation


def test_the_scorer_gets_the_candidates_with_their_depth_and_network(home: Path) -> None:
    scorer = RecordingScorer()
    engine = big_engine(conversation_cfg(home), scorer)
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    viewer, root, frame = scorer.calls[0]
    assert (viewer, root) == (VIEWER, BIG_ROOT) and list(frame.columns) == list(CANDIDATE_COLUMNS)
    assert len(frame) == answer.candidates_scored == 300
    assert frame["in_network"].tolist() == frame["author_id"].between(2, 9).tolist()
    direct = frame["in_reply_to_tweet_id"] == BIG_ROOT
    assert (frame.loc[direct, "depth"] == 1).all() and (frame.loc[~direct, "depth"] > 1).all()
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert answer.model_version == "conv-1"


def test_the_depth_below_a_reply_clicked_counts_from_the_root(home: Path) -> None:
    scorer = RecordingScorer()
    engine = big_engine(conversation_cfg(home), scorer)
    try:
        parents = engine.index.arrays.parent_id[engine.index.conversation_rows(BIG_ROOT)]
        focal = int(pd.Series(parents[parents != BIG_ROOT]).mode()[0])
        answer = _ask(engine, focal)
    finally:
        engine.close()
    _, root, frame = scorer.calls[0]
    assert root == BIG_ROOT and answer.focal_tweet_id == focal
    direct = frame["in_reply_to_tweet_id"] == focal
    assert (frame.loc[direct, "depth"] == len(answer.ancestors) + 1).all()


def test_a_failing_ranker_gives_the_heuristic_order_never_an_error(home: Path) -> None:
    cfg = conversation_cfg(home)
    engine = big_engine(cfg, RecordingScorer(fail=True))
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    assert (answer.ranking, answer.degraded, answer.degraded_reasons) == (
        "heuristic",
        True,
        ["ranker_failed"],
    )
    assert answer.model_version == "policy:heuristic"
    shown = [n for s in answer.sections for n in s.replies]
    assert shown and all(n.predictions == {} for n in shown)
    assert {row[5] for row in _served_rows(cfg)} == {"policy:heuristic"}


class MisshapenScorer(RecordingScorer):
    async def score(self, viewer_id: int, root_id: int, candidates: pd.DataFrame) -> ScoredReplies:
        return ScoredReplies(np.zeros(len(candidates) + 1), {}, "broken")


def test_a_scorer_answer_of_the_wrong_shape_counts_as_a_failure(home: Path) -> None:
    engine = big_engine(conversation_cfg(home), MisshapenScorer())
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    assert answer.ranking == "heuristic" and answer.degraded_reasons == ["ranker_failed"]


def test_a_scorer_may_answer_with_any_object_of_the_same_fields() -> None:
    from types import SimpleNamespace

    from serving.conversation.scoring import checked

    answer = SimpleNamespace(scores=[0.5, 1.0], predictions={"fav": [0.1, 0.2]}, version=3)
    scored = checked(answer, 2)  # type: ignore[arg-type]
    assert scored.scores.dtype == np.float64 and scored.version == "3"
    with pytest.raises(ValueError, match="non-finite"):
        checked(SimpleNamespace(scores=[np.nan, 1.0], predictions={}, version="x"), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'fav'"):
        checked(SimpleNamespace(scores=[0.0, 1.0], predictions={"fav": [0.1]}, version="x"), 2)  # type: ignore[arg-type]


def test_the_heuristic_puts_threads_with_more_replies_first() -> None:
    from serving.conversation.degradation import heuristic_scores

    scores = heuristic_scores(
        np.array([0, 5, 5, 0]), np.array([0, 0, 3, 0]), np.array([0, 0, 0, 10**12]), 10**12, 24.0
    )
    assert np.argsort(-scores).tolist() == [2, 1, 3, 0]


def test_a_ranker_past_the_deadline_gives_the_heuristic_order(home: Path) -> None:
    cfg = conversation_cfg(home)
    cfg = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"request_deadline_ms": 50})})
    engine = big_engine(cfg, RecordingScorer(delay_s=1.0))
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    assert answer.ranking == "heuristic" and answer.degraded_reasons == ["ranker_timeout"]


def test_under_load_fewer_candidates_are_fetched_and_scored_and_the_answer_says_so(
    home: Path,
) -> None:
    cfg = conversation_cfg(home, max_in_flight=1, recent_replies=200, degraded_share=0.25)
    scorer = RecordingScorer(delay_s=0.3)
    engine = big_engine(cfg, scorer)

    async def together() -> list[ConversationResponse]:
        request = ConversationRequest(tweet_id=BIG_ROOT, viewer_id=VIEWER)
        return list(await asyncio.gather(*(engine.conversation(request) for _ in range(3))))

    try:
        answers = asyncio.run(together())
    finally:
        engine.close()
    calm = [a for a in answers if not a.degraded]
    loaded = [a for a in answers if a.degraded]
    assert len(calm) == 1 and len(loaded) == 2
    assert calm[0].sources["recent_replies"] == 200
    for answer in loaded:
        assert answer.degraded_reasons == ["load"] and answer.ranking == "model"
        assert answer.sources["recent_replies"] == 50
        assert answer.candidates_scored < calm[0].candidates_scored
    assert sorted(len(call[2]) for call in scorer.calls)[-1] == calm[0].candidates_scored


def test_after_an_overrun_the_next_requests_fetch_fewer(home: Path) -> None:
    cfg = conversation_cfg(home, recent_replies=200, degraded_share=0.25, overrun_cooldown_s=60)
    cfg = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"request_deadline_ms": 50})})
    scorer = RecordingScorer(delay_s=0.2)
    engine = big_engine(cfg, scorer)
    try:
        first = _ask(engine, BIG_ROOT)
        scorer.delay_s = 0.0
        second = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    assert first.degraded_reasons == ["ranker_timeout"] and first.sources["recent_replies"] == 200
    assert second.degraded_reasons == ["recent_overrun"] and second.ranking == "model"
    assert second.sources["recent_replies"] == 50


def test_top_level_threads_follow_the_product_order_in_each_section(home: Path) -> None:
    cfg = conversation_cfg(home, max_threads=500)
    frames = conversation_frames(300)
    tweets = frames["tweets"]
    # the root author answers three top-level replies by accounts the viewer follows
    followed = tweets.index[
        (tweets["in_reply_to_tweet_id"] == BIG_ROOT) & tweets["author_id"].between(2, 9)
    ][:3]
    leaves = tweets.index[~tweets["tweet_id"].isin(tweets["in_reply_to_tweet_id"])][-3:]
    tweets.loc[leaves, "in_reply_to_tweet_id"] = tweets.loc[followed, "tweet_id"].to_numpy()
    tweets.loc[leaves, "author_id"] = ROOT_AUTHOR
    engine = big_engine(cfg, RecordingScorer(), frames)
    index = engine.index
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    rows = index.conversation_rows(BIG_ROOT)
    arrays = index.arrays
    answered = set(arrays.parent_id[rows[arrays.author_id[rows] == ROOT_AUTHOR]].tolist())
    for section in answer.sections:
        threads = section.replies
        groups = product_groups(
            np.array([n.in_network for n in threads], dtype=bool),
            np.array([n.tweet_id in answered for n in threads], dtype=bool),
            np.array([n.verified for n in threads], dtype=bool),
        )
        assert groups.tolist() == sorted(groups.tolist())
        for group in set(groups.tolist()):
            scores = [n.thread_score for n, g in zip(threads, groups, strict=True) if g == group]
            assert scores == sorted(scores, reverse=True)
    assert any(n.in_network and n.tweet_id in answered for n in answer.sections[0].replies)


def test_ads_fill_slots_in_main_and_are_never_logged(home: Path) -> None:
    cfg = conversation_cfg(home, replies_per_ad=10, max_ads=3)
    engine = big_engine(cfg, RecordingScorer())
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    shown = {node["tweet_id"] for node in linearized_replies(answer.model_dump())}
    assert len(shown) >= 30 and len(answer.ads) == 3
    assert all(ad.is_ad and ad.section == "main" for ad in answer.ads)
    assert len({ad.after_thread for ad in answer.ads}) == 3
    logged = {row[1] for row in _served_rows(cfg)}
    assert logged == shown and not logged & {ad.ad_id for ad in answer.ads}
    assert {row[7] for row in _served_rows(cfg)} == {"conversation"}


def test_collapsed_branches_and_threads_are_counted_in_more_replies(home: Path) -> None:
    cfg = conversation_cfg(home, max_threads=5, shown_children=1, shown_depth=2)
    engine = big_engine(cfg, RecordingScorer())
    try:
        answer = _ask(engine, BIG_ROOT)
    finally:
        engine.close()
    shown = len(linearized_replies(answer.model_dump()))
    markers = sum(s.more_replies for s in answer.sections) + sum(
        node["more_replies"]
        for s in answer.model_dump()["sections"]
        for node in _walk(s["replies"])
    )
    assert shown + markers == answer.candidates_scored == 300
    assert all(len(s.replies) <= 5 for s in answer.sections)


def test_an_older_event_log_gains_the_section_column(home: Path) -> None:
    path = home / "old.sqlite"
    events = EventLog(path)
    events.counts()  # creates the file
    events.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE served DROP COLUMN section")
    reopened = EventLog(path)
    reopened.counts()
    reopened.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(served)")}
    assert "section" in columns
