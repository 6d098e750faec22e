"""The strategy contract every registered strategy keeps, the registry and its errors,
``random``."""

from __future__ import annotations

import itertools
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fmlib.config import ExperimentConfig
from fmlib.strategies import (
    STRATEGIES,
    base,
    get_strategy,
    strategy_class,
)
from fmlib.strategies.base import SelectionReport, _candidates
from fmlib.train import TrainConfig, fit
from tests.fakes import USER
from tests.strategies.nets import FAST_OPTIONS, TinyNet, make_pool
from tests.user_parts import MLP, LogitsOnly, blobs, trained_noisy
from tests.user_strategy import LowestMaxProb


def test_every_registered_strategy_is_exercised():
    assert sorted(FAST_OPTIONS) == sorted(STRATEGIES)


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
    # n > max_candidates
    picks = strategy.select(model, pool, np.arange(5), np.arange(5, 30), 6, seed=1)
    assert len(set(picks.tolist())) == 6
    np.testing.assert_array_equal(
        picks, strategy.select(model, pool, np.arange(5), np.arange(5, 30), 6, seed=1)
    )


def test_each_select_starts_a_fresh_report(monkeypatch):
    pool, model = make_pool(20), TinyNet()
    bait = get_strategy("bait", fisher_samples=8)
    bait.select(model, pool, np.arange(4), np.arange(4, 20), 2)
    assert bait.report.fisher is not None
    bait.select(model, pool, np.arange(4), np.arange(4, 20), 0)  # nothing to pick
    assert bait.report == SelectionReport()
    ticks = itertools.count()  # the clock advances by 1 at each reading: 1 s a timed phase
    monkeypatch.setattr(base, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    random = get_strategy("random")
    for _ in range(3):
        random.select(model, pool, [], np.arange(20), 2)
        assert random.report.select_time == 1.0 and random.report.embed_time == 0.0


def test_batches_keep_integer_inputs_and_give_floats_the_models_dtype():
    from torch.utils.data import TensorDataset

    from fmlib.data import as_data
    from fmlib.strategies.base import _batches

    tokens = torch.arange(12).reshape(6, 2)  # token ids
    labels = torch.zeros(6, dtype=torch.long)
    model = TinyNet().double()
    got = list(_batches(model, as_data(TensorDataset(tokens, labels)), np.arange(6), 4, "cpu"))
    assert [b.dtype for b in got] == [torch.int64, torch.int64]
    assert torch.equal(torch.cat(got), tokens)
    floats = as_data(TensorDataset(tokens.float(), labels))
    got = list(_batches(model, floats, np.arange(6), 4, "cpu"))
    assert [b.dtype for b in got] == [torch.float64, torch.float64]
    assert torch.equal(torch.cat(got), tokens.double())


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


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_selects_from_a_tensor_dataset(name):
    base = blobs(40, 2)
    model = MLP(3)
    fit(model, base, np.arange(9), TrainConfig(epochs=2, batch_size=8), seed=0)
    options = {"fisher_samples": 16} if "fisher_samples" in STRATEGIES[name].defaults else {}
    picks = get_strategy(name, **options).select(
        model, base, np.arange(9), np.arange(9, 40), 5, seed=0
    )
    assert len(set(picks.tolist())) == 5 and set(picks.tolist()) <= set(range(9, 40))


def test_the_user_strategy_picks_what_it_says():
    base = blobs(30, 5)
    model = LogitsOnly(3)
    unlabeled = np.arange(4, 30)
    picks = get_strategy(USER).select(model, base, np.arange(4), unlabeled, 3)
    top = model(base.tensors[0][unlabeled]).softmax(1).max(1).values
    assert picks.tolist() == unlabeled[torch.argsort(top, stable=True)[:3].numpy()].tolist()


def test_a_strategy_is_found_by_module_and_class():
    assert strategy_class(USER) is LowestMaxProb
    assert isinstance(get_strategy(USER, batch_size=8), LowestMaxProb)
    assert ExperimentConfig(strategy=USER).problems(check_dataset=False, parts=False) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tests.no_such_module:X", "cannot import module 'tests.no_such_module'"),
        ("tests.user_strategy:Missing", "has no attribute 'Missing'"),
        (
            "tests.user_strategy:NOT_A_STRATEGY",
            "is a object, not a subclass of fmlib.strategies.Strategy",
        ),
        (
            "tests.user_strategy:NotAStrategy",
            "is class NotAStrategy, not a subclass of fmlib.strategies.Strategy",
        ),
        ("tests.user_strategy:", "write 'package.module:Class'"),
        ("no_such_strategy", "unknown strategy 'no_such_strategy'.*package.module:Class"),
    ],
)
def test_a_bad_strategy_name_says_what_is_wrong(name, message):
    with pytest.raises(ValueError, match=message):
        strategy_class(name)
    assert any(
        message.split(".*")[0] in p
        for p in ExperimentConfig(strategy=name).problems(check_dataset=False, parts=False)
    )


POOL = blobs(80, 0)


@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence", "coreset"])
def test_select_scores_in_eval_mode_whatever_the_model_was_in(name):
    model = trained_noisy()
    unlabeled = np.arange(40, 80)
    expected = get_strategy(name).select(model.eval(), POOL, np.arange(40), unlabeled, 10, seed=0)
    for seed in (1, 2):
        torch.manual_seed(seed)  # dropout in train mode would draw from this
        picks = get_strategy(name).select(model.train(), POOL, np.arange(40), unlabeled, 10, seed=0)
        assert picks.tolist() == expected.tolist()
    assert model.training


def test_the_max_candidates_subset_follows_the_seed():
    unlabeled = np.arange(1000)
    first, again, other = (_candidates(unlabeled, 5, 50, s) for s in (0, 0, 1))
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()


def test_select_refuses_duplicate_unlabeled_positions():
    pool, model, strategy = make_pool(30), TinyNet(), get_strategy("random")
    with pytest.raises(ValueError, match="unlabeled contains duplicate positions"):
        strategy.select(model, pool, [], np.array([0, 1, 1, 2]), 2)


def test_select_takes_every_unlabeled_position_without_a_warning_and_refuses_a_negative_n():
    pool, model, strategy = make_pool(10), TinyNet(), get_strategy("random")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        picks = strategy.select(model, pool, np.arange(6), np.arange(6, 10), 4, seed=0)
    assert sorted(picks.tolist()) == [6, 7, 8, 9]
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        strategy.select(model, pool, [], np.arange(10), -1)


@pytest.mark.parametrize(
    "options, ok",
    [
        ({"batch_size": 1}, True),
        ({"batch_size": 0}, False),
        ({"batch_size": 2.0}, False),
        ({"max_candidates": 1}, True),
        ({"max_candidates": None}, True),
        ({"max_candidates": 0}, False),
        ({"max_candidates": 1.5}, False),
    ],
    ids=repr,
)
def test_batch_size_and_max_candidates_at_their_bounds(options, ok):
    if ok:
        assert get_strategy("entropy", **options).options == {
            **get_strategy("entropy").options,
            **options,
        }
    else:
        with pytest.raises(ValueError, match=next(iter(options))):
            get_strategy("entropy", **options)


@pytest.mark.parametrize(
    "picks, n, labeled, pool_size, message",
    [
        ([3, 4], 2, [], 10, None),
        ([0, 9], 2, [], 10, None),
        ([3], 2, [], None, "1 picks where 2 were asked for"),
        ([3, 4, 5], 2, [], None, "3 picks where 2 were asked for"),
        ([3, 10], 2, [], 10, r"positions out of range 0..9: \[10\]"),
        ([-1, 3], 2, [], 10, r"positions out of range 0..9: \[-1\]"),
        ([3, 3], 2, [], None, r"1 duplicated positions: \[3\]"),
        ([1, 3], 2, [1], None, r"1 already labeled: \[1\]"),
        ([3, 8], 2, [], None, r"1 not among the unlabeled candidates: \[8\]"),
        ([3.0, 4.0], 2, [], None, "must return integer pool positions"),
        (None, 2, [], None, "got None"),
    ],
    ids=repr,
)
def test_check_picks_names_what_is_wrong(picks, n, labeled, pool_size, message):
    from fmlib.strategies.base import check_picks

    unlabeled = np.array([0, 3, 4, 5, 9, 10])
    if message is None:
        out = check_picks(picks, n, unlabeled, labeled, pool_size=pool_size)
        assert out.dtype == np.int64 and out.tolist() == picks
    else:
        with pytest.raises(RuntimeError, match=message):
            check_picks(picks, n, unlabeled, labeled, pool_size=pool_size)


def test_the_candidates_are_every_unlabeled_position_when_the_subset_would_hold_them_all():
    unlabeled = np.arange(10)[::-1].copy()
    assert _candidates(unlabeled, 3, 10, 0).tolist() == unlabeled.tolist()
    assert _candidates(unlabeled, 10, 4, 0).tolist() == unlabeled.tolist()
    assert _candidates(unlabeled, 3, None, 0).tolist() == unlabeled.tolist()
    subset = _candidates(unlabeled, 3, 9, 0)
    assert len(subset) == 9 and subset.tolist() == sorted(subset.tolist())
    assert len(_candidates(unlabeled, 6, 4, 0)) == 6  # at least n


def test_probabilities_and_features_cover_every_index_in_any_batch_size():
    from fmlib.strategies.base import _features, _probabilities

    pool, model = make_pool(12), TinyNet().eval()
    indices = np.array([7, 0, 3, 11, 5])
    with torch.no_grad():
        x = pool.inputs(indices, torch.device("cpu"))
        probs, feats = model(x).softmax(-1), model.embed(x)
    for batch_size in (1, 2, 5, 64):
        got = _probabilities(model, pool, indices, batch_size, torch.device("cpu"))
        torch.testing.assert_close(got, probs)
        torch.testing.assert_close(got.sum(1), torch.ones(5))
        got = _features(model, pool, indices, batch_size, torch.device("cpu"))
        torch.testing.assert_close(got, feats)


def test_one_non_finite_value_in_a_pool_row_names_that_row():
    from fmlib.strategies.base import _nonfinite_rows

    x = torch.zeros(4, 1, 3, 3)
    x[2, 0, 1, 1] = float("nan")
    x[3, 0, 0, 2] = float("inf")
    assert _nonfinite_rows(x) == [2, 3]
    assert _nonfinite_rows(torch.zeros(3, 2)) == []
