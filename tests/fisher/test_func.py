"""The torch.func engine and the routing (fmlib.fisher.func): which parameters the hooks may take,
the log-softmax rows against autograd's Jacobian, blocks under the element cap, and the per-sample
gradients of a layer the hooks cannot take against autograd, in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fmlib.fisher.func as func
from fmlib.fisher.embeddings import _owners
from fmlib.fisher.func import (
    _by_samples,
    _func_embeddings,
    _func_squared_sums,
    _log_softmax_rows,
    _route,
)


class Scaled(nn.Module):
    """A parameter of its own (no hookable layer owns it): y = x * scale."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, dim))

    def forward(self, x):
        return x * self.scale


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 5), nn.LayerNorm(5), nn.Tanh(), Scaled(5), nn.Linear(5, 4)
    ).double()


def test_the_hooks_take_the_plain_layers_and_torch_func_the_rest():
    model = net()
    hooked, rest, classes = _route(
        model, _owners(model), torch.randn(2, 3, dtype=torch.float64), "auto"
    )
    assert sorted(hooked) == ["0.bias", "0.weight", "4.bias", "4.weight"] and classes == 4
    assert rest == ["1.weight", "1.bias", "3.scale"]
    _, everything, _ = _route(model, _owners(model), torch.randn(2, 3, dtype=torch.float64), "func")
    assert everything == [n for n, _ in model.named_parameters()]


def test_a_hooked_or_tied_layer_goes_to_torch_func():
    model = net()
    # a user's hook changes the output
    model[0].register_forward_hook(lambda module, args, out: out * 2)
    hooked, _, _ = _route(model, _owners(model), torch.randn(2, 3, dtype=torch.float64), "auto")
    assert sorted(hooked) == ["4.bias", "4.weight"]
    tied = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4)).double()
    tied[2].weight = tied[0].weight  # used by a second holder
    hooked, rest, _ = _route(tied, _owners(tied), torch.randn(2, 4, dtype=torch.float64), "auto")
    assert "0.weight" in rest and "0.weight" not in hooked


@pytest.mark.parametrize("weighted", [False, True])
def test_the_log_softmax_rows_are_its_jacobian(float64, weighted):
    z = torch.randn(3, 4)
    p, rows = _log_softmax_rows(z, weighted)  # [C, B, C]
    jac = torch.autograd.functional.jacobian(lambda t: torch.log_softmax(t, -1), z)  # [B, C, B, C]
    for b in range(3):
        expected = jac[b, :, b, :] * (p[b].sqrt()[:, None] if weighted else 1)  # [C, C]
        torch.testing.assert_close(rows[:, b, :], expected)


def test_by_samples_cuts_blocks_under_the_cap_and_joins_them(monkeypatch):
    monkeypatch.setattr(func, "BLOCK_ELEMENTS", 10)
    seen = []

    def fn(s):
        seen.append((s.start, s.stop))
        return torch.arange(s.start, min(s.stop, 7))

    assert _by_samples(fn, 7, 3).tolist() == list(range(7))
    assert seen == [(0, 3), (3, 6), (6, 9)]  # 3 samples of 3 elements a block
    # 1 a block
    assert _by_samples(lambda s: torch.ones(2), 7, 100, reduce=True).tolist() == [
        7.0,
        7.0,
    ]


def test_torch_funcs_gradients_equal_autograds(float64):
    model, x = net(), torch.randn(4, 3)
    names = ["1.weight", "3.scale"]
    params = dict(model.named_parameters())
    per = []  # [B][C] -> (p_c, {name: gradient of log p_c})
    for n in range(len(x)):
        logp = torch.log_softmax(model(x[n : n + 1]), -1)[0]
        grads = [
            torch.autograd.grad(logp[c], [params[m] for m in names], retain_graph=True)
            for c in range(4)
        ]
        per.append([(logp[c].exp().detach(), dict(zip(names, g))) for c, g in enumerate(grads)])
    sums = _func_squared_sums(model, names, x)
    for name in names:
        expected = sum(p * g[name].pow(2) for row in per for p, g in row)
        torch.testing.assert_close(sums[name], expected.flatten(), rtol=1e-10, atol=1e-12)
    indices = {"1.weight": torch.tensor([0, 4]), "3.scale": torch.tensor([2])}
    emb = _func_embeddings(model, indices, x, weighted=False, classes=4)
    for name, idx in indices.items():
        expected = torch.stack(
            [torch.stack([g[name].flatten()[idx] for _, g in row]) for row in per]
        )
        torch.testing.assert_close(emb[name], expected, rtol=1e-10, atol=1e-12)
