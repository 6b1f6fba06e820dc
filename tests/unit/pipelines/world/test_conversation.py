"""The world's conversations: root authors answer replies, the bootstrap shows conversation pages,
and the true model's conversation surface (position bias, the root author's involvement)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.ingest.served import IMPRESSION_ID_OFFSET
from pipelines.world.conversation import CONVERSATION_ID_BASE, CONVERSATION_POLICY
from pipelines.world.simulate import Simulation
from pipelines.world.truth import (
    CONVERSATION_TERMS,
    TERMS,
    conversation_terms,
    true_engagement,
    true_logits_of,
)
from tests.unit.pipelines.world.conftest import TINY_WORLD


def _days(cfg: FeedrankConfig) -> tuple[Simulation, pd.DataFrame, pd.DataFrame]:
    sim = Simulation.start(cfg)
    days = [day for day in sim.days() if day.impressions is not None]
    impressions = pd.concat([day.impressions for day in days], ignore_index=True)
    truth = pd.concat([day.truth for day in days], ignore_index=True)
    return sim, impressions, truth


@pytest.fixture
def tiny_days(tiny_cfg: FeedrankConfig) -> tuple[Simulation, pd.DataFrame, pd.DataFrame]:
    return _days(tiny_cfg)


def test_the_bootstrap_shows_replies_on_conversation_pages_with_truth(
    tiny_days: tuple[Simulation, pd.DataFrame, pd.DataFrame],
) -> None:
    sim, impressions, truth = tiny_days
    pages = impressions[impressions["surface"] == "conversation"]
    assert len(pages) > 100
    assert (pages["model_version"] == CONVERSATION_POLICY).all()
    tweets = sim.tweet_index(pages["tweet_id"].to_numpy())
    assert sim.world.tweets.column("is_reply").astype(bool)[tweets].all()
    for _, page in pages.groupby("request_id"):
        assert page["position"].tolist() == list(range(len(page)))
        assert page["viewer_id"].nunique() == 1
        roots = sim.world.tweets.column("conversation")[sim.tweet_index(page["tweet_id"])]
        assert len(set(roots)) == 1
    ids = pages["impression_id"]
    assert ids.min() >= CONVERSATION_ID_BASE and ids.max() < IMPRESSION_ID_OFFSET
    assert set(ids) <= set(truth["impression_id"])


def test_a_page_shows_only_replies_posted_before_it_was_served(
    tiny_days: tuple[Simulation, pd.DataFrame, pd.DataFrame],
) -> None:
    sim, impressions, _ = tiny_days
    pages = impressions[impressions["surface"] == "conversation"]
    created = sim.world.tweets.column("created")[sim.tweet_index(pages["tweet_id"].to_numpy())]
    served = (pages["served_at"] - pd.Timestamp(sim.world.start)).dt.total_seconds().to_numpy()
    assert (created < served).all()


def test_the_stored_conversation_truth_is_the_true_model_at_the_page_position(
    tiny_days: tuple[Simulation, pd.DataFrame, pd.DataFrame],
) -> None:
    sim, impressions, truth = tiny_days
    pages = impressions[impressions["surface"] == "conversation"].merge(truth, on="impression_id")
    # On the first day nobody has engaged with anyone yet: the past is 0 for every row.
    first_day = pages["served_at"].dt.normalize().min()
    rows = pages[pages["served_at"].dt.normalize() == first_day]
    assert len(rows)
    expected = true_engagement(
        sim,
        rows["viewer_id"],
        rows["tweet_id"],
        rows["served_at"],
        past=np.zeros(len(rows)),
        positions=rows["position"],
    ).truth_columns()
    for column in ("p_fav", "p_reply", "p_negative", "p_reply_engaged_by_author", "p_dwell"):
        assert np.array_equal(expected[column], rows[column].to_numpy(np.float32)), column


def test_home_rows_are_the_same_with_and_without_conversations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    without = {
        **TINY_WORLD,
        "root_author_answer_share": 0.0,
        "conversation_open_share": 0.0,
        "conversation_direct_share": 0.0,
    }
    _, with_pages, with_truth = _days(FeedrankConfig.model_validate({"world": TINY_WORLD}))
    _, plain, plain_truth = _days(FeedrankConfig.model_validate({"world": without}))
    assert (plain["surface"] == "home").all()
    home = with_pages[with_pages["surface"] == "home"].reset_index(drop=True)
    pd.testing.assert_frame_equal(home, plain)
    home_truth = with_truth[with_truth["impression_id"].isin(home["impression_id"])]
    pd.testing.assert_frame_equal(home_truth.reset_index(drop=True), plain_truth)


def test_the_same_seed_gives_the_same_conversation_pages(
    tiny_cfg: FeedrankConfig, tiny_days: tuple[Simulation, pd.DataFrame, pd.DataFrame]
) -> None:
    _, first, first_truth = tiny_days
    _, again, again_truth = _days(tiny_cfg)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first_truth, again_truth)


def test_root_authors_answer_replies_in_their_own_conversations(bootstrapped: Simulation) -> None:
    tweets = bootstrapped.world.tweets
    author = tweets.column("author").astype(int)
    parent = tweets.column("parent").astype(int)
    root = tweets.column("conversation").astype(int)
    answers = (parent >= 0) & (author == author[root]) & (parent != root)
    assert answers.sum() > 10
    assert (root[parent[answers]] == root[answers]).all()
    assert (tweets.column("created")[parent[answers]] < tweets.column("created")[answers]).all()


def _reply_with_an_answer(sim: Simulation) -> tuple[int, int, pd.Timestamp]:
    """A reply the root author answered, a viewer, and a time after the answer."""
    tweets = sim.world.tweets
    author = tweets.column("author").astype(int)
    parent = tweets.column("parent").astype(int)
    root = tweets.column("conversation").astype(int)
    answer = int(np.nonzero((parent >= 0) & (author == author[root]) & (parent != root))[0][0])
    after = pd.Timestamp(sim.world.start) + pd.Timedelta(
        seconds=float(tweets.column("created")[answer]) + 60
    )
    return int(parent[answer]), int(answer), after


def test_the_root_author_s_answer_raises_every_engagement_but_negatives(
    bootstrapped: Simulation,
) -> None:
    reply, answer, after = _reply_with_an_answer(bootstrapped)
    answered_at = after - pd.Timedelta(seconds=60)
    before = answered_at - pd.Timedelta(seconds=1)
    tweet = bootstrapped.tweet_ids([reply])
    terms = conversation_terms(
        bootstrapped.view(),
        np.array([reply, reply]),
        (pd.DatetimeIndex([before, after]) - pd.Timestamp(bootstrapped.world.start))
        .total_seconds()
        .to_numpy(),
        np.array([0, 0]),
    )
    assert terms["root_author_replied"].tolist() == [0.0, 1.0]
    true = true_engagement(
        bootstrapped, [5, 5], np.repeat(tweet, 2), [before, after], past=[0, 0], positions=[0, 0]
    )
    for action in ("fav", "reply", "retweet", "profile_click"):
        assert true.probability[action][1] > true.probability[action][0]
    assert true.probability["negative"][1] < true.probability["negative"][0]


def test_a_reply_by_the_root_author_or_its_circle_is_engaged_with_more() -> None:
    home = {name: np.zeros(1) for name in TERMS if name not in CONVERSATION_TERMS}
    home["language"] = np.array([0.3])
    plain = {**home, **{name: np.zeros(1) for name in CONVERSATION_TERMS}}
    plain_logits, _ = true_logits_of(plain)
    for involvement in ("by_root_author", "root_author_follows", "root_author_replied"):
        logits, _ = true_logits_of({**plain, involvement: np.ones(1)})
        assert logits["fav"][0] > plain_logits["fav"][0], involvement
        assert logits["negative"][0] < plain_logits["negative"][0], involvement
    deep, _ = true_logits_of({**plain, "depth_below_top": np.array([3.0])})
    assert deep["fav"][0] < plain_logits["fav"][0]


def test_the_position_bias_lowers_every_chance_down_the_page(bootstrapped: Simulation) -> None:
    reply, _, after = _reply_with_an_answer(bootstrapped)
    positions = np.arange(0, 20, 4)
    true = true_engagement(
        bootstrapped,
        np.full(len(positions), 5),
        np.repeat(bootstrapped.tweet_ids([reply]), len(positions)),
        [after] * len(positions),
        past=np.zeros(len(positions)),
        positions=positions,
    )
    for action in ("fav", "reply", "negative", "reply_engaged_by_author"):
        assert (np.diff(true.probability[action]) < 0).all()
    assert np.ptp(true.mean_log_dwell_ms) == 0


def test_home_impressions_have_no_position_bias_in_the_truth(bootstrapped: Simulation) -> None:
    reply, _, after = _reply_with_an_answer(bootstrapped)
    tweet = bootstrapped.tweet_ids([reply])
    home = true_engagement(bootstrapped, [5], tweet, [after], past=[0])
    top = true_engagement(bootstrapped, [5], tweet, [after], past=[0], positions=[0])
    assert home.probability["fav"][0] != top.probability["fav"][0]
    assert home.probability.keys() == top.probability.keys()


def test_a_conversation_impression_of_a_root_or_a_negative_position_is_refused(
    bootstrapped: Simulation,
) -> None:
    reply, _, after = _reply_with_an_answer(bootstrapped)
    root = int(bootstrapped.world.tweets.column("conversation")[reply])
    with pytest.raises(ValueError, match="roots"):
        true_engagement(bootstrapped, [5], bootstrapped.tweet_ids([root]), [after], positions=[0])
    with pytest.raises(ValueError, match="positions must be >= 0"):
        true_engagement(bootstrapped, [5], bootstrapped.tweet_ids([reply]), [after], positions=[-1])
    with pytest.raises(ValueError, match="one length"):
        true_engagement(
            bootstrapped, [5], bootstrapped.tweet_ids([reply]), [after], positions=[0, 1]
        )
