"""The ranker's training objective: the multi-task loss and the negative downsampling weights.

The model (:mod:`pipelines.models.masknet`) maps tensors to ``{head: logits}``; this module turns
them into the scalar that training backpropagates. A head trained on a share ``r`` of its negatives
(:func:`downsampling_weights`) predicts odds ``1 / r`` times too high; the model's ``predict_proba``
undoes that with :func:`pipelines.models.masknet.correct_downsampled`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn


def downsampling_weights(
    labels: np.ndarray, heads: Sequence[str], rates: Mapping[str, float], seed: int
) -> np.ndarray:
    """``[N, H]`` 0/1 loss weights that keep every positive and a seeded share ``rates[head]`` of
    each head's negatives (heads without a rate keep all rows).

    One uniform draw per row serves every head, so a row dropped for a frequent head is dropped
    for all heads with the same or a lower rate (the cheaper rows go together).
    """
    draw = np.random.default_rng(seed).random(len(labels))
    weights = np.ones(labels.shape, dtype=np.float32)
    for column, head in enumerate(heads):
        rate = rates.get(head, 1.0)
        if rate < 1.0:
            keep = (labels[:, column] > 0.5) | (draw < rate)
            weights[:, column] = keep.astype(np.float32)
    return weights


def multitask_loss(
    outputs: Mapping[str, Tensor],
    labels: Tensor,
    heads: Sequence[str],
    weights: Tensor | None = None,
    regression_heads: Collection[str] = (),
    regression_weight: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Mean over heads of each head's loss: binary cross-entropy with logits for binary heads,
    ``regression_weight`` times the squared error for the heads in ``regression_heads``.

    Args:
        outputs: ``{head: [B] logits or values}`` as returned by :meth:`ParallelMaskNet.forward`.
        labels: ``[B, H]`` targets (0/1 for binary heads), column ``i`` belonging to ``heads[i]``.
        heads: the H heads, in the column order of ``labels``.
        weights: optional non-negative weights, ``[B]`` per row or ``[B, H]`` per row and head
            (e.g. :func:`downsampling_weights`); each head's loss is then the weighted mean
            ``sum(w * loss) / sum(w)``.

    Returns:
        ``(loss, per_head)``: the scalar loss to backpropagate, and ``{head: loss value}`` to
        log.
    """
    if labels.dim() != 2 or labels.shape[1] != len(heads):
        raise ValueError(f"labels must be [B, {len(heads)}]; got {tuple(labels.shape)}")
    missing = [head for head in heads if head not in outputs]
    if missing:
        raise KeyError(f"no logits for heads {missing}")
    if weights is not None and weights.shape not in ((len(labels),), tuple(labels.shape)):
        raise ValueError(f"weights must be [B] or [B, H]; got {tuple(weights.shape)}")
    per_head_losses: list[Tensor] = []
    per_head: dict[str, float] = {}
    for column, head in enumerate(heads):
        target = labels[:, column].to(outputs[head].dtype)
        if head in regression_heads:
            losses = regression_weight * (outputs[head] - target) ** 2
        else:
            losses = nn.functional.binary_cross_entropy_with_logits(
                outputs[head], target, reduction="none"
            )
        if weights is None:
            head_loss = losses.mean()
        else:
            w = (weights if weights.dim() == 1 else weights[:, column]).to(losses.dtype)
            head_loss = (losses * w).sum() / w.sum().clamp_min(1e-12)
        per_head_losses.append(head_loss)
        per_head[head] = float(head_loss.detach())
    return torch.stack(per_head_losses).mean(), per_head
