"""Query strategies: the shared contract, and each strategy against a brute-force or hand-built oracle."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from fmlib.data import ImageData
from fmlib.strategies import (
    STRATEGIES,
    get_strategy,
    head_gradient_embeddings,
    k_center_greedy,
    kmeans_pp,
    kronecker_sq_distances,
)

NUM_CLASSES = 3


class TinyNet(nn.Module):
    """``embed``: flatten, linear 64 -> 6, tanh; ``head``: linear 6 -> 3."""

    def __init__(self, side: int = 8, width: int = 6, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(side * side, width), nn.Tanh())
        self.head = nn.Linear(width, num_classes)

    def embed(self, x):
        return self.features(x)

    def forward(self, x):
        return self.head(self.embed(x))


class LookupModel(nn.Module):
    """Predicts ``probs[i]`` for the image whose first pixel is ``i`` (see :func:`make_pool`)."""

    def __init__(self, probs):
        super().__init__()
        probs = torch.as_tensor(probs, dtype=torch.get_default_dtype()).clamp_min(1e-9)
        self.head = nn.Linear(len(probs), probs.shape[1], bias=False)
        with torch.no_grad():
            self.head.weight.copy_(probs.log().T)

    def embed(self, x):
        index = (x[:, 0, 0, 0] * 255).round().long()
        return nn.functional.one_hot(index, self.head.in_features).to(x.dtype)

    def forward(self, x):
        return self.head(self.embed(x))


def make_pool(n: int = 40, side: int = 8, seed: int = 0) -> ImageData:
    """Random 1 x side x side images whose first pixel is the sample index; mean 0, std 1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, side, side), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    labels = rng.integers(0, NUM_CLASSES, size=n)
    return ImageData(
        torch.from_numpy(images), torch.from_numpy(labels), ["a", "b", "c"], (0.0,), (1.0,)
    )


FAST_OPTIONS = {  # small settings so every strategy runs in well under a second
    "random": {},
    "entropy": {},
    "margin": {},
    "least_confidence": {},
    "bald": {"samples": 4},
    "coreset": {},
    "badge": {},
    "bait": {"fisher_samples": 16},
    "fishermask": {"fisher_samples": 16, "fraction": 0.05},
}


def test_every_registered_strategy_is_exercised():
    assert sorted(FAST_OPTIONS) == sorted(STRATEGIES)


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("n_labeled", [0, 6], ids=["no-labels", "6-labels"])
@pytest.mark.parametrize("name", sorted(FAST_OPTIONS))
def test_contract(name, n_labeled):
    pool, model = make_pool(30), TinyNet()
    labeled, unlabeled = np.arange(n_labeled), np.arange(n_labeled, 30)[::-1].copy()
    model.train()
    model.features[1].eval()  # a mixed state, restored module by module
    strategy = get_strategy(name, **FAST_OPTIONS[name])
    picks = strategy.select(model, pool, labeled, unlabeled, 5, seed=3)
    assert picks.dtype == np.int64 and picks.shape == (5,)
    assert len(set(picks.tolist())) == 5 and set(picks.tolist()) <= set(unlabeled.tolist())
    assert model.training and not model.features[1].training, "every module's mode must be restored"
    assert strategy.report.embed_time >= 0 and strategy.report.select_time >= 0
    again = get_strategy(name, **FAST_OPTIONS[name]).select(
        model, pool, labeled, unlabeled, 5, seed=3
    )
    np.testing.assert_array_equal(picks, again)


@pytest.mark.parametrize("name", sorted(FAST_OPTIONS))
def test_fewer_unlabeled_than_asked_warns_and_returns_all(name):
    pool, model = make_pool(20), TinyNet()
    strategy = get_strategy(name, **FAST_OPTIONS[name])
    with pytest.warns(UserWarning, match="only 3 are unlabeled"):
        picks = strategy.select(model, pool, np.arange(17), np.arange(17, 20), 5)
    assert sorted(picks.tolist()) == [17, 18, 19]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert strategy.select(model, pool, np.arange(17), np.arange(17, 20), 0).shape == (0,)


@pytest.mark.parametrize("name", ["entropy", "coreset", "badge", "bait"])
def test_max_candidates_scores_a_seeded_subset(name):
    pool, model = make_pool(30), TinyNet()
    strategy = get_strategy(name, max_candidates=4)
    picks = strategy.select(
        model, pool, np.arange(5), np.arange(5, 30), 6, seed=1
    )  # n > max_candidates
    assert len(set(picks.tolist())) == 6
    np.testing.assert_array_equal(
        picks, strategy.select(model, pool, np.arange(5), np.arange(5, 30), 6, seed=1)
    )


def test_random_depends_on_the_seed():
    pool, model, strategy = make_pool(30), TinyNet(), get_strategy("random")
    picks = [strategy.select(model, pool, [], np.arange(30), 5, seed=s).tolist() for s in range(3)]
    assert picks[0] != picks[1] != picks[2]


def test_get_strategy_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="allowed values.*'bait'.*'entropy'.*'fishermask'"):
        get_strategy("kcenter")
    with pytest.raises(ValueError, match=r"unknown options \['T'\].*allowed.*'p'.*'samples'"):
        get_strategy("bald", T=3)
    with pytest.raises(ValueError, match="allowed: \\[\\]"):
        get_strategy("random", seed=1)
    with pytest.raises(ValueError, match="dropout rate"):
        get_strategy("bald", p=1.0)
    with pytest.raises(ValueError, match="first"):
        get_strategy("badge", first="far")
    with pytest.raises(ValueError, match="allowed values.*'per_layer'"):
        get_strategy("fishermask", method="top")
    with pytest.raises(ValueError, match="fraction"):
        get_strategy("fishermask", fraction=0.0)
    with pytest.raises(ValueError, match="lamb"):
        get_strategy("bait", lamb=0)
    with pytest.raises(ValueError, match="lamb must be a finite number > 0, got inf"):
        get_strategy("fishermask", lamb=float("inf"))


# ----------------------------------------------------------------------------- uncertainty

UNIFORM = [0.25, 0.25, 0.25, 0.25]  # most uncertain by every measure, but labeled
TIE = [0.5, 0.5, 0.0, 0.0]  # smallest margin (0)
SPREAD = [0.4, 0.2, 0.2, 0.2]  # highest entropy (1.33) among the unlabeled
FLAT_TOP = [0.36, 0.34, 0.30, 0.0]  # lowest top probability (0.36); margin 0.02, entropy 1.10
SURE = [0.97, 0.01, 0.01, 0.01]
TABLE = [UNIFORM, SURE, TIE, SPREAD, SURE, FLAT_TOP]


@pytest.mark.parametrize(
    "name, expected",
    [("entropy", [3, 5]), ("margin", [2, 5]), ("least_confidence", [5, 3])],
    ids=["entropy", "margin", "least_confidence"],
)
def test_uncertainty_picks_on_hand_built_probabilities(name, expected):
    model, pool = LookupModel(TABLE), make_pool(len(TABLE))
    picks = get_strategy(name).select(model, pool, [0], np.arange(1, 6), 2)
    assert picks.tolist() == expected


def test_bald_matches_brute_force_mc_dropout(float64):
    pool, model = make_pool(12), TinyNet().eval()
    p, samples, seed = 0.3, 7, 5
    strategy = get_strategy("bald", p=p, samples=samples)
    indices = np.arange(2, 12)
    scores = strategy.scores(model, pool, indices, seed=seed, device=torch.device("cpu"))

    with torch.no_grad():
        h = model.embed(pool.inputs(indices).double())  # [N, d]
    keep = torch.rand((samples, *h.shape), generator=torch.Generator().manual_seed(seed)) >= p
    expected = []
    for n in range(len(indices)):
        runs = []
        for t in range(samples):
            with torch.no_grad():
                runs.append(torch.softmax(model.head(h[n] * keep[t, n] / (1 - p)), -1).numpy())
        runs = np.array(runs)  # [T, C]
        mean = runs.mean(0)
        expected.append(-(mean * np.log(mean)).sum() + (runs * np.log(runs)).sum(1).mean())
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-10, atol=1e-12)

    picks = strategy.select(model, pool, [0, 1], indices, 3, seed=seed)
    assert picks.tolist() == indices[np.argsort(expected)[::-1][:3]].tolist()


# ----------------------------------------------------------------------------- diversity


def _check_k_center(features, centres, picks):
    """Every pick is (one of) the farthest points from the centres so far (labeled and earlier picks)."""
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


# ----------------------------------------------------------------------------- Fisher: BAIT and FisherMask


@pytest.mark.parametrize("include_bias", [False, True], ids=["weight", "weight+bias"])
def test_bait_embeddings_equal_autograd_head_gradients(float64, include_bias):
    pool, model = make_pool(6), TinyNet()
    x = pool.inputs().double()
    with torch.no_grad():
        h = model.embed(x)
        probs = model.head(h).softmax(-1)
    emb = head_gradient_embeddings(probs, h, include_bias=include_bias)  # [N, C, k]
    params = [model.head.weight] + ([model.head.bias] if include_bias else [])
    for n in range(len(x)):
        for c in range(NUM_CLASSES):
            log_p = torch.log_softmax(model(x[n : n + 1]), -1)[0, c]
            grads = torch.autograd.grad(log_p, params)
            expected = math.sqrt(probs[n, c]) * torch.cat([g.flatten() for g in grads])
            torch.testing.assert_close(emb[n, c], expected, rtol=1e-10, atol=1e-12)


def test_bait_report(float64):
    pool, model = make_pool(24), TinyNet()
    strategy = get_strategy("bait", fisher_samples=1000)  # all of the pool
    picks = strategy.select(model, pool, np.arange(4), np.arange(4, 24), 3)
    info = strategy.report.fisher
    with torch.no_grad():
        h = model.embed(pool.inputs().double())
        emb = head_gradient_embeddings(model.head(h).softmax(-1), h)  # [24, C, k]
    norms = emb.square().sum((1, 2))
    np.testing.assert_allclose(info.picked_scores, norms[picks].numpy(), rtol=1e-10)
    assert info.fisher_trace == pytest.approx(float(norms[4:].mean()), rel=1e-10)
    assert set(info.fisher_diag) == {"head.weight"}
    torch.testing.assert_close(
        info.fisher_diag["head.weight"].flatten(), emb.square().sum(1).mean(0)
    )
    assert info.mask.size == model.head.weight.numel()


@pytest.mark.parametrize("n_labeled", [0, 5], ids=["no-labels", "5-labels"])
def test_fishermask_with_the_head_mask_is_bait(float64, n_labeled):
    from fmlib.fisher.masks import ParameterMask

    pool, model = make_pool(30), TinyNet()
    labeled, unlabeled = np.arange(n_labeled), np.arange(n_labeled, 30)
    bait = get_strategy("bait", fisher_samples=8)
    mask = ParameterMask.full(model, ["head.weight"])
    fishermask = get_strategy("fishermask", fisher_samples=8, mask=mask)
    picks = bait.select(model, pool, labeled, unlabeled, 6, seed=1)
    np.testing.assert_array_equal(
        picks, fishermask.select(model, pool, labeled, unlabeled, 6, seed=1)
    )
    np.testing.assert_allclose(
        bait.report.fisher.picked_scores, fishermask.report.fisher.picked_scores, rtol=1e-9
    )
    assert bait.report.fisher.fisher_trace == pytest.approx(
        fishermask.report.fisher.fisher_trace, rel=1e-9
    )


def test_bait_fisher_diag_matches_the_fisher_engine(float64):
    from fmlib.fisher.embeddings import fisher_diagonal

    pool, model = make_pool(16), TinyNet()
    strategy = get_strategy("bait", fisher_samples=1000, include_bias=True)
    strategy.select(model, pool, np.arange(4), np.arange(4, 16), 2)
    expected = fisher_diagonal(model.eval(), pool.inputs().double())
    for name in ("head.weight", "head.bias"):
        torch.testing.assert_close(strategy.report.fisher.fisher_diag[name], expected[name])


def test_fishermask_report():
    pool, model = make_pool(30), TinyNet()
    strategy = get_strategy("fishermask", fisher_samples=16, fraction=0.1)
    strategy.select(model, pool, np.arange(5), np.arange(5, 30), 4)
    info = strategy.report.fisher
    assert set(info.fisher_diag) == {name for name, _ in model.named_parameters()}
    assert info.mask.size >= model.head.weight.numel()  # the head is always in
    assert info.picked_scores.shape == (4,) and (info.picked_scores >= 0).all()
    assert info.fisher_trace > 0


def test_badge_starts_at_the_largest_gradient_embedding_not_the_largest_feature():
    # kills: first centre = argmax ||h||² instead of argmax ||a||² ||h||²
    h = torch.tensor(
        [[10.0, 0.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64
    )  # point 0: largest features
    a = torch.tensor(
        [[0.01, -0.01], [0.5, -0.5], [0.1, -0.1]], dtype=torch.float64
    )  # ... but confident
    assert kmeans_pp(a, h, 1, first="norm") == [1]  # ||a||²||h||²: 0.02, 0.5, 0.01
