"""The one true engagement function: it is what the bootstrap labelled with, and it reads the
world it is given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.schema import BINARY_ACTIONS, DERIVED_ACTIONS, ENGAGEMENTS, TRUTH, read_table
from pipelines.world.simulate import Simulation
from pipelines.world.state import UnknownIdError
from pipelines.world.truth import TRUTH_COLUMNS, TrueEngagement, true_engagement


def past_from_the_lake(impressions: pd.DataFrame, tweets: pd.DataFrame) -> np.ndarray:
    """``[M]`` engagements of each impression's viewer with its author on earlier days, counted
    from the lake's own impressions as the world remembers them (any of ENGAGEMENTS on home: the
    bootstrap's conversation pages are not remembered)."""
    rows = impressions.merge(tweets[["tweet_id", "author_id"]], on="tweet_id", how="left")
    rows["day"] = rows["served_at"].dt.floor("D")
    engaged = rows[list(ENGAGEMENTS)].any(axis=1) & (rows["surface"] == "home")
    past = np.zeros(len(rows), dtype=np.int64)
    for day in rows["day"].unique():
        counts = rows[engaged & (rows["day"] < day)].groupby(["viewer_id", "author_id"]).size()
        today = (rows["day"] == day).to_numpy()
        keys = pd.MultiIndex.from_frame(rows.loc[today, ["viewer_id", "author_id"]])
        past[today] = counts.reindex(keys, fill_value=0).to_numpy()
    return past


def test_the_true_engagement_reproduces_the_stored_truth_of_the_bootstrap_exactly(
    smoke_world: FeedrankConfig,
) -> None:
    cfg = smoke_world
    sim = Simulation.load(cfg)
    impressions = read_table(cfg.paths.raw, "impressions")
    tweets = read_table(cfg.paths.raw, "tweets")
    stored = impressions[["impression_id"]].merge(
        read_table(cfg.paths.truth, "truth"), on="impression_id", how="left"
    )
    assert len(impressions) > 10_000 and stored.notna().all().all()
    past = past_from_the_lake(impressions, tweets)
    on_page = (impressions["surface"] == "conversation").to_numpy()
    assert on_page.sum() > 1000 and (~on_page).sum() > 10_000
    for rows in (~on_page, on_page):
        engagement = true_engagement(
            sim,
            impressions["viewer_id"].to_numpy()[rows],
            impressions["tweet_id"].to_numpy()[rows],
            impressions["served_at"][rows],
            past=past[rows],
            positions=impressions["position"].to_numpy()[rows] if rows is on_page else None,
        )
        computed = engagement.truth_columns()
        for column in TRUTH_COLUMNS:
            assert computed[column].dtype == np.float32
            assert np.array_equal(computed[column], stored[column].to_numpy()[rows]), column


def test_the_world_remembers_what_the_lake_shows(smoke_world: FeedrankConfig) -> None:
    # After the bootstrap, the default `past` (the world's memory) is every engagement in the
    # lake: what the first live day's probabilities read.
    sim = Simulation.load(smoke_world)
    impressions = read_table(smoke_world.paths.raw, "impressions")
    tweets = read_table(smoke_world.paths.raw, "tweets").set_index("tweet_id")
    engaged = impressions[impressions[list(ENGAGEMENTS)].any(axis=1)]
    authors = tweets.loc[engaged["tweet_id"], "author_id"].to_numpy()
    lake = pd.Series(1, index=pd.MultiIndex.from_arrays([engaged["viewer_id"], authors]))
    lake_counts = lake.groupby(level=[0, 1]).sum()
    n = smoke_world.world.n_users
    remembered = {
        (key // n + 1, key % n + 1): count for key, count in sim.world.engaged_pairs.items()
    }
    assert remembered == {key: int(count) for key, count in lake_counts.items()}


def test_a_derived_action_is_its_conditional_chance_times_its_parent(
    bootstrapped: Simulation,
) -> None:
    engagement = some_engagement(bootstrapped)
    for action, parent in DERIVED_ACTIONS.items():
        conditional = engagement.conditional[action]
        assert ((conditional > 0) & (conditional < 1)).all()
        np.testing.assert_array_equal(
            engagement.probability[action], conditional * engagement.probability[parent]
        )
    assert set(engagement.probability) == set(BINARY_ACTIONS)


def test_the_truth_columns_are_the_truth_table_s_in_its_order(bootstrapped: Simulation) -> None:
    columns = some_engagement(bootstrapped).truth_columns()
    assert list(columns) == [name for name in TRUTH.names if name != "impression_id"]
    assert all(values.dtype == np.float32 and len(values) == 50 for values in columns.values())
    assert (columns["p_dwell"] > 0).all() and (columns["p_dwell"] < 1).all()
    # the mean dwell of a lognormal is above the exponential of its mean log
    assert (columns["expected_dwell_ms"] > 1000 * np.exp(columns["mean_log_dwell_s"])).all()


def test_more_past_engagement_with_the_author_raises_the_chance_of_a_fav(
    bootstrapped: Simulation,
) -> None:
    none = some_engagement(bootstrapped, past=np.zeros(50))
    some = some_engagement(bootstrapped, past=np.full(50, 5))
    assert (some.probability["fav"] > none.probability["fav"]).all()
    assert (some.probability["negative"] < none.probability["negative"]).all()


def test_an_unknown_tweet_or_viewer_is_named(bootstrapped: Simulation) -> None:
    at = bootstrapped.day_start(bootstrapped.next_day)
    unknown_tweet = bootstrapped.tweet_ids(np.array([len(bootstrapped.world.tweets)]))
    with pytest.raises(UnknownIdError, match=f"tweet id.*{unknown_tweet[0]}"):
        true_engagement(bootstrapped, np.array([1]), unknown_tweet, pd.Series([at]))
    with pytest.raises(UnknownIdError, match="user id.*0"):
        true_engagement(bootstrapped, np.array([0]), bootstrapped.tweet_ids([0]), [at])


def test_arrays_of_different_lengths_are_refused(bootstrapped: Simulation) -> None:
    at = bootstrapped.day_start(bootstrapped.next_day)
    with pytest.raises(ValueError, match="one length"):
        true_engagement(bootstrapped, np.array([1, 2]), bootstrapped.tweet_ids([0, 1]), [at])


def some_engagement(sim: Simulation, past: np.ndarray | None = None) -> TrueEngagement:
    """The true engagement of 50 (viewer, tweet) pairs at the start of the world's next day."""
    rng = np.random.default_rng(0)
    viewers = rng.choice(sim.user_ids, size=50)
    tweets = sim.tweet_ids(rng.choice(len(sim.world.tweets), size=50))
    served = pd.Series([sim.day_start(sim.next_day)] * 50)
    return true_engagement(sim, viewers, tweets, served, past=past)
