"""The offline protocol on real trees: cut, candidates, labels and features without leakage.

Each tree is cut when a share of its replies has arrived: with ``n`` replies in arrival order
(effective time, then id), the cut is the effective time of reply number ``k = min(ceil(f * n),
n - 1)`` (0-based), and a post is *present* when its effective time is strictly before the cut
(times are whole seconds; replies sharing the cut's second are all after it).

- **Candidates**: the top-level replies (depth 1) present at the cut, in arrival order.
- **Labels** (after the cut only): ``gain`` = log1p(descendants the candidate's thread gains at or
  after the cut), and ``root_reply`` = 1 if the root's author replies in the thread at or after it.
- **Features** (strictly before the cut only): the thread so far (descendants, children, depth,
  distinct authors, growth in a recent and a latest window, growth per hour, time since its last
  post, the reply's author answering in it), the reply itself (age, delay after the root, arrival
  rank, toxicity, sentiment, text length, whether the root's author wrote it or replied in its
  thread), the reply author's history in other trees before the cut
  (:class:`pipelines.realtrees.history.AuthorHistory`), and the conversation (size, age,
  candidates, the root's length and its author's history). Ranks within the tree make the counts
  comparable across small and large trees.

:func:`candidate_table` returns one row per candidate: ``tree``, ``post``, ``author``, ``at_s``,
``cut_s``, the :data:`LABELS` and the :data:`FEATURES`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.realtrees.history import AuthorHistory

# Every feature of a candidate, and whether it is a heavy-tailed count (log-scaled by the
# ranker's normalizer and the logistic regression).
FEATURES: dict[str, bool] = {
    "descendants": True,
    "children": True,
    "thread_depth": True,
    "thread_authors": True,
    "recent_descendants": True,
    "recent_share": False,
    "latest_descendants": True,
    "descendants_per_hour": True,
    "author_thread_posts": True,
    "last_activity_age_s": True,
    "last_activity_share": False,
    "reply_age_s": True,
    "reply_delay_s": True,
    "arrival_rank": True,
    "arrival_share": False,
    "root_author_replies": True,
    "is_root_author": False,
    "author_tree_posts": True,
    "author_prior_posts": True,
    "author_prior_replies_received": True,
    "toxicity": False,
    "toxicity_missing": False,
    "sentiment": False,
    "sentiment_missing": False,
    "text_length": True,
    "thread_toxicity": False,
    "descendants_rank_share": False,
    "descendants_share_of_max": False,
    "recent_rank_share": False,
    "velocity_rank_share": False,
    "authors_rank_share": False,
    "n_candidates": True,
    "conversation_size": True,
    "conversation_age_s": True,
    "root_author_prior_posts": True,
    "root_text_length": True,
}
LABELS: tuple[str, ...] = ("gain", "root_reply")


def cut_points(posts: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Per tree: ``tree``, ``root_author``, ``root_at_s``, ``root_text_length``, ``replies``
    and ``cut_s`` (see the module docstring), indexed by tree."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"a cut fraction must be in (0, 1); got {fraction}")
    roots = posts[posts["depth"] == 0].set_index("tree")
    replies = posts[posts["depth"] > 0].sort_values(["tree", "at_s", "post"], kind="stable")
    arrival = replies.groupby("tree").cumcount().to_numpy()
    count = replies.groupby("tree")["post"].transform("size").to_numpy()
    k = np.minimum(np.ceil(fraction * count).astype(np.int64), count - 1)
    cut = replies.loc[arrival == k, ["tree", "at_s"]].set_index("tree")["at_s"]
    out = pd.DataFrame(
        {
            "root_author": roots["author"],
            "root_at_s": roots["at_s"],
            "root_text_length": roots["text_length"],
            "replies": replies.groupby("tree").size(),
            "cut_s": cut,
        }
    )
    return out.dropna().astype(
        {"root_author": np.int64, "root_at_s": np.int64, "replies": np.int64, "cut_s": np.int64}
    )


def _with_cut(posts: pd.DataFrame, cuts: pd.DataFrame) -> pd.DataFrame:
    """Posts of the cut trees, with their tree's cut, root author and root time."""
    joined = posts.join(cuts[["cut_s", "root_author", "root_at_s"]], on="tree", how="inner")
    return joined.assign(before=joined["at_s"].to_numpy() < joined["cut_s"].to_numpy())


def thread_labels(below: pd.DataFrame) -> pd.DataFrame:
    """Per candidate (index ``top``): ``gain`` and ``root_reply`` from the posts under the
    top-level replies that arrive at or after the cut (``below``: depth >= 2, with ``before``)."""
    after = below[~below["before"]]
    by_root = after["author"].to_numpy() == after["root_author"].to_numpy()
    grouped = after.assign(by_root=by_root).groupby("top")
    return pd.DataFrame(
        {
            "gain": np.log1p(grouped.size()),
            "root_reply": grouped["by_root"].any().astype(np.float64),
        }
    )


def thread_features(
    below: pd.DataFrame, top_author: pd.Series, window_share: float, latest_share: float
) -> pd.DataFrame:
    """Per candidate (index ``top``): what its thread holds strictly before the cut.

    Args:
        below: posts at depth >= 2 with their tree's cut (``before``, ``cut_s``, ...).
        top_author: the author of each top-level reply (index: its post id).
        window_share: the recent window, as a share of the conversation's age at the cut.
        latest_share: the latest window (shorter), the same way.
    """
    seen = below[below["before"]]
    age = (seen["cut_s"] - seen["root_at_s"]).to_numpy()
    cut, at = seen["cut_s"].to_numpy(), seen["at_s"].to_numpy()
    seen = seen.assign(
        recent=at >= cut - window_share * age,
        latest=at >= cut - latest_share * age,
        by_replier=seen["author"].to_numpy() == top_author.reindex(seen["top"]).to_numpy(),
        direct=seen["parent"].to_numpy() == seen["top"].to_numpy(),
        by_root=seen["author"].to_numpy() == seen["root_author"].to_numpy(),
    )
    grouped = seen.groupby("top")
    return pd.DataFrame(
        {
            "descendants": grouped.size(),
            "children": grouped["direct"].sum(),
            "thread_depth": grouped["depth"].max() - 1,
            "thread_authors": grouped["author"].nunique(),
            "recent_descendants": grouped["recent"].sum(),
            "latest_descendants": grouped["latest"].sum(),
            "author_thread_posts": grouped["by_replier"].sum(),
            "last_post_s": grouped["at_s"].max(),
            "root_author_replies": grouped["by_root"].sum(),
            "thread_toxicity": grouped["toxicity"].mean(),
        }
    )


def _author_tree_posts(present: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
    """``[C]`` posts by each candidate's author elsewhere in its tree before the cut."""
    counts = present.groupby(["tree", "author"]).size()
    index = pd.MultiIndex.from_arrays([candidates["tree"], candidates["author"]])
    return counts.reindex(index).to_numpy() - 1


def _within_tree(candidates: pd.DataFrame) -> pd.DataFrame:
    """Ranks and shares that compare a candidate with the others of its tree."""
    by_tree = candidates.groupby("tree")
    spread = np.maximum(candidates["n_candidates"].to_numpy(dtype=np.float64) - 1.0, 1.0)

    def rank_share(column: str) -> np.ndarray:
        """0 for the tree's largest value, 1 for its smallest (ties share their average)."""
        rank = by_tree[column].rank(ascending=False, method="average").to_numpy()
        return (rank - 1.0) / spread

    most = by_tree["descendants"].transform("max").to_numpy(dtype=np.float64)
    return candidates.assign(
        arrival_share=candidates["arrival_rank"].to_numpy() / spread,
        descendants_rank_share=rank_share("descendants"),
        descendants_share_of_max=np.where(
            most > 0, candidates["descendants"].to_numpy() / np.maximum(most, 1.0), 0.0
        ),
        recent_rank_share=rank_share("recent_descendants"),
        velocity_rank_share=rank_share("descendants_per_hour"),
        authors_rank_share=rank_share("thread_authors"),
    )


def _add_history(
    candidates: pd.DataFrame, cuts: pd.DataFrame, history: AuthorHistory
) -> pd.DataFrame:
    tree = candidates["tree"].to_numpy()
    cut = candidates["cut_s"].to_numpy()
    author = candidates["author"].to_numpy()
    root_author = cuts["root_author"].reindex(tree).to_numpy()
    return candidates.assign(
        author_prior_posts=history.posts_before(author, tree, cut),
        author_prior_replies_received=history.replies_received_before(author, tree, cut),
        root_author_prior_posts=history.posts_before(root_author, tree, cut),
    )


def candidate_table(
    posts: pd.DataFrame,
    cuts: pd.DataFrame,
    windows: tuple[float, float],
    history: AuthorHistory | None = None,
) -> pd.DataFrame:
    """One row per candidate of every tree in `cuts` (see the module docstring).

    Given the cut, every feature is a function of the posts strictly before it, and every label
    of the posts at or after it.

    Args:
        posts: a repaired frame (:func:`pipelines.realtrees.repair.repair_trees`).
        cuts: :func:`cut_points` of `posts` (or any cut per tree, same columns).
        windows: the recent and the latest window, each as the last share of the
            conversation's age at the cut.
        history: the author index of all trees (built from `posts` when None).
    """
    authors = AuthorHistory(posts) if history is None else history
    timed = _with_cut(posts, cuts)
    present = timed[timed["before"]]
    below = timed[timed["depth"] >= 2]
    candidates = present[present["depth"] == 1].copy()
    candidates["arrival_rank"] = candidates.groupby("tree").cumcount()
    candidates["n_candidates"] = candidates.groupby("tree")["post"].transform("size")
    top_author = candidates.set_index("post")["author"]
    threads = thread_features(below, top_author, *windows).reindex(candidates["post"])
    for column in threads.columns:
        filled = threads[column].to_numpy()
        if column not in ("thread_toxicity", "last_post_s"):
            filled = np.nan_to_num(filled, nan=0.0)
        candidates[column] = filled
    last_post = np.fmax(candidates["last_post_s"].to_numpy(), candidates["at_s"].to_numpy())
    cut = candidates["cut_s"].to_numpy()
    size = present[present["depth"] > 0].groupby("tree").size()
    candidates = candidates.assign(
        recent_share=candidates["recent_descendants"] / np.maximum(candidates["descendants"], 1),
        last_activity_age_s=cut - last_post,
        last_activity_share=(cut - last_post)
        / np.maximum(cut - candidates["root_at_s"].to_numpy(), 1),
        reply_age_s=cut - candidates["at_s"].to_numpy(),
        descendants_per_hour=candidates["descendants"].to_numpy()
        * 3600.0
        / np.maximum(cut - candidates["at_s"].to_numpy(), 60),
        reply_delay_s=candidates["at_s"].to_numpy() - candidates["root_at_s"].to_numpy(),
        is_root_author=(candidates["author"] == candidates["root_author"]).astype(np.float64),
        author_tree_posts=_author_tree_posts(present, candidates),
        toxicity_missing=candidates["toxicity"].isna().astype(np.float64),
        sentiment_missing=candidates["sentiment"].isna().astype(np.float64),
        conversation_size=size.reindex(candidates["tree"]).to_numpy(),
        conversation_age_s=cut - candidates["root_at_s"].to_numpy(),
        root_text_length=cuts["root_text_length"].reindex(candidates["tree"]).to_numpy(),
    )
    candidates = _within_tree(candidates)
    candidates = _add_history(candidates, cuts, authors)
    labels = thread_labels(below).reindex(candidates["post"]).fillna(0.0)
    candidates["gain"] = labels["gain"].to_numpy()
    candidates["root_reply"] = labels["root_reply"].to_numpy()
    keep = ["tree", "post", "author", "at_s", "cut_s", *LABELS, *FEATURES]
    return candidates[list(dict.fromkeys(keep))].reset_index(drop=True)


def feature_matrix(candidates: pd.DataFrame) -> np.ndarray:
    """``[N, F]`` float32 features in :data:`FEATURES` order (NaN where unknown)."""
    return candidates[list(FEATURES)].to_numpy(dtype=np.float32)


def log_mask() -> np.ndarray:
    """``[F]`` bool: the heavy-tailed counts among :data:`FEATURES`."""
    return np.array(list(FEATURES.values()), dtype=bool)
