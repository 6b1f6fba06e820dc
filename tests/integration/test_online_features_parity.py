"""FastOnlineFeatures serves exactly what OnlineFeatures (the Feast SDK) serves.

On the trained smoke world: a real viewer and ~50 candidates, unknown keys included, cold and
from a warm cache. On a small store of its own (sqlite, and redis when FEEDRANK_TEST_REDIS names a
disposable server, which this test flushes): a value materialized later is served once the cache
TTL has passed, and not before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.schema import list_partitions, read_table

pytestmark = pytest.mark.integration

UNKNOWN = 10**12


def assert_same_features(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same columns, same values (a vector as array or list is the same vector), and the same
    dtype for every column that is not an object column."""
    from serving.features.frames import feature_frame_differences

    assert feature_frame_differences(got, expected) == []
    for name in expected.columns:
        if expected[name].dtype != object:
            assert got[name].dtype == expected[name].dtype, name


def _framed(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The fast path's columns as the frame the SDK returns (`frames.frame_of`)."""
    from serving.features.frames import frame_of

    return frame_of(columns)


def _request(cfg: FeedrankConfig, n: int = 45) -> tuple[int, pd.DataFrame, pd.Timestamp]:
    """The most active viewer of the last day and `n` of that day's tweets, plus unknown keys."""
    raw = cfg.paths.raw
    day = list_partitions(raw, "tweets")[-1:]
    tweets = read_table(raw, "tweets", day).drop_duplicates("tweet_id").head(n)
    impressions = read_table(raw, "impressions", list_partitions(raw, "impressions")[-1:])
    viewer = int(impressions["viewer_id"].value_counts().idxmax())
    follows = read_table(raw, "follows")
    followees = follows.loc[follows["follower_id"] == viewer, "followee_id"].to_numpy()
    known = tweets[["tweet_id", "author_id"]].astype("int64")
    first = known.iloc[0]
    unknown = pd.DataFrame(
        {
            # a tweet the store never saw by a known author; a known tweet with an unknown
            # author; both unknown; and a candidate repeated
            "tweet_id": [UNKNOWN, int(first["tweet_id"]), UNKNOWN + 1, int(first["tweet_id"])],
            "author_id": [int(first["author_id"]), UNKNOWN, UNKNOWN, int(first["author_id"])],
        }
    )
    candidates = pd.concat([known, unknown], ignore_index=True)
    candidates["in_network"] = np.isin(candidates["author_id"], followees)
    now = pd.Timestamp(tweets["created_at"].max()) + pd.Timedelta(minutes=5)
    return viewer, candidates, now


def test_fast_path_equals_the_sdk_on_the_trained_world(trained_cfg: FeedrankConfig) -> None:
    from serving.features.hydrate import FastOnlineFeatures
    from serving.features.sdk import OnlineFeatures

    viewer, candidates, now = _request(trained_cfg)
    sdk = OnlineFeatures(trained_cfg)
    fast = FastOnlineFeatures(trained_cfg, cache_ttl_s=600)
    cold = FastOnlineFeatures(trained_cfg, cache_ttl_s=0)

    expected = sdk.hydrate(viewer, candidates, now)
    assert len(expected) == len(candidates)
    assert expected["tweet_length"].notna().sum() >= len(candidates) - 4
    unknown_tweet = expected["tweet_id"] == UNKNOWN
    assert expected.loc[unknown_tweet, "tweet_length"].isna().all()
    for got in (
        _framed(fast.hydrate(viewer, candidates, now)),
        _framed(cold.hydrate(viewer, candidates, now)),
    ):
        assert list(got.columns[:3]) == ["tweet_id", "author_id", "viewer_id"]
        assert_same_features(got, expected)
    warm = _framed(fast.hydrate(viewer, candidates, now))
    assert fast.cache.stats.hits > 0
    assert_same_features(warm, expected)

    # What the ranker is given: the same matrices from the served columns (vectors as matrices,
    # no frame) as from the SDK's frame.
    from pipelines.inputs.sparse import sparse_ids
    from pipelines.inputs.spec import feature_matrix

    served = fast.hydrate(viewer, candidates, now)
    dim = trained_cfg.encoder.embedding_dim
    assert served["tweet_embedding"].shape == (len(candidates), dim)
    np.testing.assert_array_equal(feature_matrix(served, dim), feature_matrix(expected, dim))
    np.testing.assert_array_equal(sparse_ids(served, 2**15), sparse_ids(expected, 2**15))

    # A viewer the store has never seen: every viewer and viewer-author value is missing.
    stranger = sdk.hydrate(UNKNOWN, candidates, now)
    assert stranger["viewer_following_count"].isna().all()
    assert_same_features(_framed(fast.hydrate(UNKNOWN, candidates, now)), stranger)


# ------------------------------------------------------------------- staleness, per store

DAY = pd.Timestamp("2026-03-02", tz="UTC")
END = (DAY + pd.Timedelta(days=2)).to_pydatetime()
LATER_END = (DAY + pd.Timedelta(days=4)).to_pydatetime()
TTL_S = 30.0


def _author_stats(cfg: FeedrankConfig, rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """rows of (author_id, day offset, follower count); the view's other features get constants,
    by their registered types, so the source follows the definitions."""
    from feast.value_type import ValueType

    from pipelines.features.store import feature_store

    frame = pd.DataFrame(rows, columns=["author_id", "day", "author_follower_count"])
    frame["event_timestamp"] = DAY + pd.to_timedelta(frame.pop("day"), unit="D")
    constants: dict[ValueType, object] = {
        ValueType.INT64: 3,
        ValueType.INT32: 3,
        ValueType.STRING: "en",
        ValueType.FLOAT_LIST: [0.6, 0.8],
        ValueType.INT64_LIST: [4, 5],
        ValueType.STRING_LIST: ["ai"],
    }
    for feature in feature_store(cfg).get_feature_view("author_stats").features:
        if feature.name not in frame:
            value = constants.get(feature.dtype.to_value_type(), 0.25)
            frame[feature.name] = [value] * len(frame) if isinstance(value, list) else value
    return frame


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_materialized_values_are_served_within_the_cache_ttl(backend_cfg: FeedrankConfig) -> None:
    store_cfg = backend_cfg
    from pipelines.features.batch import write_feature_table
    from pipelines.features.store import apply_repo, materialize
    from serving.features.hydrate import FastOnlineFeatures
    from serving.features.readers import FeastRows, SqliteRows
    from serving.features.sdk import OnlineFeatures

    history = [(1, 0, 100), (1, 1, 110), (2, 0, 50)]
    apply_repo(store_cfg)
    write_feature_table(store_cfg, "author_stats", _author_stats(store_cfg, history))
    materialize(store_cfg, END, feature_views=["author_stats"])

    clock = Clock()
    sdk = OnlineFeatures(store_cfg)
    fast = FastOnlineFeatures(store_cfg, cache_ttl_s=TTL_S, clock=clock)
    expected_reader = SqliteRows if store_cfg.features.online_store == "sqlite" else FeastRows
    assert isinstance(fast.reader, expected_reader)
    # Tweets 1-3 by authors 1-3; author 3 and every tweet are unknown to the store.
    candidates = pd.DataFrame({"tweet_id": [1, 2, 3], "author_id": [1, 2, 3], "in_network": 0})
    now = pd.Timestamp(LATER_END)

    def followers(frame: pd.DataFrame) -> list[float]:
        return frame["author_follower_count"].fillna(-1).tolist()

    first = _framed(fast.hydrate(7, candidates, now))
    assert_same_features(first, sdk.hydrate(7, candidates, now))
    assert followers(first) == [110, 50, -1]

    write_feature_table(
        store_cfg, "author_stats", _author_stats(store_cfg, [*history, (1, 3, 130)])
    )
    materialize(store_cfg, LATER_END, feature_views=["author_stats"])
    fresh = sdk.hydrate(7, candidates, now)
    assert followers(fresh) == [130, 50, -1]

    clock.now += TTL_S - 1  # within the TTL: the cached value, at most TTL_S old
    assert followers(_framed(fast.hydrate(7, candidates, now))) == [110, 50, -1]
    clock.now += 2
    assert_same_features(_framed(fast.hydrate(7, candidates, now)), fresh)


def test_a_replica_serves_what_the_sdk_serves_and_syncs_later_writes(
    backend_cfg: FeedrankConfig,
) -> None:
    from pipelines.features.batch import write_feature_table
    from pipelines.features.store import apply_repo, materialize
    from serving.features.hydrate import FastOnlineFeatures
    from serving.features.sdk import OnlineFeatures

    history = [(1, 0, 100), (1, 1, 110), (2, 0, 50)]
    apply_repo(backend_cfg)
    write_feature_table(backend_cfg, "author_stats", _author_stats(backend_cfg, history))
    materialize(backend_cfg, END, feature_views=["author_stats"])
    sdk = OnlineFeatures(backend_cfg)
    fast = FastOnlineFeatures(backend_cfg, cache_ttl_s=TTL_S)
    held = fast.replica.replicate()
    if backend_cfg.features.online_store != "sqlite":
        assert held == {}  # only sqlite tables can be scanned; the per-key cache serves
        return
    assert held["author_stats"] == 2
    assert held["tweet_content"] == 0  # an empty view is replicated: every key is absent
    candidates = pd.DataFrame({"tweet_id": [1, 2, 3], "author_id": [1, 2, 3], "in_network": 0})
    now = pd.Timestamp(LATER_END)
    before = fast.cache.stats.store_reads
    assert_same_features(_framed(fast.hydrate(7, candidates, now)), sdk.hydrate(7, candidates, now))
    assert fast.cache.stats.store_reads == before  # served from memory

    write_feature_table(
        backend_cfg, "author_stats", _author_stats(backend_cfg, [*history, (1, 3, 130), (3, 3, 5)])
    )
    materialize(backend_cfg, LATER_END, feature_views=["author_stats"])
    stale = _framed(fast.hydrate(7, candidates, now))["author_follower_count"].fillna(-1).tolist()
    assert stale == [110, 50, -1]  # the replica serves what it holds until it syncs
    assert fast.replica.sync() == 2  # authors 1 and 3, written with a later event time
    fresh = _framed(fast.hydrate(7, candidates, now))
    assert fresh["author_follower_count"].tolist() == [130, 50, 5]
    assert_same_features(fresh, sdk.hydrate(7, candidates, now))
    assert fast.replica.sync() == 0
    fast.close()
