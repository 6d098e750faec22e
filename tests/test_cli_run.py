"""``fmlib run``'s config (fmlib.cli_run): a JSON file of fields or a run's config.json, then the
flags, then ``--set``, each over the last; a default output folder named after the run; every
mistake a UserError naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmlib.checks import UserError
from fmlib.cli import parser
from fmlib.cli_run import build_config, config_values, field_assignment, read_config_file
from tests.fakes import DATA, MODEL, USER


def run_args(*argv: str):
    return parser().parse_args(["run", *argv])


def test_a_config_file_is_an_object_of_fields_or_a_runs_config_json(tmp_path):
    (tmp_path / "fields.json").write_text('{"seed": 3, "strategy": "margin"}')
    assert read_config_file(tmp_path / "fields.json") == {"seed": 3, "strategy": "margin"}
    (tmp_path / "config.json").write_text(json.dumps({"config": {"seed": 4}, "fmlib_version": "1"}))
    assert read_config_file(tmp_path / "config.json") == {"seed": 4}
    (tmp_path / "nested.json").write_text('{"config": {"seed": 4}}')  # no version: fields as given
    assert read_config_file(tmp_path / "nested.json") == {"config": {"seed": 4}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file {path} not found"),
        (b"{seed: 3", "config file {path} is not valid JSON"),
        (b"\xff\xfe{}", "config file {path} is not UTF-8 text (byte 0"),
        (b"[1, 2]", "config file {path} must hold a JSON object of config fields, got list"),
    ],
)
def test_a_bad_config_file_is_named(tmp_path, content, message):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_config_file(path)
    assert message.format(path=path) in str(err.value)


def test_the_flags_override_the_file_and_set_overrides_the_flags(tmp_path):
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "seed": 1,
                "strategy": "margin",
                "budget": 50,
                "train_options": {"epochs": 3, "lr": 0.1},
            }
        )
    )
    args = run_args(
        "-c",
        str(tmp_path / "c.json"),
        "--seed",
        "2",
        "--set",
        "seed=5",
        "--set",
        "train_options.epochs=7",
        "-o",
        "out",
        "--no-progress",
    )
    assert config_values(args) == {
        "seed": 5,
        "strategy": "margin",
        "budget": 50,
        "output_dir": "out",
        "train_options": {"epochs": 7, "lr": 0.1},
        "progress": False,
    }


def test_set_with_a_key_is_only_for_the_option_fields():
    with pytest.raises(UserError, match=r"--set budget.max: FIELD.KEY is for \[.*'train_options'"):
        config_values(run_args("--set", "budget.max=3"))
    assert field_assignment("seed=3") == ("seed", 3) and field_assignment("model=cnn") == (
        "model",
        "cnn",
    )


def test_the_default_output_folder_is_named_after_the_run_and_says_smoke():
    named = ["--dataset", DATA, "--model", MODEL, "--strategy", USER, "--imbalance", "none"]
    config = build_config(run_args(*named, "--seed", "4"))
    assert Path(config.output_dir) == Path("runs") / (
        "tests.user_parts_blob_data-none-tests.user_strategy_LowestMaxProb-seed4"
    )
    smoke = build_config(run_args(*named, "--smoke"))
    assert smoke.output_dir.endswith("-seed0-smoke") and smoke.budget is None and smoke.rounds == 2
    assert build_config(run_args(*named, "-o", "mine")).output_dir == "mine"


def test_an_invalid_config_is_a_user_error_naming_the_field():
    with pytest.raises(UserError, match="query_size"):
        build_config(
            run_args(
                "--dataset", DATA, "--model", MODEL, "--imbalance", "none", "--set", "query_size=0"
            )
        )


def test_a_config_path_that_cannot_be_read_is_named(tmp_path):
    with pytest.raises(UserError, match=rf"cannot read config file {tmp_path}: "):
        read_config_file(tmp_path)  # a folder


def test_every_flag_sets_its_field():
    args = run_args(
        *("--dataset", "cifar10", "--imbalance", "none", "--model", "resnet18"),
        *("--strategy", "badge", "--seed", "3", "--device", "cuda:1"),
    )
    assert config_values(args) == {
        "dataset": "cifar10",
        "imbalance": "none",
        "model": "resnet18",
        "strategy": "badge",
        "seed": 3,
        "device": "cuda:1",
    }
    assert config_values(run_args()) == {}
