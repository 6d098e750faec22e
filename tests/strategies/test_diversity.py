"""Coreset and BADGE against k-center greedy and k-means++ checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fmlib.strategies import (
    get_strategy,
    k_center_greedy,
    kmeans_pp,
    kronecker_sq_distances,
)
from tests.strategies.nets import NUM_CLASSES, TinyNet, make_pool


def _check_k_center(features, centres, picks):
    """Every pick is (one of) the farthest points from the centres so far (labeled and earlier
    picks)."""
    centres, chosen = list(centres), set()
    for i in picks:
        rest = [j for j in range(len(features)) if j not in chosen]
        dist = {j: min(float((features[j] - c).norm()) for c in centres) for j in rest}
        assert dist[i] >= max(dist.values()) - 1e-9
        centres.append(features[i])
        chosen.add(i)


@pytest.mark.parametrize("n_labeled", [0, 4], ids=["no-labels", "4-labels"])
def test_coreset_is_k_center_greedy(float64, n_labeled):
    pool, model = make_pool(25), TinyNet()
    labeled, unlabeled = np.arange(n_labeled), np.arange(n_labeled, 25)
    picks = get_strategy("coreset").select(model, pool, labeled, unlabeled, 6, seed=2)
    with torch.no_grad():
        features = model.embed(pool.inputs(unlabeled).double())
        centres = model.embed(pool.inputs(labeled).double()) if n_labeled else []
    positions = [int(np.flatnonzero(unlabeled == p)[0]) for p in picks]
    if not n_labeled:  # the first pick is seeded uniform; the rest must be k-center greedy
        _check_k_center(features, [features[positions[0]]], positions[1:])
    else:
        _check_k_center(features, centres, positions)


def test_k_center_greedy_never_repeats_duplicates():
    features = torch.zeros(5, 2)
    assert sorted(k_center_greedy(features, features[:0], 5, seed=0)) == [0, 1, 2, 3, 4]


def test_factorised_distances_equal_materialised(float64):
    a, h, a2, h2 = torch.randn(7, 3), torch.randn(7, 5), torch.randn(4, 3), torch.randn(4, 5)
    g, g2 = (
        torch.einsum("nc,nd->ncd", a, h).flatten(1),
        torch.einsum("nc,nd->ncd", a2, h2).flatten(1),
    )
    expected = torch.cdist(g, g2).square()
    torch.testing.assert_close(
        kronecker_sq_distances(a, h, a2, h2), expected, rtol=1e-10, atol=1e-10
    )


def test_kmeans_pp_spreads_over_clusters_and_starts_at_the_largest(float64):
    centres = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    h = centres.repeat_interleave(5, 0) + 0.01 * torch.randn(15, 2)
    a = torch.tensor([1.0, -1.0]).expand(15, 2)
    for seed in range(5):
        picks = kmeans_pp(a, h, 3, seed=seed)
        assert picks[0] == int(h.norm(dim=1).argmax())
        assert sorted(i // 5 for i in picks) == [0, 1, 2]


def test_badge_first_pick_is_the_largest_gradient_embedding(float64):
    pool, model = make_pool(20), TinyNet()
    unlabeled = np.arange(3, 20)
    picks = get_strategy("badge").select(model, pool, np.arange(3), unlabeled, 4, seed=0)
    with torch.no_grad():
        h = model.embed(pool.inputs(unlabeled).double())
        probs = model.head(h).softmax(-1)
    g = torch.einsum(
        "nc,nd->ncd", nn.functional.one_hot(probs.argmax(-1), NUM_CLASSES) - probs, h
    ).flatten(1)
    assert picks[0] == unlabeled[int(g.norm(dim=1).argmax())]
    other = get_strategy("badge", first="random").select(
        model, pool, np.arange(3), unlabeled, 4, seed=0
    )
    assert len(set(other.tolist())) == 4


def test_badge_starts_at_the_largest_gradient_embedding_not_the_largest_feature():
    # kills: first centre = argmax ||h||² instead of argmax ||a||² ||h||²
    # point 0: largest features
    h = torch.tensor([[10.0, 0.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    # ... but confident
    a = torch.tensor([[0.01, -0.01], [0.5, -0.5], [0.1, -0.1]], dtype=torch.float64)
    assert kmeans_pp(a, h, 1, first="norm") == [1]  # ||a||²||h||²: 0.02, 0.5, 0.01
