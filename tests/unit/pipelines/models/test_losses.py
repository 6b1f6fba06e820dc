"""Unit tests of the ranker's training objective: the multi-task loss and negative downsampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.models.losses import downsampling_weights, multitask_loss
from pipelines.models.masknet import correct_downsampled


def test_multitask_loss_of_binary_heads_matches_hand_computation_and_row_weights() -> None:
    logits = {"fav": torch.tensor([0.0, 0.0]), "reply": torch.tensor([math.log(3.0), 0.0])}
    labels = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    loss, per_head = multitask_loss(logits, labels, ("fav", "reply"))
    # fav: sigmoid(0) = 0.5 for both rows -> BCE = ln 2 each.
    # reply: row 0 sigmoid(ln 3) = 0.75, label 1 -> -ln 0.75; row 1 p = 0.5, label 0 -> ln 2.
    fav = math.log(2.0)
    reply = (-math.log(0.75) + math.log(2.0)) / 2
    assert per_head["fav"] == pytest.approx(fav)
    assert per_head["reply"] == pytest.approx(reply)
    assert float(loss) == pytest.approx((fav + reply) / 2)
    # Weight 1 on row 0 only: reply's loss becomes row 0's alone.
    _, weighted = multitask_loss(logits, labels, ("fav", "reply"), weights=torch.tensor([1.0, 0.0]))
    assert weighted["reply"] == pytest.approx(-math.log(0.75))
    with pytest.raises(ValueError, match="labels"):
        multitask_loss(logits, labels[:, :1], ("fav", "reply"))


def test_multitask_loss_mixes_bce_and_squared_error_with_head_weights() -> None:
    outputs = {"fav": torch.tensor([0.0, 2.0]), "dwell_time": torch.tensor([1.0, 3.0])}
    labels = torch.tensor([[1.0, 1.5], [0.0, 2.0]])
    loss, per_head = multitask_loss(
        outputs,
        labels,
        ("fav", "dwell_time"),
        regression_heads={"dwell_time"},
        regression_weight=0.5,
    )
    bce = (
        math.log(2.0) + (2.0 + math.log1p(math.exp(-2.0)))
    ) / 2  # -log(sigmoid(0)), -log(1-sigmoid(2))
    mse = 0.5 * (0.25 + 1.0) / 2
    assert per_head["fav"] == pytest.approx(bce, rel=1e-5)
    assert per_head["dwell_time"] == pytest.approx(mse, rel=1e-5)
    assert float(loss) == pytest.approx((bce + mse) / 2, rel=1e-5)
    # [B, H] weights: row 2 dropped for fav only
    _, weighted = multitask_loss(
        outputs,
        labels,
        ("fav", "dwell_time"),
        weights=torch.tensor([[1.0, 1.0], [0.0, 1.0]]),
        regression_heads={"dwell_time"},
        regression_weight=0.5,
    )
    assert weighted["fav"] == pytest.approx(math.log(2.0), rel=1e-5)
    assert weighted["dwell_time"] == pytest.approx(mse, rel=1e-5)
    with pytest.raises(ValueError, match="weights must be"):
        multitask_loss(outputs, labels, ("fav", "dwell_time"), weights=torch.ones(2, 3))


def test_downsampling_weights_keep_positives_and_a_share_of_negatives() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((20_000, 3)) < 0.1).astype(np.float32)
    weights = downsampling_weights(labels, ("fav", "reply", "negative"), {"fav": 0.25}, seed=1)
    assert weights.shape == labels.shape
    fav_positive = labels[:, 0] > 0.5
    assert (weights[fav_positive, 0] == 1.0).all()  # every positive is kept
    assert weights[~fav_positive, 0].mean() == pytest.approx(0.25, abs=0.02)
    assert (weights[:, 1:] == 1.0).all()  # heads without a rate keep every row
    again = downsampling_weights(labels, ("fav", "reply", "negative"), {"fav": 0.25}, seed=1)
    assert np.array_equal(weights, again)  # seeded


def test_downsampled_training_with_the_correction_is_calibrated() -> None:
    """A model fitted on 10% of the negatives overpredicts ~10x in odds; the correction restores
    the true rate (the mean prediction and the ECE match the model trained on every row)."""
    from pipelines.evaluate.metrics import expected_calibration_error

    rng = np.random.default_rng(3)
    n = 40_000
    x = rng.standard_normal((n, 2)).astype(np.float32)
    p_true = 1.0 / (1.0 + np.exp(-(-3.0 + 1.2 * x[:, 0])))
    y = (rng.random(n) < p_true).astype(np.float32)[:, None]
    weights = downsampling_weights(y, ("fav",), {"fav": 0.1}, seed=4)
    torch.manual_seed(0)
    linear = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    xt, yt, wt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(weights)
    for _ in range(300):
        optimizer.zero_grad()
        loss, _ = multitask_loss({"fav": linear(xt).squeeze(-1)}, yt, ("fav",), weights=wt)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        q = torch.sigmoid(linear(xt).squeeze(-1)).double()
    raw, corrected = q.numpy(), correct_downsampled(q, 0.1).numpy()
    assert raw.mean() > 3 * y.mean()  # uncorrected: far too high
    assert corrected.mean() == pytest.approx(float(y.mean()), rel=0.1)
    assert expected_calibration_error(y[:, 0], corrected) < 0.01
    assert expected_calibration_error(y[:, 0], raw) > 0.1
