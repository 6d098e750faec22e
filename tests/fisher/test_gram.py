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


@pytest.mark.parametrize("buffer_rows", [1, 10, 25, 1000])
def test_buffered_blocks_give_the_full_products(buffer_rows):
    """Blocks wait in the buffer, larger ones skip it; a dtype change or a read flushes it."""
    gen = torch.Generator().manual_seed(buffer_rows)
    k = 11
    blocks = [
        torch.randn(rows, k, generator=gen, dtype=dtype)
        for rows, dtype in (
            (4, torch.float32),
            (7, torch.float32),
            (30, torch.float32),
            (3, torch.float64),
            (9, torch.float32),
        )
    ]
    fast, slow = GramSum(k, width=4, buffer_rows=buffer_rows), GramSum(k)
    for i, block in enumerate(blocks):
        fast.add(block)
        slow.add_naive(block)
        if i == 2:  # a read mid-way counts every block added so far
            exact = sum(b.double().T @ b.double() for b in blocks[:3])
            torch.testing.assert_close(fast.result(), exact, rtol=1e-5, atol=1e-5)
    assert fast.rows == slow.rows == 53
    exact = sum(b.double().T @ b.double() for b in blocks)
    torch.testing.assert_close(fast.result(divide=53.0), exact / 53.0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.result(), slow.result(), rtol=1e-6, atol=1e-5)


def test_the_default_buffer_holds_about_its_bytes_of_rows(monkeypatch):
    monkeypatch.setattr("fmlib.fisher.gram.DEFAULT_BUFFER_BYTES", 8 * 4 * 10)
    total = GramSum(8)
    total.add(torch.ones(6, 8))
    assert total.buffer_rows == 10 and len(total._pending) == 1
    total.add(torch.ones(6, 8))  # 12 rows waiting >= 10: multiplied
    assert not total._pending
    torch.testing.assert_close(total.result(), torch.full((8, 8), 12.0, dtype=torch.float64))


def test_a_bad_buffer_size_is_refused():
    with pytest.raises(ValueError, match="buffer_rows must be >= 1, got 0"):
        GramSum(5, buffer_rows=0)


def test_buffered_blocks_are_multiplied_in_their_own_dtype(monkeypatch):
    """A float64 block after float32 ones flushes them first: float32 products stay float32."""
    seen = []
    real = GramSum._strips
    monkeypatch.setattr(
        GramSum, "_strips", lambda self, block: (seen.append(block.dtype), real(self, block))
    )
    total = GramSum(3, buffer_rows=100)
    for dtype in (torch.float32, torch.float32, torch.float64, torch.float32):
        total.add(torch.ones(2, 3, dtype=dtype))
    total.result()
    assert seen == [torch.float32, torch.float64, torch.float32]


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
