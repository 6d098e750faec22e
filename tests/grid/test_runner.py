"""Grid runs execute through papermill (one process or a pool), inline or on submitit; failures are
reported with their executed notebook; local workers spread over the visible GPUs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch

import fmlib.grid.runner as runner
from fmlib.experiment import run_experiment
from fmlib.grid.cli import main
from fmlib.grid.runner import EXECUTED, RESULTS, RUNS, SUMMARY, run_grid
from fmlib.grid.spec import expand_grid
from fmlib.records import run_status
from tests.fakes import user_run
from tests.grid.tiny import BROKEN, tiny_grid, write_grid

ROOT = Path(__file__).resolve().parents[2]


def test_the_inline_grid_runs_the_users_dataset_model_and_strategy_by_name(tmp_path):
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    threads = torch.get_num_threads()
    grid = {"base": user_run(), "axes": {"seed": [0, 1]}}
    try:
        outcomes = run_grid(
            expand_grid(grid), tmp_path, executor="inline", threads=threads, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    assert sorted(len(pd.read_csv(p)) for p in tmp_path.glob("*/rounds.csv")) == [2, 2]


@pytest.mark.slow
@pytest.mark.notebook
def test_the_notebook_grid_finds_the_users_modules_from_where_it_started(tmp_path, monkeypatch):
    """The local executor runs papermill kernels inside the run directories: the directory the grid
    started from must reach them (here, with no PYTHONPATH at all)."""
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    # a grid refuses smoke results: this run is tiny anyway
    monkeypatch.delenv("FMLIB_SMOKE", raising=False)
    options = {"fisher_samples": 16, "fraction": 0.05}
    grid = {"base": user_run(strategy="fishermask", strategy_options=options)}
    (outcome,) = run_grid(expand_grid(grid), tmp_path, workers=1, threads=1, progress=False)
    assert outcome.status == "done", outcome.error
    (run,) = tmp_path.glob("*/rounds.csv")
    assert list(pd.read_csv(run)["n_labeled"]) == [6, 12] and (run.parent / "figures").is_dir()


def run_outputs(path: Path) -> dict:
    return json.loads((path / RESULTS).read_text())


@pytest.mark.notebook
def test_papermill_pool_writes_outputs_reports_a_failure_and_skips_done_runs(
    tmp_path, fashion_root, notebook, capsys
):
    path = write_grid(tmp_path / "tiny.json", tiny_grid(fashion_root, "random", "entropy", BROKEN))
    out = tmp_path / "out"
    assert (
        main([path, "-o", str(out), "--notebook", str(notebook), "--workers", "2", "--no-progress"])
        == 1
    )
    printed = capsys.readouterr().out
    assert "3 runs: 2 done, 0 skipped (finished before), 1 failed" in printed
    assert (
        "FAILED broken: ValueError: strategy_options: unknown options ['no_such_option']" in printed
    )
    assert f"notebook: {out / 'broken' / EXECUTED}" in printed
    summary = {o["name"]: o for o in json.loads((out / SUMMARY).read_text())}
    assert [o["status"] for o in summary.values()] == ["done", "done", "failed"]  # in grid order
    assert json.loads((out / RUNS).read_text())[0]["params"]["strategy"] == "random"

    for name in ("random", "entropy"):
        run_dir = out / name
        assert (
            summary[name]["notebook"] == str(run_dir / EXECUTED) and summary[name]["error"] is None
        )
        assert {RESULTS, EXECUTED, "rounds.csv", "config.json"} <= {
            p.name for p in run_dir.iterdir()
        }
        results = run_outputs(run_dir)
        assert results["n_labeled_per_round"] == [10, 15] and results["finished"]
        assert len(pd.read_csv(run_dir / "rounds.csv")) == 2
        # papermill's cell after "parameters"
        injected = nbformat.read(run_dir / EXECUTED, as_version=4).cells[1]
        assert (
            "injected-parameters" in injected.metadata.tags
            and f'output_dir = "{run_dir}"' in injected.source
        )

    # the failed run keeps its executed notebook, with the error, to read
    assert run_status(out / "broken") == "partial" and not (out / "broken" / RESULTS).exists()
    executed = nbformat.read(out / "broken" / EXECUTED, as_version=4)
    errors = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert errors and errors[0].ename == "ValueError" and "no_such_option" in errors[0].evalue

    # run again: the finished runs are skipped (nothing executes)
    assert (
        main(
            [
                path,
                "-o",
                str(out),
                "--notebook",
                str(notebook),
                "--strategy",
                "random",
                "entropy",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "2 runs: 0 done, 2 skipped (finished before), 0 failed" in capsys.readouterr().out
    assert [o["status"] for o in json.loads((out / SUMMARY).read_text())] == ["skipped", "skipped"]


def test_inline_executor_runs_in_this_process_and_reports_failures(
    tmp_path, fashion_root, monkeypatch, torch_threads
):
    monkeypatch.chdir(Path(fashion_root).parent)
    grid = tiny_grid(Path(fashion_root).name, "random", BROKEN)  # a relative data_root
    out = tmp_path / "out"
    outcomes = run_grid(
        expand_grid(grid), out, executor="inline", threads=torch_threads, progress=False
    )
    assert [(o.name, o.status) for o in outcomes] == [("random", "done"), ("broken", "failed")]
    assert (
        run_outputs(out / "random")["n_labeled"] == 15 and not (out / "random" / EXECUTED).exists()
    )
    failed = outcomes[1]
    assert failed.notebook is None  # no notebook: the error says where it was raised
    assert failed.error.startswith(
        "ValueError: strategy_options: unknown options ['no_such_option']"
    )
    assert "(config.py:" in failed.error  # refused by the config's validation, before any data
    # made absolute
    assert json.loads((out / RUNS).read_text())[0]["params"]["data_root"] == fashion_root


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, fashion_root, torch_threads):
    (run,) = expand_grid(tiny_grid(fashion_root, "random"), overrides={"budget": 20})
    run_dir = run.path(tmp_path)
    # stopped after round 0
    run_experiment({**run.params, "output_dir": str(run_dir)}, max_rounds=1)
    first = pd.read_csv(run_dir / "rounds.csv")
    assert run_status(run_dir) == "partial" and len(first) == 1
    (outcome,) = run_grid([run], tmp_path, executor="inline", threads=torch_threads, progress=False)
    assert outcome.status == "done"
    rounds = pd.read_csv(run_dir / "rounds.csv")
    assert list(rounds["n_labeled"]) == [10, 15, 20]
    pd.testing.assert_frame_equal(rounds.iloc[:1], first)  # round 0 kept, not redone


@pytest.mark.slow
@pytest.mark.notebook
def test_submitit_local_cluster_runs_jobs_and_reports_failures(tmp_path, fashion_root, notebook):
    pytest.importorskip("submitit")
    runs = expand_grid(tiny_grid(fashion_root, "random", BROKEN))
    out = tmp_path / "out"
    outcomes = run_grid(
        runs,
        out,
        notebook=notebook,
        workers=2,
        executor="submitit",
        progress=False,
        submitit={"cluster": "local", "timeout": 10, "cpus": 1},
    )
    assert [(o.name, o.status) for o in outcomes] == [("random", "done"), ("broken", "failed")]
    assert run_outputs(out / "random")["n_labeled"] == 15
    assert "no_such_option" in outcomes[1].error and outcomes[1].notebook == str(
        out / "broken" / EXECUTED
    )
    assert any((out / ".submitit").rglob("*_log.out"))  # the jobs' logs


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


def test_a_grid_needs_one_worker_at_least(tmp_path):
    with pytest.raises(ValueError, match=r"workers must be >= 1, got 0"):
        run_grid([], tmp_path, workers=0, progress=False)
    assert not any(tmp_path.iterdir())


def test_a_kernel_gets_its_threads_gpu_and_the_start_directory_then_the_environment_is_back(
    tmp_path, monkeypatch
):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with runner._kernel_env(3, "1"):
        assert (os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == ("3", "3")
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
        assert os.environ["PYTHONPATH"] == os.getcwd()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONPATH"):
        assert name not in os.environ, name
    monkeypatch.setenv("PYTHONPATH", "/users/own")
    with runner._kernel_env(None):
        assert os.environ["PYTHONPATH"] == os.pathsep.join([os.getcwd(), "/users/own"])
        assert "OMP_NUM_THREADS" not in os.environ
    assert os.environ["PYTHONPATH"] == "/users/own"


def test_the_outcomes_and_the_summary_follow_the_grid_s_order(tmp_path, fashion_root, monkeypatch):
    from fmlib.experiment import ExperimentConfig
    from fmlib.records import RunDirectory

    monkeypatch.setattr(
        runner, "execute_run", lambda run, root, **kw: runner.RunOutcome(run.name, "done")
    )
    runs = expand_grid(tiny_grid(fashion_root, "random", "entropy"))
    other = ExperimentConfig.from_dict({**runs[1].params, "seed": 9}).to_dict()  # made otherwise
    RunDirectory(runs[1].path(tmp_path)).write_meta({"config": other, "schedule": [10, 15]})
    outcomes = run_grid(runs, tmp_path, progress=False)
    assert [(o.name, o.status) for o in outcomes] == [("random", "done"), ("entropy", "stale")]
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert [(o["name"], o["status"]) for o in summary] == [("random", "done"), ("entropy", "stale")]


def test_the_summary_counts_the_outcomes_and_says_what_to_read():
    outcomes = [
        runner.RunOutcome("a", "done"),
        runner.RunOutcome("b", "skipped", repaired="rebuilt rounds.csv"),
        runner.RunOutcome("c", "failed", error="ValueError: bad", notebook="/out/c/nb.ipynb"),
        runner.RunOutcome("d", "stale", error="config changed: seed: 0 there, 1 here"),
        runner.RunOutcome("e", "done", moved="/out/.stale/e.1"),
    ]
    lines = runner.summarize(outcomes).splitlines()
    assert lines[0] == "5 runs: 2 done, 1 skipped (finished before), 1 failed, 1 stale"
    assert lines[1:6] == [
        "  REPAIRED b (finished; reopened): rebuilt rounds.csv",
        "  FAILED c: ValueError: bad",
        "         notebook: /out/c/nb.ipynb",
        "  STALE d: made with another config, seed: 0 there, 1 here",
        "  rerun e: its old directory is now /out/.stale/e.1",
    ]
    assert "--rerun-stale" in lines[-1]
    assert runner.summarize(outcomes[:1]) == "1 runs: 1 done, 0 skipped (finished before), 0 failed"


def test_a_run_that_wrote_a_smoke_summary_is_not_done(tmp_path):
    (tmp_path / "config.json").write_text('{"config": {"seed": 0}, "schedule": [10]}')
    (tmp_path / RESULTS).write_text('{"rounds": 1, "smoke": true}')
    with pytest.raises(RuntimeError, match=r"smoke results.json \(FMLIB_SMOKE=1\)"):
        runner._check_done(tmp_path)
    (tmp_path / RESULTS).write_text('{"rounds": 0, "smoke": false}')
    with pytest.raises(RuntimeError, match=r"without writing results.json for a finished run"):
        runner._check_done(tmp_path)
    (tmp_path / RESULTS).write_text('{"rounds": 1, "smoke": false}')
    runner._check_done(tmp_path)
