"""Live days: the world posts its tweets, draws its sessions and remembers what users did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.schema import TWEETS
from pipelines.world.simulate import Simulation
from pipelines.world.state import UnknownIdError
from pipelines.world.truth import true_engagement


def test_a_live_day_posts_roots_and_replies_whose_parents_exist(bootstrapped: Simulation) -> None:
    day = bootstrapped.next_day
    known = len(bootstrapped.world.tweets)
    tweets = bootstrapped.post_day(day)
    assert list(tweets.columns) == TWEETS.names and len(tweets) > 20
    start, end = bootstrapped.day_start(day), bootstrapped.day_start(day + 1)
    assert tweets["created_at"].between(start, end, inclusive="left").all()
    assert tweets["created_at"].is_monotonic_increasing
    np.testing.assert_array_equal(
        tweets["tweet_id"], bootstrapped.tweet_ids(np.arange(known, known + len(tweets)))
    )
    replies = tweets[tweets["in_reply_to_tweet_id"].notna()]
    assert 0 < len(replies) < len(tweets)
    parents = bootstrapped.tweet_index(replies["in_reply_to_tweet_id"].astype("int64"))
    assert (parents < known).all()  # posted on an earlier day, so the service has them
    conversation = bootstrapped.world.tweets.column("conversation").astype(int)
    np.testing.assert_array_equal(
        replies["conversation_id"], bootstrapped.tweet_ids(conversation[parents])
    )
    roots = tweets[tweets["in_reply_to_tweet_id"].isna()]
    assert (roots["conversation_id"] == roots["tweet_id"]).all()
    assert bootstrapped.next_day == day + 1


def test_a_day_is_posted_once_and_in_order(bootstrapped: Simulation) -> None:
    day = bootstrapped.next_day
    bootstrapped.post_day(day)
    with pytest.raises(ValueError, match=f"cannot post day {day}.*next day is {day + 1}"):
        bootstrapped.post_day(day)
    with pytest.raises(ValueError, match=f"cannot post day {day + 2}"):
        bootstrapped.post_day(day + 2)


def test_sessions_follow_activity_and_the_day(bootstrapped: Simulation) -> None:
    day = bootstrapped.next_day
    users, starts = bootstrapped.session_starts(day, np.random.default_rng(7))
    assert users.dtype == np.int64 and len(users) == len(starts) > 50
    assert str(starts.tz) == "UTC" and starts.is_monotonic_increasing
    assert (starts >= bootstrapped.day_start(day)).all()
    assert (starts < bootstrapped.day_start(day + 1)).all()
    # over many draws, a user's sessions follow its activity
    counts = np.zeros(len(bootstrapped.user_ids))
    for seed in range(30):
        drawn, _ = bootstrapped.session_starts(day, np.random.default_rng(seed))
        np.add.at(counts, bootstrapped.user_index(drawn), 1)
    activity = bootstrapped.pop.activity
    assert np.corrcoef(counts, activity)[0, 1] > 0.8


def test_the_same_generator_gives_the_same_sessions_whatever_the_world_did(
    bootstrapped: Simulation,
) -> None:
    day = bootstrapped.next_day
    users, starts = bootstrapped.session_starts(day, np.random.default_rng(3))
    bootstrapped.post_day(day)  # draws from the world's own stream, not the sessions'
    again_users, again_starts = bootstrapped.session_starts(day, np.random.default_rng(3))
    np.testing.assert_array_equal(users, again_users)
    pd.testing.assert_index_equal(starts, again_starts)


def test_remembered_engagements_are_tomorrow_s_past(bootstrapped: Simulation) -> None:
    fresh = bootstrapped.post_day(bootstrapped.next_day)
    authors = fresh["author_id"].to_numpy()
    viewer = next(u for u in bootstrapped.user_ids if u not in set(authors[:1]))
    tweet, author = fresh["tweet_id"].to_numpy()[:1], authors[:1]
    tomorrow = [bootstrapped.day_start(bootstrapped.next_day)]
    key = (viewer - 1) * len(bootstrapped.user_ids) + (author[0] - 1)
    before = bootstrapped.world.engaged_pairs.get(int(key), 0)
    p_before = true_engagement(bootstrapped, [viewer], tweet, tomorrow).probability["fav"]
    bootstrapped.remember(np.array([viewer, viewer]), np.repeat(tweet, 2), np.array([True, True]))
    assert bootstrapped.world.engaged_pairs[int(key)] == before + 2
    p_after = true_engagement(bootstrapped, [viewer], tweet, tomorrow).probability["fav"]
    assert p_after[0] > p_before[0]
    index = bootstrapped.tweet_index(tweet)
    assert bootstrapped.world.tweet_engagements[index][0] == 2
    assert bootstrapped.world.tweet_impressions[index][0] == 2


def test_an_impression_without_engagement_counts_only_as_an_impression(
    bootstrapped: Simulation,
) -> None:
    pairs = dict(bootstrapped.world.engaged_pairs)
    tweet = bootstrapped.tweet_ids(np.array([0]))
    bootstrapped.remember(np.array([1]), tweet, np.array([False]))
    assert bootstrapped.world.engaged_pairs == pairs
    assert bootstrapped.world.tweet_impressions[0] >= 1


def test_remember_refuses_what_it_cannot_read(bootstrapped: Simulation) -> None:
    tweet = bootstrapped.tweet_ids(np.array([0]))
    with pytest.raises(ValueError, match="one bool per impression"):
        bootstrapped.remember(np.array([1]), tweet, np.array([1]))
    with pytest.raises(UnknownIdError, match="user id"):
        bootstrapped.remember(np.array([10_000]), tweet, np.array([True]))


def test_lake_ids_map_to_indices_and_back(bootstrapped: Simulation) -> None:
    assert bootstrapped.user_ids[0] == 1 and len(bootstrapped.user_ids) == 80
    np.testing.assert_array_equal(
        bootstrapped.user_index(bootstrapped.user_ids), np.arange(len(bootstrapped.user_ids))
    )
    index = np.arange(len(bootstrapped.world.tweets))
    np.testing.assert_array_equal(bootstrapped.tweet_index(bootstrapped.tweet_ids(index)), index)
    with pytest.raises(UnknownIdError, match="tweet id"):
        bootstrapped.tweet_index(bootstrapped.tweet_ids(index[-1:] + 1))
