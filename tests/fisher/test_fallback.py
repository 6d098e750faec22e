"""The Fisher engines on a model torch.func cannot transform: plain batched autograd, exact.

A BackPACK-``extend``ed model carries forward hooks (so the hook engine leaves its layers to
torch.func) and full backward hooks, whose ``autograd.Function`` has no ``setup_context`` (so
torch.func refuses it). The engines fall back to autograd per sample and warn once, naming the
layers; the results equal the plain model's and the ``*_naive`` oracles.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fmlib.fisher import (
    ParameterMask,
    fisher_diagonal,
    fisher_diagonal_naive,
    gradient_embeddings,
    gradient_embeddings_naive,
)

backpack = pytest.importorskip("backpack")
pytestmark = pytest.mark.usefixtures("float64")


def _plain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def _mask(model):
    torch.manual_seed(1)
    return ParameterMask({n: torch.rand_like(p) < 0.5 for n, p in model.named_parameters()})


class _Untransformable(torch.autograd.Function):
    """Identity written the old way (``forward(ctx, ...)``, no ``setup_context``)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.5, -0.5, 2.0]))

    def forward(self, x):
        return _Untransformable.apply(x) * self.scale


def _custom():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), _Custom())


def test_backpack_extended_model_matches_plain_and_oracles():
    plain = _plain()
    extended = backpack.extend(copy.deepcopy(plain))
    x = torch.randn(7, 1, 6, 6)
    mask = _mask(plain)
    with pytest.warns(UserWarning, match=r"torch\.func cannot transform .*Conv2d.*autograd"):
        diag = fisher_diagonal(extended, x, chunk_size=3)
    with pytest.warns(UserWarning, match=r"torch\.func cannot transform"):
        emb = gradient_embeddings(extended, x, mask, chunk_size=3)
    want_diag, want_emb = fisher_diagonal(plain, x), gradient_embeddings(plain, x, mask)
    naive_diag, naive_emb = (
        fisher_diagonal_naive(plain, x),
        gradient_embeddings_naive(plain, x, mask),
    )
    assert emb.shape == want_emb.shape == (7, 3, mask.size)
    torch.testing.assert_close(emb, want_emb)
    torch.testing.assert_close(emb, naive_emb)
    for name in want_diag:
        torch.testing.assert_close(diag[name], want_diag[name])
        torch.testing.assert_close(diag[name], naive_diag[name])


@pytest.mark.parametrize("scale", ["fisher", "none"])
def test_custom_autograd_function_without_setup_context(scale):
    model, x = _custom(), torch.randn(5, 4)
    mask = _mask(model)
    with pytest.warns(UserWarning, match=r"torch\.func cannot transform .*_Custom.*setup_context"):
        emb = gradient_embeddings(model, x, mask, scale=scale, engine="func")
    torch.testing.assert_close(emb, gradient_embeddings_naive(model, x, mask, scale=scale))
    with pytest.warns(UserWarning, match=r"torch\.func cannot transform"):
        diag = fisher_diagonal(model, x, engine="func")
    for name, want in fisher_diagonal_naive(model, x).items():
        torch.testing.assert_close(diag[name], want)
