"""Grids: an edited grid reports the runs whose config changed as stale (never done) and
reruns exactly those on request; broken grid files are named; a dry run shows every problem."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from fmlib.grid.cli import main


def grid(root: str, entropy_epochs: int) -> dict:
    base = dict(
        dataset="fashion_mnist",
        data_root=root,
        imbalance="none",
        initial_size=10,
        query_size=5,
        budget=15,
        train_preset="default",
        train_options={"epochs": 1, "batch_size": 16},
        device="cpu",
        progress=False,
    )
    entropy = {"strategy": "entropy", "train_options": {"epochs": entropy_epochs}}
    return {"base": base, "axes": {"strategy": ["random", entropy]}}


def write(path: Path, content) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_an_edited_grid_reports_exactly_the_changed_runs_as_stale_and_reruns_them_on_request(
    tmp_path, fashion_root, capsys, torch_threads
):
    path, out = tmp_path / "grid.json", tmp_path / "out"
    run = ["-o", str(out), "--executor", "inline", "--threads", "1", "--no-progress"]
    assert main([write(path, grid(fashion_root, 1)), *run]) == 0
    old_entropy = pd.read_csv(out / "entropy" / "rounds.csv")
    capsys.readouterr()

    write(path, grid(fashion_root, 2))  # entropy now trains 2 epochs a round
    assert main([str(path), "-o", str(out), "--dry-run"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"done     {out / 'random'}"
    assert lines[1].startswith(f"stale    {out / 'entropy'}  config changed: train_options: ")
    assert "--rerun-stale" in lines[-1]

    assert main([str(path), *run]) == 1  # reported, not rerun, not counted as done
    printed = capsys.readouterr().out
    assert "2 runs: 0 done, 1 skipped (finished before), 0 failed, 1 stale" in printed
    assert "STALE entropy" in printed
    pd.testing.assert_frame_equal(pd.read_csv(out / "entropy" / "rounds.csv"), old_entropy)
    summary = {o["name"]: o["status"] for o in json.loads((out / "grid_summary.json").read_text())}
    assert summary == {"random": "skipped", "entropy": "stale"}

    assert main([str(path), *run, "--rerun-stale"]) == 0
    printed = capsys.readouterr().out
    assert "2 runs: 1 done, 1 skipped (finished before), 0 failed" in printed
    config = json.loads((out / "entropy" / "config.json").read_text())["config"]
    assert config["train_options"] == {"epochs": 2, "batch_size": 16}
    (aside,) = (out / ".stale").iterdir()  # moved aside, never deleted, out of the runs/* glob
    assert (
        aside.name.startswith("entropy.")
        and json.loads((aside / "config.json").read_text())["config"]["train_options"]["epochs"]
        == 1
    )
    pd.testing.assert_frame_equal(pd.read_csv(aside / "rounds.csv"), old_entropy)
    assert main([str(path), "-o", str(out), "--dry-run"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[:2]] == [
        "done",
        "done",
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"base": {"seed": 1,}}', r"g.json: not valid JSON: .*line 1"),
        ("[1, 2]", r"g.json: a grid file holds a JSON object .*got a list"),
        ("null", r"g.json: a grid file holds a JSON object .*got null"),
        ('{"base": [1, 2]}', r"base must be an object of config fields, got a list"),
        ('{"base": null}', r"base must be an object of config fields, got null"),
        ('{"axes": [1, 2]}', r"axes must be an object of axis name -> values, got a list"),
    ],
    ids=["syntax", "top-level-list", "null", "base-list", "base-null", "axes-list"],
)
def test_a_broken_grid_file_is_named_without_a_traceback(tmp_path, capsys, content, message):
    assert main([write(tmp_path / "g.json", content), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err


def test_a_dry_run_shows_every_problem_of_a_run(tmp_path, capsys, fashion_root):
    bad = {"name": "bad", "strategy": "random", "query_size": 0, "seed": -1}
    path = write(
        tmp_path / "g.json", {"base": {"data_root": fashion_root}, "axes": {"strategy": [bad]}}
    )
    assert main([path, "-o", str(tmp_path / "out"), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "query_size must be an integer >= 1" in out and "seed must be an integer >= 0" in out


def test_a_resumed_grid_run_keeps_its_thread_count_whatever_the_workers(
    tmp_path, fashion_root, monkeypatch, torch_threads
):
    from fmlib.experiment import run_experiment
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    (run,) = expand_grid(grid(fashion_root, 1), select={"strategy": ["random"]})
    torch.set_num_threads(1)
    # interrupted after round 0
    run_experiment({**run.params, "output_dir": str(run.path(tmp_path))}, max_rounds=1)
    # asked for another count
    (failed,) = run_grid([run], tmp_path, executor="inline", threads=2, progress=False)
    assert (
        failed.status == "failed"
        and "made with 1 torch thread(s) and this process has 2" in failed.error
    )
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # the default would be 4 threads for 1 worker
    (outcome,) = run_grid([run], tmp_path, executor="inline", progress=False)
    assert outcome.status == "done"
    assert pd.read_csv(run.path(tmp_path) / "rounds.csv")["torch_threads"].tolist() == [1, 1]
