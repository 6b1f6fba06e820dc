"""Ranker training helpers: the moving average of the weights that training validates and keeps."""

from __future__ import annotations

import pytest
import torch

from pipelines.train.ranker import WeightAverage


def test_weight_average_is_the_bias_corrected_moving_average_of_each_step() -> None:
    model = torch.nn.Linear(2, 1)
    model.register_buffer("seen", torch.zeros(1))
    decay = 0.5
    average = WeightAverage(model, decay)
    assert average.averaged() is model  # nothing averaged yet
    steps = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -2.0]]), torch.tensor([[-1.0, 0.0]])]
    for t, weight in enumerate(steps, start=1):
        with torch.no_grad():
            model.weight.copy_(weight)
            model.bias.fill_(float(t))
            model.seen.fill_(float(t))
        average.update()
        averaged = average.averaged()
        assert averaged is not model
        # sum_i (1 - d) d^(t - i) w_i / (1 - d^t), by hand
        shares = [(1 - decay) * decay ** (t - i) for i in range(1, t + 1)]
        expected = sum(s * w for s, w in zip(shares, steps[:t], strict=True)) / (1 - decay**t)
        torch.testing.assert_close(averaged.weight, expected)
        expected_bias = sum(s * i for s, i in zip(shares, range(1, t + 1), strict=True))
        torch.testing.assert_close(averaged.bias, torch.tensor([expected_bias / (1 - decay**t)]))
        assert float(averaged.seen) == t  # buffers follow the model, not averaged
    # Step 1 alone is the first weights exactly: the random start carries no weight.
    source = torch.nn.Linear(2, 1)
    first = WeightAverage(source, 0.99)
    with torch.no_grad():
        source.weight.copy_(torch.tensor([[0.25, -4.0]]))
    first.update()
    torch.testing.assert_close(first.averaged().weight, source.weight.detach())
    assert not any(p.requires_grad for p in first.averaged().parameters())


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_weight_average_refuses_a_decay_outside_zero_one(decay: float) -> None:
    with pytest.raises(ValueError, match="ema decay"):
        WeightAverage(torch.nn.Linear(2, 1), decay)
