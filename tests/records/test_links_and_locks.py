"""Hostile run directories: records never follow a symlink out of their run directory, a stale
lock says truly why it is stale, and an option set to its default is the same config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from fmlib.config import ExperimentConfig, comparison
from fmlib.experiment import run_experiment
from fmlib.records import DamagedRunError, RunDirectory
from tests.user_parts import MLP, blobs

DATA = (blobs(60, 0), blobs(30, 1))


def config(output_dir, **overrides) -> dict:
    values = dict(initial_size=6, query_size=3, budget=None, rounds=1, strategy="fishermask",
                  strategy_options={"fisher_samples": 16, "fraction": 0.2}, train_preset="default",
                  train_options={"epochs": 1}, device="cpu", progress=False, output_dir=str(output_dir))  # fmt: skip
    return {**values, **overrides}


def test_reopening_a_run_whose_sensitivity_links_to_another_run_touches_neither(
    tmp_path, one_thread
):
    first, second = tmp_path / "first", tmp_path / "second"
    run_experiment(config(second, seed=1), data=DATA, model=MLP)
    run_experiment(config(first, rounds=2), data=DATA, model=MLP, max_rounds=1)
    kept = {p.name: p.read_bytes() for p in (second / "sensitivity").iterdir()}
    assert kept
    for snapshot in (first / "sensitivity").iterdir():
        snapshot.unlink()
    (first / "sensitivity").rmdir()
    (first / "sensitivity").symlink_to(second / "sensitivity")
    with pytest.raises(DamagedRunError, match=r"sensitivity is a symbolic link .*delete the link"):
        run_experiment(config(first, rounds=2), data=DATA, model=MLP)
    assert {p.name: p.read_bytes() for p in (second / "sensitivity").iterdir()} == kept


def test_a_stale_lock_of_a_live_reused_pid_is_called_reused_not_gone(tmp_path):
    run = RunDirectory(tmp_path / "run")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cases = [
            ({"pid": alive.pid, "host": socket.gethostname(), "since": "then"}, rf"pid {alive.pid} is alive but does "
             r"not hold the lock \(the pid was reused"),
            ({"pid": alive.pid, "host": "elsewhere.example", "since": "then"}, r"written on host 'elsewhere.example'"),
            ({"pid": 2**22 + 12345, "host": socket.gethostname(), "since": "then"}, r"that process is gone"),
        ]  # fmt: skip
        for holder, message in cases:
            (tmp_path / "run").mkdir(exist_ok=True)
            (tmp_path / "run" / ".lock").write_text(json.dumps(holder))
            with pytest.warns(UserWarning, match=message), run.lock():
                pass
    finally:
        alive.kill()
        alive.wait()
    assert os.path.isdir(tmp_path / "run")


@pytest.mark.parametrize(("preset", "options", "same"), [
    ("default", {"epochs": 30}, True),  # 30 is the default preset's epochs
    ("paper", {"grad_clip_value": 0.1, "target_train_acc": 0.99}, True),
    ("default", {"epochs": 29}, False),
    ("default", {"lr": 1e-2}, False),
])  # fmt: skip
def test_an_option_set_to_its_default_is_the_same_config_and_another_value_is_not(
    tmp_path, preset, options, same
):
    run = RunDirectory(tmp_path)
    made = ExperimentConfig(train_preset=preset, train_options={}).to_dict()
    run.write_meta({"config": made, "schedule": [15, 20]})
    asked = ExperimentConfig(train_preset=preset, train_options=options).to_dict()
    differences = run.differences(asked, **comparison())
    assert (differences == []) is same, differences
    assert (run.status(asked, **comparison()) != "stale") is same
