"""POST /tweets: tweets posted to the live service, checked against the world before anything is
recorded.

A tweet is checked field by field (the first fault answers 422 naming the field, with the tweet's
place in the batch): its author is a known user, it was created at or before the service's clock,
a root is its own conversation, and a reply's parent and conversation root are known to the index
or posted in the same batch. A tweet id the index already holds (a lake tweet, or one posted
before) is a repeat, not an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.event_log import POSTED_COLUMNS
from serving.candidates.world_index import WorldIndex
from serving.engine.errors import InvalidFieldError
from serving.schemas import PostedTweet


def _invalid(position: int, field: str, message: str, value: object) -> InvalidFieldError:
    return InvalidFieldError(f"tweets.{position}.{field}", message, value, "value_error")


def _check_tweet(
    position: int,
    tweet: PostedTweet,
    index: WorldIndex,
    now: pd.Timestamp,
    batch: set[int],
) -> None:
    """Raises InvalidFieldError for the first fault of one tweet; `batch`: the batch's ids."""
    if not index.has_user(tweet.author_id):
        raise _invalid(position, "author_id", "unknown user", tweet.author_id)
    created = pd.Timestamp(tweet.created_at).tz_convert("UTC")
    if created > now:
        message = f"created_at {created.isoformat()} is after the service's clock {now.isoformat()}"
        raise _invalid(position, "created_at", message, tweet.created_at.isoformat())
    if tweet.in_reply_to_tweet_id is None:
        if tweet.conversation_id != tweet.tweet_id:
            message = "a root tweet's conversation_id must be its own tweet_id"
            raise _invalid(position, "conversation_id", message, tweet.conversation_id)
        return
    for field, ident in (
        ("in_reply_to_tweet_id", tweet.in_reply_to_tweet_id),
        ("conversation_id", tweet.conversation_id),
    ):
        in_batch = ident in batch and ident != tweet.tweet_id
        if not in_batch and not index.has_tweet(ident):
            message = f"tweet {ident} is unknown (neither indexed nor in this batch)"
            raise _invalid(position, field, message, ident)


def checked_tweets(
    tweets: list[PostedTweet], index: WorldIndex, now: pd.Timestamp
) -> tuple[pd.DataFrame, int]:
    """The batch checked: (the tweets new to `index` as the lake's tweet columns
    (POSTED_COLUMNS, created_at UTC), how many it already held).

    Raises InvalidFieldError naming the first faulty field (``tweets.<i>.<field>``), and for a
    tweet id repeated within the batch.
    """
    seen: set[int] = set()
    for position, tweet in enumerate(tweets):
        if tweet.tweet_id in seen:
            raise _invalid(position, "tweet_id", "repeated within the batch", tweet.tweet_id)
        seen.add(tweet.tweet_id)
    for position, tweet in enumerate(tweets):
        _check_tweet(position, tweet, index, now, seen)
    fresh = [tweet for tweet in tweets if not index.has_tweet(tweet.tweet_id)]
    frame = pd.DataFrame(
        [tweet.model_dump() for tweet in fresh], columns=list(POSTED_COLUMNS)
    ).astype({"tweet_id": np.int64, "author_id": np.int64, "conversation_id": np.int64})
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["in_reply_to_tweet_id"] = frame["in_reply_to_tweet_id"].astype("Int64")
    frame["toxicity"] = frame["toxicity"].astype(np.float32)
    return frame, len(tweets) - len(fresh)
