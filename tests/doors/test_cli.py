"""Hostile input at the command line: every user error is one line ``fmlib <cmd>: error: ...`` on
stderr and exit status 2, never a traceback, before any long work. One row per probe:
``(id, command, arguments, the error's pattern)``; ``{tmp}`` and ``{data}`` in the arguments
are the test's folder and a fake FashionMNIST, and a row's setup prepares what it needs.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from fmlib.cli import main
from fmlib.records import RunDirectory


def tiny(data: str) -> list[str]:
    return [
        "--set",
        f"data_root={data}",
        "--imbalance",
        "none",
        "--set",
        "initial_size=10",
        "--set",
        "query_size=5",
        "--set",
        "budget=20",
        "--set",
        "train_preset=default",
        "--set",
        "train_options.epochs=1",
        "--device",
        "cpu",
        "--no-progress",
        "--interval",
        "0.05",
    ]


def write_run(path: Path, smoke: bool = False) -> None:
    """A finished run directory (config.json, rounds.csv, results.json) of two rounds."""
    path.mkdir(parents=True)
    config = {"dataset": "fashion_mnist", "imbalance": "none", "strategy": "random", "seed": 0}
    (path / "config.json").write_text(json.dumps({"config": config, "schedule": [10, 20]}))
    pd.DataFrame(
        [
            {
                "round": r,
                "n_labeled": 10 * (r + 1),
                "accuracy": 0.5 + r / 10,
                "balanced_accuracy": 0.5,
                "train_time": 1.0,
                "embed_time": 1.0,
                "select_time": 1.0,
                "eval_time": 0.1,
            }
            for r in range(2)
        ]
    ).to_csv(path / "rounds.csv", index=False)
    (path / "results.json").write_text(json.dumps({"rounds": 2, "smoke": smoke}))


@contextlib.contextmanager
def locked(tmp: Path):
    with RunDirectory(tmp / "run").lock():
        yield


@contextlib.contextmanager
def damaged(tmp: Path):
    (tmp / "run").mkdir()
    (tmp / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    yield


@contextlib.contextmanager
def latin1_config(tmp: Path):
    (tmp / "config.json").write_bytes(
        '{"strategy": "entropy", "dataset": "caf\xe9"}'.encode("latin-1")
    )
    yield


@contextlib.contextmanager
def runs(tmp: Path):
    write_run(tmp / "runs" / "a")
    (tmp / "afile").write_text("not a folder")
    yield


@contextlib.contextmanager
def only_smoke_runs(tmp: Path):
    write_run(tmp / "runs" / "a", smoke=True)
    yield


NOTHING = contextlib.nullcontext


def run(*flags: str) -> list[str]:
    """``fmlib run``'s arguments for a tiny random run into ``{tmp}/run``, with ``flags``."""
    return ["--strategy", "random", *tiny("{data}"), "-o", "{tmp}/run", *flags]


# id, setup, command, arguments, pattern of the error line
CASES = [
    ("run_locked", locked, "run", run(), r"is in use by process"),
    ("run_damaged_checkpoint", damaged, "run", run(), r"checkpoint.pt is damaged"),
    (
        "run_config_not_utf8",
        latin1_config,
        "run",
        ["--config", "{tmp}/config.json", "-n"],
        r"is not UTF-8 text",
    ),
    (
        "run_max_rounds_negative",
        NOTHING,
        "run",
        ["--max-rounds", "-1", "-n"],
        r"--max-rounds must be an integer >= 1",
    ),
    (
        "run_budget_huge",
        NOTHING,
        "run",
        ["--set", "budget=1000000000000", "-n"],
        r"budget 10+: .*at most 10000",
    ),
    (
        "run_rounds_huge",
        NOTHING,
        "run",
        ["--set", "rounds=1000000000000", "--set", "budget=null", "-n"],
        r"rounds 10+: .*at most 10000",
    ),
    (
        "run_fishermask_too_big",
        NOTHING,
        "run",
        [
            "--strategy",
            "fishermask",
            "--set",
            "strategy_options.fraction=0.5",
            "--device",
            "cpu",
            "-n",
        ],
        r"strategy_options: fraction=0\.5 keeps 210530 .*max_candidates=None .*at most",
    ),
    (
        "compare_output_is_a_file",
        runs,
        "compare",
        ["{tmp}/runs/*", "-o", "{tmp}/afile"],
        r"--output .*afile is a file",
    ),
    (
        "compare_only_smoke_runs",
        only_smoke_runs,
        "compare",
        ["{tmp}/runs/*", "-o", "{tmp}/out"],
        r"every run matched is a smoke run.*--smoke",
    ),
]

# One flag's bad value: command, flag, value, pattern of the error line. ``fmlib compare`` reads
# a finished run (``runs``); ``fmlib grid`` expands one random run into ``{tmp}/g``.
FLAGS = [
    ("compare", "--metric", "strategy", r"non-numeric metric 'strategy'"),
    ("compare", "--target", "nan", r"--target must be an accuracy in \(0, 1\], got nan"),
    ("compare", "--target", "0", r"--target must be an accuracy in \(0, 1\], got 0"),
    ("compare", "--budgets", "0", r"--budgets must be label counts >= 1, got \[0\]"),
    ("compare", "--budgets", "-5", r"--budgets must be label counts >= 1, got \[-5\]"),
    ("grid", "--workers", "0", r"--workers must be an integer >= 1, got 0"),
    ("grid", "--threads", "0", r"--threads must be an integer >= 1, got 0"),
]
BEFORE = {
    "compare": ["{tmp}/runs/*", "-o", "{tmp}/out"],
    "grid": ["--strategy", "random", "--seed", "0", "-o", "{tmp}/g"],
}
CASES += [
    (
        f"{command}_{flag.lstrip('-')}_{value}",
        runs if command == "compare" else NOTHING,
        command,
        [*BEFORE[command], flag, value],
        pattern,
    )
    for command, flag, value, pattern in FLAGS
]


@pytest.mark.parametrize(
    ("setup", "command", "arguments", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_user_error_at_the_cli_is_one_line_and_exit_status_2(
    tmp_path, fashion_root, capsys, setup, command, arguments, pattern
):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{data}", fashion_root) for a in arguments]
    with setup(tmp_path):
        status = main([command, *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"fmlib {command}: error: "), err
    assert re.search(pattern, lines[0]), lines[0]


def test_compare_leaves_smoke_runs_out_unless_asked(tmp_path, capsys):
    write_run(tmp_path / "runs" / "real")
    write_run(tmp_path / "runs" / "smoke", smoke=True)
    assert main(["compare", str(tmp_path / "runs" / "*"), "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["runs"] == 1
    assert (
        main(["compare", str(tmp_path / "runs" / "*"), "-o", str(tmp_path / "with"), "--smoke"])
        == 0
    )
    assert json.loads((tmp_path / "with" / "compare.json").read_text())["runs"] == 2
