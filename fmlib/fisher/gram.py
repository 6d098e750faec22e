"""Sums of outer products VᵀV of many ``[rows, k]`` blocks, the Fisher matrices of the greedy.

``F = Σ_b V_bᵀ V_b`` is symmetric, so :class:`GramSum` computes only the blocks on and above the
diagonal (``k x width`` column strips against the rows above them): about half the multiply-adds
of ``V_bᵀ V_b``. Each strip is a product in the blocks' dtype (float32 embeddings give float32
products, the fast path) accumulated in float64, and the lower triangle is filled once, when the
sum is read. :meth:`GramSum.add_naive`, the full product, is the oracle for tests.
"""

from __future__ import annotations

import torch

DEFAULT_WIDTH = 1024  # columns of one strip: large enough for an efficient GEMM


class GramSum:
    """Accumulate ``Σ VᵀV`` over blocks ``V`` of ``[rows, k]``, float64, upper triangle first.

    Args:
        k: the blocks' column count.
        device: where the ``[k, k]`` float64 sum lives.
        width: columns per strip, ``>= 1``.
    """

    def __init__(self, k: int, device=None, width: int = DEFAULT_WIDTH):
        if int(width) < 1:
            raise ValueError(f"width must be >= 1, got {width!r}")
        self.k, self.width = int(k), int(width)
        self.total = torch.zeros(self.k, self.k, dtype=torch.float64, device=device)
        self.rows = 0

    def add(self, block: torch.Tensor) -> GramSum:
        """Add ``blockᵀ block`` for ``block`` ``[rows, k]`` (upper triangle only); return self."""
        if block.dim() != 2 or block.shape[1] != self.k:
            raise ValueError(f"block must be [rows, {self.k}], got {list(block.shape)}")
        for start in range(0, self.k, self.width):
            stop = min(start + self.width, self.k)
            # [stop, width]: rows above + diagonal
            strip = block[:, :stop].mT @ block[:, start:stop]
            self.total[:stop, start:stop] += strip
        self.rows += block.shape[0]
        return self

    def add_naive(self, block: torch.Tensor) -> GramSum:
        """Add the full ``blockᵀ block`` (both triangles): the oracle of :meth:`add`."""
        self.total += (block.mT @ block).double()
        self.rows += block.shape[0]
        return self

    def result(self, divide: float = 1.0) -> torch.Tensor:
        """The symmetric ``[k, k]`` float64 sum over ``divide`` (the upper triangle mirrored)."""
        upper = torch.triu(self.total)
        return (upper + torch.triu(self.total, diagonal=1).mT) / divide
