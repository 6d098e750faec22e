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
