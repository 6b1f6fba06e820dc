"""Feast for real: apply the repo, a point-in-time join that never sees the future, online reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FeedrankConfig
from pipelines.features.batch import write_feature_table
from pipelines.inputs import catalog

pytestmark = pytest.mark.integration
DAY = pd.Timestamp("2026-03-02", tz="UTC")


def test_historical_join_is_point_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    cfg = FeedrankConfig()
    from pipelines.features.store import apply_repo, feature_store

    # viewer 1 engaged with author 2 on day 2: the snapshot with that engagement is stamped at
    # the end of day 2, so an impression during day 2 must still see 0.
    write_feature_table(
        cfg,
        "viewer_author",
        pd.DataFrame(
            {
                "viewer_id": [1, 1],
                "author_id": [2, 2],
                "event_timestamp": [DAY + pd.Timedelta(days=1), DAY + pd.Timedelta(days=2)],
                "va_impressions": [3, 5],
                "va_engagements": [0, 1],
            }
        ),
    )
    apply_repo(cfg)
    entities = pd.DataFrame(
        {
            "viewer_id": [1, 1, 1],
            "author_id": [2, 2, 2],
            "event_timestamp": [
                DAY + pd.Timedelta(hours=12),  # before any snapshot
                DAY + pd.Timedelta(days=1, hours=15),  # day 2: the engagement happens later
                DAY + pd.Timedelta(days=2, hours=1),  # day 3: it is known
            ],
        }
    )
    store = feature_store(cfg)
    joined = (
        store.get_historical_features(
            entity_df=entities,
            features=["viewer_author:va_engagements", "viewer_author:va_impressions"],
        )
        .to_df()
        .sort_values("event_timestamp")
    )
    assert pd.isna(joined["va_engagements"].iloc[0])
    assert joined["va_engagements"].iloc[1] == 0 and joined["va_impressions"].iloc[1] == 3
    assert joined["va_engagements"].iloc[2] == 1 and joined["va_impressions"].iloc[2] == 5


def test_one_feature_service_per_ranker_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    from pipelines.config import RankerConfig
    from pipelines.features.store import apply_repo, feature_service_name, feature_store

    cfg = FeedrankConfig()
    apply_repo(cfg)
    services = {s.name: s for s in feature_store(cfg).list_feature_services()}
    views = {
        name: {p.name for p in service.feature_view_projections}
        for name, service in services.items()
    }
    skeleton = cfg.model_copy(update={"ranker": RankerConfig(feature_set="skeleton")})
    assert (
        feature_service_name(cfg) == "ranker_v2" and feature_service_name(skeleton) == "ranker_v1"
    )
    assert views["ranker_v1"] < views["ranker_v2"]
    assert views["ranker_v2"] - views["ranker_v1"] == {"author_content", "request_affinity"}
    # On-demand views carry their fields' meanings in the view's description (Feast compares
    # their declared and inferred fields description and all).
    on_demand = {view.name for view in catalog.ON_DEMAND_VIEWS}
    for service in services.values():
        for projection in service.feature_view_projections:
            assert all(f.description for f in projection.features) or (
                projection.name in on_demand
            ), projection.name
    for view in feature_store(cfg).list_on_demand_feature_views():
        assert all(field.name in view.description for field in view.features), view.name


def test_online_store_serves_the_latest_values(trained_cfg: FeedrankConfig) -> None:
    from serving.features.sdk import OnlineFeatures

    content = pd.read_parquet(trained_cfg.paths.feature_table("tweet_content"))
    stats = pd.read_parquet(trained_cfg.paths.feature_table("author_stats"))
    latest = (
        stats.sort_values("event_timestamp").groupby("author_id").tail(1).set_index("author_id")
    )
    sample = content.head(5)
    tweets = pd.read_parquet(trained_cfg.paths.raw / "tweets")
    authors = tweets.set_index("tweet_id").loc[sample["tweet_id"], "author_id"].to_numpy()
    candidates = pd.DataFrame(
        {"tweet_id": sample["tweet_id"].to_numpy(), "author_id": authors, "in_network": False}
    )
    online = OnlineFeatures(trained_cfg).hydrate(
        1, candidates, pd.Timestamp("2026-03-09", tz="UTC")
    )
    assert len(online) == 5
    assert online["tweet_length"].tolist() == sample["tweet_length"].tolist()
    expected = latest.loc[authors, "author_follower_count"].tolist()
    assert online["author_follower_count"].tolist() == expected
    assert online["tweet_embedding"].map(len).eq(trained_cfg.encoder.embedding_dim).all()


def _hydrate_one(cfg: FeedrankConfig, tweet_id: int, author_id: int) -> pd.DataFrame:
    from serving.features.sdk import OnlineFeatures

    candidates = pd.DataFrame(
        {"tweet_id": [tweet_id], "author_id": [author_id], "in_network": [True]}
    )
    return OnlineFeatures(cfg).hydrate(1, candidates, pd.Timestamp("2026-03-09", tz="UTC"))


def test_pushed_counts_are_served_without_a_batch_rerun(trained_cfg: FeedrankConfig) -> None:
    from pipelines.features.freshness import push_tweet_engagement
    from pipelines.inputs.spec import TWEET_ENGAGEMENT_FEATURES

    tweets = pd.read_parquet(trained_cfg.paths.raw / "tweets")
    tweet = tweets.iloc[-1]
    before = _hydrate_one(trained_cfg, int(tweet["tweet_id"]), int(tweet["author_id"]))
    fresh = {name: 1000.0 + i for i, name in enumerate(TWEET_ENGAGEMENT_FEATURES)}
    fresh["tweet_engagements_decayed_at_snapshot"] = 500.0
    row = {
        "tweet_id": int(tweet["tweet_id"]),
        "event_timestamp": pd.Timestamp.now(tz="UTC"),
        **fresh,
        "tweet_recent_engagers": [1, 2, 3],
        "tweet_recent_favers": [2],
    }
    assert push_tweet_engagement(trained_cfg, pd.DataFrame([row])) == 1
    after = _hydrate_one(trained_cfg, int(tweet["tweet_id"]), int(tweet["author_id"]))
    for name in TWEET_ENGAGEMENT_FEATURES:
        assert after[name].iloc[0] == fresh[name] != before[name].iloc[0]
    # the request-time view decays the pushed total from its push time on (this request is earlier: 1x)
    assert after["tweet_engagements_decayed"].iloc[0] == pytest.approx(500.0)
    assert list(after["tweet_recent_engagers"].iloc[0]) == [1, 2, 3]
    with pytest.raises(ValueError, match="tweet_recent_favers"):
        push_tweet_engagement(trained_cfg, pd.DataFrame([row]).assign(tweet_recent_favers=7))
    with pytest.raises(ValueError, match="tweet_favs_window"):
        push_tweet_engagement(trained_cfg, pd.DataFrame([row]).drop(columns="tweet_favs_window"))


def test_request_time_values_are_the_same_offline_and_online(trained_cfg: FeedrankConfig) -> None:
    """The on-demand view gives a training row (impression time) and a serving request at the same
    moment the same request-time values."""
    from serving.features.sdk import OnlineFeatures

    offline = pd.read_parquet(trained_cfg.paths.training_set).sample(20, random_state=1)
    online = pd.concat(
        [
            OnlineFeatures(trained_cfg).hydrate(
                int(row.viewer_id),
                pd.DataFrame(
                    {
                        "tweet_id": [row.tweet_id],
                        "author_id": [row.author_id],
                        "in_network": [row.in_network > 0],
                    }
                ),
                row.served_at,
            )
            for row in offline.itertuples()
        ],
        ignore_index=True,
    )
    # viewer_tweet_similarity is left out: online reads the newest viewer profile, offline the one
    # known at impression time (that difference is the point-in-time join doing its job).
    for column in ("in_network", "same_language", "tweet_age_hours", "hour_of_day", "day_of_week"):
        assert online[column].to_numpy() == pytest.approx(offline[column].to_numpy()), column


def _same(a: object, b: object) -> bool:
    """Equal values (vectors by element, lists and arrays alike), a missing one equal only to
    another missing one."""
    from serving.features.frames import feature_frame_differences

    return not feature_frame_differences(pd.DataFrame({"v": [a]}), pd.DataFrame({"v": [b]}))


def test_affinity_values_are_the_same_offline_and_online(trained_cfg: FeedrankConfig) -> None:
    """`request_affinity` gives a training row and a serving request the same values wherever
    both read the same stored inputs (online holds each view's newest row, offline the row known
    at impression time, so rows whose inputs changed since are skipped)."""
    from pipelines.inputs.spec import AFFINITY_FEATURES
    from serving.features.sdk import OnlineFeatures

    inputs = {
        "va_hashtag_similarity": ("viewer_hashtag_vector", "author_hashtag_vector"),
        "vt_hashtag_similarity": ("viewer_hashtag_vector", "tweet_hashtag_vector"),
        "va_content_similarity": ("viewer_embedding", "author_content_embedding"),
        "tweet_network_engagements_3d": ("tweet_recent_engagers", "viewer_followees"),
    }
    offline = pd.read_parquet(trained_cfg.paths.training_set)
    late = offline[offline["served_at"] >= offline["served_at"].max() - pd.Timedelta(hours=6)]
    compared = 0
    for row in late.sample(min(len(late), 30), random_state=2).itertuples():
        candidate = {"tweet_id": [row.tweet_id], "author_id": [row.author_id]}
        online = OnlineFeatures(trained_cfg).hydrate(
            int(row.viewer_id),
            pd.DataFrame({**candidate, "in_network": [row.in_network > 0]}),
            row.served_at,
        )
        assert set(AFFINITY_FEATURES) <= set(online.columns)
        for output, sources in inputs.items():
            if all(_same(online[c].iloc[0], getattr(row, c)) for c in sources):
                expected = getattr(row, output)
                assert online[output].iloc[0] == pytest.approx(expected, nan_ok=True), output
                compared += 1
    assert compared >= 10


def test_a_new_tweet_is_embedded_indexed_and_served_before_the_next_run(
    trained_cfg: FeedrankConfig,
) -> None:
    """The fresh path: a tweet posted after the daily run gets its embedding (online store) and
    a place in the retrieval index at once."""
    from pipelines.models.text_encoder import TextEmbedder
    from pipelines.retrieval.index import TweetIndex, embed_fresh_tweets
    from serving.features.sdk import OnlineFeatures

    index = TweetIndex.load(trained_cfg.paths.tweet_index)
    before = len(index)
    text = "Fresh sourdough starter tips: feed it twice a day and keep it warm #baking"
    tweet = pd.DataFrame(
        {
            "tweet_id": [10**9 + 7],
            "author_id": [2],
            "text": [text],
            "created_at": [pd.Timestamp.now(tz="UTC")],
        }
    )
    assert embed_fresh_tweets(trained_cfg, tweet, index) == 1
    assert len(index) == before + 1
    vector = TextEmbedder.load(trained_cfg.paths.encoder_dir).embed([text])
    assert index.search(vector, k=1).row(0)[0].tolist() == [10**9 + 7]
    online = OnlineFeatures(trained_cfg).hydrate(
        1,
        pd.DataFrame({"tweet_id": [10**9 + 7], "author_id": [2], "in_network": [False]}),
        pd.Timestamp.now(tz="UTC"),
    )
    assert np.asarray(online["tweet_embedding"].iloc[0]) == pytest.approx(vector[0], abs=1e-5)
    assert online["tweet_topic"].iloc[0] >= 0
    with pytest.raises(ValueError, match="text"):
        embed_fresh_tweets(trained_cfg, tweet.drop(columns="text"), index)
