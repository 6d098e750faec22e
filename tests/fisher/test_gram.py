"""GramSum: the upper-triangle sum of VᵀV against the full product, its oracle."""

from __future__ import annotations

import pytest
import torch

from fmlib.fisher.gram import GramSum


@pytest.mark.parametrize("k, width", [(13, 4), (13, 13), (13, 100), (40, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_upper_triangle_sum_equals_the_full_products(k, width, dtype):
    gen = torch.Generator().manual_seed(k + width)
    blocks = [torch.randn(rows, k, generator=gen, dtype=dtype) for rows in (9, 1, 30)]
    fast, slow = GramSum(k, width=width), GramSum(k)
    for block in blocks:
        fast.add(block)
        slow.add_naive(block)
    result = fast.result(divide=40.0)
    assert result.dtype == torch.float64 and fast.rows == slow.rows == 40
    torch.testing.assert_close(result, slow.result(divide=40.0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(result, result.mT, rtol=0, atol=0)
    exact = sum(b.double().T @ b.double() for b in blocks) / 40.0
    torch.testing.assert_close(result, exact, rtol=1e-5, atol=1e-5)


def test_a_block_of_the_wrong_width_and_a_bad_strip_width_are_refused():
    with pytest.raises(ValueError, match=r"block must be \[rows, 5\], got \[3, 4\]"):
        GramSum(5).add(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="width must be >= 1, got 0"):
        GramSum(5, width=0)


def test_add_chains_counts_rows_and_refuses_a_batch_of_blocks():
    block = torch.arange(6.0).view(3, 2)
    gram = GramSum(2, width=1).add(block).add(block[:2])
    assert gram.rows == 5
    expected = block.double().T @ block.double() + block[:2].double().T @ block[:2].double()
    torch.testing.assert_close(gram.result(), expected, rtol=0, atol=0)
    torch.testing.assert_close(gram.result(2.0), expected / 2, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"block must be \[rows, 2\], got \[1, 3, 2\]"):
        gram.add(block[None])
    assert GramSum(3).result().shape == (3, 3) and GramSum(3).rows == 0
