"""Run directories: what a hostile but realistic user does to a run directory and its config.

Each test is one such case on a tiny FashionMNIST config (fake IDX files): two
processes on one directory, damaged or edited records, values that look valid but are not and
fail after ``config.json`` was written, resuming with another torch thread count, a full disk,
the user's umask.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import fmlib.grid.spec
import fmlib.records
from fmlib.config import comparison
from fmlib.experiment import ExperimentConfig, run_experiment
from fmlib.grid.runner import RESULTS
from fmlib.records import DamagedRunError, RunDirectory, load_run, load_snapshots, run_status
from tests.fakes import same_snapshot, write_fake_fashion_mnist
from tests.user_parts import MLP, blobs

ROOT = Path(__file__).resolve().parents[2]
TIMING = ["train_time", "eval_time", "select_time", "embed_time"]


def small_config(root, output_dir=None, **overrides) -> dict:
    config = dict(
        dataset="fashion_mnist",
        data_root=root,
        imbalance="step",
        ratio=2.0,
        pool_size=60,
        test_size=30,
        initial_size=10,
        query_size=5,
        budget=None,
        rounds=2,
        strategy="random",
        train_preset="default",
        train_options={"epochs": 1, "batch_size": 16},
        seed=0,
        device="cpu",
        progress=False,
        output_dir=None if output_dir is None else str(output_dir),
    )
    return {**config, **overrides}


def files(path: Path) -> dict[str, bytes]:
    """Every record file of a run directory (not the lock), by relative path."""
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# -------------------------------------------------------------------------- 1. a lock on output_dir

CHILD = """
import json, sys, time
from pathlib import Path
from fmlib.experiment import run_experiment


class Blocking:
    '''Blocks in its first select, after round 0 is trained: the run holds its directory.'''

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        Path(sys.argv[2]).write_text("selecting")
        time.sleep(300)


run_experiment(json.loads(sys.argv[1]), strategy=Blocking())
"""


def test_a_second_run_on_a_busy_directory_refuses_naming_the_holder_and_takes_over_a_dead_ones_lock(
    fashion_root, tmp_path
):
    run = tmp_path / "run"
    signal_file = tmp_path / "selecting"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            json.dumps(small_config(fashion_root, run)),
            str(signal_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not signal_file.exists():
            assert child.poll() is None, child.stdout.read().decode()
            assert time.monotonic() < deadline, "the child never reached its first selection"
            time.sleep(0.2)
        start = time.monotonic()
        with pytest.raises(
            RuntimeError, match=rf"{run}.*is in use by process {child.pid} on {os.uname().nodename}"
        ):
            # another config on the same directory
            run_experiment(small_config(fashion_root, run, seed=1))
        assert time.monotonic() - start < 30  # at once: no data loaded, nothing trained
        # the owner's config stays
        assert json.loads((run / "config.json").read_text())["config"]["seed"] == 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the holder is dead: its lock is stale; the owner's config takes over with a warning and
    # finishes
    with pytest.warns(UserWarning, match=rf"stale lock.*process {child.pid}"):
        records = run_experiment(small_config(fashion_root, run))
    assert records.finished and json.loads((run / "config.json").read_text())["config"]["seed"] == 0
    with pytest.raises(ValueError, match="different config.*seed: 0 there, 1 here"):
        run_experiment(small_config(fashion_root, run, seed=1))


def test_the_lock_holder_is_named_within_one_process_too(fashion_root, tmp_path):
    run = tmp_path / "run"
    with fmlib.records.RunDirectory(run).lock():
        with pytest.raises(RuntimeError, match=rf"in use by process {os.getpid()}"):
            run_experiment(small_config(fashion_root, run))
    run_experiment(small_config(fashion_root, run, rounds=0))  # released


# ----------------------------------------------------------- 3. reruns check and repair the records


def test_rerunning_a_finished_run_repairs_its_derived_files_from_the_checkpoint(
    fashion_root, tmp_path
):
    from fmlib.records import write_results

    run = tmp_path / "run"
    config = small_config(
        fashion_root, run, strategy="bait", strategy_options={"fisher_samples": 16}
    )
    records = run_experiment(config)
    write_results(run, records)
    truth = files(run)
    snapshots = load_snapshots(run)
    assert sorted(snapshots) == [0, 1]

    rounds = pd.read_csv(run / "rounds.csv")
    rounds.loc[0, "accuracy"] = 0.99  # a hand-edited (or half-copied) rounds.csv
    rounds.to_csv(run / "rounds.csv", index=False)
    (run / "queries.csv").unlink()
    (run / "sensitivity" / "round_001.npz").write_bytes(b"not an npz")
    meta = json.loads((run / "config.json").read_text())
    meta["config"]["seed"] = 7  # config.json no longer says what the checkpoint holds
    (run / "config.json").write_text(json.dumps(meta))

    with pytest.warns(
        UserWarning, match=r"rebuilt from checkpoint.pt: .*config.json.*queries.csv.*rounds.csv"
    ):
        again = run_experiment(config)
    write_results(run, again)
    assert files(run) == truth  # every derived file as the run left it, results.json included
    assert load_run(run)["accuracy"].tolist() == records.rounds_frame()["accuracy"].tolist()
    assert same_snapshot(load_snapshots(run)[1], snapshots[1])
    # the checkpoint's config rules
    with pytest.raises(ValueError, match="different config.*seed: 0 there, 7 here"):
        run_experiment({**config, "seed": 7})


def test_a_leftover_temporary_file_of_a_killed_write_is_removed_on_reopen(fashion_root, tmp_path):
    run = tmp_path / "run"
    run_experiment(small_config(fashion_root, run))
    (run / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    (run / ".rounds.csv.abc.tmp").write_text("half")
    run_experiment(small_config(fashion_root, run))
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage, not a zip", b"PK\x03\x04 truncated zip"],
    ids=["empty", "garbage", "zip"],
)
def test_a_damaged_checkpoint_is_named_with_what_to_delete(fashion_root, tmp_path, content):
    run = tmp_path / "run"
    run_experiment(small_config(fashion_root, run), max_rounds=1)
    (run / "checkpoint.pt").write_bytes(content)
    with pytest.raises(
        RuntimeError, match=rf"{run / 'checkpoint.pt'} is damaged.*delete {run}"
    ) as err:
        run_experiment(small_config(fashion_root, run))
    assert "weights_only" not in str(err.value)  # never the unsafe advice


@pytest.mark.parametrize(
    "content",
    ["{not json", "{}", "[1, 2]", '{"config": [1]}'],
    ids=["syntax", "no-config", "list", "config-list"],
)
def test_a_damaged_config_json_is_named(fashion_root, tmp_path, content):
    run = tmp_path / "run"
    run_experiment(small_config(fashion_root, run))
    (run / "config.json").write_text(content)
    for read in (load_run, ExperimentConfig.from_run):
        # DamagedRunError
        with pytest.raises(RuntimeError, match=rf"{run / 'config.json'} is damaged"):
            read(run)
    # the checkpoint knows it
    with pytest.warns(UserWarning, match="rebuilt from checkpoint.pt: config.json"):
        run_experiment(small_config(fashion_root, run))
    assert ExperimentConfig.from_run(run) == ExperimentConfig.from_dict(
        small_config(fashion_root, run)
    )


def test_a_damaged_config_json_without_a_checkpoint_is_refused(fashion_root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=rf"{run / 'config.json'} is damaged.*delete it"):
        run_experiment(small_config(fashion_root, run))


def test_records_without_a_checkpoint_are_never_overwritten(fashion_root, tmp_path):
    run = tmp_path / "run"
    run_experiment(small_config(fashion_root, run))
    (run / "checkpoint.pt").unlink()  # e.g. an export in results/
    before = files(run)
    with pytest.raises(RuntimeError, match=r"records of 3 rounds but no checkpoint.pt"):
        run_experiment(small_config(fashion_root, run))
    assert files(run) == before


# ------------------------------------------------- 4. everything checked before anything is written


BAD_VALUES = [
    ({"train_options": {"epochs": "3"}}, r"train_options: epochs must be an integer >= 1, got '3'"),
    ({"train_options": {"epochs": 1.5}}, r"train_options: epochs must be an integer >= 1, got 1.5"),
    (
        {"train_options": {"batch_size": 2.5}},
        r"train_options: batch_size must be an integer >= 1, got 2.5",
    ),
    (
        {"train_options": {"weight_decay": -1}},
        r"train_options: weight_decay must be a finite number >= 0, got -1",
    ),
    (
        {"train_options": {"momentum": -1}},
        r"train_options: momentum must be a finite number in \[0, 1\), got -1",
    ),
    (
        {"train_options": {"lr": float("inf")}},
        r"train_options: lr must be a finite number > 0 \(at most 10\), got inf",
    ),
    ({"model": "resnet18", "model_options": {"width": 0}}, r"model_options.*width.* 0"),
    (
        {"strategy": "bait", "strategy_options": {"lamb": float("inf")}},
        r"strategy_options: lamb must be a finite number > 0",
    ),
    ({"ratio": float("inf")}, r"ratio must be a finite number >= 1, got inf"),
    ({"ratio": 1e9}, r"ratio 1e\+09 leaves classes \[0, 1, 2, 3, 4\] without samples"),
    (
        {"imbalance": "none", "minority_classes": [99]},
        r"minority_classes .* only with imbalance 'step'",
    ),
    ({"minority_classes": [99]}, r"minority_classes must be in 0..9, got \[99\]"),
    ({"download": "no"}, r"download must be true or false, got 'no'"),
    ({"data_root": "/nonexistent/fashion"}, r"data_root '/nonexistent/fashion' does not exist"),
]


@pytest.mark.parametrize(
    "bad, message",
    BAD_VALUES,
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={v}" for k, v in v.items()),
)
def test_a_bad_value_is_refused_before_anything_is_written_and_the_fix_then_runs(
    fashion_root, tmp_path, bad, message
):
    run = tmp_path / "run"
    config = small_config(fashion_root, run, rounds=0)
    with pytest.raises(ValueError, match=message):
        run_experiment({**config, **bad})
    # nothing written: the corrected config is welcome
    assert not run.exists() or not any(run.iterdir())
    assert run_experiment(config).finished


def test_an_empty_output_dir_is_refused(fashion_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"output_dir must be a directory path or None, got ''"):
        run_experiment(small_config(fashion_root, output_dir=""))
    assert not any(tmp_path.iterdir())


def test_validate_names_every_problem_at_once():
    config = ExperimentConfig(query_size=0, seed=-1, download="no")
    with pytest.raises(ValueError) as err:
        config.validate(check_dataset=False)
    for name in ("query_size", "seed", "download"):
        assert name in str(err.value)
    assert len(config.problems(check_dataset=False)) == 3


def test_a_truncated_gzip_names_the_file(tmp_path):
    from fmlib.datasets import load_dataset

    root = write_fake_fashion_mnist(tmp_path / "data", n_train=50, n_test=20)
    damaged = root / "train-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:300])
    with pytest.raises(OSError, match=rf"{damaged}.*(damaged|truncated)"):
        load_dataset("fashion_mnist", root=root)


# ----------------------------------------------------------------------------- 5. torch threads


def test_resuming_with_another_thread_count_is_refused_unless_allowed_and_then_recorded_as_mixed(
    fashion_root, tmp_path, torch_threads
):
    run = tmp_path / "run"
    config = small_config(fashion_root, run)
    torch.set_num_threads(1)
    run_experiment(config, max_rounds=1)
    assert json.loads((run / "config.json").read_text())["torch_threads"] == [1]
    torch.set_num_threads(2)
    with pytest.raises(
        ValueError, match=r"made with 1 torch thread.*this process has 2.*allow_thread_change=True"
    ):
        run_experiment(config)
    assert len(pd.read_csv(run / "rounds.csv")) == 1  # nothing ran
    records = run_experiment({**config, "allow_thread_change": True})
    assert records.rounds_frame()["torch_threads"].tolist() == [1, 2, 2]
    meta = json.loads((run / "config.json").read_text())
    assert meta["torch_threads"] == [1, 2] and meta["threads_mixed"] is True
    assert pd.read_csv(run / "rounds.csv")["torch_threads"].tolist() == [1, 2, 2]
    torch.set_num_threads(1)
    assert run_experiment(
        config
    ).finished  # a finished run reloads whatever the threads: nothing is computed


def test_one_thread_count_is_recorded_per_round(fashion_root, tmp_path, torch_threads):
    torch.set_num_threads(1)
    records = run_experiment(small_config(fashion_root, tmp_path / "run"))
    assert records.rounds_frame()["torch_threads"].tolist() == [1, 1, 1]
    assert records.meta["torch_threads"] == [1] and records.meta["threads_mixed"] is False


# ------------------------------------------------------------------------- weak spots of the writes


def test_a_full_disk_says_so_and_names_the_file(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    def full_disk(fd, mode="r", **kwargs):
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode, **kwargs)

    monkeypatch.setattr(os, "fdopen", full_disk)
    target = tmp_path / "checkpoint.pt"
    with pytest.raises(OSError) as err:
        fmlib.records.save_torch(target, {"weights": torch.zeros(100_000)})
    monkeypatch.undo()
    assert (
        err.value.errno == errno.ENOSPC
        and str(target) in str(err.value)
        and "No space left" in str(err.value)
    )
    assert not list(tmp_path.iterdir())  # no temporary file left


def test_records_follow_the_umask(fashion_root, tmp_path):
    old = os.umask(0o022)
    try:
        run_experiment(
            small_config(
                fashion_root,
                tmp_path / "run",
                strategy="bait",
                strategy_options={"fisher_samples": 8},
            )
        )
    finally:
        os.umask(old)
    modes = {
        name: (tmp_path / "run" / name).stat().st_mode & 0o777 for name in files(tmp_path / "run")
    }
    assert modes and set(modes.values()) == {0o644}, modes


def test_a_checkpoint_of_an_older_fmlib_resumes_and_adopts_its_snapshot_files(
    fashion_root, tmp_path, torch_threads
):
    run = tmp_path / "run"
    config = small_config(
        fashion_root, run, strategy="bait", strategy_options={"fisher_samples": 16}
    )
    torch.set_num_threads(1)
    run_experiment(config, max_rounds=1)
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # in the older format:
    del state["records"]["snapshots"]  # no snapshot bytes,
    for key in ("torch_threads", "threads_mixed"):  # no thread counts but the environment's
        del state["records"]["meta"][key]
    state["records"]["rounds"] = [
        {k: v for k, v in row.items() if k != "torch_threads"} for row in state["records"]["rounds"]
    ]
    fmlib.records.save_torch(run / "checkpoint.pt", state)
    snapshot = (run / "sensitivity" / "round_000.npz").read_bytes()

    (run / "sensitivity" / "round_000.npz").write_bytes(b"damaged")
    with pytest.raises(
        RuntimeError, match=r"round_000.npz is damaged .*predates stored snapshots.*delete"
    ):
        run_experiment(config)
    (run / "sensitivity" / "round_000.npz").write_bytes(snapshot)
    # the edited checkpoint rules
    with pytest.warns(UserWarning, match=r"rebuilt from checkpoint.pt: config.json, rounds.csv$"):
        records = run_experiment(config)
    assert (
        records.finished
        and records.snapshots[0] == snapshot
        and sorted(records.snapshots) == [0, 1]
    )
    (run / "sensitivity" / "round_000.npz").write_bytes(b"damaged")  # now the checkpoint holds it
    with pytest.warns(UserWarning, match=r"rebuilt from checkpoint.pt: sensitivity/round_000.npz"):
        run_experiment(config)
    assert (run / "sensitivity" / "round_000.npz").read_bytes() == snapshot


def test_run_status_follows_the_files_a_run_leaves(tmp_path):
    assert run_status(tmp_path / "absent") == "new"
    (tmp_path / "config.json").write_text('{"config": {"seed": 0}, "schedule": [10, 15]}')
    assert run_status(tmp_path) == "partial"
    (tmp_path / RESULTS).write_text('{"smoke": true, "rounds": 2}')
    assert run_status(tmp_path) == "partial"  # a FMLIB_SMOKE=1 run is not a result
    (tmp_path / RESULTS).write_text("{not json")
    assert run_status(tmp_path) == "partial"
    (tmp_path / RESULTS).write_text('{"smoke": false, "rounds": 1}')
    assert run_status(tmp_path) == "partial"  # not every round of the schedule ran
    (tmp_path / RESULTS).write_text('{"smoke": false, "rounds": 2}')
    assert run_status(tmp_path) == "done"
    assert (
        run_status(tmp_path, {"seed": 1}) == "stale" and run_status(tmp_path, {"seed": 0}) == "done"
    )
    (tmp_path / "config.json").write_text("{}")
    assert run_status(tmp_path) == "partial"  # damaged: running it again says what is wrong


DATA = (blobs(60, 0), blobs(30, 1))


def blobs_config(output_dir, **overrides) -> dict:
    values = dict(
        initial_size=6,
        query_size=3,
        budget=None,
        rounds=1,
        strategy="fishermask",
        strategy_options={"fisher_samples": 16, "fraction": 0.2},
        train_preset="default",
        train_options={"epochs": 1},
        device="cpu",
        progress=False,
        output_dir=str(output_dir),
    )
    return {**values, **overrides}


def test_reopening_a_run_whose_sensitivity_links_to_another_run_touches_neither(
    tmp_path, one_thread
):
    first, second = tmp_path / "first", tmp_path / "second"
    run_experiment(blobs_config(second, seed=1), data=DATA, model=MLP)
    run_experiment(blobs_config(first, rounds=2), data=DATA, model=MLP, max_rounds=1)
    kept = {p.name: p.read_bytes() for p in (second / "sensitivity").iterdir()}
    assert kept
    for snapshot in (first / "sensitivity").iterdir():
        snapshot.unlink()
    (first / "sensitivity").rmdir()
    (first / "sensitivity").symlink_to(second / "sensitivity")
    with pytest.raises(DamagedRunError, match=r"sensitivity is a symbolic link .*delete the link"):
        run_experiment(blobs_config(first, rounds=2), data=DATA, model=MLP)
    assert {p.name: p.read_bytes() for p in (second / "sensitivity").iterdir()} == kept


@pytest.mark.parametrize(
    ("preset", "options", "same"),
    [
        ("default", {"epochs": 30}, True),  # 30 is the default preset's epochs
        ("paper", {"grad_clip_value": 0.1, "target_train_acc": 0.99}, True),
        ("default", {"epochs": 29}, False),
        ("default", {"lr": 1e-2}, False),
    ],
)
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


def test_a_training_option_set_away_from_its_preset_is_another_config():
    from fmlib.config import TRAIN_PRESETS, filled_in

    epochs = TRAIN_PRESETS["default"].epochs + 1
    changed = filled_in({"train_preset": "default", "train_options": {"epochs": epochs}})
    assert changed["train_options"]["epochs"] == epochs
    assert filled_in({"train_preset": "default", "train_options": {}}) != changed


# ------------------------------------------------------------ reopening, unit by unit (no training)


def saved_run(path: Path, n_rounds: int = 2, schedule=(10, 15)) -> fmlib.records.RunRecords:
    """A run directory saved as a run saves it: the checkpoint, config.json, a snapshot per round
    and the CSVs, for ``n_rounds`` rounds of ``schedule``."""
    from fmlib.records import RunRecords, snapshot_bytes

    meta = {"config": {"seed": 0}, "schedule": list(schedule)}
    rows = [
        {"round": r, "n_labeled": schedule[r], "accuracy": 0.5, "balanced_accuracy": 0.5}
        for r in range(n_rounds)
    ]
    snapshots = {r: snapshot_bytes({"round": np.int64(r)}) for r in range(n_rounds)}
    records = RunRecords(meta, rows, [], path, snapshots)
    RunDirectory(path).save(records, {"labeled": [0, 1]})
    return records


def test_reopening_removes_a_killed_writes_temporary_snapshot(tmp_path):
    saved_run(tmp_path)
    left = tmp_path / "sensitivity" / ".round_001.npz.k1ll3d.tmp"
    left.write_bytes(b"half a snapshot")
    (tmp_path / ".rounds.csv.k1ll3d.tmp").write_text("half")
    assert RunDirectory(tmp_path).open({"seed": 0}) is not None
    assert not left.exists() and not list(tmp_path.rglob("*.tmp"))


def test_reopening_removes_a_snapshot_of_a_round_the_checkpoint_does_not_have(tmp_path):
    saved_run(tmp_path)
    extra = tmp_path / "sensitivity" / "round_002.npz"
    extra.write_bytes((tmp_path / "sensitivity" / "round_001.npz").read_bytes())
    with pytest.warns(UserWarning, match=r"rebuilt from checkpoint.pt: sensitivity/round_002.npz"):
        RunDirectory(tmp_path).open({"seed": 0})
    assert sorted(p.name for p in (tmp_path / "sensitivity").iterdir()) == [
        "round_000.npz",
        "round_001.npz",
    ]


def test_reopening_an_unfinished_run_removes_its_results_json(tmp_path):
    records = saved_run(tmp_path, n_rounds=1)
    fmlib.records.write_results(tmp_path, records)  # a summary of 1 of 2 rounds
    with pytest.warns(UserWarning, match=r"rebuilt from checkpoint.pt: results.json"):
        RunDirectory(tmp_path).open({"seed": 0})
    assert not (tmp_path / "results.json").exists()
    finished = saved_run(tmp_path / "done")
    fmlib.records.write_results(tmp_path / "done", finished, seconds=3.0)
    before = (tmp_path / "done" / "results.json").read_bytes()
    RunDirectory(tmp_path / "done").open({"seed": 0})  # a finished run's summary is kept
    assert (tmp_path / "done" / "results.json").read_bytes() == before


@pytest.mark.parametrize(
    ("state", "got"),
    [({"format": 2, "records": {}}, "2"), ({"records": {}}, "None"), ([1, 2], "'list'")],
    ids=["later-format", "no-format", "list"],
)
def test_a_checkpoint_of_another_format_is_refused_naming_it(tmp_path, state, got):
    fmlib.records.save_torch(tmp_path / "checkpoint.pt", state)
    with pytest.raises(DamagedRunError, match=rf"not an fmlib checkpoint \(format {got}, this"):
        RunDirectory(tmp_path).load_checkpoint()


def test_a_directory_holding_only_a_released_lock_is_new(tmp_path):
    (tmp_path / "run").mkdir()
    with RunDirectory(tmp_path / "run").lock():
        pass
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".lock"]
    assert run_status(tmp_path / "run") == "new"
    assert run_status(tmp_path / "run", {"seed": 0}) == "new"


def test_a_field_an_old_config_lacks_compares_as_its_default():
    from fmlib.records import config_differences

    old, defaults = {"seed": 0}, {"rounds": 3, "unused": 1}
    assert config_differences(old, {"seed": 0, "rounds": 3}, defaults=defaults) == []
    assert config_differences(old, {"seed": 0, "rounds": 4}, defaults=defaults) == [
        "rounds: 3 there, 4 here"
    ]
    assert config_differences(old, {"seed": 0, "rounds": 3}) == ["rounds: <absent> there, 3 here"]


def test_snapshots_without_a_checkpoint_are_refused_and_kept(tmp_path):
    (tmp_path / "sensitivity").mkdir()
    (tmp_path / "sensitivity" / "round_000.npz").write_bytes(b"npz")
    with pytest.raises(
        DamagedRunError, match=r"records of \? rounds but no checkpoint.pt \(sensitivity/round_000"
    ):
        RunDirectory(tmp_path).open({"seed": 0})
    assert (tmp_path / "sensitivity" / "round_000.npz").read_bytes() == b"npz"


def test_moving_a_run_aside_keeps_it_whole_under_stale(tmp_path):
    saved_run(tmp_path / "runs" / "a")
    before = files(tmp_path / "runs" / "a")
    first = RunDirectory(tmp_path / "runs" / "a").move_aside()
    assert first.parent == tmp_path / "runs" / ".stale" and first.name.startswith("a.")
    assert not (tmp_path / "runs" / "a").exists() and files(first) == before
    saved_run(tmp_path / "runs" / "a")
    second = RunDirectory(tmp_path / "runs" / "a").move_aside()  # the same second: another name
    assert second != first and first.is_dir() and second.is_dir()
