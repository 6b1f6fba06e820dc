"""Conversations in the simulated world: root authors answering replies, and the bootstrap's
conversation pages.

**Root authors answer.** Of the replies a day posts, one by an author whose own conversations of
the last day have replies from others answers one of those replies instead, with chance
``world.root_author_answer_share``; the answered reply is drawn by the root author's taste (whom
it follows, how toxic the reply is). The answer keeps the content it was drawn with, so the feed
sees the same tweets as without answers and only the conversation structure changes.

**Conversation pages (bootstrap).** A viewer opens the page of the conversation of a tweet it was
shown in its feed (``world.conversation_open_share`` per home impression), or, once a session
with chance ``world.conversation_direct_share``, the page of a followee's conversation of the last
two days. The page shows the conversation's replies that exist at that moment, at most
``world.conversation_page_size``, in the logging policy ``world:conversation``'s order: a uniform
shuffle (a uniform sample when there are more), so every reply is as likely at every position and
training learns the position bias apart from the reply's merit.

Both draw from streams of their own (seeded by the world's seed, the stream and the day), never
from the world's main stream: the home sessions and their labels are the same with and without
conversations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.world.state import TweetLog

CONVERSATION_POLICY = "world:conversation"  # model_version of the bootstrap's conversation rows
# Streams of their own, seeded by (world seed, stream, day + PREHISTORY offset).
ROOT_AUTHOR_STREAM, CONVERSATION_PAGE_STREAM = 101, 102
# Ids of the bootstrap's conversation impressions and page requests start here: far above the
# home rows' (which count from 1) and below the served rows' (ingest's IMPRESSION_ID_OFFSET).
CONVERSATION_ID_BASE = 10**11
OPEN_DELAY_S = 10.0  # a page opened from the feed opens this long after the tweet was shown
READ_PACE_S = 3.0  # seconds between two replies of a page being shown
DIRECT_HORIZON_S = 2 * 86400.0  # a directly opened conversation is at most this old


def stream(seed: int, stream_id: int, day: int, prehistory_days: int) -> np.random.Generator:
    """The generator of one conversation stream on ``day`` (which may be a prehistory day)."""
    return np.random.default_rng([seed, stream_id, day + prehistory_days])


def answered_parents(
    tweets: TweetLog,
    adjacency: np.ndarray,
    authors: np.ndarray,
    parent: np.ndarray,
    since: float,
    share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``[m]`` parents of ``m`` new tweets once root authors answer (see the module docstring).

    ``authors`` and ``parent`` (``-1`` for a root) are the new tweets' ``[m]``; the replies that
    can be answered are the log's replies created at or after ``since`` (seconds since the world
    start) by someone other than their root author. A root stays a root.
    """
    open_replies = _answerable_replies(tweets, since)
    log_author = tweets.column("author").astype(np.int64)
    toxicity = tweets.column("toxicity")
    answers = rng.random(len(authors)) < share
    parent = parent.copy()
    for i in np.nonzero(answers & (parent >= 0))[0]:
        replies = open_replies.get(int(authors[i]))
        if replies is None:
            continue
        taste = np.exp(1.4 * adjacency[authors[i], log_author[replies]] - 1.5 * toxicity[replies])
        parent[i] = rng.choice(replies, p=taste / taste.sum())
    return parent


def _answerable_replies(tweets: TweetLog, since: float) -> dict[int, np.ndarray]:
    """Root author index -> log indices of the replies to its conversations posted since
    ``since`` by others."""
    if not len(tweets):
        return {}
    author = tweets.column("author").astype(np.int64)
    root_author = author[tweets.column("conversation").astype(np.int64)]
    recent = np.nonzero(
        tweets.column("is_reply").astype(bool)
        & (tweets.column("created") >= since)
        & (author != root_author)
    )[0]
    by_root_author: dict[int, list[int]] = {}
    for reply in recent:
        by_root_author.setdefault(int(root_author[reply]), []).append(int(reply))
    return {who: np.array(replies) for who, replies in by_root_author.items()}


@dataclass(frozen=True)
class ReplyIndex:
    """The log's replies grouped by conversation, each group in time order."""

    reply: np.ndarray  # [R] log indices of the replies
    conversation: np.ndarray  # [R] their conversation (root index), ascending
    created: np.ndarray  # [R] their creation, seconds since the world start
    first_reply: np.ndarray  # [T] per root, its first reply's creation (inf: none, or no root)

    @classmethod
    def of(cls, tweets: TweetLog) -> ReplyIndex:
        replies = np.nonzero(tweets.column("is_reply").astype(bool))[0]
        conversation = tweets.column("conversation").astype(np.int64)[replies]
        created = tweets.column("created")[replies]
        order = np.lexsort((created, conversation))
        first_reply = np.full(len(tweets), np.inf)
        np.minimum.at(first_reply, conversation, created)
        return cls(replies[order], conversation[order], created[order], first_reply)

    def before(self, root: int, at: float) -> np.ndarray:
        """Log indices of the replies of conversation ``root`` created before ``at``."""
        lo, hi = np.searchsorted(self.conversation, [root, root + 1])
        return self.reply[lo:hi][self.created[lo:hi] < at]


@dataclass(frozen=True)
class ConversationPages:
    """The rows of a day's conversation pages, ``[M]`` each, page by page in position order."""

    viewer: np.ndarray  # viewer index
    tweet: np.ndarray  # reply log index
    served: np.ndarray  # seconds since the world start
    page: np.ndarray  # 0-based page of the day
    position: np.ndarray  # 0-based position on its page

    def __len__(self) -> int:
        return len(self.tweet)


@dataclass(frozen=True)
class PageRequest:
    """One conversation page to show: who opens which conversation, when."""

    viewer: int
    root: int  # log index of the conversation's root
    at: float  # seconds since the world start


def pages_opened(
    home_viewer: np.ndarray,
    home_tweet: np.ndarray,
    home_served: np.ndarray,
    share: float,
    tweets: TweetLog,
    rng: np.random.Generator,
) -> list[PageRequest]:
    """Pages opened from the feed: each home impression (``[H]`` viewer, tweet index, served
    seconds) opens its conversation with chance ``share``."""
    opens = np.nonzero(rng.random(len(home_tweet)) < share)[0]
    roots = tweets.column("conversation").astype(np.int64)
    return [
        PageRequest(int(home_viewer[j]), int(roots[home_tweet[j]]), home_served[j] + OPEN_DELAY_S)
        for j in opens
    ]


def pages_direct(
    sessions: list[tuple[int, float]],
    share: float,
    followees: list[np.ndarray],
    user_tweets: list[list[int]],
    tweets: TweetLog,
    replies: ReplyIndex,
    rng: np.random.Generator,
) -> list[PageRequest]:
    """Pages opened directly: each session (``(viewer, start seconds)``) opens, with chance
    ``share``, a followee's root of the last DIRECT_HORIZON_S that has replies, drawn
    uniformly."""
    created = tweets.column("created")
    opens = rng.random(len(sessions)) < share
    pages = []
    for (viewer, now), opened in zip(sessions, opens, strict=True):
        if not opened:
            continue
        posted = np.array([t for a in followees[viewer] for t in user_tweets[a][-30:]], dtype=int)
        live = posted[
            (created[posted] > now - DIRECT_HORIZON_S) & (replies.first_reply[posted] < now)
        ]
        if len(live):
            pages.append(PageRequest(viewer, int(live[rng.integers(len(live))]), now))
    return pages


def page_rows(
    requests: list[PageRequest], replies: ReplyIndex, page_size: int, rng: np.random.Generator
) -> ConversationPages:
    """The rows of the pages ``requests`` ask for, in the logging policy's order (a uniform
    shuffle of the replies there are, the first ``page_size``); a conversation without replies
    yet shows no page."""
    rows: list[tuple[np.ndarray, ...]] = []
    for request in requests:
        shown = replies.before(request.root, request.at)
        if not len(shown):
            continue
        shown = shown[rng.permutation(len(shown))[:page_size]]
        position = np.arange(len(shown))
        rows.append(
            (
                np.full(len(shown), request.viewer),
                shown,
                request.at + READ_PACE_S * position,
                np.full(len(shown), len(rows)),
                position,
            )
        )
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return ConversationPages(empty, empty, np.zeros(0), empty, empty)
    viewer, tweet, served, page, position = (np.concatenate(c) for c in zip(*rows, strict=True))
    return ConversationPages(viewer, tweet, served, page, position)
