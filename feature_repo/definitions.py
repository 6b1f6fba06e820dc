"""feedrank's Feast definitions: entities, file sources, feature views and one service per model.

Sources are parquet files written by `pipelines.features` under $FEEDRANK_HOME/lake/features. The
same definitions serve training (`get_historical_features`) and serving (`get_online_features`).
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float32, Float64, Int64, String

FEATURES_DIR = Path(os.environ.get("FEEDRANK_HOME", ".feedrank")) / "lake" / "features"
TTL = timedelta(days=int(os.environ.get("FEEDRANK_FEATURE_TTL_DAYS", "90")))
TWEET_WINDOW = timedelta(hours=int(os.environ.get("FEEDRANK_TWEET_WINDOW_HOURS", "24")))

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
        Field(name="tweet_language", dtype=String, description="Language code of the text."),
        Field(name="tweet_created_s", dtype=Float64, description="Posting time, epoch seconds."),
    ],
    description="Static attributes of a tweet, known when it is posted.",
)

tweet_engagement = FeatureView(
    name="tweet_engagement",
    entities=[tweet],
    ttl=TTL,
    source=_source("tweet_engagement"),
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
            description="Engagements / impressions on the author's tweets (28 days, smoothed).",
        ),
        Field(name="author_tweets_window", dtype=Int64, description="Tweets posted in 7 days."),
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
            description="Engagements / impressions of the viewer (28 days, smoothed).",
        ),
        Field(name="viewer_language", dtype=String, description="The viewer's language code."),
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
    ],
    description="Cumulative viewer-author interaction counts, a row at the end of each active day.",
)

tweet_embedding = FeatureView(
    name="tweet_embedding",
    entities=[tweet],
    ttl=TTL,
    source=_source("tweet_embedding"),
    schema=[
        Field(
            name="tweet_embedding",
            dtype=Array(Float32),
            description="L2-normalized text embedding from the fine-tuned encoder.",
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
    ],
    description="Daily text profile of a viewer.",
)

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
    ],
    description="Every feature of the heavy ranker, version 1.",
)
