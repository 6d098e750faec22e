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


def _problems(**changes) -> list[str]:
    """The problems of the user's parts by name with ``changes``, without a trial model."""
    return user_config(**{**NAMED, **changes}).problems(parts=False)


def test_the_users_parts_by_name_have_no_problems():
    assert _problems() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ratio": 0.99}, "ratio must be a finite number >= 1, got 0.99"),
        ({"ratio": float("nan")}, "ratio must be a finite number >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": None}, "seed must be an integer >= 0, got None"),
        ({"data_seed": -1}, "data_seed must be an integer >= 0 or None, got -1"),
        ({"budget": None, "rounds": None}, "set budget (total labels) or rounds"),
        ({"download": 1}, "download must be true or false, got 1"),
        ({"progress": "yes"}, "progress must be true or false"),
        ({"full_fisher": None}, "full_fisher must be true or false"),
        ({"allow_thread_change": 0}, "allow_thread_change must be true or false"),
        ({"allow_torch_change": "no"}, "allow_torch_change must be true or false"),
        ({"imbalance": "steps"}, "unknown imbalance 'steps'"),
        ({"initial_method": "stratified"}, "unknown initial_method 'stratified'"),
        ({"train_preset": "fast"}, "unknown train_preset 'fast'"),
        ({"first_query": None}, "unknown first_query None"),
        ({"minority_classes": [0]}, "minority_classes [0] is used only with imbalance 'step'"),
        (
            {"imbalance": "longtail", "minority_classes": [1]},
            "minority_classes [1] is used only with imbalance 'step'",
        ),
        (
            {"imbalance": "step", "minority_classes": [0.5]},
            "minority_classes must be a list of class indices",
        ),
        ({"imbalance": "step", "minority_classes": 0}, "minority_classes must be a list"),
        ({"output_dir": ""}, "output_dir must be a directory path or None, got ''"),
        ({"output_dir": 3}, "output_dir must be a directory path or None"),
        ({"trainer": "fit"}, "trainer must be None (fmlib.train.fit) or 'package.module:function'"),
        ({"device": "gpu"}, "device: "),
        ({"data_root": ""}, "data_root must be a folder path or None"),
        ({"data_root": "/no/such/folder"}, "data_root '/no/such/folder' does not exist"),
        ({"model_options": None}, "model_options must be a dict, got NoneType"),
        ({"strategy_options": []}, "strategy_options must be a dict, got list"),
        ({"train_options": "x"}, "train_options must be a dict, got str"),
        ({"pool_size": 17}, "pool_size"),
    ],
)
def test_each_bad_field_is_named(changes, message):
    problems = _problems(**changes)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    "changes",
    [
        {"ratio": 1},
        {"ratio": 2.5, "imbalance": "step", "minority_classes": [0, 2]},
        {"imbalance": "step", "minority_classes": []},
        {"seed": 0, "data_seed": 0},
        {"data_seed": None},
        {"budget": None, "rounds": 2},
        {"rounds": 0},
        {"download": True, "data_root": "/no/such/folder"},
        {"progress": False, "full_fisher": True},
        {"output_dir": "runs/x"},
        {"trainer": None, "device": "cpu"},
        {"pool_size": 18},
    ],
)
def test_fields_at_their_bounds_pass(changes):
    assert _problems(**changes) == []


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError, match=r"^3 problems:\n  ratio.*\n  seed.*\n  output_dir"):
        user_config(**NAMED, ratio=0, seed=-1, output_dir="").validate(parts=False)
    with pytest.raises(ValueError, match=r"^2 problems:\n  ratio.*\n  seed"):
        user_config(**NAMED, ratio=0, seed=-1).validate(parts=False)
    with pytest.raises(ValueError, match=r"^seed must be"):
        user_config(**NAMED, seed=-1).validate(parts=False)


def test_validate_passes_once_per_field_values():
    config = user_config(**NAMED)
    built = {}
    config.validate(parts=False, built=built)
    assert "strategy" in built
    again = {}
    config.validate(parts=False, built=again)
    assert again["strategy"] is built["strategy"]
    config.seed = -1  # a changed field is checked again
    with pytest.raises(ValueError, match="seed must be"):
        config.validate(parts=False)


def test_validate_checks_again_when_asked_for_more_checks():
    config = user_config(**NAMED)
    config.validate(parts=False, check_strategy=False)
    built = {}
    config.validate(parts=False, built=built)  # the strategy is built this time
    assert "strategy" in built


@pytest.mark.parametrize(
    ("seed", "data_seed", "expected"), [(5, None, 5), (5, 0, 0), (5, 3, 3), (0, 7, 7)]
)
def test_data_seed_or_seed(seed, data_seed, expected):
    assert ExperimentConfig(seed=seed, data_seed=data_seed).data_seed_or_seed() == expected


def test_from_dict_names_unknown_fields_and_to_dict_round_trips():
    import numpy as np

    with pytest.raises(ValueError, match=r"unknown config fields \['sed'\]"):
        ExperimentConfig.from_dict({"sed": 1})
    config = ExperimentConfig(
        minority_classes=[np.int64(1), 2], output_dir=__import__("pathlib").Path("r")
    )
    out = config.to_dict()
    assert out["minority_classes"] == [1, 2] and type(out["minority_classes"][0]) is int
    assert out["output_dir"] == "r"
    assert ExperimentConfig.from_dict(out).to_dict() == out
    assert ExperimentConfig.defaults() == ExperimentConfig().to_dict()


def test_schedule_and_check_pool():
    config = ExperimentConfig(initial_size=4, query_size=3, budget=10)
    assert config.schedule() == [4, 7, 10]
    config.check_pool(10)
    with pytest.raises(ValueError, match="the pool"):
        config.check_pool(9)


def test_training_merges_the_options_into_the_preset():
    from fmlib.train import TRAIN_PRESETS

    config = ExperimentConfig(train_preset="default", train_options={"epochs": 3})
    assert config.training().epochs == 3
    assert config.training().lr == TRAIN_PRESETS["default"].lr
    with pytest.raises(ValueError, match="train_options: "):
        ExperimentConfig(train_options={"epochs": 0}).training()


def test_filled_in_fills_the_presets_options():
    from fmlib.config import filled_in
    from fmlib.train import TRAIN_PRESETS

    out = filled_in({"train_preset": "default", "train_options": {"epochs": 3}, "seed": 1})
    assert out["train_options"] == {**TRAIN_PRESETS["default"].to_dict(), "epochs": 3}
    assert out["seed"] == 1
    assert filled_in({"train_preset": "none", "train_options": {}})["train_options"] == {}


def test_smoke_config_caps_each_size():
    from dataclasses import replace

    from fmlib.config import smoke_config

    big = ExperimentConfig(
        strategy="bait",
        pool_size=5000,
        test_size=None,
        initial_size=40,
        query_size=50,
        rounds=9,
        train_options={"epochs": 30},
        strategy_options={"fisher_samples": 500},
    )
    small = smoke_config(big, rounds=3, epochs=2, fisher_samples=64)
    assert (small.pool_size, small.test_size, small.initial_size, small.query_size) == (
        200,
        200,
        15,
        10,
    )
    assert small.rounds == 3 and small.budget is None and small.training().epochs == 2
    assert small.strategy_options["fisher_samples"] == 64
    few = replace(big, strategy_options={"fisher_samples": 30})
    assert smoke_config(few).strategy_options["fisher_samples"] == 30
    assert smoke_config(replace(big, strategy_options={})).strategy_options["fisher_samples"] == 64
    tiny = ExperimentConfig(pool_size=50, test_size=20, initial_size=5, query_size=2, rounds=1)
    kept = smoke_config(tiny)
    assert (kept.pool_size, kept.test_size, kept.initial_size, kept.query_size, kept.rounds) == (
        50,
        20,
        5,
        2,
        1,
    )
    with pytest.raises(ValueError, match="query_size"):
        smoke_config(ExperimentConfig(query_size=0))


@pytest.mark.parametrize(
    ("changes", "same"),
    [
        ({"data_root": "/elsewhere", "download": True}, True),
        ({"device": "cpu"}, True),
        ({"output_dir": "/another/run"}, True),
        ({"progress": False}, True),
        ({"allow_thread_change": True, "allow_torch_change": True}, True),
        ({"seed": 1}, False),
        ({"data_seed": 3}, False),
        ({"query_size": 71}, False),
    ],
    ids=repr,
)
def test_where_a_run_lives_and_what_it_shows_change_no_result(tmp_path, changes, same):
    from dataclasses import replace

    from fmlib.config import comparison
    from fmlib.records import RunDirectory

    run = RunDirectory(tmp_path)
    made = ExperimentConfig(progress=True, device=None)
    run.write_meta({"config": made.to_dict(), "schedule": made.schedule()})
    differences = run.differences(replace(made, **changes).to_dict(), **comparison())
    assert (differences == []) is same, differences
