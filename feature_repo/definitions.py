"""feedrank's Feast definitions: entities, file sources, feature views and one service per model.

Sources are parquet files written by `pipelines.features` under $FEEDRANK_HOME/lake/features. The
same definitions serve training (`get_historical_features`) and serving (`get_online_features`).
"""

import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float32, Float64, Int64, String

FEATURES_DIR = Path(os.environ.get("FEEDRANK_HOME", ".feedrank")) / "lake" / "features"
TTL = timedelta(days=int(os.environ.get("FEEDRANK_FEATURE_TTL_DAYS", "90")))

tweet = Entity(
    name="tweet",
    join_keys=["tweet_id"],
    value_type=ValueType.INT64,
    description="A tweet (root or reply).",
)
author = Entity(
    name="author",
    join_keys=["author_id"],
    value_type=ValueType.INT64,
    description="The user who posted a tweet.",
)
viewer = Entity(
    name="viewer",
    join_keys=["viewer_id"],
    value_type=ValueType.INT64,
    description="The user a feed or conversation is ranked for.",
)


def _source(name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str(FEATURES_DIR / f"{name}.parquet"),
        timestamp_field="event_timestamp",
    )


tweet_content = FeatureView(
    name="tweet_content",
    entities=[tweet],
    ttl=TTL,
    source=_source("tweet_content"),
    schema=[
        Field(name="tweet_length", dtype=Int64, description="Text length in characters."),
        Field(name="has_image", dtype=Int64, description="1 if the tweet has an image."),
        Field(name="has_video", dtype=Int64, description="1 if the tweet has a video."),
        Field(name="has_url", dtype=Int64, description="1 if the tweet links out."),
        Field(name="is_reply", dtype=Int64, description="1 if the tweet replies to another."),
        Field(
            name="tweet_toxicity",
            dtype=Float64,
            description="Health-model toxicity of the tweet in [0, 1] (the tweets table's label).",
        ),
        Field(name="tweet_language", dtype=String, description="Language code of the text."),
        Field(name="tweet_created_s", dtype=Float64, description="Posting time, epoch seconds."),
        Field(
            name="tweet_hashtag_vector",
            dtype=Array(Float32),
            description="Unit TF-IDF vector of the tweet's hashtags in 32 hashed buckets.",
        ),
        Field(
            name="tweet_ngram_ids",
            dtype=Array(Int64),
            description="Hashed ids of the text's unigrams and bigrams (the ranker embeds them).",
        ),
    ],
    description="Static attributes of a tweet, known when it is posted.",
)

# Fresh counts reach the online store through this push source without a batch rerun; the batch
# file behind it is the same source the daily pipeline writes.
tweet_engagement_push = PushSource(
    name="tweet_engagement_push",
    batch_source=_source("tweet_engagement"),
    description="Streaming updates of a tweet's windowed engagement counts.",
)

tweet_engagement = FeatureView(
    name="tweet_engagement",
    entities=[tweet],
    ttl=TTL,
    source=tweet_engagement_push,
    schema=[
        Field(
            name="tweet_impressions_window",
            dtype=Float64,
            description="Impressions in the trailing window (default 24 h).",
        ),
        Field(
            name="tweet_engagements_window",
            dtype=Float64,
            description="Favs + replies + retweets + quotes in the trailing window.",
        ),
        Field(name="tweet_favs_window", dtype=Float64, description="Favs in the trailing window."),
        Field(
            name="tweet_replies_window",
            dtype=Float64,
            description="Replies in the trailing window.",
        ),
        Field(
            name="tweet_retweets_window",
            dtype=Float64,
            description="Retweets in the trailing window.",
        ),
        Field(
            name="tweet_engagements_total",
            dtype=Float64,
            description="All engagements since posting.",
        ),
        Field(name="tweet_engagements_1h", dtype=Float64, description="Engagements in 1 hour."),
        Field(name="tweet_engagements_3d", dtype=Float64, description="Engagements in 3 days."),
        Field(name="tweet_engagements_7d", dtype=Float64, description="Engagements in 7 days."),
        Field(name="tweet_favs_3d", dtype=Float64, description="Favs in 3 days."),
        Field(name="tweet_replies_3d", dtype=Float64, description="Replies in 3 days."),
        Field(name="tweet_retweets_2h", dtype=Float64, description="Retweets in 2 hours."),
        Field(
            name="tweet_engagements_decayed_at_snapshot",
            dtype=Float64,
            description="Engagements weighted exp(-age / 24 h), at the snapshot time.",
        ),
        Field(
            name="tweet_engagement_snapshot_s",
            dtype=Float64,
            description="When this row's counts were taken, epoch seconds.",
        ),
        Field(
            name="tweet_recent_engagers",
            dtype=Array(Int64),
            description="Users who engaged in the last 3 days, most recent first (<= 256).",
        ),
        Field(
            name="tweet_recent_favers",
            dtype=Array(Int64),
            description="Users who faved in the last 3 days, most recent first (<= 256).",
        ),
    ],
    description="Windowed engagement counts, a row at each hour boundary where a count changes.",
)

author_stats = FeatureView(
    name="author_stats",
    entities=[author],
    ttl=TTL,
    source=_source("author_stats"),
    schema=[
        Field(name="author_follower_count", dtype=Int64, description="Followers of the author."),
        Field(
            name="author_following_count", dtype=Int64, description="Accounts the author follows."
        ),
        Field(name="author_is_verified", dtype=Float64, description="1 if verified."),
        Field(
            name="author_engagement_rate",
            dtype=Float64,
            description="Engagements / impressions on the author's tweets (3 months, smoothed).",
        ),
        Field(name="author_tweets_window", dtype=Int64, description="Tweets posted in 7 days."),
        Field(
            name="author_follower_ratio",
            dtype=Float64,
            description="Followers / max(1, accounts followed).",
        ),
        Field(
            name="author_hashtag_vector",
            dtype=Array(Float32),
            description="Unit TF-IDF vector of the hashtags the author used (32 hashed buckets).",
        ),
        Field(name="author_tweets_total", dtype=Int64, description="Tweets posted, all time."),
    ],
    description="Daily author snapshots.",
)

viewer_stats = FeatureView(
    name="viewer_stats",
    entities=[viewer],
    ttl=TTL,
    source=_source("viewer_stats"),
    schema=[
        Field(
            name="viewer_following_count", dtype=Int64, description="Accounts the viewer follows."
        ),
        Field(
            name="viewer_engagement_rate",
            dtype=Float64,
            description="Engagements / impressions of the viewer (3 months, smoothed).",
        ),
        Field(name="viewer_language", dtype=String, description="The viewer's language code."),
        Field(name="viewer_country", dtype=String, description="The viewer's country code."),
        Field(
            name="viewer_hashtag_vector",
            dtype=Array(Float32),
            description="Unit TF-IDF vector of the hashtags of tweets the viewer engaged with.",
        ),
        Field(
            name="viewer_recent_hashtags",
            dtype=Array(String),
            description="The last 5 distinct hashtags the viewer engaged with, newest first.",
        ),
    ],
    description="Daily viewer snapshots.",
)

viewer_author = FeatureView(
    name="viewer_author",
    entities=[viewer, author],
    ttl=TTL,
    source=_source("viewer_author"),
    schema=[
        Field(
            name="va_impressions",
            dtype=Int64,
            description="Tweets of the author the viewer was shown, all time.",
        ),
        Field(
            name="va_engagements",
            dtype=Int64,
            description="Engagements of the viewer with the author's tweets, all time.",
        ),
        Field(
            name="va_engaged_tweets",
            dtype=Int64,
            description="Distinct tweets of the author the viewer engaged with.",
        ),
        Field(
            name="va_engaged_share",
            dtype=Float64,
            description="Share of the author's tweets seen by the viewer that it engaged with.",
        ),
    ],
    description="Cumulative viewer-author interaction counts, a row at the end of each active day.",
)

author_graph = FeatureView(
    name="author_graph",
    entities=[author],
    ttl=timedelta(days=3650),
    source=_source("author_graph"),
    schema=[
        Field(
            name="author_pagerank",
            dtype=Float64,
            description="PageRank on the follow graph, scaled so the average user is 1.",
        ),
        Field(
            name="author_social_embedding",
            dtype=Array(Float32),
            description="Followee-side vector of the follow graph's truncated SVD (unit).",
        ),
    ],
    description="Reputation and position of an author in the follow graph.",
)

viewer_graph = FeatureView(
    name="viewer_graph",
    entities=[viewer],
    ttl=timedelta(days=3650),
    source=_source("viewer_graph"),
    schema=[
        Field(
            name="viewer_social_embedding",
            dtype=Array(Float32),
            description="Follower-side vector of the follow graph's truncated SVD (unit).",
        ),
        Field(
            name="viewer_followees",
            dtype=Array(Int64),
            description="Ids of the accounts the viewer follows (its network).",
        ),
    ],
    description="Position of a viewer in the follow graph.",
)

viewer_author_graph = FeatureView(
    name="viewer_author_graph",
    entities=[viewer, author],
    ttl=timedelta(days=3650),
    source=_source("viewer_author_graph"),
    schema=[
        Field(
            name="va_common_followees",
            dtype=Int64,
            description="Accounts both the viewer and the author follow.",
        ),
    ],
    description="Follow-graph overlap of a viewer and an author (pairs seen in impressions).",
)

# A tweet posted between two daily runs is embedded and pushed here (pipelines/retrieval.py).
tweet_embedding_push = PushSource(
    name="tweet_embedding_push",
    batch_source=_source("tweet_embedding"),
    description="Embeddings of newly posted tweets, pushed without waiting for the daily run.",
)

tweet_embedding = FeatureView(
    name="tweet_embedding",
    entities=[tweet],
    ttl=TTL,
    source=tweet_embedding_push,
    schema=[
        Field(
            name="tweet_embedding",
            dtype=Array(Float32),
            description="L2-normalized text embedding from the fine-tuned encoder.",
        ),
        Field(
            name="tweet_topic",
            dtype=Int64,
            description="Topic id: nearest k-means centroid of the text embeddings.",
        ),
    ],
    description="Text embedding of a tweet, from the encoder version of the run.",
)

viewer_embedding = FeatureView(
    name="viewer_embedding",
    entities=[viewer],
    ttl=TTL,
    source=_source("viewer_embedding"),
    schema=[
        Field(
            name="viewer_embedding",
            dtype=Array(Float32),
            description="Normalized mean embedding of the viewer's recent engaged tweets.",
        ),
        Field(
            name="viewer_topic_rates",
            dtype=Array(Float32),
            description="The viewer's engagements / impressions per topic (smoothed toward its "
            "overall rate).",
        ),
    ],
    description="Daily text profile of a viewer.",
)

author_content = FeatureView(
    name="author_content",
    entities=[author],
    ttl=TTL,
    source=_source("author_content"),
    schema=[
        Field(
            name="author_content_embedding",
            dtype=Array(Float32),
            description="Unit mean text embedding of the author's tweets.",
        ),
        Field(
            name="author_topic_rates",
            dtype=Array(Float32),
            description="Engagements / impressions of the author's tweets per topic (smoothed).",
        ),
    ],
    description="Daily snapshots of what an author writes about and how each topic engages.",
)

request_context = RequestSource(
    name="request_context",
    schema=[
        Field(
            name="request_time_s",
            dtype=Float64,
            description="When the feed is requested (online) or was served (offline), epoch s.",
        ),
        Field(
            name="viewer_follows_author",
            dtype=Int64,
            description="1 if the viewer follows the author (from the candidate source).",
        ),
    ],
    description="Values that only the request knows.",
)


# Feast compares inferred and declared ODFV fields including their description, so these fields
# carry none; their meanings are in the view's description.
@on_demand_feature_view(
    sources=[
        tweet_content,
        tweet_engagement,
        viewer_stats,
        tweet_embedding,
        viewer_embedding,
        author_graph,
        viewer_graph,
        request_context,
    ],
    schema=[
        Field(name="in_network", dtype=Float64),
        Field(name="same_language", dtype=Float64),
        Field(name="tweet_age_hours", dtype=Float64),
        Field(name="hour_of_day", dtype=Float64),
        Field(name="day_of_week", dtype=Float64),
        Field(name="viewer_tweet_similarity", dtype=Float64),
        Field(name="tweet_engagements_decayed", dtype=Float64),
        Field(name="season", dtype=Float64),
        Field(name="days_to_holiday", dtype=Float64),
        Field(name="va_social_similarity", dtype=Float64),
    ],
    mode="pandas",
    description=(
        "Request-time values, computed by one function offline and online: in_network (viewer "
        "follows author), same_language, tweet_age_hours at request time, hour_of_day (UTC), "
        "day_of_week (Monday = 0), viewer_tweet_similarity (dot product of text embeddings), "
        "tweet_engagements_decayed (decayed engagements carried on to the request time), season "
        "(0 winter .. 3 autumn, northern), days_to_holiday (days to the next major holiday, <= 60), "
        "va_social_similarity (viewer's follower vector . author's followee vector)."
    ),
)
def request_time(inputs: pd.DataFrame) -> pd.DataFrame:
    from pipelines.features.spec import request_time_values

    return request_time_values(inputs)


@on_demand_feature_view(
    sources=[
        tweet_content,
        tweet_engagement,
        author_stats,
        viewer_stats,
        viewer_author,
        viewer_graph,
        tweet_embedding,
        viewer_embedding,
        author_content,
    ],
    schema=[
        Field(name="va_hashtag_similarity", dtype=Float64),
        Field(name="vt_hashtag_similarity", dtype=Float64),
        Field(name="va_content_similarity", dtype=Float64),
        Field(name="author_topic_engagement_rate", dtype=Float64),
        Field(name="tweet_network_engagements_3d", dtype=Float64),
        Field(name="tweet_network_favs_3d", dtype=Float64),
        Field(name="va_engaged_tweets_norm", dtype=Float64),
        Field(name="viewer_topic_engagement_rate", dtype=Float64),
        Field(name="viewer_topic_lift", dtype=Float64),
    ],
    mode="pandas",
    description=(
        "Viewer-author-tweet affinities at request time, one function offline and online: "
        "va_hashtag_similarity and vt_hashtag_similarity (hashtag TF-IDF cosine of the viewer "
        "with the author and with the tweet), va_content_similarity (viewer embedding . author's "
        "mean tweet embedding), author_topic_engagement_rate (the author's rate on the tweet's "
        "topic), tweet_network_engagements_3d and tweet_network_favs_3d (engagements and favs "
        "in 3 days by accounts the viewer follows), va_engaged_tweets_norm (tweets of the author "
        "the viewer engaged with / tweets the author posted), viewer_topic_engagement_rate (the "
        "viewer's rate on the tweet's topic) and viewer_topic_lift (that rate over the viewer's "
        "overall engagement rate)."
    ),
)
def request_affinity(inputs: pd.DataFrame) -> pd.DataFrame:
    from pipelines.features.spec import affinity_values

    return affinity_values(inputs)


# One service per ranker version: v1 is the walking skeleton's set (issue 2), v2 the full design.
ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[
        tweet_content,
        tweet_engagement,
        author_stats,
        viewer_stats,
        viewer_author,
        tweet_embedding,
        viewer_embedding,
        author_graph,
        viewer_graph,
        viewer_author_graph,
        request_time,
    ],
    description="The heavy ranker's features, version 1 (the skeleton feature set).",
)

ranker_v2 = FeatureService(
    name="ranker_v2",
    features=[
        tweet_content,
        tweet_engagement,
        author_stats,
        viewer_stats,
        viewer_author,
        tweet_embedding,
        viewer_embedding,
        author_graph,
        viewer_graph,
        viewer_author_graph,
        author_content,
        request_time,
        request_affinity,
    ],
    description="Every feature of the heavy ranker, version 2 (the full feature design).",
)
