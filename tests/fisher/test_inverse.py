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


def test_cholesky_adds_jitter_only_where_a_matrix_is_singular(float64):
    good = torch.tensor([[4.0, 2.0], [2.0, 3.0]])
    singular = torch.ones(2, 2)  # rank 1: needs jitter
    chol = inverse.cholesky(torch.stack([good, singular]))
    torch.testing.assert_close(chol[0], torch.linalg.cholesky(good), rtol=0, atol=0)
    torch.testing.assert_close(chol[1] @ chol[1].T, singular, rtol=1e-5, atol=1e-5)
    assert not torch.equal(chol[1] @ chol[1].T, singular)  # the jitter is there
    asymmetric = torch.tensor([[4.0, 3.0], [1.0, 3.0]])  # read as its symmetric part
    torch.testing.assert_close(
        inverse.cholesky(asymmetric), torch.linalg.cholesky(inverse.symmetric(asymmetric))
    )
    slightly_negative = torch.diag(torch.tensor([1.0, -1e-5]))  # needs the largest jitter
    chol = inverse.cholesky(slightly_negative)
    torch.testing.assert_close(chol @ chol.T, slightly_negative, rtol=0, atol=1e-3)
    with pytest.raises(RuntimeError, match="not positive definite even with jitter"):
        inverse.cholesky(torch.tensor([[1.0, 0.0], [0.0, float("nan")]]))
    with pytest.raises(RuntimeError, match="not positive definite"):
        inverse.cholesky(-torch.eye(2))


def test_initial_inverse_and_spd_inverse(float64):
    gen = torch.Generator().manual_seed(2)
    root = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    fisher = root.T @ root
    eye = torch.eye(5, dtype=torch.float64)
    for labeled, weight in ((None, 0.4), (fisher, 0.0)):
        out = inverse.initial_inverse(5, 0.5, labeled, weight, "cpu")
        torch.testing.assert_close(out, eye / 0.5, rtol=0, atol=0)
    out = inverse.initial_inverse(5, 0.5, fisher, 0.4, "cpu")
    torch.testing.assert_close(out, torch.linalg.inv(0.5 * eye + 0.4 * fisher))
    assert out.dtype == torch.float64
    torch.testing.assert_close(inverse.spd_inverse(fisher + eye), torch.linalg.inv(fisher + eye))
    torch.testing.assert_close(
        inverse.woodbury_inverse(root, 0.5, 0.4), torch.linalg.inv(0.5 * eye + 0.4 * fisher)
    )


def test_inverse_cast_times_and_an_addition_on_the_factor(float64):
    gen = torch.Generator().manual_seed(3)
    root = torch.randn(2, 6, generator=gen)
    y = inverse.woodbury_factor(root, 0.5, 0.7)
    dense = inverse.from_factor(y, 0.5)
    probe = torch.randn(2, 6, generator=gen)
    factored = inverse.Inverse(0.5, factor=y)
    torch.testing.assert_close(factored.times(probe), probe @ dense)
    cast = factored.cast(torch.float32)
    assert cast.y.dtype == torch.float32 and cast.m is None and cast.lamb == 0.5
    cast = inverse.Inverse(0.5, dense=dense).cast(torch.float32)
    assert cast.m.dtype == torch.float32 and cast.y is None
    rows = torch.randn(1, 6, generator=gen)
    factored.add(rows, 1.0)  # an addition always goes to the dense M
    assert factored.y is None
    torch.testing.assert_close(factored.dense(), dense + rows.T @ rows)
