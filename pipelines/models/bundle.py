"""A trained ranker on disk: the MaskNet weights plus what it takes to rebuild and feed it.

A bundle directory holds ``model.pt`` (state_dict, normalizer statistics included) and
``meta.json`` (heads, architecture, feature names, embedding size, sparse fields). Evaluation, the
MLflow pyfunc and serving all load rankers through :class:`RankerBundle`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.config import RankerConfig
from pipelines.inputs.sparse import SPARSE_FIELDS, sparse_ids
from pipelines.inputs.spec import FeatureTable, feature_matrix, feature_names
from pipelines.models.masknet import FeatureNormalizer, ParallelMaskNet


def sparse_meta() -> list[list[Any]]:
    """The sparse-id layout a bundle was trained on, as ``meta.json`` stores it."""
    return [list(field) for field in SPARSE_FIELDS]


class IncompatibleBundleError(ValueError):
    """A saved ranker that this code cannot score with (its features or layout changed since)."""


class RankerBundle:
    """A ParallelMaskNet ready to score raw feature frames."""

    def __init__(self, model: ParallelMaskNet, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.meta = meta
        self.heads: tuple[str, ...] = tuple(meta["heads"])
        self.embedding_dim = int(meta["embedding_dim"])
        self.version = str(meta.get("version", "local"))
        self.feature_set = str(meta["ranker"].get("feature_set", "full"))
        # Where the bundle was loaded from (None for one built in memory): files saved beside
        # the model, such as a tuned blend, are read from there.
        self.directory: Path | None = None

    @property
    def uses_sparse(self) -> bool:
        """Whether the model embeds sparse ids, so :meth:`predict` hashes them from the frame."""
        return self.model.sparse is not None

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
        ranker = RankerConfig.model_validate(_old_bundle_defaults(meta["ranker"]))
        if ranker.uses_sparse and meta.get("sparse_fields") != sparse_meta():
            # The hashed ids depend on the field order, slots and salts: another layout is garbage.
            raise ValueError(
                f"bundle {directory} was trained on sparse fields {meta.get('sparse_fields')}, "
                f"this code hashes {sparse_meta()}"
            )
        embedding_dim = int(meta["embedding_dim"])
        names = feature_names(embedding_dim, ranker.feature_set)
        trained_on = meta.get("feature_names")
        if trained_on is not None and list(trained_on) != list(names):
            added, dropped = (
                sorted(set(names) - set(trained_on)),
                sorted(set(trained_on) - set(names)),
            )
            raise IncompatibleBundleError(
                f"bundle {directory} was trained on another feature spec: this code adds "
                f"{added[:5]} and drops {dropped[:5]} ({len(trained_on)} vs {len(names)} columns)"
            )
        normalizer = FeatureNormalizer.identity(len(names))
        model = cls.build(ranker, embedding_dim, normalizer)
        state = torch.load(Path(directory) / "model.pt", map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:  # bundles from before feature names were saved
            raise IncompatibleBundleError(
                f"bundle {directory} does not fit this code's model (another feature spec or "
                f"architecture): {str(exc).splitlines()[0]}"
            ) from exc
        bundle = cls(model, meta)
        bundle.directory = Path(directory)
        return bundle

    def predict_matrix(
        self, x: np.ndarray, ids: np.ndarray | None = None, batch_size: int = 8192
    ) -> dict[str, np.ndarray]:
        """x [N, F] raw features, ids [N, S] sparse ids -> {head: probabilities [N]}.

        ``ids`` comes from :func:`pipelines.inputs.sparse.sparse_ids` with the bundle's
        ``sparse_buckets``; None, for a sparse bundle, scores every sparse value as missing.
        """
        if ids is not None and len(ids) != len(x):
            raise ValueError(f"x has {len(x)} rows but ids has {len(ids)}")
        outputs: dict[str, list[np.ndarray]] = {head: [] for head in self.heads}
        with torch.inference_mode():
            for lo in range(0, len(x), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[lo : lo + batch_size]))
                id_batch = (
                    None
                    if ids is None
                    else torch.from_numpy(np.ascontiguousarray(ids[lo : lo + batch_size]))
                )
                for head, p in self.model.predict_proba(batch, id_batch).items():
                    outputs[head].append(p.numpy())
        return {
            head: np.concatenate(parts) if parts else np.empty(0) for head, parts in outputs.items()
        }

    def predict(self, features: FeatureTable) -> dict[str, np.ndarray]:
        """Feature rows (a frame, or serving's columns) -> {head: probabilities [N]}.

        The frame holds the spec's columns and, for a sparse bundle, the SPARSE_FIELDS columns
        (ids, country, recent hashtags, n-gram ids); a missing one is a KeyError naming it.
        """
        return self.predict_matrix(*frame_inputs(features, self.input_spec))

    @property
    def input_spec(self) -> InputSpec:
        """What turns a feature frame into this model's inputs (see :func:`frame_inputs`)."""
        sparse = self.model.sparse
        buckets = 0 if sparse is None else int(sparse.table.num_embeddings)
        return InputSpec(self.embedding_dim, self.feature_set, buckets)


@dataclass(frozen=True)
class InputSpec:
    embedding_dim: int
    feature_set: str
    sparse_buckets: int  # 0: the model reads no sparse ids


def frame_inputs(features: FeatureTable, spec: InputSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Feature rows (a frame, or columns) -> the model's ``x`` [N, F] float32 and sparse ids
    [N, S] (or None).

    Serving computes these where the features are, so only two arrays travel to the ranker.
    """
    x = feature_matrix(features, spec.embedding_dim, spec.feature_set)
    ids = sparse_ids(features, spec.sparse_buckets) if spec.sparse_buckets else None
    return x, ids


def pack_inputs(x: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
    """The model's inputs as one int32 array [N, F + S]: x's float32 bits, then the sparse ids.

    One array crosses a process boundary (Ray's object store) once, where two cost two
    transfers; ids must fit in int32 (they are < the bundle's bucket count).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if ids is None:
        return x.view(np.int32)
    if len(ids) != len(x):
        raise ValueError(f"x has {len(x)} rows but ids has {len(ids)}")
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        raise ValueError("sparse ids do not fit in int32")
    return np.concatenate([x.view(np.int32), ids.astype(np.int32)], axis=1)


def unpack_inputs(packed: np.ndarray, dense_width: int) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`pack_inputs` undone: (x [N, F] float32, ids [N, S] int64, or None when S is 0)."""
    if packed.dtype != np.int32 or packed.ndim != 2 or packed.shape[1] < dense_width:
        raise ValueError(
            f"packed inputs must be int32 [N, >= {dense_width}], got {packed.dtype} "
            f"{list(packed.shape)}"
        )
    x = np.ascontiguousarray(packed[:, :dense_width]).view(np.float32)
    if packed.shape[1] == dense_width:
        return x, None
    return x, packed[:, dense_width:].astype(np.int64)


def _old_bundle_defaults(ranker: dict[str, Any]) -> dict[str, Any]:
    # Bundles saved before sparse inputs existed have no `sparse_buckets`: they are dense-only;
    # those saved before negative downsampling trained on every negative (nothing to correct);
    # those saved before the wide part have none.
    return {"sparse_buckets": 0, "negative_sample_rates": {}, "wide": False, **ranker}
