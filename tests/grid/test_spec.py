"""Grid files expand into named runs, and every grid file in grids/ validates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import fmlib.grid.spec
from fmlib.experiment import ExperimentConfig
from fmlib.grid.spec import expand_grid, load_grid
from tests.grid.tiny import write_grid

ROOT = Path(__file__).resolve().parents[2]


GRID_FILES = sorted((ROOT / "grids").glob("*.json"))


READY_GRIDS = ("cifar10_gpu", "cifar10_cpu", "fashion_mnist_gpu", "fashion_mnist_cpu")


STRATEGIES = {"fishermask", "bait", "badge", "coreset", "entropy", "margin", "random", "bald"}


def test_axes_come_in_canonical_order_and_name_the_runs():
    axes = {
        "query_size": [35, 70],
        "seed": [0, 1],
        "strategy": ["random", "entropy"],
        "dataset": ["fashion_mnist"],
    }
    runs = expand_grid({"base": {"model": "cnn"}, "axes": axes})
    assert [r.name for r in runs[:5]] == [
        # dataset, imbalance, strategy, seed, then the others
        "fashion_mnist-random-seed0-query_size35",
        "fashion_mnist-random-seed0-query_size70",  # the last axis varies fastest
        "fashion_mnist-random-seed1-query_size35",
        "fashion_mnist-random-seed1-query_size70",
        "fashion_mnist-entropy-seed0-query_size35",
    ]
    assert len(runs) == 8 and len({r.name for r in runs}) == 8
    assert runs[0].params == {
        "model": "cnn",
        "dataset": "fashion_mnist",
        "strategy": "random",
        "seed": 0,
        "query_size": 35,
    }
    assert runs[0].path("out") == Path("out") / runs[0].name


def option_grid() -> dict:
    return {
        "base": {"strategy_options": {"batch_size": 64}, "train_options": {"epochs": 5}},
        "axes": {
            "strategy": [
                {
                    "strategy": "fishermask",
                    "strategy_options": {"fraction": 0.003},
                },  # labelled by its strategy
                {
                    "name": "fm_random",
                    "strategy": "fishermask",
                    "strategy_options": {"method": "random"},
                },
                "entropy",
            ],
            "imbalance": {
                "imbalanced": {"imbalance": "paper", "budget": 575},
                "balanced": {"imbalance": "none"},
            },
        },
    }


def test_dict_variants_and_dict_elements_merge_into_the_base():
    grid = option_grid()
    before = copy.deepcopy(grid)
    runs = {r.name: r.params for r in expand_grid(grid)}
    assert list(runs) == [
        f"{i}-{s}"
        for i in ("imbalanced", "balanced")
        for s in ("fishermask", "fm_random", "entropy")
    ]
    assert runs["imbalanced-fishermask"] == {
        "strategy_options": {
            "batch_size": 64,
            "fraction": 0.003,
        },  # dict fields merge one level deep
        "train_options": {"epochs": 5},
        "imbalance": "paper",
        "budget": 575,
        "strategy": "fishermask",
    }
    # no "name" field
    assert runs["balanced-fm_random"]["strategy_options"] == {
        "batch_size": 64,
        "method": "random",
    }
    assert runs["balanced-entropy"] == {
        "strategy_options": {"batch_size": 64},
        "train_options": {"epochs": 5},
        "imbalance": "none",
        "strategy": "entropy",
    }
    runs["balanced-entropy"]["strategy_options"]["batch_size"] = (
        1  # runs share no dicts with each other or the grid
    )
    assert grid == before and runs["imbalanced-entropy"]["strategy_options"] == {"batch_size": 64}


def test_overrides_apply_after_the_axes_and_merge_dict_fields():
    overrides = {
        "budget": 155,
        "strategy_options": {"max_candidates": 500},
        "train_options": {"epochs": 1},
    }
    runs = {r.name: r.params for r in expand_grid(option_grid(), overrides=overrides)}
    assert {p["budget"] for p in runs.values()} == {155}
    assert runs["imbalanced-fishermask"]["strategy_options"] == {
        "batch_size": 64,
        "fraction": 0.003,
        "max_candidates": 500,
    }
    assert runs["balanced-entropy"]["train_options"] == {"epochs": 1}


@pytest.mark.parametrize(
    "select, names",
    [
        (
            {"imbalance": ["paper"]},
            ["imbalanced-fishermask", "imbalanced-fm_random", "imbalanced-entropy"],
        ),  # by value
        (
            {"strategy": ["fm_random", "entropy"], "imbalance": ["balanced"]},
            ["balanced-fm_random", "balanced-entropy"],
        ),
        (
            {"strategy": ["fishermask"], "imbalance": ["none"]},
            ["balanced-fishermask", "balanced-fm_random"],
        ),
        (
            {
                "strategy": ["entropy"],
                "seed": [0, 1],
                "dataset": [],
            },  # a new axis; an empty one changes nothing
            [
                "imbalanced-entropy-seed0",
                "imbalanced-entropy-seed1",
                "balanced-entropy-seed0",
                "balanced-entropy-seed1",
            ],
        ),
    ],
    ids=["value", "labels", "value-matches-two", "new-axis"],
)
def test_select_keeps_axis_elements_by_label_or_value_or_adds_an_axis(select, names):
    assert [r.name for r in expand_grid(option_grid(), select=select)] == names


def test_select_of_a_missing_value_is_an_error():
    with pytest.raises(
        ValueError,
        match=r"axis 'strategy' has no values \['bald'\]; it has \['fishermask', 'fm_random', ",
    ):
        expand_grid(option_grid(), select={"strategy": ["bald", "entropy"]})


def test_runs_with_the_same_name_are_an_error():
    grid = {
        "axes": {
            "strategy": ["random", {"strategy": "random", "strategy_options": {"batch_size": 8}}]
        }
    }
    with pytest.raises(ValueError, match="two runs are both named 'random'"):
        expand_grid(grid)


@pytest.mark.parametrize(
    "grid, overrides, message",
    [
        (
            {"base": {"budgt": 5}},
            None,
            r"base: unknown config fields \['budgt'\]; allowed: \['dataset', ",
        ),
        (
            {"axes": {"imbalance": {"x": {"imbalace": "paper"}}}},
            None,
            r"axis 'imbalance': unknown config fields \['imbalace'\]",
        ),
        ({"axes": {"sed": [0, 1]}}, None, r"axis 'sed': unknown config fields \['sed'\]"),
        ({}, {"querysize": 5}, r"--set: unknown config fields \['querysize'\]"),
        (
            {"base": {"output_dir": "x"}},
            None,
            r"unknown config fields \['output_dir'\]",
        ),  # the runner sets it
    ],
    ids=["base", "variant", "axis", "override", "reserved"],
)
def test_unknown_config_fields_are_named(grid, overrides, message):
    with pytest.raises(ValueError, match=message):
        expand_grid(grid, overrides=overrides)


def test_dict_elements_need_a_label_and_grid_files_known_keys(tmp_path):
    with pytest.raises(ValueError, match=r"dict element .* needs a 'name' or a 'strategy' field"):
        expand_grid({"axes": {"strategy": [{"strategy_options": {}}]}})
    with pytest.raises(ValueError, match=r"unknown grid keys \['bases'\]"):
        load_grid(write_grid(tmp_path / "g.json", {"bases": {}}))


def test_the_docstring_example_grid_expands_to_valid_runs():
    example = fmlib.grid.spec.__doc__.split("::\n\n", 1)[1].split("\n\nAn axis", 1)[0]
    runs = expand_grid(json.loads(example))
    assert len(runs) == 12 and runs[0].name == "fashion_mnist-imbalanced-random-seed0"
    assert "fashion_mnist-imbalanced-fishermask-seed0" in {r.name for r in runs}
    for run in runs:
        ExperimentConfig.from_dict(run.params).validate(check_dataset=False)


@pytest.mark.parametrize("path", GRID_FILES, ids=[p.stem for p in GRID_FILES])
def test_every_grid_file_expands_to_valid_configs(path):
    grid = load_grid(path)
    runs = expand_grid(grid)
    assert grid.get("description") and runs
    for run in runs:
        ExperimentConfig.from_dict(run.params).validate(check_dataset=False)


@pytest.mark.parametrize("name", READY_GRIDS)
def test_ready_grids_compare_fishermask_with_every_baseline_balanced_and_imbalanced(name):
    path = ROOT / "grids" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    runs = expand_grid(load_grid(path))
    assert {r.params["strategy"] for r in runs} == STRATEGIES
    assert {r.params["imbalance"] for r in runs} == {"paper", "none"}
    assert len({r.params["seed"] for r in runs}) == 3
    assert {r.params["dataset"] for r in runs} == {name.rsplit("_", 1)[0]}


def test_every_options_field_merges_including_a_dataset_factorys():
    grid = {
        "base": {
            "dataset": "mine:load",
            "dataset_options": {"n": 100, "dim": 8},
            "model_options": {"hidden": 8},
        },
        "axes": {
            "size": {
                "small": {"dataset_options": {"n": 50}},
                "wide": {"model_options": {"width": 2}},
            }
        },
    }
    runs = {r.name: r.params for r in expand_grid(grid, overrides={"dataset_options": {"seed": 3}})}
    assert runs["small"]["dataset_options"] == {"n": 50, "dim": 8, "seed": 3}
    assert runs["wide"]["model_options"] == {"hidden": 8, "width": 2}
    assert runs["wide"]["dataset_options"] == {"n": 100, "dim": 8, "seed": 3}


def test_a_label_of_separators_alone_is_an_underscore_not_an_empty_name():
    from fmlib.grid.spec import slug

    assert slug("//") == "_" and slug("a b/c") == "a_b_c" and slug("_x_") == "x"
    runs = expand_grid({"axes": {"strategy": ["//"], "seed": [0]}})
    assert [r.name for r in runs] == ["_-seed0"]
    (alone,) = expand_grid({"axes": {"strategy": ["/"]}})
    assert alone.name == "_" and alone.path("out") == Path("out") / "_"


@pytest.mark.parametrize("values", [[], (), {}, "random", 3], ids=repr)
def test_an_empty_or_scalar_axis_is_an_error(values):
    with pytest.raises(ValueError, match=r"axis 'strategy' must be a non-empty list"):
        expand_grid({"axes": {"strategy": values}})


def test_scalar_values_are_labelled_by_their_axis_and_their_json():
    axes = {"seed": [0, None], "download": [True], "ratio": [2.5]}
    names = [r.name for r in expand_grid({"axes": axes})]
    assert names == ["seed0-downloadtrue-ratio2.5", "seednull-downloadtrue-ratio2.5"]
    labelled = expand_grid({"axes": {"strategy": ["margin", {"strategy": "entropy", "seed": 1}]}})
    assert [(r.name, r.params) for r in labelled] == [
        ("margin", {"strategy": "margin"}),
        ("entropy", {"strategy": "entropy", "seed": 1}),
    ]
