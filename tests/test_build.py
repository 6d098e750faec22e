"""``build``: a validated config and the data become the run's parts, and a model factory that
does not fit the data is named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fmlib.build import build
from fmlib.config import ExperimentConfig
from tests.fakes import NAMED, user_config
from tests.user_parts import blobs


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda c: "not a model", "must be a torch nn.Module"),
        (lambda c: nn.Linear(20, c + 1), r"logits \[N, 3\]"),
        (lambda c: nn.Linear(7, c), "fails on a batch of the pool's inputs"),
        ("MLP", "model must be a factory"),
    ],
)
def test_a_bad_model_factory_is_named(factory, message):
    with pytest.raises(ValueError, match=message):
        build(user_config(), data=(blobs(30, 0), blobs(9, 1)), model=factory)


def test_an_image_model_on_vector_data_points_to_the_factory():
    with pytest.raises(ValueError, match="takes square images.*model=factory"):
        build(user_config(), data=(blobs(30, 0), blobs(9, 1)))


def test_the_users_dataset_is_shaped_like_a_built_in_one():
    parts = build(
        user_config(
            **{**NAMED, "imbalance": "step"},
            ratio=3.0,
            minority_classes=[0],
            pool_size=45,
            test_size=30,
        )
    )
    # blob_data's pool: 30 per class; step 3 keeps 10 of class 0 (70 in all), pool_size 45 keeps the
    # proportions
    assert parts.data.pool.class_counts().tolist() == [7, 19, 19] and len(parts.data.test) == 30
    assert parts.data.test.class_counts().tolist() == [10, 10, 10]
    assert type(parts.model).__name__ == "MLP" and parts.model.head.out_features == 3


def test_build_draws_the_initial_set_from_data_seed():
    def initial(data_seed):
        config = dict(
            initial_size=6,
            query_size=3,
            budget=None,
            rounds=1,
            strategy="random",
            train_preset="default",
            seed=0,
            data_seed=data_seed,
            device="cpu",
            progress=False,
        )
        config = ExperimentConfig.from_dict(config)
        config.validate(check_dataset=False, check_strategy=False, parts=False)
        return build(
            config, data=(blobs(200, 0), blobs(30, 1)), model=lambda c: nn.Linear(20, c)
        ).initial.tolist()

    assert initial(0) == initial(0) and initial(0) != initial(1)


def test_build_initialises_the_model_from_seed():
    def weights(seed):
        config = dict(
            initial_size=6,
            query_size=3,
            budget=None,
            rounds=1,
            strategy="random",
            train_preset="default",
            seed=seed,
            device="cpu",
            progress=False,
        )
        config = ExperimentConfig.from_dict(config)
        config.validate(check_dataset=False, check_strategy=False, parts=False)
        parts = build(config, data=(blobs(200, 0), blobs(30, 1)), model=lambda c: nn.Linear(20, c))
        return parts.model.weight.detach().clone()

    assert torch.equal(weights(0), weights(0)) and not torch.equal(weights(0), weights(1))


def test_a_test_label_beyond_the_class_names_is_named():
    from fmlib.build import check_data
    from fmlib.data import as_al_data

    data = as_al_data((blobs(30, 0), blobs(12, 1)))
    data.test.labels[4] = 3  # 3 class names: 0..2
    with pytest.raises(ValueError, match=r"the test set's labels must be class indices 0\.\.2"):
        check_data(data)


def _data():
    """A checked pool (30 blobs) and test set (12 blobs) of 3 classes."""
    from fmlib.data import as_al_data

    return as_al_data((blobs(30, 0), blobs(12, 1)))


def _empty(part):
    part.labels = part.labels[:0]


def _label(part, value):
    part.labels[4] = value


def _nan(part):
    part._x[2, 5] = float("nan")  # one entry of one sample


def _inf(part):
    part._x[3, 0] = float("-inf")


@pytest.mark.parametrize(
    ("part", "spoil", "message"),
    [
        ("pool", _empty, "the pool is empty"),
        ("test", _empty, "the test set is empty"),
        ("pool", lambda p: _label(p, -1), "the pool's labels must be class indices 0..2"),
        ("pool", lambda p: _label(p, 3), r"sample 4 has label 3 \(1 such samples\)"),
        ("test", lambda p: _label(p, 3), "the test set's labels must be class indices"),
        ("test", lambda p: _label(p, -1), "the test set's labels must be class indices"),
        ("pool", _nan, r"the pool's inputs must be finite, but samples \[2\]"),
        ("test", _inf, r"the test set's inputs must be finite, but samples \[3\] \(1 in all\)"),
    ],
)
def test_check_data_names_each_bad_part(part, spoil, message):
    from fmlib.build import check_data

    data = _data()
    spoil(getattr(data, part))
    with pytest.raises(ValueError, match=message):
        check_data(data)


@pytest.mark.parametrize("value", [0, 2])
def test_check_data_passes_labels_at_both_ends(value):
    from fmlib.build import check_data

    data = _data()
    data.pool.labels[4] = value
    data.test.labels[4] = value
    check_data(data)


def test_a_class_without_pool_samples_is_named():
    from fmlib.data import DatasetData

    pool = blobs(30, 0)
    pool.tensors[1][pool.tensors[1] == 1] = 2  # class 1 has no samples
    data = (DatasetData(pool, ["a", "b", "c"]), blobs(12, 1))
    with pytest.raises(ValueError, match=r"leaves classes \[1\] without samples"):
        build(user_config(), data=data, model=lambda c: nn.Linear(20, c))


class _NoEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.head = nn.Linear(20, c)

    def forward(self, x):
        return self.head(x)


class _OddHead(_NoEmbed):
    def __init__(self, c):
        super().__init__(c)
        self.head = nn.Sequential(nn.Linear(20, c))

    def embed(self, x):
        return x


class _NanLogits(_NoEmbed):
    def forward(self, x):
        return self.head(x) * float("nan")


class _NoParameters(nn.Module):
    def __init__(self, c):
        super().__init__()

    def forward(self, x):
        return x[:, :3]


@pytest.mark.parametrize(
    ("strategy", "factory", "message"),
    [
        ("coreset", _NoEmbed, r"strategy 'coreset' needs embed\(x\)"),
        ("badge", _OddHead, r"strategy 'badge' needs head \(the final nn.Linear\)"),
        ("entropy", _NanLogits, "returns NaN or inf logits on pool samples \\[0, 1\\]"),
        ("entropy", _NoParameters, "has no parameters to train"),
    ],
)
def test_a_model_without_what_the_strategy_needs_is_named(strategy, factory, message):
    with pytest.raises(ValueError, match=message):
        build(user_config(strategy=strategy), data=(blobs(30, 0), blobs(9, 1)), model=factory)


def test_a_model_with_what_the_strategy_needs_passes():
    from tests.user_parts import MLP

    parts = build(user_config(strategy="badge"), data=(blobs(30, 0), blobs(9, 1)), model=MLP)
    assert parts.model_factory == "tests.user_parts.MLP" and parts.source == "in-memory"


def test_build_returns_the_configs_parts(monkeypatch):
    import fmlib.build as build_module

    checked = []
    monkeypatch.setattr(build_module, "check_memory", lambda *a: checked.append(a[3]))
    config = user_config(initial_size=5, query_size=4, budget=13)
    hook = lambda *a, **k: {}  # noqa: E731
    parts = build(config, data=(blobs(30, 0), blobs(9, 1)), model=_NoEmbed, train=hook)
    assert checked == [(30, 3)]
    assert parts.schedule == config.schedule() == [5, 9, 13]
    assert len(parts.initial) == 5 and len(set(parts.initial.tolist())) == 5
    assert parts.train is hook and parts.device == torch.device("cpu")
    assert parts.training == config.training() and parts.strategy.name == "entropy"
    assert parts.data.pool.num_classes == 3 and parts.config is config
    build(config, data=(blobs(30, 0), blobs(9, 1)), model=_NoEmbed, memory_checked=True)
    assert len(checked) == 1


def test_a_train_hook_that_is_not_callable_is_named():
    with pytest.raises(ValueError, match="train must be a callable"):
        build(user_config(), data=(blobs(30, 0), blobs(9, 1)), model=_NoEmbed, train="fit")


def test_a_train_hook_passed_to_build_wins_over_the_config_s_trainer():
    hook = lambda *a, **k: {}  # noqa: E731
    config = user_config(trainer="tests.user_trainer:sgd")
    data = (blobs(30, 0), blobs(9, 1))
    assert build(config, data=data, model=_NoEmbed, train=hook).train is hook
    from tests.user_trainer import sgd

    assert build(config, data=data, model=_NoEmbed).train is sgd
