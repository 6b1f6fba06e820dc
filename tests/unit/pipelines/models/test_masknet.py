"""Unit tests of the parallel MaskNet ranker and its normalizer."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipelines.config import RankerConfig
from pipelines.inputs.sparse import field_slots, sparse_width
from pipelines.inputs.spec import feature_names
from pipelines.models.bundle import RankerBundle, sparse_meta
from pipelines.models.losses import multitask_loss
from pipelines.models.masknet import (
    FeatureNormalizer,
    MaskBlock,
    ParallelMaskNet,
    SparseEmbedder,
    correct_downsampled,
)

NUM_FEATURES = 6
HEADS = ("fav", "reply", "negative")
# Two sparse fields: one id slot, then a three-slot list.
SLOTS = (1, 3)
BUCKETS, SPARSE_DIM = 50, 4


def _tiny_model(
    num_features: int = NUM_FEATURES,
    heads: tuple[str, ...] = HEADS,
    sparse: SparseEmbedder | None = None,
    architecture: str = "parallel",
    wide: bool = False,
) -> ParallelMaskNet:
    return ParallelMaskNet(
        num_features=num_features,
        heads=heads,
        num_blocks=2,
        mask_hidden_dim=16,
        block_dim=8,
        mlp_dims=(16, 8),
        tower_dim=4,
        normalizer=FeatureNormalizer.identity(num_features),
        sparse=sparse,
        architecture=architecture,
        wide=wide,
    )


def _sparse_model() -> ParallelMaskNet:
    return _tiny_model(sparse=SparseEmbedder(BUCKETS, SPARSE_DIM, SLOTS))


def test_forward_returns_one_logit_vector_per_head() -> None:
    torch.manual_seed(0)
    model = _tiny_model()
    out = model(torch.randn(5, NUM_FEATURES))
    assert list(out) == list(HEADS)
    for logits in out.values():
        assert logits.shape == (5,)
        assert logits.dtype == torch.float32
    probs = model.predict_proba(torch.randn(5, NUM_FEATURES))
    for p in probs.values():
        assert p.shape == (5,)
        assert not p.requires_grad
        assert bool(((p > 0) & (p < 1)).all())


def test_from_config_uses_the_ranker_section() -> None:
    cfg = RankerConfig.model_validate(
        {"heads": ("fav", "report"), "num_blocks": 4, "block_dim": 10, "mlp_dims": (12,)}
    )
    model = ParallelMaskNet.from_config(cfg, NUM_FEATURES, FeatureNormalizer.identity(NUM_FEATURES))
    assert len(model.blocks) == 4
    assert model.heads == ("fav", "report")
    out = model(torch.randn(3, NUM_FEATURES))
    assert set(out) == {"fav", "report"}


def test_normalizer_size_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="normalizer"):
        ParallelMaskNet(4, HEADS, 1, 4, 4, (), 4, FeatureNormalizer.identity(3))


def test_mask_is_instance_guided() -> None:
    torch.manual_seed(0)
    block = MaskBlock(input_dim=NUM_FEATURES, mask_hidden_dim=16, block_dim=8)
    x1, x2 = torch.randn(4, NUM_FEATURES), torch.randn(4, NUM_FEATURES)
    mask1, mask2 = block.instance_mask(x1), block.instance_mask(x2)
    assert mask1.shape == (4, NUM_FEATURES)
    assert not torch.allclose(mask1, mask2)
    # Rows of one batch get their own masks too: the mask is not a learned constant.
    assert not torch.allclose(mask1[0], mask1[1])
    # The block is ReLU(LayerNorm(Linear(x * mask(x)))).
    expected = torch.relu(block.layer_norm(block.hidden(x1 * mask1)))
    torch.testing.assert_close(block(x1), expected)
    assert block(x1).shape == (4, 8)


def test_normalizer_fit_and_transform_on_hand_made_values() -> None:
    e = math.e
    # Column 0 is a heavy-tailed count (log-transformed), column 1 plain, column 2 constant.
    x = np.array(
        [
            [0.0, 1.0, 7.0],
            [e - 1.0, 3.0, 7.0],
            [np.nan, 5.0, 7.0],
        ]
    )
    normalizer = FeatureNormalizer.fit(x, np.array([True, False, False]))
    # Column 0 after log1p: [0, 1, NaN] -> mean 0.5, population std 0.5 (NaN ignored).
    # Column 1: [1, 3, 5] -> mean 3, std sqrt(((1-3)^2 + 0 + (5-3)^2) / 3) = sqrt(8/3).
    # Column 2: constant 7 -> mean 7, std 0 floored at 1e-6.
    torch.testing.assert_close(normalizer.mean, torch.tensor([0.5, 3.0, 7.0]))
    torch.testing.assert_close(normalizer.std, torch.tensor([0.5, math.sqrt(8 / 3), 1e-6]))

    raw = torch.tensor(
        [
            [e - 1.0, 3.0 + math.sqrt(8 / 3), 7.0],  # log1p(e-1) = 1 -> (1 - 0.5)/0.5 = 1
            [-(e - 1.0), 3.0, 7.0],  # sign-preserving: -1 -> (-1 - 0.5)/0.5 = -3
            [float("nan"), float("nan"), 7.0],  # missing -> 0
        ]
    )
    expected = torch.tensor([[1.0, 1.0, 0.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(normalizer(raw), expected)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = _tiny_model()
    x = torch.randn(32, NUM_FEATURES)
    labels = (torch.rand(32, len(HEADS)) < 0.5).float()
    loss, per_head = multitask_loss(model(x), labels, HEADS)
    loss.backward()
    assert set(per_head) == set(HEADS)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert float(parameter.grad.abs().sum()) > 0.0, name
    # The normalizer's statistics are buffers, not trained parameters.
    assert not any(name.startswith("normalizer") for name, _ in model.named_parameters())


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Tiny tensors: intra-op threads only contend on a shared 2-core machine (3x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_learns_a_tiny_synthetic_problem() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, num_features = 2000, 5
    x = rng.normal(size=(n, num_features)).astype(np.float32)
    x[:, 4] = rng.pareto(1.5, size=n) * 100  # a heavy-tailed count column
    labels = np.stack([x[:, 0] > 0, (x[:, 1] + 0.1 * x[:, 2]) > 0], axis=1).astype(np.float32)
    heads = ("fav", "reply")
    log_mask = np.array([False, False, False, False, True])
    model = ParallelMaskNet(
        num_features=num_features,
        heads=heads,
        num_blocks=2,
        mask_hidden_dim=16,
        block_dim=16,
        mlp_dims=(32,),
        tower_dim=8,
        normalizer=FeatureNormalizer.fit(x[:1500], log_mask),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_x, train_y = torch.from_numpy(x[:1500]), torch.from_numpy(labels[:1500])
    for _ in range(200):
        rows = torch.from_numpy(rng.integers(0, 1500, size=128))
        loss, _ = multitask_loss(model(train_x[rows]), train_y[rows], heads)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probs = model.predict_proba(torch.from_numpy(x[1500:]))
    for column, head in enumerate(heads):
        auc = roc_auc_score(labels[1500:, column], probs[head].numpy())
        assert auc > 0.9, (head, auc)


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    torch.manual_seed(0)
    x_train = np.abs(np.random.default_rng(1).normal(size=(50, NUM_FEATURES))) * 10
    log_mask = np.array([True, False] * (NUM_FEATURES // 2))
    model = _tiny_model()
    model.normalizer = FeatureNormalizer.fit(x_train, log_mask)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)

    torch.manual_seed(123)  # a fresh model with other weights and a placeholder normalizer
    restored = _tiny_model()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(7, NUM_FEATURES) * 5
    before, after = model(x), restored(x)
    for head in HEADS:
        torch.testing.assert_close(before[head], after[head], rtol=0, atol=0)
    torch.testing.assert_close(restored.normalizer.log_mask, torch.as_tensor(log_mask))


def test_sparse_embedder_means_each_field_over_its_non_padding_slots() -> None:
    torch.manual_seed(0)
    embedder = SparseEmbedder(BUCKETS, SPARSE_DIM, SLOTS)
    ids = torch.tensor([[3, 5, 7, 0], [0, 0, 0, 0], [4, 9, 0, 0]])
    out = embedder(ids)
    assert out.shape == (3, len(SLOTS) * SPARSE_DIM) == (3, embedder.output_dim)
    table = embedder.table.weight.detach()
    torch.testing.assert_close(out[0, :SPARSE_DIM], table[3])
    torch.testing.assert_close(out[0, SPARSE_DIM:], (table[5] + table[7]) / 2)
    torch.testing.assert_close(out[2, SPARSE_DIM:], table[9])  # padding does not dilute the mean
    assert bool((out[1] == 0).all())  # all padding: the field adds nothing
    with pytest.raises(ValueError, match="ids must be"):
        embedder(ids[:, :3])


def test_forward_shapes_with_and_without_sparse_ids() -> None:
    torch.manual_seed(0)
    model = _sparse_model()
    x = torch.randn(5, NUM_FEATURES)
    ids = torch.randint(0, BUCKETS, (5, sum(SLOTS)))
    assert model.blocks[0].hidden.in_features == NUM_FEATURES + len(SLOTS) * SPARSE_DIM
    for out in (model(x, ids), model(x), model.predict_proba(x, ids)):
        assert list(out) == list(HEADS)
        assert all(values.shape == (5,) for values in out.values())
    # A dense-only model keeps its F-wide blocks and refuses ids it cannot embed.
    dense = _tiny_model()
    assert dense.blocks[0].hidden.in_features == NUM_FEATURES
    with pytest.raises(ValueError, match="SparseEmbedder"):
        dense(x, ids)


def test_all_padding_ids_are_the_same_as_no_ids_whatever_the_table() -> None:
    torch.manual_seed(0)
    model = _sparse_model()
    x = torch.randn(4, NUM_FEATURES)
    ids = torch.tensor([[0, 0, 0, 0], [3, 5, 0, 0], [0, 0, 0, 0], [8, 8, 9, 10]])
    before = model(x, ids)
    none = model(x)
    with torch.no_grad():
        model.sparse.table.weight[1:].normal_()  # type: ignore[union-attr]
    after = model(x, ids)
    padded = [0, 2]
    for head in HEADS:
        torch.testing.assert_close(before[head][padded], none[head][padded], rtol=0, atol=0)
        torch.testing.assert_close(before[head][padded], after[head][padded], rtol=0, atol=0)
        assert not torch.allclose(before[head][[1, 3]], after[head][[1, 3]])


def test_gradients_reach_the_embedding_table_but_not_padding() -> None:
    torch.manual_seed(0)
    model = _sparse_model()
    x = torch.randn(8, NUM_FEATURES)
    ids = torch.tensor([[3, 5, 7, 0]] * 4 + [[4, 0, 0, 0]] * 4)
    labels = (torch.rand(8, len(HEADS)) < 0.5).float()
    loss, _ = multitask_loss(model(x, ids), labels, HEADS)
    loss.backward()
    grad = model.sparse.table.weight.grad  # type: ignore[union-attr]
    assert grad is not None
    used = grad.abs().sum(dim=1) > 0
    assert used.nonzero().flatten().tolist() == [3, 4, 5, 7]  # padding row 0 gets nothing


def test_from_config_adds_the_embedder_for_the_full_feature_set_only() -> None:
    normalizer = FeatureNormalizer.identity(NUM_FEATURES)
    full = ParallelMaskNet.from_config(
        RankerConfig(sparse_buckets=64, sparse_dim=3), NUM_FEATURES, normalizer
    )
    assert full.sparse is not None
    assert full.sparse.table.num_embeddings == 64 and full.sparse.num_slots == sparse_width()
    assert full.sparse.field_slots == field_slots()
    assert full.blocks[0].hidden.in_features == NUM_FEATURES + 3 * len(field_slots())
    for off in (RankerConfig(feature_set="skeleton"), RankerConfig(sparse_buckets=0)):
        assert ParallelMaskNet.from_config(off, NUM_FEATURES, normalizer).sparse is None


@pytest.mark.usefixtures("one_thread")
def test_learns_a_signal_carried_only_by_sparse_ids() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, authors = 2000, 40
    author = rng.integers(1, authors + 1, size=n)
    liked = rng.random(authors + 1) < 0.5  # each author is liked or not, whatever the dense x
    labels = torch.from_numpy(liked[author].astype(np.float32)).unsqueeze(1)
    x = torch.randn(n, NUM_FEATURES)
    ids = torch.from_numpy(np.stack([author, *np.zeros((3, n), dtype=np.int64)], axis=1))
    model = _tiny_model(heads=("fav",), sparse=SparseEmbedder(authors + 1, SPARSE_DIM, SLOTS))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        rows = torch.from_numpy(rng.integers(0, 1500, size=128))
        loss, _ = multitask_loss(model(x[rows], ids[rows]), labels[rows], ("fav",))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probs = model.predict_proba(x[1500:], ids[1500:])["fav"].numpy()
    assert roc_auc_score(labels[1500:, 0].numpy(), probs) > 0.95


def _bundle_meta(ranker: RankerConfig, embedding_dim: int) -> dict[str, object]:
    return {
        "heads": list(ranker.heads),
        "embedding_dim": embedding_dim,
        "ranker": ranker.model_dump(mode="json"),
        "sparse_fields": sparse_meta() if ranker.uses_sparse else [],
    }


def test_bundle_round_trip_scores_with_sparse_ids(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ranker = RankerConfig(
        heads=("fav", "reply"),
        num_blocks=1,
        mask_hidden_dim=4,
        block_dim=4,
        mlp_dims=(4,),
        tower_dim=2,
        sparse_buckets=64,
        sparse_dim=2,
    )
    num_features = len(feature_names(2, ranker.feature_set))
    model = RankerBundle.build(ranker, 2, FeatureNormalizer.identity(num_features))
    RankerBundle(model, _bundle_meta(ranker, 2)).save(tmp_path / "ranker")
    loaded = RankerBundle.load(tmp_path / "ranker")
    assert loaded.uses_sparse
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, num_features)).astype(np.float32)
    ids = rng.integers(0, 64, size=(10, sparse_width()))
    with_ids = loaded.predict_matrix(x, ids, batch_size=4)
    expected = model.eval().predict_proba(torch.from_numpy(x), torch.from_numpy(ids))
    for head in ranker.heads:
        np.testing.assert_allclose(with_ids[head], expected[head].numpy(), rtol=1e-6)
    assert not np.allclose(loaded.predict_matrix(x)["fav"], with_ids["fav"])

    meta = json.loads((tmp_path / "ranker" / "meta.json").read_text())
    (tmp_path / "ranker" / "meta.json").write_text(json.dumps({**meta, "sparse_fields": []}))
    with pytest.raises(ValueError, match="sparse fields"):
        RankerBundle.load(tmp_path / "ranker")


def test_bundles_saved_before_sparse_inputs_load_as_dense(tmp_path: Path) -> None:
    ranker = RankerConfig(heads=("fav",), num_blocks=1, sparse_buckets=0)
    num_features = len(feature_names(2, ranker.feature_set))
    model = RankerBundle.build(ranker, 2, FeatureNormalizer.identity(num_features))
    meta = _bundle_meta(ranker, 2)
    old_ranker = {k: v for k, v in ranker.model_dump(mode="json").items() if "sparse" not in k}
    RankerBundle(model, {**meta, "ranker": old_ranker}).save(tmp_path / "old")
    loaded = RankerBundle.load(tmp_path / "old")
    assert not loaded.uses_sparse
    x = np.zeros((3, num_features), dtype=np.float32)
    assert loaded.predict_matrix(x)["fav"].shape == (3,)


def test_ids_outside_the_training_vocabulary_embed_as_missing() -> None:
    from pipelines.train.ranker import known_ids

    ranker = RankerConfig(sparse_buckets=BUCKETS, sparse_min_count=2)
    train = np.array([[3, 7, 0, 0], [3, 9, 0, 0], [5, 7, 7, 0]])
    known = known_ids(train, ranker)
    assert np.flatnonzero(known).tolist() == [3, 7]  # 5 and 9 seen once; 0 is padding
    embedder = SparseEmbedder(BUCKETS, SPARSE_DIM, SLOTS)
    embedder.restrict_to(torch.from_numpy(known))
    embedder.eval()
    rare = embedder(torch.tensor([[5, 9, 0, 0]]))
    assert torch.equal(rare, torch.zeros_like(rare))
    mixed = embedder(torch.tensor([[3, 7, 9, 0]]))  # 9 drops out of the list field's mean
    assert torch.allclose(mixed, embedder(torch.tensor([[3, 7, 0, 0]])))


def test_field_dropout_only_acts_while_training() -> None:
    torch.manual_seed(0)
    embedder = SparseEmbedder(BUCKETS, SPARSE_DIM, SLOTS, field_dropout=0.5)
    ids = torch.randint(1, BUCKETS, (2000, sum(SLOTS)))
    embedder.train()
    dropped = (embedder(ids).abs().sum(dim=1) == 0).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.05)  # both fields dropped: 0.5 * 0.5
    embedder.eval()
    assert torch.equal(embedder(ids), embedder(ids))
    assert (embedder(ids).abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize("architecture", ["parallel", "serial", "mlp"])
def test_every_architecture_scores_every_head_and_learns(architecture: str) -> None:
    torch.manual_seed(0)
    model = _tiny_model(architecture=architecture)
    x = torch.randn(512, NUM_FEATURES)
    y = (x[:, :1] + x[:, 1:2] > 0).float().repeat(1, len(HEADS))  # every head: one linear rule
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        loss, _ = multitask_loss(model(x), y, HEADS)
        loss.backward()
        optimizer.step()
    out = model.predict_proba(x)
    assert set(out) == set(HEADS) and out["fav"].shape == (512,)
    assert roc_auc_score(y[:, 0].numpy(), out["fav"].numpy()) > 0.95
    expected_blocks = {"parallel": 2, "serial": 2, "mlp": 0}[architecture]
    assert len(model.blocks) == expected_blocks


def test_serial_blocks_are_gated_by_the_model_input() -> None:
    torch.manual_seed(0)
    block = MaskBlock(input_dim=8, mask_hidden_dim=4, block_dim=8, mask_input_dim=NUM_FEATURES)
    hidden = torch.randn(3, 8)
    first, second = torch.randn(3, NUM_FEATURES), torch.randn(3, NUM_FEATURES)
    # the same block input under two different model inputs: different gates, different outputs
    assert not torch.allclose(block(hidden, mask_input=first), block(hidden, mask_input=second))
    with pytest.raises(ValueError, match="architecture"):
        _tiny_model().__class__(
            NUM_FEATURES, HEADS, 1, 4, 4, (), 4, FeatureNormalizer.identity(NUM_FEATURES), None, "x"
        )


def test_downsampling_correction_by_hand() -> None:
    q = torch.tensor([0.0, 0.5, 0.8, 1.0], dtype=torch.float64)
    # p = q r / (1 - q + q r): with r = 0.25, q = 0.5 -> 0.125 / 0.625 = 0.2; q = 0.8 -> 0.5
    p = correct_downsampled(q, 0.25)
    assert p.tolist() == pytest.approx([0.0, 0.2, 0.5, 1.0])
    assert torch.equal(correct_downsampled(q, 1.0), q)  # r = 1: nothing was dropped
    # the odds shrink by exactly r
    odds = lambda x: x / (1 - x)  # noqa: E731
    assert odds(p[1:3]).tolist() == pytest.approx((0.25 * odds(q[1:3])).tolist())
    with pytest.raises(ValueError, match="sampling rate"):
        correct_downsampled(q, 0.0)


def test_predict_proba_corrects_downsampled_heads_and_passes_regression_values() -> None:
    torch.manual_seed(0)
    kwargs = dict(
        num_features=NUM_FEATURES,
        heads=("fav", "reply", "dwell_time"),
        num_blocks=2,
        mask_hidden_dim=16,
        block_dim=8,
        mlp_dims=(16, 8),
        tower_dim=4,
        normalizer=FeatureNormalizer.identity(NUM_FEATURES),
        regression_heads=("dwell_time",),
    )
    plain = ParallelMaskNet(**kwargs)  # type: ignore[arg-type]
    sampled = ParallelMaskNet(**kwargs, sample_rates={"fav": 0.1})  # type: ignore[arg-type]
    sampled.load_state_dict(plain.state_dict())
    x = torch.randn(7, NUM_FEATURES)
    logits, ours, theirs = plain(x), sampled.predict_proba(x), plain.predict_proba(x)
    assert torch.allclose(ours["fav"], correct_downsampled(torch.sigmoid(logits["fav"]), 0.1))
    assert torch.allclose(ours["reply"], theirs["reply"])  # not downsampled: untouched
    assert torch.equal(ours["dwell_time"], logits["dwell_time"])  # a value, not a probability
    with pytest.raises(ValueError, match="not binary heads"):
        ParallelMaskNet(**kwargs, sample_rates={"dwell_time": 0.5})  # type: ignore[arg-type]


def test_a_bundle_trained_on_another_feature_spec_is_refused_by_name(tmp_path: Path) -> None:
    from pipelines.models.bundle import IncompatibleBundleError

    cfg = RankerConfig(heads=HEADS, sparse_buckets=0, num_blocks=1, mlp_dims=(8,))
    names = feature_names(4, cfg.feature_set)
    model = RankerBundle.build(cfg, 4, FeatureNormalizer.identity(len(names)))
    meta = {
        "heads": list(HEADS),
        "embedding_dim": 4,
        "ranker": cfg.model_dump(mode="json"),
        "feature_names": [*names[:-1], "a_feature_this_code_lacks"],
    }
    RankerBundle(model, meta).save(tmp_path / "bundle")
    with pytest.raises(IncompatibleBundleError, match="a_feature_this_code_lacks"):
        RankerBundle.load(tmp_path / "bundle")
    meta["feature_names"] = list(names)
    RankerBundle(model, meta).save(tmp_path / "bundle")
    assert RankerBundle.load(tmp_path / "bundle").heads == HEADS


def test_the_wide_part_adds_one_linear_logit_per_head_on_the_model_input() -> None:
    torch.manual_seed(0)
    deep = _tiny_model()
    wide = _tiny_model(wide=True)
    assert wide.wide is not None and deep.wide is None
    wide.load_state_dict(
        {**deep.state_dict(), **{f"wide.{k}": v for k, v in wide.wide.state_dict().items()}}
    )
    x = torch.randn(5, NUM_FEATURES)
    # It starts at zero: the same logits as the deep part alone.
    for head, logits in wide(x).items():
        torch.testing.assert_close(logits, deep(x)[head])
    with torch.no_grad():
        wide.wide.weight.copy_(torch.arange(len(HEADS) * NUM_FEATURES).view(len(HEADS), -1) / 10)
        wide.wide.bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
    z = wide.model_input(x)
    for i, head in enumerate(HEADS):
        expected = deep(x)[head] + z @ wide.wide.weight[i] + wide.wide.bias[i]
        torch.testing.assert_close(wide(x)[head], expected)


def test_bundles_saved_before_the_wide_part_load_without_it(tmp_path: Path) -> None:
    ranker = RankerConfig(heads=("fav",), num_blocks=1, sparse_buckets=0, wide=False)
    num_features = len(feature_names(2, ranker.feature_set))
    model = RankerBundle.build(ranker, 2, FeatureNormalizer.identity(num_features))
    meta = _bundle_meta(ranker, 2)
    old_ranker = {k: v for k, v in ranker.model_dump(mode="json").items() if k != "wide"}
    RankerBundle(model, {**meta, "ranker": old_ranker}).save(tmp_path / "old")
    loaded = RankerBundle.load(tmp_path / "old")
    assert loaded.model.wide is None
    assert (
        RankerBundle.build(
            RankerConfig(), 2, FeatureNormalizer.identity(len(feature_names(2)))
        ).wide
        is not None
    )  # new bundles have it by default
