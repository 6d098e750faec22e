"""BAIT's greedy recomputed from scratch at every step: the oracle of
:func:`fmlib.fisher.greedy.greedy_trace_select` for tests and benchmarks, with the same inputs,
checks and tie-breaking (the lowest index among gains within the float64 tolerance)."""

from __future__ import annotations

import math

import torch

from fmlib.fisher.greedy import _TIE_RTOL, DEFAULT_CHUNK_SIZE, _best, _check_inputs
from fmlib.progress import progress_bar


@torch.no_grad()
def greedy_trace_select_naive(
    embeddings: torch.Tensor,
    n: int,
    *,
    fisher: torch.Tensor,
    labeled_fisher: torch.Tensor | None = None,
    n_labeled: int = 0,
    lamb: float = 1.0,
    backward_steps: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> list[int]:
    """Same selection as :func:`greedy_trace_select`, recomputed from scratch at every step.

    Each step inverts the current precision and evaluates BAIT's gain for every candidate
    directly (O(N·C·k²) a step, float64). Slow; the oracle for tests and benchmarks.
    """
    num, c, k = _check_inputs(
        embeddings, n, fisher, labeled_fisher, n_labeled, lamb, backward_steps, chunk_size
    )
    n, n_labeled, backward_steps, chunk_size = (
        int(n),
        int(n_labeled),
        int(backward_steps),
        int(chunk_size),
    )
    n_forward = min((backward_steps + 1) * n, num)
    device, f64 = embeddings.device, torch.float64
    rtol = _TIE_RTOL[torch.float64]  # computed in float64 whatever the embeddings' dtype
    scale = math.sqrt(n / (n_labeled + n))
    f = fisher.to(device, f64)
    precision = lamb * torch.eye(k, dtype=f64, device=device)  # [k, k]
    if labeled_fisher is not None:
        precision = precision + n_labeled / (n_labeled + n) * labeled_fisher.to(device, f64)
    eye = torch.eye(c, dtype=f64, device=device)

    def gain_terms(v, m):  # v: [m, C, k] scaled, m: [k, k] -> A, B: [m, C, C]
        x = v @ m
        return x @ v.mT, x @ f @ x.mT

    picked: list[int] = []
    for _ in progress_bar(range(n_forward), desc="greedy_trace_select_naive", disable=not progress):
        gains, m = [], torch.linalg.inv(precision)
        for start in range(0, num, chunk_size):
            a, b = gain_terms(embeddings[start : start + chunk_size].to(f64) * scale, m)
            gains.append(
                torch.linalg.solve(eye + a, b, left=False).diagonal(dim1=-2, dim2=-1).sum(-1)
            )
        gains = torch.cat(gains)
        gains[picked] = -math.inf
        p = _best(gains, torch.arange(num, device=device), rtol, largest=True)
        picked.append(p)
        v = embeddings[p].to(f64) * scale
        precision = precision + v.T @ v
    while len(picked) > n:
        v = embeddings[picked].to(f64) * scale  # [m, C, k]
        a, b = gain_terms(v, torch.linalg.inv(precision))
        raises = torch.linalg.solve(eye - a, b, left=False).diagonal(dim1=-2, dim2=-1).sum(-1)
        j = _best(raises, -torch.tensor(picked, device=device), rtol, largest=False)
        precision = precision - v[j].T @ v[j]
        del picked[j]
    return picked
