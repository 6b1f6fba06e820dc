"""The conversation page from scored, linearized, ordered and sectioned candidates: the nested
answer and, in the same reading order, the replies to log as served.

Reading order (the order positions count in, and the order a client meets replies): the sections
in order, each thread depth first (a reply, then its shown replies, best thread first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from serving.conversation.sections import SECTIONS
from serving.conversation.tree import TOP_LEVEL, Linearized, ReplyTree
from serving.schemas import ConversationSection, ReplyNode


@dataclass(frozen=True)
class ScoredCandidates:
    """Per candidate [N]: ids, authors, sources (names), toxicity, whether the viewer follows
    the author, whether the author is verified, its score and thread score, and head ->
    predictions [N] (empty under the heuristic order)."""

    ids: np.ndarray
    authors: np.ndarray
    source: np.ndarray
    toxicity: np.ndarray
    in_network: np.ndarray
    verified: np.ndarray
    scores: np.ndarray
    thread: np.ndarray
    predictions: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Page:
    """sections: the three sections, nested; shown: [P] candidate positions in reading order;
    shown_section: [P] the section name of each."""

    sections: list[ConversationSection]
    shown: np.ndarray
    shown_section: list[str]

    @property
    def main_threads(self) -> int:
        return len(self.sections[0].replies)


class _NodeBuilder:
    """Builds ReplyNodes depth first, numbering positions in reading order."""

    def __init__(
        self, c: ScoredCandidates, lin: Linearized, children: dict[int, list[int]]
    ) -> None:
        self.children = children
        self.more = lin.more.tolist()
        self.columns = {
            "tweet_id": c.ids.tolist(),
            "author_id": c.authors.tolist(),
            "source": c.source.tolist(),
            "score": c.scores.tolist(),
            "thread_score": c.thread.tolist(),
            "toxicity": c.toxicity.tolist(),
            "in_network": c.in_network.tolist(),
            "verified": c.verified.tolist(),
        }
        self.heads = {
            head: np.asarray(v, dtype=np.float64).tolist() for head, v in c.predictions.items()
        }
        self.shown: list[int] = []
        self.sections: list[str] = []

    def node(self, at: int, section: str) -> ReplyNode:
        position = len(self.shown)
        self.shown.append(at)
        self.sections.append(section)
        fields = {name: values[at] for name, values in self.columns.items()}
        replies = [self.node(child, section) for child in self.children.get(at, [])]
        return ReplyNode(
            **fields,
            position=position,
            predictions={head: values[at] for head, values in self.heads.items()},
            more_replies=self.more[at],
            replies=replies,
        )


def _children(tree: ReplyTree, lin: Linearized, threads: np.ndarray) -> dict[int, list[int]]:
    """Shown parent position -> its shown children's positions, best thread first, within the
    top-level `threads` [K] on the page."""
    on_page = np.isin(tree.thread, threads)
    kids = np.flatnonzero(lin.shown & on_page & (tree.parent != TOP_LEVEL))
    if not len(kids):
        return {}
    kids = kids[np.lexsort((lin.rank[kids], tree.parent[kids]))]
    parents = tree.parent[kids]
    starts = np.flatnonzero(np.r_[True, parents[1:] != parents[:-1]])
    groups = np.split(kids, starts[1:])
    return {int(parents[at]): group.tolist() for at, group in zip(starts, groups, strict=True)}


def build_page(
    c: ScoredCandidates,
    tree: ReplyTree,
    lin: Linearized,
    threads: np.ndarray,
    thread_sections: np.ndarray,
    max_threads: int,
) -> Page:
    """The page: `threads` [K] are the top-level positions in product order and
    `thread_sections` [K] their section index into SECTIONS; each section shows its first
    `max_threads` threads and counts the replies of the rest in its `more_replies`."""
    members = [threads[thread_sections == code] for code in range(len(SECTIONS))]
    on_page = np.concatenate([m[:max_threads] for m in members])
    builder = _NodeBuilder(c, lin, _children(tree, lin, on_page))
    sections = []
    for name, threads_in in zip(SECTIONS, members, strict=True):
        hidden = threads_in[max_threads:]
        sections.append(
            ConversationSection(
                name=name,  # type: ignore[arg-type]
                replies=[builder.node(int(at), name) for at in threads_in[:max_threads]],
                more_replies=int((1 + tree.descendants[hidden]).sum()),
            )
        )
    return Page(sections, np.asarray(builder.shown, dtype=np.int64), builder.sections)
