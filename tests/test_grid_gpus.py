"""Local grid workers spread over the visible GPUs, round-robin, one GPU each, recorded per run
(with a fake device list: ``CUDA_VISIBLE_DEVICES`` needs no GPU to be read)."""

from __future__ import annotations

import json
import os

import fmlib.grid.runner as runner
from fmlib.grid.spec import expand_grid
from tests.test_grid import tiny_grid


def test_local_workers_take_the_visible_gpus_round_robin(tmp_path, fashion_root, monkeypatch):
    seen = {}

    def fake_execute(run, root, *, notebook, kernel_name, threads, gpu=None):
        with runner._kernel_env(threads, gpu):
            seen[run.name] = os.environ.get("CUDA_VISIBLE_DEVICES")
        return runner.RunOutcome(run.name, "done", gpu=gpu)

    monkeypatch.setattr(runner, "execute_run", fake_execute)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert runner.visible_gpus() == ["3", "5"]
    runs = expand_grid(tiny_grid(fashion_root, "random", "entropy", "margin"))
    outcomes = runner.run_grid(runs, tmp_path, progress=False)
    assert seen == {"random": "3", "entropy": "5", "margin": "3"}
    assert [o.gpu for o in outcomes] == ["3", "5", "3"]
    assert [o["gpu"] for o in json.loads((tmp_path / runner.SUMMARY).read_text())] == [
        "3",
        "5",
        "3",
    ]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"  # restored

    seen.clear()
    runner.run_grid(runs, tmp_path / "given", gpus=["7"], progress=False)
    assert set(seen.values()) == {"7"}


def test_no_gpus_leaves_the_environment_alone(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert runner.visible_gpus() == []
