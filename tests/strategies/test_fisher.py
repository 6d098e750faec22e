"""BAIT and FisherMask: head-gradient embeddings against autograd, their reports, FisherMask
with the head mask is BAIT, float64 precision against a float64 model."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from fmlib.fisher.greedy_naive import greedy_trace_select_naive
from fmlib.models import build_model
from fmlib.strategies import (
    get_strategy,
    head_gradient_embeddings,
)
from fmlib.strategies.base import _candidates
from fmlib.strategies.fisher import MAX_LAMB
from fmlib.train import TrainConfig, fit
from tests.fakes import image_data
from tests.strategies.nets import NUM_CLASSES, TinyNet, make_pool


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


@pytest.mark.parametrize("fisher_pool", ["candidates", "pool"])
@pytest.mark.parametrize("n_labeled", [0, 5], ids=["no-labels", "5-labels"])
def test_bait_picks_are_the_naive_greedy_on_brute_force_fishers(float64, n_labeled, fisher_pool):
    """F_U, F_L from per-sample VᵀV of the closed-form embeddings, the picks from the naive greedy.

    With 5 labeled the labeled embeddings have 15 rows < k = 18: the first inverse is Woodbury's.
    ``max_candidates`` leaves unlabeled points out of the candidates: ``"pool"`` averages over
    them, the candidates and the labeled set. A small λ lets F_L weigh on the picks (with F_L/5
    in its place the third pick changes)."""
    pool, model = make_pool(24), TinyNet()
    labeled, unlabeled = np.arange(n_labeled), np.arange(n_labeled, 24)
    strategy = get_strategy(
        "bait", fisher_samples=8, fisher_pool=fisher_pool, max_candidates=12, lamb=0.01
    )
    picks = strategy.select(model, pool, labeled, unlabeled, 6, seed=2)
    with torch.no_grad():
        h = model.embed(pool.inputs().double())
        emb = head_gradient_embeddings(model.head(h).softmax(-1), h)  # [24, C, k]
    per_sample = emb.mT @ emb  # [24, k, k]: each sample's Fisher
    cand = _candidates(unlabeled, 6, 12, 2)
    assert len(cand) == 12
    f_u = per_sample[cand].mean(0) if fisher_pool == "candidates" else per_sample.mean(0)
    f_l = per_sample[labeled].mean(0) if n_labeled else None
    expected = greedy_trace_select_naive(
        emb[cand], 6, fisher=f_u, labeled_fisher=f_l, n_labeled=n_labeled, lamb=0.01
    )
    assert picks.tolist() == cand[expected].tolist()
    assert strategy.report.fisher.fisher_trace == pytest.approx(float(f_u.trace()), rel=1e-10)


def test_embedding_memory_is_the_embeddings_and_two_float64_fishers(monkeypatch):
    from fmlib.strategies import fisher as fs

    n, classes, k = 10, 3, 100
    need = n * classes * k * 4 + 2 * k * k * 8  # float32 [n, C, k] + fisher_u, fisher_l
    monkeypatch.setattr(fs, "available_memory", lambda device: need)
    fs.check_embedding_memory(n, classes, k, torch.float32, "cpu")  # fits exactly
    monkeypatch.setattr(fs, "available_memory", lambda device: need - 1)
    with pytest.raises(MemoryError, match=f"set max_candidates={n - 1} or fewer"):
        fs.check_embedding_memory(n, classes, k, torch.float32, "cpu")
    monkeypatch.setattr(fs, "available_memory", lambda device: need + n * classes * k * 4)
    fs.check_embedding_memory(n, classes, k, torch.float64, "cpu")  # float64: 8 bytes an entry
    monkeypatch.setattr(fs, "available_memory", lambda device: 2 * k * k * 8 + 1)
    with pytest.raises(MemoryError, match="Fisher matrices of a mask of 100 entries alone"):
        fs.check_embedding_memory(n, classes, k, torch.float32, "cpu")
    monkeypatch.setattr(fs, "available_memory", lambda device: None)
    fs.check_embedding_memory(10**9, classes, 10**6, torch.float64, "cpu")  # unknown: passes


def test_model_needs_follow_the_options():
    from fmlib.fisher.masks import ParameterMask

    mask = ParameterMask.full(TinyNet())
    assert get_strategy("bait").model_needs() == ("embed", "head")
    assert get_strategy("fishermask").model_needs() == ("head",)
    assert get_strategy("fishermask", include_head=False).model_needs() == ()
    assert get_strategy("fishermask", mask=mask).model_needs() == ()  # a given mask needs no head


@pytest.mark.parametrize("name", ["bait", "fishermask"])
def test_counts_at_their_minimum_are_accepted_and_below_refused(name):
    strategy = get_strategy(name, backward_steps=0, fisher_samples=1)
    assert strategy.options["backward_steps"] == 0 and strategy.options["fisher_samples"] == 1
    for key, bad, low in (
        ("fisher_samples", 0, 1),
        ("backward_steps", -1, 0),
        ("fisher_samples", True, 1),
    ):
        with pytest.raises(ValueError, match=f"{key} must be an int >= {low}"):
            get_strategy(name, **{key: bad})


@pytest.mark.parametrize("name", ["bait", "fishermask"])
def test_lamb_is_accepted_up_to_its_bound_and_refused_beyond(name):
    assert get_strategy(name, lamb=MAX_LAMB).options["lamb"] == MAX_LAMB == 1e6
    for bad in (MAX_LAMB * 1.01, math.inf, math.nan, 0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="lamb must be a finite number > 0.*at most 1e"):
            get_strategy(name, lamb=bad)


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


@pytest.mark.parametrize("name, options", [("fishermask", {"fraction": 0.01}), ("bait", {})])
def test_float64_precision_equals_the_strategy_on_a_float64_model(name, options, one_thread):
    pool = image_data(50, 0)
    model = build_model("cnn", 4, 1)
    fit(model, pool, np.arange(12), TrainConfig(epochs=2, batch_size=16), seed=0)
    labeled, unlabeled = np.arange(12), np.arange(12, 50)
    fast = get_strategy(name, precision="float64", fisher_samples=40, **options)
    picks = fast.select(model, pool, labeled, unlabeled, 8, seed=1)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    oracle = get_strategy(name, fisher_samples=40, **options)
    expected = oracle.select(copy.deepcopy(model).double(), pool, labeled, unlabeled, 8, seed=1)
    assert picks.tolist() == expected.tolist()
    assert fast.report.fisher.fisher_trace == pytest.approx(
        oracle.report.fisher.fisher_trace, rel=1e-12
    )


def test_precision_rejects_unknown_values():
    with pytest.raises(ValueError, match="precision.*allowed values"):
        get_strategy("fishermask", precision="half")


def _brute_split_jaccard(model, inputs, seed, fraction) -> float:
    """The split-half reference by brute force: per-sample autograd Fisher of each half."""
    from fmlib.fisher.embeddings import fisher_diagonal_naive
    from fmlib.fisher.masks import fisher_mask

    order = np.random.default_rng(seed).permutation(len(inputs))
    halves = order[: len(inputs) // 2], order[len(inputs) // 2 :]
    masks = [
        fisher_mask(
            fisher_diagonal_naive(model, inputs[torch.from_numpy(h)]), fraction, model=model
        )
        for h in halves
    ]
    shared = sum(int((masks[0][n] & masks[1][n]).sum()) for n in masks[0])
    return shared / (masks[0].size + masks[1].size - shared)


@pytest.mark.parametrize("seed", [0, 3])
def test_fishermask_split_half_jaccard_equals_brute_force(float64, seed):
    pool, model = make_pool(30), TinyNet()
    labeled, unlabeled = np.arange(5), np.arange(5, 30)
    plain = get_strategy("fishermask", fisher_samples=1000, fraction=0.2)
    split = get_strategy("fishermask", fisher_samples=1000, fraction=0.2, split_half=True)
    picks = split.select(model, pool, labeled, unlabeled, 4, seed=seed)
    np.testing.assert_array_equal(
        picks, plain.select(model, pool, labeled, unlabeled, 4, seed=seed)
    )
    assert math.isnan(plain.report.fisher.split_jaccard)  # off by default
    expected = _brute_split_jaccard(model.eval(), pool.inputs().double(), seed, 0.2)
    assert 0 < expected < 1  # the halves disagree on this net, so the check has teeth
    assert split.report.fisher.split_jaccard == pytest.approx(expected, rel=1e-12)
    for name, mask in split.report.fisher.mask.items():  # the mask is the whole sample's
        assert torch.equal(mask, plain.report.fisher.mask[name])


@pytest.mark.parametrize(
    "options, match",
    [
        ({"split_half": 1}, "split_half must be True or False, got 1"),
        ({"split_half": "yes"}, "split_half must be True or False"),
        ({"split_half": True, "mask": "injected"}, "split_half needs the mask chosen"),
    ],
)
def test_fishermask_split_half_rejects(options, match):
    from fmlib.fisher.masks import ParameterMask

    if options.get("mask") == "injected":
        options = {**options, "mask": ParameterMask.full(TinyNet(), ["head.weight"])}
    with pytest.raises(ValueError, match=match):
        get_strategy("fishermask", **options)
