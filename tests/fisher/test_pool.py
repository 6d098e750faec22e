"""The ``fisher_pool`` option of BAIT and FisherMask: F_U over the candidates or the whole pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fmlib.strategies.fisher as fisher_strategies
from fmlib.strategies import get_strategy
from tests.strategies.nets import TinyNet, make_pool

OPTIONS = {"bait": {"fisher_samples": 16}, "fishermask": {"fisher_samples": 16, "fraction": 0.05}}


def _captured_fisher(monkeypatch, strategy, *args, seed):
    seen = {}

    def capture(emb, n, **kwargs):
        seen.update(kwargs)
        return list(range(n))

    monkeypatch.setattr(fisher_strategies, "greedy_trace_select", capture)
    strategy.select(*args, seed=seed)
    return seen


@pytest.mark.parametrize("max_candidates", [None, 8], ids=["all-candidates", "8-candidates"])
@pytest.mark.parametrize("fisher_pool", ["candidates", "pool"])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_fisher_pool_against_hand_computation(
    name, fisher_pool, max_candidates, monkeypatch, float64
):
    pool, model = make_pool(24), TinyNet().double()
    labeled, unlabeled = np.arange(5), np.arange(5, 24)
    options = dict(
        OPTIONS[name], fisher_pool=fisher_pool, max_candidates=max_candidates, precision="float64"
    )
    strategy = get_strategy(name, **options)
    assert strategy.options["fisher_pool"] == fisher_pool
    seen = _captured_fisher(monkeypatch, strategy, model, pool, labeled, unlabeled, 4, seed=7)
    mask = strategy.report.fisher.mask
    x = pool.inputs(np.arange(24), torch.device("cpu")).double()  # [24, 1, H, W], normalised
    model.eval()

    def point_fisher(i):  # V(x_i)ᵀ V(x_i), [k, k]
        v = strategy._embed(model, x[i : i + 1], mask)[0].double()
        return v.T @ v

    cand = fisher_strategies._candidates(unlabeled, 4, max_candidates, 7)
    over = cand if fisher_pool == "candidates" else np.arange(24)
    expected = sum(point_fisher(i) for i in over) / len(over)
    torch.testing.assert_close(seen["fisher"], expected, rtol=1e-9, atol=1e-12)
    labeled_fisher = sum(point_fisher(i) for i in labeled) / len(labeled)
    torch.testing.assert_close(seen["labeled_fisher"], labeled_fisher, rtol=1e-9, atol=1e-12)
    root = seen["labeled_root"]
    torch.testing.assert_close(root.T @ root, labeled_fisher, rtol=1e-9, atol=1e-12)


def test_fisher_pool_rejects_unknown_values():
    with pytest.raises(ValueError, match="fisher_pool"):
        get_strategy("bait", fisher_pool="everything")


def _fisher_inputs(monkeypatch, strategy, pool, labeled, unlabeled, seed=0):
    """The sample indices (each image's first pixel) the diagonal Fisher is taken on."""
    seen = []
    real = fisher_strategies.fisher_diagonal

    def capture(model, inputs, **kwargs):
        seen.append((inputs[:, 0, 0, 0] * 255).round().long().tolist())
        return real(model, inputs, **kwargs)

    monkeypatch.setattr(fisher_strategies, "fisher_diagonal", capture)
    strategy.select(TinyNet(), pool, labeled, unlabeled, 3, seed=seed)
    return seen[0]


def test_class_sorted_fisher_sample_is_the_first_of_the_pool_sorted_by_class(monkeypatch):
    pool = make_pool(24)
    labeled, unlabeled = np.array([3, 7]), np.setdiff1d(np.arange(24), [3, 7, 11])
    everyone = sorted([*labeled, *unlabeled])
    by_hand = []  # class 0's points in pool order, then class 1's, ... until 10 are taken
    for c in range(3):
        by_hand += [i for i in everyone if int(pool.labels[i]) == c]
    expected = sorted(by_hand[:10])
    strategy = get_strategy(
        "fishermask", fisher_samples=10, fraction=0.05, fisher_sample="class_sorted"
    )
    assert _fisher_inputs(monkeypatch, strategy, pool, labeled, unlabeled) == expected
    assert _fisher_inputs(monkeypatch, strategy, pool, labeled, unlabeled, seed=5) == expected


def test_random_fisher_sample_follows_the_seed(monkeypatch):
    pool = make_pool(24)
    labeled, unlabeled = np.arange(4), np.arange(4, 24)
    strategy = get_strategy("fishermask", fisher_samples=10, fraction=0.05)
    first = _fisher_inputs(monkeypatch, strategy, pool, labeled, unlabeled, seed=0)
    assert first == _fisher_inputs(monkeypatch, strategy, pool, labeled, unlabeled, seed=0)
    assert first != _fisher_inputs(monkeypatch, strategy, pool, labeled, unlabeled, seed=1)


def test_unknown_fisher_sample_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"fisher_sample 'sorted'.*\['random', 'class_sorted'\]"):
        get_strategy("fishermask", fisher_sample="sorted")
