"""A trained ranker on disk: the MaskNet weights plus what it takes to rebuild and feed it.

A bundle directory holds ``model.pt`` (state_dict, normalizer statistics included) and
``meta.json`` (heads, architecture, feature names, embedding size). Evaluation, the MLflow pyfunc and
serving all load rankers through :class:`RankerBundle`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipelines.config import RankerConfig
from pipelines.features.spec import feature_matrix, feature_names
from pipelines.models.masknet import FeatureNormalizer, ParallelMaskNet


class RankerBundle:
    """A ParallelMaskNet ready to score raw feature frames."""

    def __init__(self, model: ParallelMaskNet, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.meta = meta
        self.heads: tuple[str, ...] = tuple(meta["heads"])
        self.embedding_dim = int(meta["embedding_dim"])
        self.version = str(meta.get("version", "local"))

    @staticmethod
    def build(
        ranker: RankerConfig, embedding_dim: int, normalizer: FeatureNormalizer
    ) -> ParallelMaskNet:
        num_features = len(feature_names(embedding_dim, ranker.feature_set))
        return ParallelMaskNet.from_config(ranker, num_features, normalizer)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / "model.pt")
        (directory / "meta.json").write_text(json.dumps(self.meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> RankerBundle:
        meta = json.loads((Path(directory) / "meta.json").read_text())
        ranker = RankerConfig.model_validate(meta["ranker"])
        embedding_dim = int(meta["embedding_dim"])
        normalizer = FeatureNormalizer.identity(
            len(feature_names(embedding_dim, ranker.feature_set))
        )
        model = cls.build(ranker, embedding_dim, normalizer)
        state = torch.load(Path(directory) / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return cls(model, meta)

    def predict_matrix(self, x: np.ndarray, batch_size: int = 8192) -> dict[str, np.ndarray]:
        """x [N, F] raw features -> {head: probabilities [N]}."""
        outputs: dict[str, list[np.ndarray]] = {head: [] for head in self.heads}
        with torch.inference_mode():
            for lo in range(0, len(x), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[lo : lo + batch_size]))
                for head, p in self.model.predict_proba(batch).items():
                    outputs[head].append(p.numpy())
        return {
            head: np.concatenate(parts) if parts else np.empty(0) for head, parts in outputs.items()
        }

    def predict(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        """Feature frame (spec columns) -> {head: probabilities [N]}."""
        feature_set = str(self.meta["ranker"].get("feature_set", "full"))
        return self.predict_matrix(feature_matrix(features, self.embedding_dim, feature_set))
