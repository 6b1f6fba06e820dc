"""The filters between the candidate sources and the ranker (DESIGN section 6).

Pure functions over candidate frames (`serving.candidates.sources.CANDIDATE_COLUMNS`): each
returns the rows it keeps, in their order, with a fresh index. A frame without
``original_tweet_id`` is taken to hold only original tweets.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from serving.candidates.sources import FeedContext

# Names of the filters in `apply_filters`' counts, in the order they run.
FILTER_NAMES: tuple[str, ...] = ("own", "blocked_or_muted", "seen", "duplicates")


def _originals(frame: pd.DataFrame) -> np.ndarray:
    """The original tweet id of each row [N] (the tweet itself unless it is a retweet)."""
    column = "original_tweet_id" if "original_tweet_id" in frame.columns else "tweet_id"
    return frame[column].to_numpy(np.int64)


def _kept(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    return frame.loc[keep].reset_index(drop=True)


def drop_seen(
    frame: pd.DataFrame, seen: np.ndarray, exempt_sources: Iterable[str] = ("resurfaced",)
) -> pd.DataFrame:
    """Drop tweets served to the viewer before, and retweets of them; rows of `exempt_sources`
    (resurfaced: seen on purpose) stay."""
    seen = np.asarray(seen, dtype=np.int64)
    repeated = np.isin(frame["tweet_id"].to_numpy(np.int64), seen)
    repeated |= np.isin(_originals(frame), seen)
    exempt = frame["source"].isin(list(exempt_sources)).to_numpy(bool)
    return _kept(frame, ~repeated | exempt)


def drop_authors(frame: pd.DataFrame, authors: np.ndarray) -> pd.DataFrame:
    """Drop tweets by any of `authors` (the viewer blocked or muted them)."""
    authors = np.asarray(authors, dtype=np.int64)
    return _kept(frame, ~np.isin(frame["author_id"].to_numpy(np.int64), authors))


def drop_own(frame: pd.DataFrame, user_id: int) -> pd.DataFrame:
    """Drop the viewer's own tweets."""
    return _kept(frame, frame["author_id"].to_numpy(np.int64) != int(user_id))


def drop_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the first row of each tweet, counting a retweet as its original: a repeated tweet
    id, a second retweet of one tweet, and a retweet whose original is a candidate too (an
    original's ``original_tweet_id`` is its own id) all go."""
    first_of_tweet = ~frame["tweet_id"].duplicated(keep="first").to_numpy(bool)
    originals = pd.Series(_originals(frame)[first_of_tweet])
    keep = first_of_tweet.copy()
    keep[first_of_tweet] = ~originals.duplicated(keep="first").to_numpy(bool)
    return _kept(frame, keep)


def apply_filters(
    frame: pd.DataFrame, ctx: FeedContext, excluded_authors: np.ndarray
) -> tuple[pd.DataFrame, dict[str, int]]:
    """All filters in FILTER_NAMES order: (the kept rows, rows each filter removed).

    excluded_authors: author ids [A] the viewer blocked or muted.
    """
    removed: dict[str, int] = {}
    steps = (
        ("own", lambda f: drop_own(f, ctx.user_id)),
        ("blocked_or_muted", lambda f: drop_authors(f, excluded_authors)),
        ("seen", lambda f: drop_seen(f, ctx.seen)),
        ("duplicates", drop_duplicates),
    )
    for name, step in steps:
        kept = step(frame)
        removed[name] = len(frame) - len(kept)
        frame = kept
    return frame, removed
