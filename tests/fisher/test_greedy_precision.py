"""Float32 embeddings in the greedy: float64 products by default, float32 with a drift check."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib.fisher import greedy, inverse
from fmlib.fisher.greedy import greedy_trace_select
from fmlib.fisher.greedy_naive import greedy_trace_select_naive

pytestmark = pytest.mark.usefixtures("one_thread")


def drifting_problem(N=400, C=4, k=96, n_labeled=15, decay=3.0, seed=0):
    """Float32 embeddings with a spectrum falling by 10^decay and a small ridge: over 100 picks
    the gains fall by 4-5 orders of magnitude, where incremental float32 updates drift."""
    gen = torch.Generator().manual_seed(seed)
    spectrum = torch.logspace(0, -decay, k, dtype=torch.float64)  # [k]

    def embeddings(num):  # [num, C, k]
        scale = torch.rand(num, 1, 1, generator=gen, dtype=torch.float64) + 0.2
        return torch.randn(num, C, k, generator=gen, dtype=torch.float64) * spectrum * scale

    v = embeddings(N).float()
    exact = v.double()
    labeled = embeddings(n_labeled)
    kwargs = dict(
        fisher=torch.einsum("nck,ncl->kl", exact, exact) / N,
        labeled_fisher=torch.einsum("nck,ncl->kl", labeled, labeled) / n_labeled,
        n_labeled=n_labeled,
        lamb=1e-3,
    )
    return v, kwargs


def _max_rel(got, want):
    return max(abs(g / w - 1) for g, w in zip(got, want))


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_embeddings_default_equal_float64_over_100_picks(seed):
    v, kwargs = drifting_problem(seed=seed)
    want, got = {}, {}
    picks64 = greedy_trace_select(v.double(), 100, info=want, **kwargs)
    assert greedy_trace_select(v, 100, info=got, **kwargs) == picks64
    assert _max_rel(got["gains"], want["gains"]) < 1e-9


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_products_with_drift_check_stay_within_1e4_of_float64(seed):
    v, kwargs = drifting_problem(seed=seed)
    want, got, loose = {}, {}, {}
    picks64 = greedy_trace_select(v.double(), 100, info=want, **kwargs)
    assert greedy_trace_select(v, 100, precision="float32", info=got, **kwargs) == picks64
    assert _max_rel(got["gains"], want["gains"]) < 1e-4
    assert got["refreshes"]  # the check did act on this problem
    # Without the check the same problem drifts far (what the check is there for).
    unchecked = greedy_trace_select(
        v, 100, precision="float32", refresh_rtol=math.inf, info=loose, **kwargs
    )
    assert unchecked != picks64


def test_drift_check_at_every_pick_equals_float32_recomputation():
    """refresh_rtol=0 recomputes every A_i, B_i at every pick (as the original float32 code)."""
    v, kwargs = drifting_problem(N=120, k=40)
    got = {}
    picks = greedy_trace_select(v, 30, precision="float32", refresh_rtol=0.0, info=got, **kwargs)
    assert got["refreshes"] == list(range(1, 30))
    assert picks == greedy_trace_select_naive(v, 30, **kwargs)


def test_float32_precision_with_float64_embeddings_is_float64(float64):
    v, kwargs = drifting_problem(N=100, k=30)
    picks = greedy_trace_select(v.double(), 20, precision="float32", **kwargs)
    assert picks == greedy_trace_select_naive(v.double(), 20, **kwargs)


def test_unknown_precision_raises():
    v, kwargs = drifting_problem(N=20, k=8)
    with pytest.raises(ValueError, match="precision"):
        greedy_trace_select(v, 3, precision="float16", **kwargs)


@pytest.mark.parametrize("single_below", [0.0, math.inf], ids=["threads-kept", "one-thread-loop"])
def test_pick_loop_threads_restored_and_picks_unchanged(single_below, torch_threads, monkeypatch):
    v, kwargs = drifting_problem(N=150, k=40)
    expected = greedy_trace_select(v, 25, **kwargs)  # one thread (the module's fixture)
    torch.set_num_threads(2)
    monkeypatch.setattr(greedy, "SINGLE_THREAD_WORK", single_below)
    seen = []
    real = greedy._rank_c_update
    monkeypatch.setattr(
        greedy,
        "_rank_c_update",
        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k),
    )
    assert greedy_trace_select(v, 25, **kwargs) == expected
    assert torch.get_num_threads() == 2
    assert set(seen) == {1 if single_below == math.inf else 2}


# ------------------------------------------------------------------------- Woodbury first inverse


def test_labeled_root_gives_the_same_picks(float64):
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(60, 4, 50, generator=gen) * torch.rand(60, 1, 1, generator=gen).add(0.1)
    lab = torch.randn(6, 4, 50, generator=gen)
    root = lab.reshape(-1, 50) / 6**0.5  # [24, 50]: F_L = RᵀR
    kwargs = dict(
        fisher=torch.einsum("nck,ncl->kl", v, v) / 60, labeled_fisher=root.T @ root, n_labeled=6
    )
    picks = greedy_trace_select(v, 12, labeled_root=root, **kwargs)
    assert (
        picks == greedy_trace_select(v, 12, **kwargs) == greedy_trace_select_naive(v, 12, **kwargs)
    )


@pytest.mark.parametrize("rows", [0, 8, 24], ids=["unlabeled", "r8", "r24"])
def test_first_pass_through_the_woodbury_factor_equals_the_dense_inverse(rows, float64):
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(30, 4, 40, generator=gen)
    root = torch.randn(rows, 40, generator=gen)  # [r, k]
    fisher = torch.einsum("nck,ncl->kl", v, v) / 30
    y = inverse.woodbury_factor(root, 0.3, 0.6)
    dense = torch.linalg.inv(0.3 * torch.eye(40) + 0.6 * root.T @ root)
    a, b = greedy._pair_products(
        v, inverse.Inverse(0.3, dense=dense), fisher, 0.8, 7, torch.float64
    )
    a_y, b_y = greedy._pair_products(
        v, inverse.Inverse(0.3, factor=y), fisher, 0.8, 7, torch.float64
    )
    torch.testing.assert_close(a_y, a, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(b_y, b, rtol=1e-10, atol=1e-12)


def test_labeled_root_picks_match_the_naive_greedy_at_a_small_ridge(float64):
    gen = torch.Generator().manual_seed(4)
    v = torch.randn(50, 3, 30, generator=gen) * torch.rand(50, 1, 1, generator=gen).add(0.1)
    root = torch.randn(15, 30, generator=gen) / 5**0.5  # [|L|·C, k] with |L| = 5
    kwargs = dict(
        fisher=torch.einsum("nck,ncl->kl", v, v) / 50,
        labeled_fisher=root.T @ root,
        n_labeled=5,
        lamb=0.05,
    )
    picks = greedy_trace_select(v, 10, labeled_root=root, **kwargs)
    assert picks == greedy_trace_select_naive(v, 10, **kwargs)
