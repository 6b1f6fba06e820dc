"""The conversation ranker trained on real trees, with the feed ranker's model code.

The model is :class:`pipelines.models.masknet.ParallelMaskNet` (parallel mask blocks, shared MLP,
one tower per head, the wide logit) over :data:`pipelines.realtrees.protocol.FEATURES`,
normalized by its :class:`~pipelines.models.masknet.FeatureNormalizer` (heavy-tailed counts
log-scaled), with two heads:

- ``gain`` (a real-valued head): the score a candidate is ranked by, trained with a listwise
  loss (:func:`listwise_loss`, ListNet's softmax cross-entropy per tree) towards the thread's
  gain, log1p of the replies it gains after the cut, which is the NDCG gain. Its value orders
  the candidates of one tree; it is not an estimate of the gain itself.
- ``root_reply`` (binary): the root's author replies in the thread after the cut, trained with
  the feed ranker's cross-entropy (:func:`pipelines.models.losses.multitask_loss`).

Batches hold whole trees (the listwise loss compares a tree's candidates with each other), and
every tree weighs the same, as in the metrics' macro-average. Training runs in this process (one
pass over the Twitter trees is seconds on a CPU) with AdamW and the feed ranker's moving average
of the weights (:class:`pipelines.train.ranker.WeightAverage`). After each epoch the averaged
model ranks the validation trees (training trees held back, never test trees); the number of
epochs with the best mean NDCG is then trained again, from the same seed, on the training and
validation trees together (the logistic regression fits on both as well).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
import torch

from pipelines.config import TreesConfig
from pipelines.models.losses import multitask_loss
from pipelines.models.masknet import FeatureNormalizer, ParallelMaskNet
from pipelines.realtrees.metrics import evaluable, per_tree
from pipelines.realtrees.protocol import FEATURES, LABELS, feature_matrix, log_mask
from pipelines.train.ranker import WeightAverage

log = logging.getLogger(__name__)

HEADS: tuple[str, ...] = LABELS  # ("gain", "root_reply"): one head per label
SCORE_HEAD = "gain"
REGRESSION_HEADS: tuple[str, ...] = ("gain",)  # a raw score, no sigmoid (see the docstring)


@dataclass
class TrainedRanker:
    """The kept model and how it was chosen."""

    model: ParallelMaskNet
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)

    def score(self, candidates: pd.DataFrame) -> np.ndarray:
        """``[N]`` predicted gains of the candidates."""
        return predict(self.model, candidates)[SCORE_HEAD]


def build_model(cfg: TreesConfig, train: pd.DataFrame) -> ParallelMaskNet:
    """A fresh ranker whose normalizer is fitted on the training candidates."""
    normalizer = FeatureNormalizer.fit(feature_matrix(train), log_mask())
    knobs = cfg.ranker
    return ParallelMaskNet(
        num_features=len(FEATURES),
        heads=HEADS,
        num_blocks=knobs.num_blocks,
        mask_hidden_dim=knobs.mask_hidden_dim,
        block_dim=knobs.block_dim,
        mlp_dims=knobs.mlp_dims,
        tower_dim=knobs.tower_dim,
        normalizer=normalizer,
        regression_heads=REGRESSION_HEADS,
        wide=knobs.wide,
    )


@torch.no_grad()
def predict(model: ParallelMaskNet, candidates: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{head: [N]}``: the predicted gain and the probability of a root-author reply."""
    model.eval()
    x = torch.from_numpy(feature_matrix(candidates))
    return {
        head: value.numpy().astype(np.float64) for head, value in model.predict_proba(x).items()
    }


def listwise_loss(scores: torch.Tensor, gains: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """ListNet's softmax cross-entropy within each tree, averaged over trees.

    Args:
        scores: ``[B]`` the model's scores of a batch of candidates.
        gains: ``[B]`` their gains (>= 0); a tree's target distribution is its gains / their sum.
        groups: ``[B]`` int64 tree index in ``[0, T)`` of each candidate; every tree must have
            a positive gain.

    Returns:
        ``-(1 / T) sum_t sum_{i in t} p_i log softmax_t(scores)_i``.
    """
    trees = int(groups.max()) + 1
    peak = torch.zeros(trees, dtype=scores.dtype).scatter_reduce(
        0, groups, scores.detach(), reduce="amax", include_self=False
    )
    shifted = scores - peak[groups]  # the softmax is shift-invariant; this keeps exp finite
    normalizer = torch.zeros(trees, dtype=scores.dtype).index_add(0, groups, torch.exp(shifted))
    log_softmax = shifted - torch.log(normalizer[groups])
    totals = torch.zeros(trees, dtype=gains.dtype).index_add(0, groups, gains)
    target = gains / totals[groups]
    return -(target * log_softmax).sum() / trees


def tree_batches(
    tree_starts: np.ndarray, tree_sizes: np.ndarray, rows: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole trees in a seeded order, about `rows` candidates a batch: per batch, the row index
    ``[B]`` and each row's tree index within the batch ``[B]``."""
    order = rng.permutation(len(tree_starts))
    batches, chosen, size = [], [], 0
    for tree in order:
        chosen.append(tree)
        size += int(tree_sizes[tree])
        if size >= rows:
            batches.append(_batch(tree_starts[chosen], tree_sizes[chosen]))
            chosen, size = [], 0
    if chosen:
        batches.append(_batch(tree_starts[chosen], tree_sizes[chosen]))
    return batches


def _batch(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    index = np.repeat(starts, sizes) + np.arange(int(sizes.sum())) - offsets
    return index, np.repeat(np.arange(len(sizes)), sizes)


def batch_loss(
    model: ParallelMaskNet,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    cfg: TreesConfig,
) -> torch.Tensor:
    """The listwise loss of the gain head plus the weighted cross-entropy of the root-reply head
    (each row weighted by 1 / its tree's candidates in the batch, so every tree counts once)."""
    outputs = model(x)
    sizes = torch.bincount(groups).to(x.dtype)
    weights = 1.0 / sizes[groups]
    binary, _ = multitask_loss(outputs, y[:, 1:], HEADS[1:], weights)
    return listwise_loss(outputs[SCORE_HEAD], y[:, 0], groups) + (
        cfg.ranker.root_reply_loss_weight * binary
    )


def _epoch(
    model: ParallelMaskNet,
    optimizer: torch.optim.Optimizer,
    data: TrainingTrees,
    cfg: TreesConfig,
    rng: np.random.Generator,
    average: WeightAverage | None,
) -> float:
    """One pass over the training trees in a seeded order, folding each step into `average`;
    the mean batch loss."""
    model.train()
    losses = []
    for index, groups in tree_batches(data.starts, data.sizes, cfg.ranker.batch_size, rng):
        rows = torch.from_numpy(index)
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(model, data.x[rows], data.y[rows], torch.from_numpy(groups), cfg)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


@dataclass
class TrainingTrees:
    """The evaluable training trees' candidates as tensors, rows grouped by tree."""

    x: torch.Tensor  # [N, F] raw features
    y: torch.Tensor  # [N, 2] gain, root_reply
    starts: np.ndarray  # [T] first row of each tree
    sizes: np.ndarray  # [T] candidates of each tree

    @classmethod
    def of(cls, candidates: pd.DataFrame) -> TrainingTrees:
        rows = candidates[candidates["tree"].isin(evaluable(candidates))]
        codes, _ = pd.factorize(rows["tree"])  # trees in their order of first appearance
        rows = rows.iloc[np.argsort(codes, kind="stable")]
        sizes = np.bincount(codes)
        return cls(
            x=torch.from_numpy(feature_matrix(rows)),
            y=torch.from_numpy(rows[list(HEADS)].to_numpy(dtype=np.float32)),
            starts=np.cumsum(sizes) - sizes,
            sizes=sizes,
        )


def validation_ndcg(model: ParallelMaskNet, validation: pd.DataFrame, k: int) -> float:
    """Mean NDCG@k over the evaluable validation trees."""
    trees = evaluable(validation)
    scores = predict(model, validation)[SCORE_HEAD]
    return float(per_tree(validation, scores, trees, k)["ndcg"].mean())


class _Fit:
    """One model in training: the optimizer, the moving average and the seeded tree order."""

    def __init__(self, cfg: TreesConfig, candidates: pd.DataFrame) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.model = build_model(cfg, candidates)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.ranker.lr, weight_decay=cfg.ranker.weight_decay
        )
        self.data = TrainingTrees.of(candidates)
        self.rng = np.random.default_rng(cfg.seed)
        decay = cfg.ranker.ema_decay
        self.average = WeightAverage(self.model, decay) if decay > 0 else None

    def epoch(self) -> float:
        """One more pass; the mean batch loss."""
        return _epoch(self.model, self.optimizer, self.data, self.cfg, self.rng, self.average)

    def kept(self) -> ParallelMaskNet:
        """The model to evaluate or keep: the moving average of the weights when there is one."""
        if self.average is None:
            return self.model
        return cast(ParallelMaskNet, self.average.averaged())


def select_epochs(
    cfg: TreesConfig, train: pd.DataFrame, validation: pd.DataFrame
) -> tuple[int, list[dict[str, float]]]:
    """Trains on `train` for ``cfg.ranker.epochs`` epochs, ranking `validation` after each: the
    number of epochs whose model ranked best, and the history."""
    fit = _Fit(cfg, train)
    best_epoch, best_ndcg, history = 0, -1.0, []
    for epoch in range(cfg.ranker.epochs):
        loss = fit.epoch()
        ndcg = validation_ndcg(fit.kept(), validation, cfg.ndcg_k)
        history.append({"epoch": epoch, "train_loss": loss, "validation_ndcg": ndcg})
        log.info("conversation ranker: epoch %d loss %.4f validation NDCG %.4f", epoch, loss, ndcg)
        if ndcg > best_ndcg:
            best_epoch, best_ndcg = epoch, ndcg
    return best_epoch + 1, history


def train_ranker(cfg: TreesConfig, train: pd.DataFrame, validation: pd.DataFrame) -> TrainedRanker:
    """Picks the number of epochs on `validation`'s trees (trained on `train`), then fits the
    ranker for that many epochs on both, as the logistic regression fits on both.

    Raises:
        ValueError: no training candidates, or no evaluable validation tree to choose with.
    """
    if train.empty or evaluable(validation).empty:
        raise ValueError(
            f"the ranker needs training candidates ({len(train)}) and evaluable validation "
            f"trees ({len(evaluable(validation))})"
        )
    torch.set_num_threads(cfg.ranker.threads)
    epochs, history = select_epochs(cfg, train, validation)
    fit = _Fit(cfg, pd.concat([train, validation], ignore_index=True))
    for epoch in range(epochs):
        loss = fit.epoch()
        log.info("conversation ranker: refit epoch %d loss %.4f", epoch, loss)
    return TrainedRanker(model=fit.kept(), best_epoch=epochs - 1, history=history)
