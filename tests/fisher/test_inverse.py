"""The greedy's inverse: the Woodbury factor against the dense inverse, through updates."""

from __future__ import annotations

import pytest
import torch

from fmlib.fisher import inverse


@pytest.mark.parametrize(
    "n_labeled, k", [(3, 20), (10, 200), (1, 5)], ids=["r12-k20", "r40-k200", "r4-k5"]
)
def test_woodbury_first_inverse_equals_dense(n_labeled, k, float64):
    root = torch.randn(n_labeled * 4, k) / n_labeled**0.5  # [|L|·C, k]
    dense = torch.linalg.inv(0.7 * torch.eye(k) + 0.4 * root.T @ root)
    torch.testing.assert_close(
        inverse.woodbury_inverse(root, 0.7, 0.4), dense, rtol=1e-10, atol=1e-12
    )


def test_the_inverse_through_its_factor_follows_updates_like_the_dense_one(float64):
    gen = torch.Generator().manual_seed(6)
    root = torch.randn(4, 12, generator=gen)
    y = inverse.woodbury_factor(root, 0.5, 0.7)
    factored = inverse.Inverse(0.5, factor=y)
    dense = inverse.Inverse(0.5, dense=inverse.from_factor(y, 0.5))
    probe = torch.randn(3, 12, generator=gen)
    # three removals of rank 2 stay in the factor (4 + 6 rows < 12), the fourth forms M; then an
    # addition (a backward step) on the dense M
    for step, sign in enumerate([-1.0, -1.0, -1.0, -1.0, 1.0]):
        rows = 0.1 * torch.randn(2, 12, generator=gen)
        factored.add(rows, sign)
        dense.add(rows, sign)
        assert (factored.m is None) == (step < 3)
        torch.testing.assert_close(
            factored.times(probe), dense.times(probe), rtol=1e-12, atol=1e-12
        )
    torch.testing.assert_close(factored.dense(), dense.dense(), rtol=1e-12, atol=1e-12)
