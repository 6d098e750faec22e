"""``ExperimentConfig``: the user's parts and strategies by name, validated before any data is
read."""

from __future__ import annotations

import pytest

from fmlib.config import ExperimentConfig
from tests.fakes import NAMED, user_config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"dataset": "tests.user_parts:missing"},
            (
                "dataset 'tests.user_parts:missing': module 'tests.user_parts' has no attribute"
                " 'missing'"
            ),
        ),
        ({"dataset": "tests.no_such_module:f"}, "cannot import module 'tests.no_such_module'"),
        (
            {"dataset": "tests.user_parts:NOT_CALLABLE"},
            "is a int, not a function that can be called",
        ),
        (
            {"dataset": "fashion_mnist", "dataset_options": {"pool": 3}},
            "built-in dataset 'fashion_mnist' takes none",
        ),
        ({"imbalance": "paper"}, "with dataset factory 'tests.user_parts:blob_data' use 'none'"),
        (
            {"model": "tests.user_parts:Missing"},
            "module 'tests.user_parts' has no attribute 'Missing'",
        ),
        (
            {"model": "mlp"},
            "or 'package.module:function' (your factory: function(num_classes, **model_options)",
        ),
        (
            {"dataset": "cifar"},
            "allowed values: ['fashion_mnist', 'cifar10'] or 'package.module:function'",
        ),
        ({"dataset_options": [1]}, "dataset_options must be a dict, got list"),
    ],
)
def test_bad_names_of_the_users_parts_are_named_before_any_data_is_read(changes, message):
    problems = user_config(**{**NAMED, **changes}).problems()
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    "strategy, first_query, trains",
    [
        ("bait", "authors", True),
        ("fishermask", "authors", False),
        ("entropy", "authors", False),
        ("bait", "initial", False),
        ("entropy", "trained", True),
    ],
)
def test_authors_protocol_trains_only_bait_first(strategy, first_query, trains):
    assert ExperimentConfig(strategy=strategy, first_query=first_query).trains_first() is trains


def test_first_query_rejects_unknown_values():
    with pytest.raises(ValueError, match="first_query.*allowed values"):
        ExperimentConfig(first_query="untrained").validate()
