"""Sums of outer products VᵀV of many ``[rows, k]`` blocks, the Fisher matrices of the greedy.

``F = Σ_b V_bᵀ V_b`` is symmetric, so :class:`GramSum` computes only the blocks on and above the
diagonal (``k x width`` column strips against the rows above them): about half the multiply-adds
of ``V_bᵀ V_b``. Each strip is a product in the blocks' dtype (float32 embeddings give float32
products, the fast path) accumulated in float64, and the lower triangle is filled once, when the
sum is read. Small blocks (one batch's ``b·C`` rows) are buffered until about
``DEFAULT_BUFFER_BYTES`` of rows are waiting and multiplied as one: fewer, taller strip products
and fewer float64 accumulations of the ``k x k`` triangle. :meth:`GramSum.add_naive`, the full
product, is the oracle for tests.
"""

from __future__ import annotations

import torch

DEFAULT_WIDTH = 1024  # columns of one strip: large enough for an efficient GEMM
DEFAULT_BUFFER_BYTES = 2**28  # rows buffered before a strip product (8192+ float32 rows at k=7004)


class GramSum:
    """Accumulate ``Σ VᵀV`` over blocks ``V`` of ``[rows, k]``, float64, upper triangle first.

    Args:
        k: the blocks' column count.
        device: where the ``[k, k]`` float64 sum lives.
        width: columns per strip, ``>= 1``.
        buffer_rows: rows buffered before their strip products, ``>= 1``; default: as many as
            fit in ``DEFAULT_BUFFER_BYTES`` in the first block's dtype. Blocks of at least this
            many rows are multiplied without a copy.
    """

    def __init__(self, k: int, device=None, width: int = DEFAULT_WIDTH, buffer_rows=None):
        if int(width) < 1:
            raise ValueError(f"width must be >= 1, got {width!r}")
        if buffer_rows is not None and int(buffer_rows) < 1:
            raise ValueError(f"buffer_rows must be >= 1, got {buffer_rows!r}")
        self.k, self.width = int(k), int(width)
        self.buffer_rows = None if buffer_rows is None else int(buffer_rows)
        self.total = torch.zeros(self.k, self.k, dtype=torch.float64, device=device)
        self.rows = 0
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0

    def add(self, block: torch.Tensor) -> GramSum:
        """Add ``blockᵀ block`` for ``block`` ``[rows, k]`` (upper triangle only); return self.

        The product may wait in the buffer until :meth:`result`; ``block`` must not be changed in
        place before then."""
        if block.dim() != 2 or block.shape[1] != self.k:
            raise ValueError(f"block must be [rows, {self.k}], got {list(block.shape)}")
        self.rows += block.shape[0]
        if self.buffer_rows is None:
            self.buffer_rows = max(1, DEFAULT_BUFFER_BYTES // (self.k * block.element_size()))
        if self._pending and (
            self._pending[0].dtype != block.dtype or self._pending[0].device != block.device
        ):
            self._flush()
        if block.shape[0] >= self.buffer_rows:
            self._flush()
            self._strips(block)
            return self
        self._pending.append(block)
        self._pending_rows += block.shape[0]
        if self._pending_rows >= self.buffer_rows:
            self._flush()
        return self

    def add_naive(self, block: torch.Tensor) -> GramSum:
        """Add the full ``blockᵀ block`` (both triangles): the oracle of :meth:`add`."""
        self.total += (block.mT @ block).double()
        self.rows += block.shape[0]
        return self

    def result(self, divide: float = 1.0) -> torch.Tensor:
        """The symmetric ``[k, k]`` float64 sum over ``divide`` (the upper triangle mirrored)."""
        self._flush()
        upper = torch.triu(self.total)
        return (upper + torch.triu(self.total, diagonal=1).mT) / divide

    def _flush(self) -> None:
        """Multiply the buffered rows as one block."""
        if not self._pending:
            return
        block = self._pending[0] if len(self._pending) == 1 else torch.cat(self._pending)
        self._pending, self._pending_rows = [], 0
        self._strips(block)

    def _strips(self, block: torch.Tensor) -> None:
        """``total``'s upper triangle += ``blockᵀ block``, one ``[stop, width]`` strip at a time."""
        for start in range(0, self.k, self.width):
            stop = min(start + self.width, self.k)
            # [stop, width]: rows above + diagonal
            strip = block[:, :stop].mT @ block[:, start:stop]
            self.total[:stop, start:stop] += strip
