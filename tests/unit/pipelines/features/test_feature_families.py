"""The full feature design on hand-made rows: hashtag TF-IDF profiles, network counts, topic
rates, viewer-author shares, and that none of them sees a value from its future."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import REPO_ROOT
from pipelines.features.batch import (
    hashtag_idf,
    hashtag_profiles,
    hashtag_vectors,
    recent_actors,
    tweet_engagement,
    unit_rows,
    viewer_author,
)
from pipelines.features.embeddings import author_content_table
from pipelines.inputs.sparse import text_ngram_ids
from pipelines.inputs.spec import (
    AFFINITY_FEATURES,
    HASHTAG_DIM,
    affinity_values,
    hashtag_bucket,
    network_counts,
    topic_rate,
)
from pipelines.lake import LakeSpan
from tests.utils.factories import T0, at


def test_recent_actors_keep_the_window_newest_first_and_distinct() -> None:
    # tweet 1: user 5 at hour 0, user 6 at hour 3, user 5 again at hour 4; tweet 2: user 9 at 1.
    lists = recent_actors(
        row_keys=np.array([1, 1, 1, 2, 3]),
        row_boundaries=np.array([1, 5, 8, 2, 9]),
        event_keys=np.array([1, 1, 1, 2]),
        event_hours=np.array([0, 3, 4, 1]),
        actors=np.array([5, 6, 5, 9]),
        window_hours=4,
    )
    assert lists[0].tolist() == [5]  # boundary 1: hour 0 only
    assert lists[1].tolist() == [5, 6]  # hours [1, 4]: 6 at 3, 5 at 4 (newest first)
    assert lists[2].tolist() == [5]  # hours [4, 7]: only the second 5
    assert lists[3].tolist() == [9]
    assert lists[4].tolist() == []  # a tweet nobody engaged with


def test_network_engagers_are_never_from_the_future() -> None:
    impressions = pd.DataFrame({"tweet_id": [10, 10], "served_at": [at(0.5), at(0.6)]})
    events = pd.DataFrame(
        {
            "viewer_id": [7, 8],
            "tweet_id": [10, 10],
            "action": ["fav", "reply"],
            "at": [at(2.2), at(3.5)],
        }
    )
    table = tweet_engagement(impressions, events).sort_values("event_timestamp")
    assert table["tweet_recent_engagers"].map(len).max() == 2
    for row in table.itertuples():
        # the last 3 days of hours before the row's boundary, nothing at or after it
        since = row.event_timestamp - pd.Timedelta(hours=72)
        known = events[(events["at"] < row.event_timestamp) & (events["at"] >= since)]
        assert sorted(row.tweet_recent_engagers) == sorted(known["viewer_id"])
        assert list(row.tweet_recent_favers) == list(
            known.loc[known["action"] == "fav", "viewer_id"]
        )


def test_network_counts_count_followees_among_engagers() -> None:
    inputs = pd.DataFrame(
        {
            "viewer_id": [1, 1, 2, 3],
            "viewer_followees": [[5, 6, 7], [5, 6, 7], np.array([9]), None],
            "tweet_recent_engagers": [np.array([5, 8, 7]), [], [9, 5], [5]],
        }
    )
    counts = network_counts(inputs, "tweet_recent_engagers")
    assert counts[:3].tolist() == [2.0, 0.0, 1.0]
    assert np.isnan(counts[3])  # the viewer's network is unknown


def test_hashtag_tfidf_weights_rare_tags_and_profiles_follow_engagements() -> None:
    tags = [["ai"], ["ai"], ["ai", "rust"]]
    idf = hashtag_idf(tags)
    assert idf["rust"] > idf["ai"]
    vectors = hashtag_vectors(tags, idf)
    assert vectors.shape == (3, HASHTAG_DIM)
    assert vectors[2, hashtag_bucket("rust")] == pytest.approx(idf["rust"])
    span = LakeSpan(T0.date(), T0.date() + timedelta(days=6))
    users = pd.DataFrame({"user_id": [1, 2]})
    tweets = pd.DataFrame(
        {
            "tweet_id": [10, 11, 12],
            "author_id": [2, 2, 2],
            "created_at": [at(-30), at(-20), at(30)],  # the third is posted on day 2
            "hashtags": tags,
        }
    )
    events = pd.DataFrame({"viewer_id": [1], "tweet_id": [12], "at": [at(31)]})
    authors, viewers = hashtag_profiles(span, users, tweets, events, vectors)
    author = authors[authors["author_id"] == 2].set_index("event_timestamp")
    viewer = viewers[viewers["viewer_id"] == 1].set_index("event_timestamp")
    # the author's rust tweet is known from the end of day 2 only; so is the viewer's engagement
    assert author.loc[at(24), "author_tweets_total"] == 2
    assert author.loc[at(24), "author_hashtag_vector"][hashtag_bucket("rust")] == 0
    assert author.loc[at(48), "author_tweets_total"] == 3
    assert not np.any(viewer.loc[at(24), "viewer_hashtag_vector"])
    assert list(viewer.loc[at(24), "viewer_recent_hashtags"]) == []
    assert list(viewer.loc[at(48), "viewer_recent_hashtags"]) == ["ai", "rust"]
    assert np.linalg.norm(viewer.loc[at(48), "viewer_hashtag_vector"]) == pytest.approx(1.0)


def test_viewer_author_shares_count_distinct_tweets() -> None:
    impressions = pd.DataFrame(
        {
            "viewer_id": [1, 1, 1],
            "tweet_id": [10, 10, 11],  # tweet 10 shown twice
            "served_at": [at(1), at(2), at(3)],
        }
    )
    tweets = pd.DataFrame({"tweet_id": [10, 11], "author_id": [5, 5]})
    events = pd.DataFrame(
        {
            "viewer_id": [1, 1],
            "tweet_id": [10, 10],  # two actions on one tweet
            "author_id": [5, 5],
            "action": ["fav", "retweet"],
            "at": [at(2.5), at(2.6)],
        }
    )
    row = viewer_author(impressions, events, tweets).iloc[-1]
    assert row["va_impressions"] == 3 and row["va_engagements"] == 2
    assert row["va_engaged_tweets"] == 1
    assert row["va_engaged_share"] == pytest.approx(0.5)  # 1 of the 2 distinct tweets seen


def test_topic_rate_picks_the_tweets_topic() -> None:
    inputs = pd.DataFrame(
        {
            "author_topic_rates": [np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7]), None],
            "tweet_topic": [2, np.nan, 0],
        }
    )
    rates = topic_rate(inputs)
    assert rates[0] == pytest.approx(0.3)
    assert np.isnan(rates[1]) and np.isnan(rates[2])


def test_author_topic_rates_only_count_the_past() -> None:
    span = LakeSpan(T0.date(), T0.date() + timedelta(days=6))
    tweets = pd.DataFrame(
        {"tweet_id": [10, 11], "author_id": [5, 5], "created_at": [at(-5), at(-4)]}
    )
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    topics = np.array([0, 1])
    impressions = pd.DataFrame({"tweet_id": [10] * 10 + [11] * 10, "served_at": [at(30)] * 20})
    events = pd.DataFrame({"tweet_id": [10] * 5, "at": [at(30.5)] * 5})
    table = author_content_table(span, tweets, vectors, topics, impressions, events)
    day1, day2 = (table[table["event_timestamp"] == at(h)].iloc[0] for h in (24, 48))
    assert day1["author_topic_rates"][0] == pytest.approx(day1["author_topic_rates"][1])
    assert day2["author_topic_rates"][0] > day2["author_topic_rates"][1]
    assert np.linalg.norm(day1["author_content_embedding"]) == pytest.approx(1.0)


def test_affinity_values_by_hand() -> None:
    viewer = unit_rows(np.eye(HASHTAG_DIM, dtype=np.float32)[[0]])[0]
    inputs = pd.DataFrame(
        {
            "viewer_id": [1, 1],
            "viewer_hashtag_vector": [viewer, viewer],
            "author_hashtag_vector": [viewer, np.zeros(HASHTAG_DIM, dtype=np.float32)],
            "tweet_hashtag_vector": [viewer * 0.5, None],
            "viewer_embedding": [np.array([1.0, 0.0]), np.array([1.0, 0.0])],
            "author_content_embedding": [np.array([0.6, 0.8]), np.array([0.0, 1.0])],
            "author_topic_rates": [np.array([0.2, 0.4]), np.array([0.2, 0.4])],
            "tweet_topic": [1, 0],
            "tweet_recent_engagers": [[3, 4], None],
            "tweet_recent_favers": [[4], []],
            "viewer_followees": [[4], [4]],
            "va_engaged_tweets": [2.0, np.nan],
            "author_tweets_total": [8.0, 3.0],
            "viewer_topic_rates": [np.array([0.05, 0.3]), None],
            "viewer_engagement_rate": [0.1, 0.1],
        }
    )
    out = affinity_values(inputs)
    assert list(out.columns) == list(AFFINITY_FEATURES)
    first, second = out.iloc[0], out.iloc[1]
    assert first["va_hashtag_similarity"] == pytest.approx(1.0)
    assert first["vt_hashtag_similarity"] == pytest.approx(0.5)
    assert np.isnan(second["vt_hashtag_similarity"])
    assert first["va_content_similarity"] == pytest.approx(0.6)
    assert first["author_topic_engagement_rate"] == pytest.approx(0.4)
    assert first["tweet_network_engagements_3d"] == 1.0 and first["tweet_network_favs_3d"] == 1.0
    assert second["tweet_network_engagements_3d"] == 0.0
    assert first["va_engaged_tweets_norm"] == pytest.approx(0.25)
    assert second["va_engaged_tweets_norm"] == 0.0  # never engaged: none of the author's tweets
    assert first["viewer_topic_engagement_rate"] == pytest.approx(0.3)  # topic 1 of the viewer
    assert first["viewer_topic_lift"] == pytest.approx(3.0)  # 0.3 / 0.1
    assert np.isnan(second["viewer_topic_engagement_rate"]) and np.isnan(
        second["viewer_topic_lift"]
    )


def test_viewer_topic_rates_by_hand_and_only_from_the_past() -> None:
    from pipelines.features.embeddings import VIEWER_TOPIC_PRIOR, ViewerTopicCounts

    tweet_ids, topics = np.array([10, 11, 12]), np.array([0, 1, 1])
    # Viewer 7 saw 10 topic-0 and 10 topic-1 tweets on day 1 and engaged with 4 topic-1 ones.
    impressions = pd.DataFrame(
        {"viewer_id": [7] * 20, "tweet_id": [10] * 10 + [11] * 10, "served_at": [at(30)] * 20}
    )
    events = pd.DataFrame({"viewer_id": [7] * 4, "tweet_id": [11] * 4, "at": [at(30.5)] * 4})
    counts = ViewerTopicCounts(tweet_ids, topics, impressions, events)
    before = counts.before(at(24).timestamp(), np.array([7]))
    assert before[0, 0] == pytest.approx(before[0, 1])  # nothing seen yet: both at the prior
    rates = counts.before(at(48).timestamp(), np.array([7]))[0]
    overall = (4 + 1.0) / (20 + 10.0)
    viewer_rate = (4 + 10.0 * overall) / (20 + 10.0)
    prior = VIEWER_TOPIC_PRIOR
    assert rates[0] == pytest.approx((0 + prior * viewer_rate) / (10 + prior), rel=1e-5)
    assert rates[1] == pytest.approx((4 + prior * viewer_rate) / (10 + prior), rel=1e-5)


def test_text_ngram_ids_are_stable_and_nonzero() -> None:
    first, second = text_ngram_ids(["Rust is fast", "rust IS fast"])
    assert first.tolist() == second.tolist()  # lower-cased
    assert len(first) == 5 and (first > 0).all()  # 3 unigrams + 2 bigrams


def test_the_no_text_set_reads_nothing_derived_from_the_text() -> None:
    from pipelines.inputs.spec import DENSE_FEATURES, feature_matrix, feature_names

    names = feature_names(4, "no_text")
    assert not any(n.startswith(("tweet_embedding", "viewer_embedding")) for n in names)
    assert "viewer_tweet_similarity" not in names and "va_content_similarity" not in names
    assert len(feature_names(4, "full")) == len(DENSE_FEATURES) + 2 * 4
    frame = pd.DataFrame({name: [1.0] for name in DENSE_FEATURES})
    assert feature_matrix(frame, 4, "no_text").shape == (1, len(names))  # no embedding columns


def _as_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A frame as serving's columns hold it: vectors as one float32 matrix (NaN rows where
    missing), id lists as int64 arrays, everything else as it is."""
    columns: dict[str, np.ndarray] = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        cells = [v for v in values if isinstance(v, list | np.ndarray)]
        if cells and all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in cells):
            matrix = np.full((len(values), len(cells[0])), np.nan, dtype=np.float32)
            for i, v in enumerate(values):
                if isinstance(v, np.ndarray):
                    matrix[i] = v
            columns[name] = matrix
        elif cells and all(isinstance(i, int) for v in cells for i in v):
            ids = [np.array(v, dtype=np.int64) if isinstance(v, list) else v for v in values]
            columns[name] = np.fromiter(ids, dtype=object, count=len(ids))
        else:
            columns[name] = values
    return columns


def _feast_on_demand_views() -> dict[str, Any]:
    """The on-demand views of feature_repo/definitions.py, by name."""
    import importlib.util

    from feast.on_demand_feature_view import OnDemandFeatureView

    path = REPO_ROOT / "feature_repo" / "definitions.py"
    spec = importlib.util.spec_from_file_location("feature_repo_definitions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = [v for v in vars(module).values() if isinstance(v, OnDemandFeatureView)]
    return {view.name: view for view in views}


def test_on_demand_functions_give_the_same_on_columns_as_on_frames() -> None:
    """Serving runs the on-demand views' functions on columns (vectors as matrices), Feast on
    frames: the values must not depend on which."""
    from pipelines.inputs.spec import ON_DEMAND_COLUMNS, REQUEST_FEATURES, request_time_columns

    viewer = unit_rows(np.eye(HASHTAG_DIM, dtype=np.float32)[[0]])[0]
    now = at(30).timestamp()
    frame = pd.DataFrame(
        {
            "viewer_id": [1, 1, 1],
            "viewer_hashtag_vector": [viewer, viewer, viewer],
            "author_hashtag_vector": [viewer, np.zeros(HASHTAG_DIM, dtype=np.float32), None],
            "tweet_hashtag_vector": [viewer * 0.5, None, viewer],
            "viewer_embedding": [np.array([1.0, 0.0], dtype=np.float32)] * 3,
            "tweet_embedding": [np.array([0.6, 0.8], dtype=np.float32), None, None],
            "author_content_embedding": [np.array([0.6, 0.8], dtype=np.float32), None, None],
            "author_topic_rates": [np.array([0.2, 0.4], dtype=np.float32), None, None],
            "viewer_topic_rates": [np.array([0.05, 0.3], dtype=np.float32)] * 3,
            "viewer_social_embedding": [np.array([0.5, 0.5], dtype=np.float32)] * 3,
            "author_social_embedding": [None, np.array([1.0, 0.0], dtype=np.float32), None],
            "tweet_topic": [1, 0, np.nan],
            "tweet_recent_engagers": [[3, 4], None, []],
            "tweet_recent_favers": [[4], [], [4, 5]],
            "viewer_followees": [[4, 5], [4, 5], [4, 5]],
            "va_engaged_tweets": [2.0, np.nan, 1.0],
            "author_tweets_total": [8.0, 3.0, np.nan],
            "viewer_engagement_rate": [0.1, 0.1, 0.1],
            "request_time_s": [now] * 3,
            "viewer_follows_author": [1, 0, 0],
            "tweet_created_s": [now - 7200.0, now - 60.0, np.nan],
            "tweet_language": ["en", "de", None],
            "viewer_language": ["en", "en", "en"],
            "tweet_engagement_snapshot_s": [now - 3600.0, np.nan, now],
            "tweet_engagements_decayed_at_snapshot": [10.0, np.nan, 2.0],
        }
    )
    columns = _as_columns(frame)
    assert columns["tweet_embedding"].ndim == 2  # the matrix path is the one tested
    views = _feast_on_demand_views()
    assert set(ON_DEMAND_COLUMNS) == set(views)  # serving knows each view's function
    for name, view in views.items():
        expected = view.feature_transformation.transform(frame)  # what Feast computes offline
        got = ON_DEMAND_COLUMNS[name](columns)
        assert list(got) == list(expected.columns)
        for column in expected.columns:
            np.testing.assert_array_equal(got[column], expected[column].to_numpy(), column)
    times = request_time_columns(columns)
    assert list(times) == list(REQUEST_FEATURES)
    assert times["viewer_tweet_similarity"][0] == pytest.approx(0.6)
    assert np.isnan(times["viewer_tweet_similarity"][1])
    assert times["va_social_similarity"][1] == pytest.approx(0.5)
    assert np.isnan(times["va_social_similarity"][0])


def test_model_inputs_are_the_same_from_columns_as_from_a_frame() -> None:
    from pipelines.inputs.sparse import sparse_ids
    from pipelines.inputs.spec import dense_features, feature_matrix

    rng = np.random.default_rng(0)
    n = 6
    frame = pd.DataFrame({name: rng.normal(size=n) for name in dense_features()})
    frame.loc[1, "tweet_length"] = np.nan
    tweet = [rng.normal(size=4).astype(np.float32) for _ in range(n)]
    tweet[2] = None
    frame["tweet_embedding"] = pd.Series(tweet, dtype=object)
    frame["viewer_embedding"] = pd.Series([np.ones(4, dtype=np.float32)] * n, dtype=object)
    frame["viewer_id"] = 7
    frame["author_id"] = rng.integers(1, 100, n)
    frame["tweet_id"] = rng.integers(1, 10_000, n)
    frame["viewer_country"] = ["GB", None, "DE", "GB", "US", "GB"]
    frame["viewer_recent_hashtags"] = pd.Series([["ai", "music"]] * n, dtype=object)
    frame["tweet_ngram_ids"] = pd.Series(
        [[int(i) for i in rng.integers(1, 2**31 - 1, k)] for k in (3, 0, 5, 30, 1, 2)],
        dtype=object,
    )
    columns = _as_columns(frame)
    assert columns["tweet_embedding"].ndim == 2
    np.testing.assert_array_equal(feature_matrix(columns, 4), feature_matrix(frame, 4))
    np.testing.assert_array_equal(sparse_ids(columns, 2**15), sparse_ids(frame, 2**15))
    with pytest.raises(ValueError, match="tweet_id"):  # columns of another length are named
        feature_matrix({**columns, "tweet_id": columns["tweet_id"][:2]}, 4)
