"""The conversation ranker's training set: the window's conversation impressions (a reply shown on
a conversation page), each with its conversation context at the moment it was served, the follow
relations of its author and the root's author, Feast's point-in-time features of the
`conversation` feature service and its labels, split at the feed's held-out boundary.

It is built exactly as the feed's (`pipelines.features.training_set`), from the same window and
days; a lake without conversation impressions gives no set (the conversation steps then skip).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig
from pipelines.conversation.context import TWEET_COLUMNS, conversation_context, follow_relations
from pipelines.features.training_set import entity_frame, point_in_time_set
from pipelines.inputs.catalog import FEATURE_SET_SERVICES, request_source
from pipelines.lake import training_days
from pipelines.schema import read_table

log = logging.getLogger(__name__)

CONVERSATION_SURFACE = "conversation"
# The request data of the `conversation` on-demand view, as the catalog declares it.
CONTEXT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in request_source("conversation_context").fields
)
# Kept beside the labels: the realized time spent, the gain the blend weights are tuned for.
DWELL_COLUMN = "dwell_ms"


class NoConversationRows(LookupError):
    """The lake holds no conversation impressions in the window: nothing to train on."""


def context_frame(
    tweets: pd.DataFrame, follows: pd.DataFrame, impressions: pd.DataFrame
) -> pd.DataFrame:
    """[N] CONTEXT_FIELDS of each impression (tweet_id, viewer_id, author_id, served_at): its
    conversation context when it was served, and the follow relations of its author and the
    root's author. `tweets` holds TWEET_COLUMNS of (at least) the conversations concerned."""
    shown = tweets.set_index("tweet_id")["conversation_id"].reindex(impressions["tweet_id"])
    if shown.isna().any():
        unknown = impressions.loc[shown.isna().to_numpy(), "tweet_id"].unique()[:5].tolist()
        raise ValueError(f"conversation impressions show tweets {unknown} the lake does not hold")
    conversations = tweets[tweets["conversation_id"].isin(shown.unique())]
    context = conversation_context(
        conversations, impressions[["tweet_id", "viewer_id"]], impressions["served_at"]
    )
    authors = tweets.set_index("tweet_id")["author_id"]
    root_authors = authors.reindex(shown.to_numpy()).fillna(-1).to_numpy(np.int64)
    relations = follow_relations(follows, impressions["author_id"].to_numpy(np.int64), root_authors)
    for name, values in relations.items():
        context[name] = values
    return context[list(CONTEXT_FIELDS)]


def conversation_entities(cfg: FeedrankConfig) -> pd.DataFrame:
    """The window's conversation impressions with labels of the conversation ranker's heads, the
    realized dwell and the CONTEXT_FIELDS. Raises NoConversationRows when there are none."""
    days = training_days(cfg)
    heads = cfg.conversation_ranker.heads
    entities = entity_frame(cfg, days, surface=CONVERSATION_SURFACE, heads=heads)
    if entities.empty:
        raise NoConversationRows(
            f"no `{CONVERSATION_SURFACE}` impressions in the window {days.train[0]}.."
            f"{days.holdout[-1]} of {cfg.paths.raw}: the world has no conversation sessions yet"
        )
    raw = cfg.paths.raw
    tweets = read_table(raw, "tweets")[list(TWEET_COLUMNS)]
    follows = read_table(raw, "follows")
    context = context_frame(tweets, follows, entities)
    return pd.concat([entities, context.set_index(entities.index)], axis=1)


def build_conversation_set(cfg: FeedrankConfig) -> dict[str, Any]:
    """The `build_conversation_set` step: the conversation training set at
    `paths.conversation_training_set`, or, without conversation impressions, no set (a stale one
    is removed) and a summary that says it skipped."""
    path = cfg.paths.conversation_training_set
    try:
        entities = conversation_entities(cfg)
    except NoConversationRows as exc:
        path.unlink(missing_ok=True)
        log.warning("conversation set: skipped: %s", exc)
        return {"skipped": str(exc), "train_rows": 0, "test_rows": 0}
    days = training_days(cfg)
    joined = point_in_time_set(
        cfg,
        entities,
        days,
        request_columns=(*CONTEXT_FIELDS, DWELL_COLUMN),
        service=FEATURE_SET_SERVICES[cfg.conversation_ranker.feature_set],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    joined.to_parquet(path, index=False)
    counts = joined["split"].value_counts().to_dict()
    log.info("conversation set: %s written (%s)", path, counts)
    return {
        "train_rows": int(counts.get("train", 0)),
        "test_rows": int(counts.get("test", 0)),
        "requests": int(entities["request_id"].nunique()),
    }
