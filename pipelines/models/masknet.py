"""The heavy ranker: Twitter's open-sourced parallel MaskNet with one tower per engagement head.

Reference: ``the-algorithm-ml/projects/home/recap/model/mask_net.py`` and Wang et al., "MaskNet:
Introducing Feature-Wise Multiplication to CTR Ranking Models by Instance-Guided Mask" (2021).

Data flow, with ``B`` rows, ``F`` dense features, ``S`` sparse-id slots in ``K`` fields of
embedding width ``E``, and ``H`` heads::

    x [B, F] raw ──FeatureNormalizer──> [B, F]          ┐
    ids [B, S] int64 ──SparseEmbedder──> [B, K * E]     ┴─ concat ─> z [B, F + K * E]
    z ──MaskBlock_1──> [B, D]  ┐
    z ──MaskBlock_2──> [B, D]  ├─ concat ─> [B, num_blocks * D] ──MLP──> [B, M]
    z ──MaskBlock_k──> [B, D]  ┘
    [B, M] ──tower_h──> logit_h [B]    for every head h (the value itself for a regression head)

The sparse branch is optional: without a :class:`SparseEmbedder` the blocks read the ``F``
normalized dense features alone.

``forward`` returns ``{head: logits}`` and is what the loss reads
(:func:`pipelines.models.losses.multitask_loss`); ``predict_proba`` turns them into calibrated
probabilities, undoing the per-head negative downsampling of training
(:func:`pipelines.models.losses.downsampling_weights`) with :func:`correct_downsampled`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pipelines.config import RankerConfig
from pipelines.inputs.sparse import field_slots
from pipelines.schema import REGRESSION_HEADS

STD_FLOOR = 1e-6
ARCHITECTURES = ("parallel", "serial", "mlp")


def _signed_log1p(x: Tensor) -> Tensor:
    """sign(x) * log1p(|x|): compresses heavy-tailed counts while keeping 0 at 0 and the sign."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def _init_weights(module: nn.Module) -> None:
    # Twitter's MaskNet initialises every Linear with Xavier-uniform weights and zero biases.
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class FeatureNormalizer(nn.Module):
    """Turns raw dense features into standardized model inputs, with statistics from training.

    For each column ``j``: ``x_j -> sign(x_j) * log1p(|x_j|)`` if ``log_mask[j]`` (heavy-tailed
    counts such as follower counts), then ``(x_j - mean_j) / max(std_j, 1e-6)``. Missing values
    (NaN, and ±inf, which only a data bug produces) become 0, the training mean, after
    normalization.

    The statistics are buffers, so they travel in the model's ``state_dict``.

    Args:
        mean: ``[F]`` column means of the (log-transformed) training features.
        std: ``[F]`` column standard deviations of the same.
        log_mask: ``[F]`` bool, True where the column is log-transformed first.
    """

    mean: Tensor
    std: Tensor
    log_mask: Tensor

    def __init__(self, mean: Tensor, std: Tensor, log_mask: Tensor) -> None:
        super().__init__()
        if not (mean.shape == std.shape == log_mask.shape) or mean.dim() != 1:
            raise ValueError(
                "mean, std and log_mask must all have shape [F]; got "
                f"{tuple(mean.shape)}, {tuple(std.shape)}, {tuple(log_mask.shape)}"
            )
        self.register_buffer("mean", mean.detach().clone().to(torch.float32))
        self.register_buffer("std", std.detach().clone().to(torch.float32).clamp_min(STD_FLOOR))
        self.register_buffer("log_mask", log_mask.detach().clone().to(torch.bool))

    @property
    def num_features(self) -> int:
        """F, the number of input columns."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, x: np.ndarray, log_mask: np.ndarray) -> FeatureNormalizer:
        """Computes the statistics from training features, ignoring NaN.

        Args:
            x: ``[N, F]`` raw training features.
            log_mask: ``[F]`` bool, columns to log-transform before taking statistics.

        A column with no finite value gets mean 0 and std 1; the population std (ddof=0) is used.
        """
        values = np.asarray(x, dtype=np.float64)
        mask = np.asarray(log_mask, dtype=bool)
        if values.ndim != 2 or mask.shape != (values.shape[1],):
            raise ValueError(
                f"x must be [N, F] and log_mask [F]; got {values.shape} and {mask.shape}"
            )
        values = np.where(np.isfinite(values), values, np.nan)
        values[:, mask] = np.sign(values[:, mask]) * np.log1p(np.abs(values[:, mask]))
        observed = np.isfinite(values)
        counts = observed.sum(axis=0)
        filled = np.where(observed, values, 0.0)
        safe_counts = np.maximum(counts, 1)
        mean = filled.sum(axis=0) / safe_counts
        var = (np.where(observed, values - mean, 0.0) ** 2).sum(axis=0) / safe_counts
        std = np.sqrt(var)
        mean = np.where(counts > 0, mean, 0.0)
        std = np.where(counts > 0, std, 1.0)
        return cls(
            torch.as_tensor(mean, dtype=torch.float32),
            torch.as_tensor(std, dtype=torch.float32),
            torch.as_tensor(mask),
        )

    @classmethod
    def identity(cls, num_features: int) -> FeatureNormalizer:
        """A pass-through normalizer (mean 0, std 1, no log); a placeholder to load a state_dict."""
        return cls(
            torch.zeros(num_features),
            torch.ones(num_features),
            torch.zeros(num_features, dtype=torch.bool),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, F]`` raw float features -> ``[B, F]`` normalized features, no NaN."""
        x = torch.where(self.log_mask, _signed_log1p(x), x)
        z = (x - self.mean) / self.std.clamp_min(STD_FLOOR)
        return torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


class MaskBlock(nn.Module):
    """One MaskNet block with an instance-guided mask.

    ``mask(x) = Linear(F, mask_hidden) -> ReLU -> Linear(mask_hidden, F)`` is computed from the
    block's own input, so every row gets its own feature-wise gating; the block output is
    ``ReLU(LayerNorm(Linear(x * mask(x))))``.

    In a serial MaskNet the mask reads the model's input (``mask_input``) while the block gates the
    previous block's output; then ``mask_input_dim`` differs from ``input_dim``.

    Args:
        input_dim: F, width of the input and of the mask.
        mask_hidden_dim: hidden width of the mask MLP (Twitter's "aggregation size").
        block_dim: D, output width of the block.
        mask_input_dim: width of what the mask reads; None = the block's own input.
    """

    def __init__(
        self,
        input_dim: int,
        mask_hidden_dim: int,
        block_dim: int,
        mask_input_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.mask = nn.Sequential(
            nn.Linear(mask_input_dim or input_dim, mask_hidden_dim),
            nn.ReLU(),
            nn.Linear(mask_hidden_dim, input_dim),
        )
        self.hidden = nn.Linear(input_dim, block_dim)
        self.layer_norm = nn.LayerNorm(block_dim)
        self.apply(_init_weights)

    def instance_mask(self, x: Tensor) -> Tensor:
        """``[B, F]`` -> ``[B, F]`` per-row feature weights (unbounded, as in Twitter's version)."""
        mask: Tensor = self.mask(x)
        return mask

    def forward(self, x: Tensor, mask_input: Tensor | None = None) -> Tensor:
        """``[B, F]`` block input (and ``[B, F0]`` mask input) -> ``[B, D]`` block output."""
        guide = x if mask_input is None else mask_input
        return torch.relu(self.layer_norm(self.hidden(x * self.instance_mask(guide))))


class SparseEmbedder(nn.Module):
    """Embeds hashed sparse ids: one shared table, mean-pooled per field.

    Every slot of every field looks up the same ``nn.Embedding(buckets, E, padding_idx=0)``
    (fields are told apart by salting their hashes, see :func:`pipelines.inputs.sparse.sparse_ids`);
    each field's vector is the mean over its non-padding slots, and 0 when all of them are padding,
    so a missing value adds nothing.

    Args:
        buckets: rows of the table; ids are in ``[0, buckets)``, 0 being padding.
        dim: E, embedding width of each field.
        field_slots: slots of each of the K fields, in the column order of ``ids``
            (``S = sum(field_slots)``).
    """

    assignment: Tensor
    known: Tensor

    def __init__(
        self, buckets: int, dim: int, field_slots: Sequence[int], field_dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not 0.0 <= field_dropout < 1.0:
            raise ValueError(f"field_dropout must be in [0, 1); got {field_dropout}")
        # Ids are memorizable (a viewer, an author): dropping whole fields while training makes
        # the model lean on them only as far as they generalize, and keeps it able to rank rows
        # whose ids it never saw (new tweets, new users).
        self.field_dropout = field_dropout
        if buckets < 2 or not field_slots or min(field_slots) < 1:
            raise ValueError(
                f"need buckets >= 2 and fields of >= 1 slot; got {buckets}, {list(field_slots)}"
            )
        self.table = nn.Embedding(buckets, dim, padding_idx=0)
        self.dim = dim
        self.field_slots: tuple[int, ...] = tuple(field_slots)
        # [S, K] one-hot: slot s belongs to field k. Pools all fields in one matmul.
        fields = torch.repeat_interleave(torch.arange(len(field_slots)), torch.tensor(field_slots))
        assignment = nn.functional.one_hot(fields, len(field_slots)).to(torch.float32)
        self.register_buffer("assignment", assignment, persistent=False)
        # [buckets] ids the training data saw often enough to learn (see `restrict_to`); the rest
        # embed as missing rather than as an untrained (or another id's) vector.
        self.register_buffer("known", torch.ones(buckets, dtype=torch.bool))

    def restrict_to(self, known: Tensor) -> None:
        """Embed only the ids flagged in `known` ([buckets] bool); others count as padding."""
        if known.shape != self.known.shape:
            raise ValueError(f"known must be [{len(self.known)}]; got {tuple(known.shape)}")
        self.known.copy_(known.to(torch.bool))

    @property
    def num_slots(self) -> int:
        """S, the width of the id matrix."""
        return sum(self.field_slots)

    @property
    def output_dim(self) -> int:
        """K * E, the width of the pooled output."""
        return len(self.field_slots) * self.dim

    def forward(self, ids: Tensor) -> Tensor:
        """``[B, S]`` int64 ids (0 = padding) -> ``[B, K * E]`` per-field mean embeddings."""
        if ids.dim() != 2 or ids.shape[1] != self.num_slots:
            raise ValueError(f"ids must be [B, {self.num_slots}]; got {tuple(ids.shape)}")
        ids = torch.where(self.known[ids], ids, torch.zeros_like(ids))
        present = (ids != 0).to(self.table.weight.dtype)  # [B, S]
        if self.training and self.field_dropout > 0:
            kept = torch.rand(len(ids), len(self.field_slots), device=ids.device)
            kept = (kept >= self.field_dropout).to(present.dtype)  # [B, K]
            present = present * (kept @ self.assignment.T)  # each slot takes its field's draw
        # padding_idx keeps row 0 at zero; the mask keeps it out even if a loaded table is not.
        vectors = self.table(ids) * present.unsqueeze(-1)  # [B, S, E]
        sums = torch.einsum("bse,sk->bke", vectors, self.assignment)  # [B, K, E]
        counts = (present @ self.assignment).clamp_min(1.0)  # [B, K]
        return (sums / counts.unsqueeze(-1)).flatten(1)


def _tower(input_dim: int, tower_dim: int) -> nn.Sequential:
    """A per-head tower: ``[B, input_dim] -> [B, 1]`` logits."""
    tower = nn.Sequential(nn.Linear(input_dim, tower_dim), nn.ReLU(), nn.Linear(tower_dim, 1))
    tower.apply(_init_weights)
    return tower


def _mask_blocks(
    architecture: str, input_dim: int, num_blocks: int, mask_hidden_dim: int, block_dim: int
) -> tuple[list[MaskBlock], int]:
    """The mask blocks of an architecture and the width of what they hand the MLP: parallel
    blocks side by side (``num_blocks * D``), serial blocks in a chain (``D``), none for "mlp"
    (the input itself)."""
    if architecture == "parallel":
        blocks = [MaskBlock(input_dim, mask_hidden_dim, block_dim) for _ in range(num_blocks)]
        return blocks, num_blocks * block_dim
    if architecture == "serial":
        blocks = [
            MaskBlock(input_dim if i == 0 else block_dim, mask_hidden_dim, block_dim, input_dim)
            for i in range(num_blocks)
        ]
        return blocks, block_dim
    return [], input_dim


class ParallelMaskNet(nn.Module):
    """Multi-task parallel MaskNet: normalizer, parallel mask blocks, shared MLP, per-head towers.

    Args:
        num_features: F, raw dense features per row.
        heads: names of the engagement heads, e.g. ``("fav", "reply", ...)``; output keys.
        num_blocks: parallel MaskBlocks, all reading the same normalized input.
        mask_hidden_dim: hidden width of each instance-guided mask.
        block_dim: D, output width of each block.
        mlp_dims: widths of the shared MLP (Linear + ReLU each); empty = no MLP.
        tower_dim: hidden width of each head's tower.
        normalizer: the fitted :class:`FeatureNormalizer` for the F raw features.
        sparse: optional :class:`SparseEmbedder` whose ``[B, K * E]`` output joins the normalized
            features, so every block reads ``F + K * E`` columns; None = dense only.
        architecture: "parallel" (the reference: blocks side by side on the same input,
            concatenated), "serial" (each block gates the previous block's output with a mask of
            the model input; the last block feeds the MLP) or "mlp" (no mask blocks: a shared-bottom
            MLP on the input).
        wide: add a linear logit per head on the block input to the tower's (wide & deep): what
            a logistic regression on the same inputs learns, the ranker can represent directly.
            Starts at zero.
    """

    def __init__(
        self,
        num_features: int,
        heads: Sequence[str],
        num_blocks: int,
        mask_hidden_dim: int,
        block_dim: int,
        mlp_dims: Sequence[int],
        tower_dim: int,
        normalizer: FeatureNormalizer,
        sparse: SparseEmbedder | None = None,
        architecture: str = "parallel",
        regression_heads: Sequence[str] = (),
        sample_rates: Mapping[str, float] | None = None,
        wide: bool = False,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}; got {architecture!r}")
        self.architecture = architecture
        if normalizer.num_features != num_features:
            raise ValueError(
                f"normalizer covers {normalizer.num_features} features, model has {num_features}"
            )
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be non-empty and unique; got {list(heads)}")
        self.num_features = num_features
        self.heads: tuple[str, ...] = tuple(heads)
        self.regression_heads = frozenset(h for h in regression_heads if h in self.heads)
        rates = dict(sample_rates or {})
        stray = sorted(set(rates) - (set(self.heads) - self.regression_heads))
        if stray:
            raise ValueError(f"sample_rates name heads that are not binary heads: {stray}")
        self.sample_rates: dict[str, float] = {h: float(r) for h, r in rates.items() if r != 1.0}
        self.normalizer = normalizer
        self.sparse = sparse
        input_dim = num_features + (sparse.output_dim if sparse is not None else 0)
        blocks, width = _mask_blocks(
            architecture, input_dim, num_blocks, mask_hidden_dim, block_dim
        )
        self.blocks = nn.ModuleList(blocks)
        layers: list[nn.Module] = []
        for dim in mlp_dims:
            layers += [nn.Linear(width, dim), nn.ReLU()]
            width = dim
        self.mlp = nn.Sequential(*layers)
        self.mlp.apply(_init_weights)
        self.towers = nn.ModuleDict({head: _tower(width, tower_dim) for head in self.heads})
        self.wide: nn.Linear | None = None
        if wide:
            self.wide = nn.Linear(input_dim, len(self.heads))
            nn.init.zeros_(self.wide.weight)
            nn.init.zeros_(self.wide.bias)

    @classmethod
    def from_config(
        cls, cfg: RankerConfig, num_features: int, normalizer: FeatureNormalizer
    ) -> ParallelMaskNet:
        """Builds the ranker from the ``ranker`` section of the config.

        It gets a :class:`SparseEmbedder` over the SPARSE_FIELDS exactly when ``cfg.uses_sparse``.
        """
        sparse = (
            SparseEmbedder(
                cfg.sparse_buckets, cfg.sparse_dim, field_slots(), cfg.sparse_field_dropout
            )
            if cfg.uses_sparse
            else None
        )
        return cls(
            num_features=num_features,
            heads=cfg.heads,
            num_blocks=cfg.num_blocks,
            mask_hidden_dim=cfg.mask_hidden_dim,
            block_dim=cfg.block_dim,
            mlp_dims=cfg.mlp_dims,
            tower_dim=cfg.tower_dim,
            normalizer=normalizer,
            sparse=sparse,
            architecture=cfg.architecture,
            regression_heads=[h for h in cfg.heads if h in REGRESSION_HEADS],
            sample_rates={h: cfg.sample_rate(h) for h in cfg.binary_heads},
            wide=cfg.wide,
        )

    def model_input(self, x: Tensor, ids: Tensor | None = None) -> Tensor:
        """``[B, F]`` raw features and ``[B, S]`` ids -> ``[B, F + K * E]`` block input.

        Without an embedder this is the normalized ``[B, F]``. With one, ``ids=None`` means every
        sparse value is missing (all padding), which embeds to zeros.
        """
        z = self.normalizer(x)
        if self.sparse is None:
            if ids is not None:
                raise ValueError("sparse ids given to a ranker built without a SparseEmbedder")
            return z
        if ids is None:
            return torch.cat([z, z.new_zeros(len(z), self.sparse.output_dim)], dim=-1)
        return torch.cat([z, self.sparse(ids)], dim=-1)

    def forward(self, x: Tensor, ids: Tensor | None = None) -> dict[str, Tensor]:
        """``[B, F]`` raw float32 features, ``[B, S]`` int64 ids -> ``{head: [B] logits}``.

        ``ids=None`` is all padding for a model with an embedder (see :meth:`model_input`).
        """
        z = self.model_input(x, ids)
        if self.architecture == "parallel":
            hidden = torch.cat([block(z) for block in self.blocks], dim=-1)  # [B, blocks * D]
        elif self.architecture == "serial":
            hidden = z
            for block in self.blocks:
                hidden = block(hidden, mask_input=z)  # [B, D], masks always read the input
        else:
            hidden = z  # [B, F + K * E]: the shared-bottom MLP reads the input itself
        shared = self.mlp(hidden)  # [B, M]
        out = {head: tower(shared).squeeze(-1) for head, tower in self.towers.items()}
        if self.wide is not None:
            linear = self.wide(z)  # [B, H], one column per head in self.heads order
            out = {head: out[head] + linear[:, i] for i, head in enumerate(self.heads)}
        return out

    @torch.no_grad()
    def predict_proba(self, x: Tensor, ids: Tensor | None = None) -> dict[str, Tensor]:
        """Like :meth:`forward`, without autograd, as ``{head: [B] predictions}``: calibrated
        probabilities for binary heads (a head trained on downsampled negatives is corrected with
        :func:`correct_downsampled`), the predicted value itself for a regression head."""
        out: dict[str, Tensor] = {}
        for head, value in self(x, ids).items():
            if head in self.regression_heads:
                out[head] = value
                continue
            p = torch.sigmoid(value)
            rate = self.sample_rates.get(head)
            out[head] = p if rate is None else correct_downsampled(p, rate)
        return out


def correct_downsampled(q: Tensor, rate: float) -> Tensor:
    """The probability ``p = q*r / (1 - q + q*r)`` from a prediction ``q`` of a model trained with
    only a share ``r`` of the negatives (its odds are ``1/r`` times too high)."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"a negative sampling rate must be in (0, 1]; got {rate}")
    return q * rate / (1.0 - q + q * rate)
