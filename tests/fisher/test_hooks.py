"""The hook engine (fmlib.fisher.hooks) on Conv2d, BatchNorm2d and Linear layers, in float64,
against per-sample autograd: the masked per-class gradients and the weighted squared sums."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fmlib.fisher.hooks import (
    _IndexPlan,
    _masked_grads,
    _operands,
    _per_class_output_grads,
    _squared_sum,
)


def net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(48, 4)
    )
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 2.0)
    return model.double().eval()  # BatchNorm in eval: the running statistics


def autograd_rows(model, x):
    """Per sample n and class c: p_c(x_n) and ∂ log p_c(x_n) / ∂θ for every parameter."""
    params = dict(model.named_parameters())
    out = []
    for n in range(len(x)):
        logp = torch.log_softmax(model(x[n : n + 1]), -1)[0]
        grads = [
            torch.autograd.grad(logp[c], list(params.values()), retain_graph=True)
            for c in range(len(logp))
        ]
        out.append((logp.detach().exp(), [dict(zip(params, g)) for g in grads]))
    return out


LAYERS = {"0": "conv", "1": "batchnorm", "4": "linear"}


@pytest.mark.parametrize("attr", ["weight", "bias"])
def test_the_weighted_squared_sums_equal_autograds(float64, attr):
    model, x = net(), torch.randn(5, 2, 4, 4)
    layers = [model[int(i)] for i in LAYERS]
    _, outputs = _per_class_output_grads(model, layers, x, weighted=True)
    expected = {
        i: sum(
            p[c] * g[c][f"{i}.{attr}"].pow(2) for p, g in autograd_rows(model, x) for c in range(4)
        )
        for i in LAYERS
    }
    for i, layer in zip(LAYERS, layers):
        A, G = _operands(layer, *outputs[layer])
        torch.testing.assert_close(
            _squared_sum(layer, attr, A, G), expected[i].flatten(), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("index", ["one", "spread", "all"])
def test_the_masked_per_class_gradients_equal_autograds(float64, index):
    model, x = net(), torch.randn(3, 2, 4, 4)
    layers = [model[int(i)] for i in LAYERS]
    _, outputs = _per_class_output_grads(model, layers, x, weighted=False)
    rows = autograd_rows(model, x)
    for i, layer in zip(LAYERS, layers):
        numel = layer.weight.numel()
        idx = {
            "one": torch.tensor([numel - 1]),
            "spread": torch.arange(0, numel, 5),
            "all": torch.arange(numel),
        }[index]
        A, G = _operands(layer, *outputs[layer])
        got = _masked_grads(layer, "weight", _IndexPlan(layer, idx), A, G)  # [B, C, k_p]
        expected = torch.stack(
            [torch.stack([g[c][f"{i}.weight"].flatten()[idx] for c in range(4)]) for _, g in rows]
        )
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=LAYERS[i])


def test_a_layer_called_twice_in_one_forward_is_refused():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    with pytest.raises(ValueError, match="Linear layer is called twice in one forward"):
        _per_class_output_grads(model, [shared], torch.randn(2, 4), weighted=False)
