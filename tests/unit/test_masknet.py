"""Unit tests of the parallel MaskNet ranker, its normalizer and its loss."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipelines.config import RankerConfig
from pipelines.models.masknet import (
    FeatureNormalizer,
    MaskBlock,
    ParallelMaskNet,
    multitask_bce,
)

NUM_FEATURES = 6
HEADS = ("fav", "reply", "negative")


def _tiny_model(
    num_features: int = NUM_FEATURES, heads: tuple[str, ...] = HEADS
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
    )


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
    loss, per_head = multitask_bce(model(x), labels, HEADS)
    loss.backward()
    assert set(per_head) == set(HEADS)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert float(parameter.grad.abs().sum()) > 0.0, name
    # The normalizer's statistics are buffers, not trained parameters.
    assert not any(name.startswith("normalizer") for name, _ in model.named_parameters())


def test_multitask_bce_matches_hand_computation_and_weights() -> None:
    logits = {"fav": torch.tensor([0.0, 0.0]), "reply": torch.tensor([math.log(3.0), 0.0])}
    labels = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    loss, per_head = multitask_bce(logits, labels, ("fav", "reply"))
    # fav: sigmoid(0) = 0.5 for both rows -> BCE = ln 2 each.
    # reply: row 0 sigmoid(ln 3) = 0.75, label 1 -> -ln 0.75; row 1 p = 0.5, label 0 -> ln 2.
    fav = math.log(2.0)
    reply = (-math.log(0.75) + math.log(2.0)) / 2
    assert per_head["fav"] == pytest.approx(fav)
    assert per_head["reply"] == pytest.approx(reply)
    assert float(loss) == pytest.approx((fav + reply) / 2)
    # Weight 1 on row 0 only: reply's loss becomes row 0's alone.
    _, weighted = multitask_bce(logits, labels, ("fav", "reply"), weights=torch.tensor([1.0, 0.0]))
    assert weighted["reply"] == pytest.approx(-math.log(0.75))
    with pytest.raises(ValueError, match="labels"):
        multitask_bce(logits, labels[:, :1], ("fav", "reply"))


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
        loss, _ = multitask_bce(model(train_x[rows]), train_y[rows], heads)
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
