"""The simulated world: deterministic from its seed, internally consistent, truth kept apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.schema import BINARY_ACTIONS, read_table
from pipelines.world.simulate import build_world

TINY = {"n_users": 80, "days": 7, "mean_following": 8, "n_topics": 4, "seed": 3}


def tiny_world(root: Path, monkeypatch: pytest.MonkeyPatch, **world: object) -> FeedrankConfig:
    monkeypatch.setenv("FEEDRANK_HOME", str(root))
    cfg = FeedrankConfig.model_validate({"world": {**TINY, **world}, "ranker": {"test_days": 2}})
    build_world(cfg)
    return cfg


def tables(cfg: FeedrankConfig) -> dict[str, pd.DataFrame]:
    raw = cfg.paths.raw
    out = {name: read_table(raw, name) for name in ("users", "follows", "tweets", "impressions")}
    out["truth"] = read_table(cfg.paths.truth, "truth")
    return out


def test_same_seed_same_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tables(tiny_world(tmp_path / "a", monkeypatch))
    second = tables(tiny_world(tmp_path / "b", monkeypatch))
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])


def test_other_seed_other_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tables(tiny_world(tmp_path / "a", monkeypatch))
    other = tables(tiny_world(tmp_path / "b", monkeypatch, seed=4))
    assert not first["tweets"]["text"].equals(other["tweets"]["text"])


def test_world_is_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = tables(tiny_world(tmp_path, monkeypatch))
    tweets, impressions, truth = world["tweets"], world["impressions"], world["truth"]
    assert len(impressions) > 500 and impressions["impression_id"].is_unique
    # every impression has its truth, and nothing else does
    assert set(truth["impression_id"]) == set(impressions["impression_id"])
    # replies come after their parents, in the parent's conversation
    parents = tweets.set_index("tweet_id")
    replies = tweets[tweets["in_reply_to_tweet_id"].notna()]
    assert len(replies) > 0
    parent_rows = parents.loc[replies["in_reply_to_tweet_id"].astype("int64")]
    assert (replies["created_at"].to_numpy() > parent_rows["created_at"].to_numpy()).all()
    assert (
        replies["conversation_id"].to_numpy() == parent_rows["conversation_id"].to_numpy()
    ).all()
    # an action happens after the impression, and only when its label is set
    for action in BINARY_ACTIONS:
        happened = impressions[action]
        assert (
            impressions.loc[happened, f"{action}_at"]
            .ge(impressions.loc[happened, "served_at"])
            .all()
        )
        assert impressions.loc[~happened, f"{action}_at"].isna().all()
    # the author engages with a reply only where the viewer replied, after the reply
    engaged = impressions["reply_engaged_by_author"]
    assert engaged.any() and (impressions.loc[engaged, "reply"]).all()
    assert (
        impressions.loc[engaged, "reply_engaged_by_author_at"]
        > impressions.loc[engaged, "reply_at"]
    ).all()
    probabilities = impressions[["impression_id"]].merge(truth, on="impression_id")
    assert (probabilities["p_reply_engaged_by_author"] <= probabilities["p_reply"] + 1e-7).all()
    # the dwell truth is the mean of the log dwell the world drew (seconds)
    log_dwell = np.log(impressions["dwell_ms"].clip(lower=1) / 1000.0)
    assert log_dwell.mean() == pytest.approx(probabilities["mean_log_dwell_s"].mean(), abs=0.1)
    # a tweet is never shown before it exists, nor twice to the same viewer in its feed, nor
    # twice on one conversation page
    created = parents.loc[impressions["tweet_id"], "created_at"].to_numpy()
    assert (impressions["served_at"].to_numpy() >= created).all()
    home = impressions["surface"] == "home"
    assert not impressions[home].duplicated(["viewer_id", "tweet_id"]).any()
    assert not impressions[~home].duplicated(["request_id", "tweet_id"]).any()


def test_labels_follow_the_true_probabilities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = tables(tiny_world(tmp_path, monkeypatch, n_users=200))
    joined = world["impressions"].merge(world["truth"], on="impression_id")
    # calibration of the world itself: the mean label matches the mean true probability
    for action in ("fav", "retweet", "reply"):
        observed, expected = joined[action].mean(), joined[f"p_{action}"].mean()
        assert observed == pytest.approx(expected, rel=0.25)
    # and the truth ranks: high-probability impressions engage more often than low ones
    high = joined["p_fav"] > joined["p_fav"].median()
    assert joined.loc[high, "fav"].mean() > 2 * joined.loc[~high, "fav"].mean()


def test_follow_graph_is_heavy_tailed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = tables(tiny_world(tmp_path, monkeypatch, n_users=300, mean_following=15))["users"]
    followers = users["follower_count"].to_numpy()
    assert followers.max() > 5 * np.median(followers)


def test_a_rerun_is_the_lake_world_and_names_its_latent_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.world.simulate import Simulation

    cfg = tiny_world(tmp_path, monkeypatch)
    lake = tables(cfg)
    sim = Simulation.start(cfg)
    days = list(sim.days())
    assert [d.impressions is None for d in days].count(False) == cfg.world.days
    impressions = pd.concat([d.impressions for d in days if d.impressions is not None])
    truth = pd.concat([d.truth for d in days if d.truth is not None], ignore_index=True)
    # The days a Simulation yields are the rows build_world wrote.
    pd.testing.assert_frame_equal(
        truth.reset_index(drop=True), lake["truth"].reset_index(drop=True)
    )
    latent = sim.latent(impressions)
    assert latent["impression_id"].tolist() == impressions["impression_id"].tolist()
    viewer = impressions["viewer_id"].to_numpy() - 1
    tweet = impressions["tweet_id"].to_numpy() - sim.world.tweet_id_base
    topic = sim.world.tweets.column("topic").astype(int)[tweet]
    interest = sim.pop.interests[viewer, topic]
    np.testing.assert_allclose(
        latent["topic_affinity"], np.log(interest * cfg.world.n_topics + 0.05)
    )
    np.testing.assert_array_equal(
        latent["tweet_quality"], sim.world.tweets.column("quality")[tweet]
    )


def test_a_simulation_runs_its_days_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.world.simulate import Simulation

    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    sim = Simulation.start(FeedrankConfig.model_validate({"world": TINY}))
    assert len(list(sim.days())) > 0
    with pytest.raises(RuntimeError, match="runs once"):
        next(sim.days())


def test_the_true_logits_come_from_the_coefficient_table_by_hand() -> None:
    from pipelines.world.truth import ACTION_LOGITS, CONVERSATION_TERMS, TERMS, true_logits_of

    # One impression: a followed author in the viewer's language, a 10-hour-old tweet with an
    # image, served on a weekday evening.
    terms = {
        "affinity": 0.5,
        "follows": 1.0,
        "follows_back": 0.0,
        "past": np.log1p(2.0),
        "popularity": 1.0,
        "quality": 0.2,
        "image": 1.0,
        "video": 0.0,
        "toxicity": 0.1,
        "engaged_user": 0.0,
        "author_activity": 0.0,
        "age_hours": 10.0,
        "language": 0.3,
        "evening": 1.0,
        "weekend": 0.0,
        "length": 100.0,
    }
    logits, mean_log_dwell = true_logits_of({k: np.array([v]) for k, v in terms.items()})
    assert set(logits) == set(ACTION_LOGITS) and set(terms) | {
        "context",
        *CONVERSATION_TERMS,
    } == set(TERMS)
    # context = -0.03 * 10 h + 0.3 (same language) + 0.15 (evening) + 0.1 * 0 = 0.15
    context = 0.15
    past = np.log1p(2.0)  # 1.098612
    # fav = -3.4 + 1.1 * 0.5 + 0.5 * 1 + 0.5 * past + 0.25 * 1 + 0.6 * 0.2 + 0.25 * 1 + 0.3 * 0
    #       - 2.5 * 0.1 + context = -1.98 + context + 0.5 * past
    assert logits["fav"][0] == pytest.approx(-1.98 + context + 0.5 * past)
    # negative = -5.8 - 0.7 * 0.5 - 0.6 * 1 - 0.3 * past - 0.3 * 0.2 + 3.2 * 0.1 - 0.5 * 0.3
    #          = -6.64 - 0.3 * past (no context)
    assert logits["negative"][0] == pytest.approx(-6.64 - 0.3 * past)
    # report = -8.8 - 0.3 * 0.5 - 0.5 * 1 + 4.5 * 0.1 = -9.0
    assert logits["report"][0] == pytest.approx(-9.0)
    # reply_engaged_by_author = -1.6 + 1.4 * 0 + 0.6 * past + 0.5 * 0 - 0.35 * 1 - 1.5 * 0.1
    #                           + 0.3 = -1.8 + 0.6 * past
    assert logits["reply_engaged_by_author"][0] == pytest.approx(-1.8 + 0.6 * past)
    # log dwell (ms) = ln 3500 + 0.35 * 0.5 + 0.004 * 100 + 0.6 * 0 + 0.25 * 0.2 + 0.2 * 1
    assert mean_log_dwell[0] == pytest.approx(np.log(3500.0) + 0.825)
