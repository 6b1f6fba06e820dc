"""Batch inference with Ray Data: embed many texts in parallel, batched, one model per actor."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import FeedrankConfig

log = logging.getLogger(__name__)


class _EmbedBatch:
    """A Ray Data actor: loads the embedder once, then embeds every batch it is handed."""

    def __init__(self, model_dir: str, batch_size: int) -> None:
        import torch

        from pipelines.models.text_encoder import TextEmbedder

        torch.set_num_threads(1)
        self.embedder = TextEmbedder.load(Path(model_dir))
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        vectors = self.embedder.embed(batch["text"].tolist(), batch_size=self.batch_size)
        return pd.DataFrame({"row": batch["row"].to_numpy(), "embedding": list(vectors)})


def embed_texts(cfg: FeedrankConfig, model_dir: Path, texts: list[str]) -> np.ndarray:
    """Texts [N] -> embeddings [N, D] with a pool of Ray Data actors (one CPU each)."""
    import ray

    from pipelines.ray_runtime import ray_session

    started = time.perf_counter()
    frame = pd.DataFrame({"row": np.arange(len(texts)), "text": texts})
    workers = max(1, cfg.encoder.num_workers)
    with ray_session(cfg):
        dataset = ray.data.from_pandas(frame, override_num_blocks=workers * 4).map_batches(
            _EmbedBatch,
            fn_constructor_kwargs={
                "model_dir": str(model_dir),
                "batch_size": cfg.encoder.embed_batch_size,
            },
            batch_format="pandas",
            batch_size=cfg.encoder.embed_batch_size * 4,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_gpus=1 if cfg.encoder.use_gpu else 0,
            num_cpus=0 if cfg.encoder.use_gpu else 1,
        )
        result = dataset.to_pandas()
    result = result.sort_values("row")
    if len(result) != len(texts):
        raise RuntimeError(f"embedded {len(result)} of {len(texts)} texts")
    vectors = np.stack(result["embedding"].to_numpy()).astype(np.float32)
    seconds = time.perf_counter() - started
    log.info(
        "embed: %d texts in %.1f s (%.0f/s) with %d Ray Data actors",
        len(texts),
        seconds,
        len(texts) / seconds,
        workers,
    )
    return vectors
