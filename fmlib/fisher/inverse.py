"""The precision's inverse M = (λI + w·F_L + Σ ṼᵀṼ)⁻¹ of the greedy, dense or as a Woodbury factor.

The labeled Fisher F_L = RᵀR has rank at most ``r = |L|·C``, often far below the mask size k, so ::

    (λI + w·RᵀR)⁻¹ = (I - Rᵀ(λ/w·I + RRᵀ)⁻¹R)/λ = (I - yᵀy)/λ,   y = L⁻¹R,  LLᵀ = λ/w·I + RRᵀ,

an ``r x r`` Cholesky instead of a ``k x k`` inverse. A pick lowers M by a rank-C term yᵀy, which
:class:`Inverse` appends to the factor while it has fewer than k rows: the forward picks then
never read or write ``k x k`` entries.
"""

from __future__ import annotations

import math

import torch


def symmetric(mat: torch.Tensor) -> torch.Tensor:
    return (mat + mat.mT) / 2


def cholesky(mat: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of symmetric positive definite ``[..., d, d]``; jitter where it fails."""
    mat = symmetric(mat)
    chol, info = torch.linalg.cholesky_ex(mat)
    if not bool((info > 0).any()):
        return chol
    d = mat.shape[-1]
    flat, chol = mat.reshape(-1, d, d), chol.reshape(-1, d, d).clone()
    bad = torch.nonzero(info.reshape(-1) > 0).flatten()
    size = flat.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(1e-300)[:, None, None]
    eye = torch.eye(d, dtype=mat.dtype, device=mat.device)
    for jitter in (1e-12, 1e-9, 1e-6, 1e-3):  # relative to the mean diagonal
        fixed, info = torch.linalg.cholesky_ex(flat[bad] + jitter * size[bad] * eye)
        chol[bad] = fixed
        bad = bad[info > 0]
        if not len(bad):
            return chol.reshape(mat.shape)
    raise RuntimeError(
        "matrix is not positive definite even with jitter; embeddings may hold NaN or inf"
    )


def spd_inverse(mat: torch.Tensor) -> torch.Tensor:
    return symmetric(torch.cholesky_inverse(cholesky(mat)))


def initial_inverse(k, lamb, labeled_fisher, weight, device) -> torch.Tensor:
    """M = (λI + w·F_L)⁻¹ in float64, ``[k, k]``."""
    if labeled_fisher is None or weight == 0:
        return torch.eye(k, dtype=torch.float64, device=device) / lamb
    precision = lamb * torch.eye(k, dtype=torch.float64, device=device)
    return spd_inverse(precision + weight * labeled_fisher.to(device, torch.float64))


def woodbury_inverse(root: torch.Tensor, lamb: float, weight: float) -> torch.Tensor:
    """(λI + w·RᵀR)⁻¹ = (I - Rᵀ(λ/w·I + RRᵀ)⁻¹R)/λ for R = ``root`` ``[r, k]``; float64 ``[k, k]``.

    An ``r x r`` Cholesky and one ``k x k`` product of rank r, instead of a ``k x k`` inverse."""
    return from_factor(woodbury_factor(root, lamb, weight), lamb)


def woodbury_factor(root: torch.Tensor, lamb: float, weight: float) -> torch.Tensor:
    """y = L⁻¹R ``[r, k]`` float64, with LLᵀ = λ/w·I + RRᵀ: (λI + w·RᵀR)⁻¹ = (I - yᵀy)/λ."""
    r = root.to(torch.float64)
    eye = torch.eye(r.shape[0], dtype=r.dtype, device=r.device)
    chol = cholesky(lamb / weight * eye + r @ r.T)  # [r, r]
    return torch.linalg.solve_triangular(chol, r, upper=False)  # [r, k]


def from_factor(y: torch.Tensor, lamb: float) -> torch.Tensor:
    """(I - yᵀy)/λ ``[k, k]`` float64 from the Woodbury factor y ``[r, k]``."""
    m = torch.eye(y.shape[1], dtype=y.dtype, device=y.device).addmm_(y.T, y, alpha=-1.0)
    return m.div_(lamb)


class Inverse:
    """M = P⁻¹ ``[k, k]``, as the Woodbury factor y (M = (I - yᵀy)/λ, ``[r, k]``) while r < k, else
    dense. Through the factor a product t M costs 2·r·k a row of t and a pick's update appends C
    rows, instead of reading and writing k² entries: the forward picks never form M when the
    labeled set is small. The dense M is formed once y would reach k rows, or when a removal needs
    it (``dense()``)."""

    def __init__(self, lamb: float, *, factor=None, dense=None):
        self.lamb, self.y, self.m = lamb, factor, dense

    def times(self, t: torch.Tensor) -> torch.Tensor:
        """t M for t ``[..., k]`` (M is symmetric: also (M tᵀ)ᵀ)."""
        if self.m is not None:
            return t @ self.m
        return (t - (t @ self.y.T) @ self.y) / self.lamb

    def cast(self, dtype) -> Inverse:
        """This M with its tensors in ``dtype`` (for the products of the candidate passes)."""
        if self.m is not None:
            return Inverse(self.lamb, dense=self.m.to(dtype))
        return Inverse(self.lamb, factor=self.y.to(dtype))

    def dense(self) -> torch.Tensor:
        """M as a ``[k, k]`` float64 matrix (formed from the factor once, then kept)."""
        if self.m is None:
            self.m, self.y = from_factor(self.y, self.lamb), None
        return self.m

    def add(self, rows: torch.Tensor, sign: float) -> None:
        """M += sign · rowsᵀ rows for ``rows`` ``[C, k]``, in place."""
        if self.m is None and sign < 0 and len(self.y) + len(rows) < self.y.shape[1]:
            self.y = torch.cat([self.y, math.sqrt(self.lamb) * rows])
            return
        self.dense().addmm_(rows.T, rows, alpha=sign)
