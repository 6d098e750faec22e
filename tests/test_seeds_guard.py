"""Guards against one-line bugs that used to survive their modules' tests: scoring in train mode
(a forgotten ``.eval()``), a seed ignored (candidate subsets, shuffling, the loop's per-round
selection seed, the initial set's ``data_seed``), a full disk hidden in an exception's context,
and ties in the mask's top-k not going to the lower index."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from torch import nn

from fmlib.build import build
from fmlib.config import ExperimentConfig
from fmlib.fisher.masks import _top
from fmlib.loop import ActiveLoop
from fmlib.records.files import atomic_write
from fmlib.seeds import round_seed
from fmlib.strategies import get_strategy
from fmlib.strategies.base import _candidates
from fmlib.train import TrainConfig, fit, predict_proba
from tests.user_parts import blobs


class Noisy(nn.Module):
    """BatchNorm and dropout: train mode and eval mode score differently."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(16, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.embed(x))


POOL = blobs(80, 0)


def trained_noisy() -> Noisy:
    torch.manual_seed(0)
    model = Noisy()
    fit(model, POOL, np.arange(40), TrainConfig(epochs=2, batch_size=16), seed=0)
    return model


def test_predict_proba_scores_in_eval_mode_and_restores_the_mode():
    model = trained_noisy().train()
    x = POOL.tensors[0]
    with torch.no_grad():
        expected = model.eval()(x).softmax(1)
    model.train()
    torch.manual_seed(1)
    assert torch.allclose(predict_proba(model, x), expected)
    assert model.training and model.body[3].training


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


def test_fit_shuffles_by_its_seed():
    def weights(seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 3))
        fit(
            model, POOL, np.arange(60), TrainConfig(epochs=2, batch_size=8, reinit=False), seed=seed
        )
        return model[0].weight.detach().clone()

    assert torch.equal(weights(0), weights(0)) and not torch.equal(weights(0), weights(1))


class SeedRecorder:
    name = "recorder"

    def __init__(self):
        self.seeds = []

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        self.seeds.append(seed)
        return unlabeled[:n]


def test_the_loop_gives_the_strategy_each_rounds_own_selection_seed():
    strategy = SeedRecorder()
    loop = ActiveLoop((POOL, blobs(30, 1)), nn.Sequential(nn.Linear(20, 3)), strategy, [6, 9, 12, 15],
                      TrainConfig(epochs=1), initial=np.arange(6), seed=7, device="cpu")  # fmt: skip
    while not loop.finished:
        loop.step()
    assert strategy.seeds == [round_seed(7, r, "select") for r in range(3)]
    assert len(set(strategy.seeds)) == 3


def test_build_draws_the_initial_set_from_data_seed():
    def initial(data_seed):
        config = dict(initial_size=6, query_size=3, budget=None, rounds=1, strategy="random", train_preset="default",
                      seed=0, data_seed=data_seed, device="cpu", progress=False)  # fmt: skip
        config = ExperimentConfig.from_dict(config)
        config.validate(check_dataset=False, check_strategy=False, parts=False)
        return build(
            config, data=(blobs(200, 0), blobs(30, 1)), model=lambda c: nn.Linear(20, c)
        ).initial.tolist()

    assert initial(0) == initial(0) and initial(0) != initial(1)


@pytest.mark.parametrize("link", ["__context__", "__cause__"])
def test_a_full_disk_hidden_in_an_exceptions_chain_is_said_plainly(tmp_path, link):
    def write(handle):
        error = RuntimeError("PytorchStreamWriter failed writing file data/0")
        setattr(error, link, OSError(errno.ENOSPC, "No space left on device"))
        raise error

    with pytest.raises(
        OSError, match=r"No space left on the device while writing .*checkpoint.pt"
    ) as caught:
        atomic_write(tmp_path / "checkpoint.pt", write)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_the_masks_top_k_gives_ties_to_the_lower_index():
    values = torch.zeros(20000)
    values[[5, 17000]] = 1.0
    assert _top(values, 2000).tolist() == [5, 17000, *range(5), *range(6, 1999)]


def test_build_initialises_the_model_from_seed():
    def weights(seed):
        config = dict(initial_size=6, query_size=3, budget=None, rounds=1, strategy="random", train_preset="default",
                      seed=seed, device="cpu", progress=False)  # fmt: skip
        config = ExperimentConfig.from_dict(config)
        config.validate(check_dataset=False, check_strategy=False, parts=False)
        parts = build(config, data=(blobs(200, 0), blobs(30, 1)), model=lambda c: nn.Linear(20, c))
        return parts.model.weight.detach().clone()

    assert torch.equal(weights(0), weights(0)) and not torch.equal(weights(0), weights(1))
