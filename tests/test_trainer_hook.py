"""A user's own training loop (tests/user_trainer.py: plain SGD) inside run_experiment, by object
and by name through a config, the CLI, the grid and papermill; a hook that returns nothing or
raises is named, its round is not recorded and the run resumes."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from fmlib.config import ExperimentConfig
from fmlib.experiment import run_experiment
from tests import user_trainer
from tests.fakes import blobs_run

ROOT = Path(__file__).resolve().parents[1]
HOOK = "tests.user_trainer:sgd"


def small_run(**changes) -> dict:
    return blobs_run(**changes)


def test_the_hook_trains_every_round_and_its_stats_are_recorded(one_thread, tmp_path):
    user_trainer.CALLS.clear()
    records = run_experiment(small_run(output_dir=str(tmp_path)), train=user_trainer.sgd)
    assert [len(positions) for positions, _ in user_trainer.CALLS] == [6, 12, 18]
    rows = pd.read_csv(tmp_path / "rounds.csv")
    assert rows["train_epochs"].tolist() == [25, 25, 25] and rows["train_loss"].notna().all()
    # not given: NaN; timed
    assert rows["train_accuracy"].isna().all() and (rows["train_time"] > 0).all()
    assert records.meta["train_hook"] == "tests.user_trainer.sgd"
    assert rows["accuracy"].iloc[-1] > 0.9  # blobs are easy: the hook really trains


def test_the_hook_by_name_in_a_config_runs_as_the_object_does(one_thread, tmp_path):
    by_object = run_experiment(
        small_run(output_dir=str(tmp_path / "object")), train=user_trainer.sgd
    )
    by_name = run_experiment(small_run(output_dir=str(tmp_path / "name"), trainer=HOOK))
    drop = ["train_time", "eval_time", "select_time", "embed_time"]
    pd.testing.assert_frame_equal(
        by_object.rounds_frame().drop(columns=drop), by_name.rounds_frame().drop(columns=drop)
    )
    assert json.loads((tmp_path / "name" / "config.json").read_text())["config"]["trainer"] == HOOK
    default = run_experiment(small_run())
    assert default.rounds_frame()["train_epochs"].tolist() != [25, 25, 25]  # fit, not the hook


@pytest.mark.parametrize(
    "name, message",
    [
        ("tests.user_trainer:missing", "has no attribute 'missing'"),
        ("tests.user_parts:NOT_CALLABLE", "not a function that can be called"),
        ("sgd", "trainer must be None"),
    ],
    ids=["missing", "not-callable", "not-named"],
)
def test_a_bad_trainer_name_is_named_before_anything_is_written(tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**small_run(trainer=name)).validate()
    with pytest.raises(ValueError, match=message):
        run_experiment(small_run(trainer=name, output_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_a_hook_that_returns_nothing_is_named_and_its_round_not_recorded(one_thread, tmp_path):
    with pytest.raises(
        ValueError, match="returns_nothing returned NoneType in round 0; it must return a dict"
    ):
        run_experiment(small_run(output_dir=str(tmp_path)), train=user_trainer.returns_nothing)
    assert not (tmp_path / "rounds.csv").exists()


def test_a_hook_that_raises_leaves_the_round_unrecorded_and_the_run_resumes(one_thread, tmp_path):
    flaky = user_trainer.Flaky(2)  # fails in round 1
    with pytest.raises(
        RuntimeError, match="the training hook Flaky raised in round 1: RuntimeError: out of memory"
    ):
        run_experiment(small_run(output_dir=str(tmp_path)), train=flaky)
    assert len(pd.read_csv(tmp_path / "rounds.csv")) == 1
    resumed = run_experiment(small_run(output_dir=str(tmp_path)), train=flaky)
    whole = run_experiment(small_run(), train=user_trainer.sgd)
    drop = ["train_time", "eval_time", "select_time", "embed_time"]
    pd.testing.assert_frame_equal(
        resumed.rounds_frame().drop(columns=drop), whole.rounds_frame().drop(columns=drop)
    )


def test_the_cli_runs_the_hook_by_name(one_thread, tmp_path):
    from fmlib.cli import main

    user_trainer.CALLS.clear()
    values = small_run(trainer=HOOK)
    flags = [
        arg for key, value in values.items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]
    assert main(["run", *flags, "--no-progress", "-o", str(tmp_path / "run")]) == 0
    assert len(user_trainer.CALLS) == 3
    assert pd.read_csv(tmp_path / "run" / "rounds.csv")["train_epochs"].tolist() == [25, 25, 25]


def test_the_inline_grid_runs_the_hook_by_name(tmp_path):
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    threads = torch.get_num_threads()
    try:
        outcomes = run_grid(
            expand_grid({"base": small_run(trainer=HOOK), "axes": {"seed": [0, 1]}}),
            tmp_path,
            executor="inline",
            threads=1,
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    for rounds in tmp_path.glob("*/rounds.csv"):
        assert pd.read_csv(rounds)["train_epochs"].tolist() == [25, 25, 25]


@pytest.mark.slow
@pytest.mark.notebook
def test_papermill_runs_the_hook_by_name(tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    parameters = {**small_run(trainer=HOOK), "output_dir": str(run), "smoke": True}
    pm.execute_notebook(
        str(ROOT / "notebooks" / "active_learning.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters=parameters,
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    assert json.loads((run / "config.json").read_text())["config"]["trainer"] == HOOK
    assert set(pd.read_csv(run / "rounds.csv")["train_epochs"]) == {25}


@pytest.mark.slow
@pytest.mark.notebook
def test_the_notebook_grid_runs_the_hook_by_name(tmp_path, monkeypatch):
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("FMLIB_SMOKE", raising=False)  # a grid refuses smoke results
    grid = {"base": small_run(trainer=HOOK, budget=12)}
    (outcome,) = run_grid(expand_grid(grid), tmp_path, workers=1, threads=1, progress=False)
    assert outcome.status == "done", outcome.error
    (rounds,) = tmp_path.glob("*/rounds.csv")
    assert pd.read_csv(rounds)["train_epochs"].tolist() == [25, 25]
