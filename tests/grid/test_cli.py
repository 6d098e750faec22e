"""``python -m fmlib.grid``: help, dry runs, and a bad grid reported without a traceback."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fmlib.grid.cli import main, parser, usage_examples
from tests.grid.tiny import BROKEN, tiny_grid, write_grid

ROOT = Path(__file__).resolve().parents[2]


def test_help_shows_the_docstring_examples_and_they_parse(capsys):
    with pytest.raises(SystemExit, match="0"):
        main(["--help"])
    out = capsys.readouterr().out
    examples = usage_examples()
    assert examples in out and "--executor {local,submitit,inline}" in out and "--dry-run" in out
    for line in examples.replace("\\\n", " ").splitlines():
        args = shlex.split(line)
        assert args[:3] == ["python", "-m", "fmlib.grid"]
        parser().parse_args(args[3:])


def test_the_docstring_examples_dry_run_clean(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    for line in usage_examples().replace("\\\n", " ").splitlines():
        args = shlex.split(line)[3:]
        if args[0].startswith("grids/") and not (ROOT / args[0]).is_file():
            continue  # a grid file another change adds
        assert main([*args, "--dry-run"]) == 0, line
        out = capsys.readouterr().out
        assert "INVALID" not in out and " runs in " in out


def test_dry_run_lists_the_runs_and_flags_invalid_configs(tmp_path, capsys, fashion_root):
    path = write_grid(tmp_path / "tiny.json", tiny_grid(fashion_root, "random", BROKEN))
    out_dir = tmp_path / "out"
    assert main([path, "-o", str(out_dir), "--axis", "query_size=4,5", "--dry-run"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"new      {out_dir / 'random-query_size4'}"
    assert lines[2].startswith(
        f"new      {out_dir / 'broken-query_size4'}  INVALID: strategy_options: unknown options"
    )
    assert lines[-1] == f"4 runs in {out_dir}, 2 invalid"
    assert not out_dir.exists()


def test_main_reports_a_bad_grid_without_a_traceback(tmp_path, capsys):
    assert main([write_grid(tmp_path / "g.json", {"base": {"budgt": 5}}), "--dry-run"]) == 2
    assert "error: base: unknown config fields ['budgt']" in capsys.readouterr().err
    assert main(["--strategy", "random", "--set", "sed=1", "--dry-run"]) == 2
    assert "error: --set: unknown config fields ['sed']" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json"), "--dry-run"]) == 2
    assert (
        main(
            [
                "--strategy",
                "random",
                "-o",
                str(tmp_path),
                "--notebook",
                str(tmp_path / "none.ipynb"),
            ]
        )
        == 2
    )
    assert "none.ipynb not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--timeout", "0", r"--timeout must be an integer >= 1, got 0"),
        ("--cpus", "0", r"--cpus must be an integer >= 1, got 0"),
        ("--gpus", "-1", r"--gpus must be an integer >= 0, got -1"),
        ("--mem-gb", "0", r"--mem-gb must be a number > 0, got 0.0"),
        ("--mem-gb", "nan", r"--mem-gb must be a number > 0, got nan"),
    ],
)
def test_a_bound_of_a_resource_flag_is_one_error_line(tmp_path, capsys, flag, value, message):
    argv = ["--strategy", "random", "-o", str(tmp_path / "out"), "--dry-run"]
    assert main([*argv, flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and pytest.importorskip("re").search(message, err[0]), err
    assert main([*argv, "--gpus", "0"]) == 0
    assert "new " in capsys.readouterr().out  # no GPU is a valid count


def test_a_grid_stopped_by_a_signal_exits_with_128_plus_its_number(tmp_path, capsys, monkeypatch):
    import signal

    import fmlib.grid.cli
    from fmlib.grid.signals import GridInterrupted

    def stopped(runs, output, **kwargs):
        raise GridInterrupted(signal.SIGTERM)

    monkeypatch.setattr(fmlib.grid.cli, "run_grid", stopped)
    argv = ["--strategy", "random", "-o", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 128 + signal.SIGTERM
    assert "grid: stopped by SIGTERM: workers stopped" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["=5", " =5", "budget"])
def test_an_assignment_needs_a_key_and_an_equals_sign(text, capsys):
    from argparse import ArgumentTypeError

    from fmlib.grid.cli import assignment

    with pytest.raises(ArgumentTypeError, match=r"expected FIELD=VALUE"):
        assignment(text)
    assert assignment(" budget =155") == ("budget", 155)
    with pytest.raises(SystemExit) as exit:
        main(["--strategy", "random", "--set", text, "--dry-run"])
    assert exit.value.code == 2 and "expected FIELD=VALUE" in capsys.readouterr().err
