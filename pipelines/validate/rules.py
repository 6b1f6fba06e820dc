"""Pure pandas helpers behind the lake's data-quality rules (no Great Expectations here).

Some rules relate a row to other rows of the lake: a foreign key must resolve, a reply must be
younger than its parent, an impression must be served after its tweet was created. Great
Expectations checks one batch at a time, so these rules are prepared here as *check columns*
appended to the batch frame (``unknown_<fk>`` holding the offending id, ``parent_created_at``, ...)
and then asserted by plain GX expectations on those columns (see :mod:`pipelines.validate.suites`).
Everything here is vectorised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from pipelines import schema

# Tables in the order they are validated: a table's foreign keys point only to tables before it
# (tweets also point to themselves), so the reference sets come from batches already validated.
VALIDATION_ORDER: tuple[str, ...] = ("users", "follows", "tweets", "impressions")


@dataclass(frozen=True)
class ForeignKey:
    """`column` of a table holds ids of `target` (nulls pass here; not-null is its own rule)."""

    column: str
    target: str  # "users" or "tweets"

    @property
    def check_column(self) -> str:
        """Check column holding the value of `column` where it does not resolve, else null."""
        return f"unknown_{self.column}"


@dataclass(frozen=True)
class TimeOrder:
    """A row's `event_column` comes after `created_at` of the tweet named in `tweet_column`."""

    event_column: str
    tweet_column: str
    check_column: str  # holds the referenced tweet's created_at (null when it does not resolve)
    strict: bool  # True: strictly after; False: at or after

    @property
    def description(self) -> str:
        relation = ">" if self.strict else ">="
        return (
            f"{self.event_column} {relation} created_at of the tweet in {self.tweet_column} "
            f"(looked up into {self.check_column})"
        )


ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id", "created_at"),
    "follows": ("follower_id", "followee_id", "created_at"),
    "tweets": ("tweet_id", "author_id", "created_at", "conversation_id"),
    "impressions": ("impression_id", "viewer_id", "tweet_id", "request_id", "served_at"),
}
# Primary keys, one tuple per table: a single column or a compound key.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "follows": ("follower_id", "followee_id"),
    "tweets": ("tweet_id",),
    "impressions": ("impression_id",),
}
FOREIGN_KEYS: dict[str, tuple[ForeignKey, ...]] = {
    "users": (),
    "follows": (ForeignKey("follower_id", "users"), ForeignKey("followee_id", "users")),
    "tweets": (
        ForeignKey("author_id", "users"),
        ForeignKey("in_reply_to_tweet_id", "tweets"),
        ForeignKey("conversation_id", "tweets"),
    ),
    "impressions": (ForeignKey("viewer_id", "users"), ForeignKey("tweet_id", "tweets")),
}
TIME_ORDERS: dict[str, tuple[TimeOrder, ...]] = {
    "users": (),
    "follows": (),
    "tweets": (TimeOrder("created_at", "in_reply_to_tweet_id", "parent_created_at", strict=True),),
    "impressions": (TimeOrder("served_at", "tweet_id", "tweet_created_at", strict=False),),
}


def day_check_column(timestamp_column: str) -> str:
    """Check column holding the UTC day ("YYYY-MM-DD") of `timestamp_column` of a daily table."""
    return f"{timestamp_column}_day"


@dataclass(frozen=True)
class ReferenceKeys:
    """The ids foreign keys may point to.

    `user_ids`: every user_id of the users batches that passed. `tweet_created_at`: created_at of
    every known tweet, indexed by tweet_id (unique index); its index is the set of known tweet ids.
    """

    user_ids: pd.Index
    tweet_created_at: pd.Series

    @classmethod
    def from_frames(
        cls, users: Iterable[pd.DataFrame], tweets: Iterable[pd.DataFrame]
    ) -> ReferenceKeys:
        """Keys from frames of users and of tweets; frames lacking the key columns are skipped."""
        user_frames = [f["user_id"] for f in users if "user_id" in f.columns]
        user_ids = pd.Index(_concat(user_frames, "int64").dropna().unique())
        tweet_frames = [
            f[["tweet_id", "created_at"]] for f in tweets if {"tweet_id", "created_at"} <= set(f)
        ]
        if tweet_frames:
            known = pd.concat(tweet_frames, ignore_index=True).dropna(subset=["tweet_id"])
            known = known.drop_duplicates("tweet_id")
            created_at = pd.Series(known["created_at"].to_numpy(), index=known["tweet_id"])
        else:
            created_at = pd.Series(
                [], index=pd.Index([], dtype="int64"), dtype="datetime64[us, UTC]"
            )
        return cls(user_ids=user_ids, tweet_created_at=created_at)

    def ids(self, target: str) -> pd.Index:
        """Known ids of a referenced table ("users" or "tweets")."""
        if target == "users":
            return self.user_ids
        if target == "tweets":
            return self.tweet_created_at.index
        raise ValueError(f"no reference keys for table {target!r}; known: users, tweets")


def _concat(series: list[pd.Series], dtype: str) -> pd.Series:
    return pd.concat(series, ignore_index=True) if series else pd.Series([], dtype=dtype)


def unresolved_ids(ids: pd.Series, known: pd.Index) -> pd.Series:
    """`ids` where they are not null and not in `known`, null elsewhere, as nullable Int64 `[N]`."""
    values = ids.astype("Int64")
    resolved = values.isna() | values.isin(known)
    return values.where(~resolved, pd.NA)


def referenced_created_at(tweet_ids: pd.Series, keys: ReferenceKeys) -> pd.Series:
    """created_at (UTC) of the tweet each row references, null where none or unknown `[N]`."""
    looked_up = tweet_ids.map(keys.tweet_created_at)
    return pd.to_datetime(looked_up, utc=True)


def utc_day(timestamps: pd.Series) -> pd.Series:
    """The UTC calendar day ("YYYY-MM-DD") of each timestamp, null where the timestamp is `[N]`."""
    days = pd.to_datetime(timestamps, utc=True).dt.floor("D")
    # strftime per row costs ~0.5 s per 40k rows; a batch spans a day or two, so label uniques.
    labels = {day: day.strftime("%Y-%m-%d") for day in days.dropna().unique()}
    return days.map(labels).astype(object)


def action_time_check_column(action: str) -> str:
    """Check column telling whether ``<action>_at`` is set, to compare with the `action` label."""
    return f"has_{action}_at"


def add_check_columns(table: str, frame: pd.DataFrame, keys: ReferenceKeys) -> pd.DataFrame:
    """A copy of one batch of `table` with the check columns its cross-row rules assert on.

    Adds ``unknown_<fk>`` for every foreign key, the referenced tweet's created_at for every time
    order, ``has_<action>_at`` for impressions, and for daily tables the UTC day of the
    partitioning timestamp. Requires the batch to have the canonical columns (the column-set rule
    runs first).
    """
    out = frame.copy()
    if table == "impressions":
        for action in schema.BINARY_ACTIONS:
            out[action_time_check_column(action)] = frame[f"{action}_at"].notna()
    for fk in FOREIGN_KEYS[table]:
        out[fk.check_column] = unresolved_ids(frame[fk.column], keys.ids(fk.target))
    for order in TIME_ORDERS[table]:
        out[order.check_column] = referenced_created_at(frame[order.tweet_column], keys)
    if table in schema.DAILY_TABLES:
        column = schema.DAILY_TABLES[table]
        out[day_check_column(column)] = utc_day(frame[column])
    return out
