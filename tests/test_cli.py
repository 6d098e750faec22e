"""The ``fmlib`` command line: ``run`` builds its config like ``ExperimentConfig.from_dict`` +
``validate``, records and resumes a run and prints a line per round; ``compare`` tables and plots
a glob of runs; ``bench`` runs the checkout's benchmarks; ``grid`` is ``python -m fmlib.grid``;
mistakes are one line on stderr and exit status 2; ``python -m fmlib`` and the console script."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fmlib
import fmlib.grid.cli
from fmlib import ExperimentConfig
from fmlib.cli import benchmarks_dir, main
from tests.fakes import DATA, MODEL, USER, user_run

ROOT = Path(__file__).resolve().parents[1]


def tiny(root: str) -> list[str]:
    """Flags of a run of seconds: pool 200, 10 -> 20 labels by 5 (3 rounds), one epoch, on the
    CPU."""
    return [
        "--set",
        f"data_root={root}",
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
        "--set",
        "train_options.batch_size=16",
        "--device",
        "cpu",
        "--no-progress",
        "--interval",
        "0.05",
    ]


def error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fmlib {command}: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------- fmlib run


def test_run_records_a_run_and_prints_a_line_per_round(tmp_path, fashion_root, capsys):
    out = tmp_path / "run"
    assert (
        main(["run", "--strategy", "entropy", "--seed", "1", *tiny(fashion_root), "-o", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    for line in (
        "[1/3] round 0: 10 labels, accuracy",
        "[2/3] round 1: 15 labels",
        "[3/3] round 2: 20 labels",
        "done: 3 rounds",
    ):
        assert line in printed
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["strategy"], config["seed"], config["query_size"], config["imbalance"]) == (
        "entropy",
        1,
        5,
        "none",
    )
    assert config["train_options"] == {"epochs": 1, "batch_size": 16}
    rounds = pd.read_csv(out / "rounds.csv")
    results = json.loads((out / "results.json").read_text())
    assert (
        results["accuracy"] == pytest.approx(rounds["accuracy"].tolist())
        and results["smoke"] is False
    )
    assert (
        f"accuracy {rounds['accuracy'].iloc[-1]:.3f}" in printed.split("[3/3]")[1].splitlines()[0]
    )


def test_run_resumes_where_it_stopped_with_the_records_of_one_call(tmp_path, fashion_root, capsys):
    args = ["run", "--strategy", "margin", *tiny(fashion_root)]
    assert main([*args, "-o", str(tmp_path / "whole")]) == 0
    assert main([*args, "-o", str(tmp_path / "parts"), "--max-rounds", "1"]) == 0
    assert "stopped after 1 of 3 rounds" in capsys.readouterr().out
    assert not (tmp_path / "parts" / "results.json").exists()
    assert main([*args, "-o", str(tmp_path / "parts")]) == 0
    printed = capsys.readouterr().out
    assert "round 0: 10 labels" in printed and printed.count("(recorded earlier)") == 1
    columns = ["round", "n_labeled", "accuracy", "train_loss"]
    whole, parts = (pd.read_csv(tmp_path / d / "rounds.csv")[columns] for d in ("whole", "parts"))
    pd.testing.assert_frame_equal(whole, parts)
    # another config there: refused
    assert main([*args, "-o", str(tmp_path / "parts"), "--seed", "7"]) == 2
    assert "different config" in error_line(capsys, "run")


def test_run_config_is_file_then_flags_then_set(tmp_path, capsys):
    file = tmp_path / "cfg.json"
    file.write_text(
        json.dumps(
            {"strategy": "margin", "seed": 5, "query_size": 7, "train_options": {"epochs": 3}}
        )
    )
    assert (
        main(
            [
                "run",
                "--config",
                str(file),
                "--seed",
                "2",
                "--set",
                "query_size=6",
                "--set",
                "query_size=5",
                "--set",
                "train_options.batch_size=8",
                "--set",
                "budget=null",
                "--set",
                "rounds=2",
                "-n",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    config = json.loads(printed[printed.index("{") :])
    expected = {
        "strategy": "margin",
        "seed": 2,
        "query_size": 5,
        "budget": None,
        "rounds": 2,
        "train_options": {"epochs": 3, "batch_size": 8},
        "output_dir": "runs/fashion_mnist-paper-margin-seed2",
    }
    assert config == ExperimentConfig.from_dict(expected).to_dict()
    # a run directory's config.json is a config file too
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({"config": config, "fmlib_version": "0.1.0"})
    )
    assert (
        main(
            [
                "run",
                "--config",
                str(tmp_path / "old" / "config.json"),
                "-o",
                str(tmp_path / "new"),
                "-n",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{") :]) == {
        **config,
        "output_dir": str(tmp_path / "new"),
    }
    assert not (tmp_path / "new").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    "args, values",
    [
        (["--set", "bogus=1"], {"bogus": 1}),
        (["--strategy", "no_such_strategy"], {"strategy": "no_such_strategy"}),
        (["--set", "query_size=0"], {"query_size": 0}),
        (["--set", "train_options.epochs=x"], {"train_options": {"epochs": "x"}}),
        (
            ["--set", "strategy_options.no_such_option=1", "--strategy", "margin"],
            {"strategy": "margin", "strategy_options": {"no_such_option": 1}},
        ),
        (["--imbalance", "sideways"], {"imbalance": "sideways"}),
    ],
    ids=[
        "unknown-field",
        "unknown-strategy",
        "query-size-0",
        "bad-train-option",
        "bad-strategy-option",
        "bad-imbalance",
    ],
)
def test_run_reports_what_validate_says_in_one_line(args, values, tmp_path, capsys):
    with pytest.raises(ValueError) as expected:
        ExperimentConfig.from_dict({**values, "output_dir": str(tmp_path)}).validate()
    assert main(["run", *args, "-o", str(tmp_path)]) == 2
    assert error_line(capsys, "run").endswith(" ".join(str(expected.value).split()))
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "config file {} not found"),
        ('{"seed": 1,', "config file {} is not valid JSON"),
        ("[1, 2]", "config file {} must hold a JSON object"),
    ],
    ids=["missing", "not-json", "not-an-object"],
)
def test_run_reports_a_bad_config_file_in_one_line(content, message, tmp_path, capsys):
    file = tmp_path / "cfg.json"
    if content is not None:
        file.write_text(content)
    assert main(["run", "--config", str(file)]) == 2
    assert message.format(file) in error_line(capsys, "run")


def test_run_reports_a_dotted_set_of_a_plain_field(capsys):
    assert main(["run", "--set", "seed.x=1", "-n"]) == 2
    fields = ["dataset_options", "model_options", "strategy_options", "train_options"]
    assert f"FIELD.KEY is for {fields}" in error_line(capsys, "run")


@pytest.mark.parametrize("rounds", ["0", "-2"])
def test_run_refuses_fewer_than_one_max_round(rounds, capsys):
    assert main(["run", "--max-rounds", rounds, "-n"]) == 2
    assert f"--max-rounds must be an integer >= 1, got {rounds}" in error_line(capsys, "run")


def test_run_on_a_directory_another_run_holds_is_one_error_line(tmp_path, fashion_root, capsys):
    from fmlib.records import RunDirectory

    run = tmp_path / "run"
    with RunDirectory(run).lock():
        assert main(["run", "--strategy", "random", *tiny(fashion_root), "-o", str(run)]) == 2
    assert f"is in use by process {os.getpid()}" in error_line(capsys, "run")
    assert not run.exists()  # the refused run wrote nothing: the holder's empty directory went


def test_notebooks_copies_them_once_and_replaces_them_with_force(tmp_path, capsys):
    target = tmp_path / "nbs"
    assert main(["notebooks", str(target)]) == 0
    copies = capsys.readouterr().out.split()
    assert copies and all(Path(c).parent == target for c in copies)
    assert "active_learning.ipynb" in {Path(c).name for c in copies}
    assert main(["notebooks", str(target)]) == 2
    assert "exist already; pass overwrite (--force)" in error_line(capsys, "notebooks")
    assert main(["notebooks", str(target), "--force"]) == 0


@pytest.mark.parametrize(
    ("target", "refused"), [(1.0, False), (0.5, False), (1.01, True), (0.0, True), (-0.1, True)]
)
def test_compare_targets_an_accuracy_in_zero_to_one(tmp_path, target, refused):
    from argparse import Namespace

    from fmlib.checks import UserError
    from fmlib.cli import check_compare_args

    args = Namespace(target=target, budgets=[1, 50], output=str(tmp_path / "out"))
    if refused:
        with pytest.raises(UserError, match=r"--target must be an accuracy in \(0, 1\]"):
            check_compare_args(args)
    else:
        check_compare_args(args)


# ----------------------------------------------------------------------------- fmlib compare


def write_run(
    path: Path,
    strategy: str,
    imbalance: str,
    seed: int,
    accuracy: list[float],
    finished: bool = True,
):
    """A run directory (config.json, rounds.csv) whose learning curve is ``accuracy`` at 10, 20, ...
    labels."""
    path.mkdir(parents=True)
    schedule = [10 * (r + 1) for r in range(len(accuracy) + (0 if finished else 1))]
    config = {
        "dataset": "fashion_mnist",
        "imbalance": imbalance,
        "strategy": strategy,
        "seed": seed,
    }
    (path / "config.json").write_text(json.dumps({"config": config, "schedule": schedule}))
    pd.DataFrame(
        [
            {
                "round": r,
                "n_labeled": 10 * (r + 1),
                "accuracy": a,
                "balanced_accuracy": a / 2,
                "train_time": 1.0,
                "embed_time": float("nan"),
                "select_time": 2.0,
                "eval_time": 0.1,
            }
            for r, a in enumerate(accuracy)
        ]
    ).to_csv(path / "rounds.csv", index=False)


def test_compare_writes_tables_and_figures_of_the_finished_runs(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, shift in ((0, 0.0), (1, 0.2)):
        write_run(
            runs / f"fm-{seed}",
            "fishermask",
            "paper",
            seed,
            [0.2 + shift, 0.4 + shift, 0.6 + shift],
        )
        write_run(runs / f"rnd-{seed}", "random", "paper", seed, [0.1, 0.2, 0.3])
    write_run(runs / "fm-2", "fishermask", "paper", 2, [0.9, 0.9], finished=False)  # left out
    (runs / "notes").mkdir()  # not a run: skipped
    out = tmp_path / "out"
    assert (
        main(
            [
                "compare",
                str(runs / "*"),
                "-o",
                str(out),
                "--target",
                "0.55",
                "--budgets",
                "20",
                "30",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    table = (out / "results_table.md").read_text()
    assert (
        table in printed and "4 finished runs from" in table and "(1 unfinished left out)" in table
    )
    assert (
        "| fashion_mnist | imbalanced | fishermask | 2 | 0.500 ± 0.141 | 0.700 ± 0.141 | 25 ± 7 |"
        " 2/2 |" in table
    )
    assert (
        "| fashion_mnist | imbalanced | random | 2 | 0.200 ± 0.000 | 0.300 ± 0.000 | – | 0/2 |"
        in table
    )
    # at 20 and 30 labels
    assert "| fashion_mnist | imbalanced | fishermask | 0.500 ± 0.141 | 0.700 ± 0.141 |" in table
    record = json.loads((out / "compare.json").read_text())
    assert {(r["strategy"], round(r["mean"], 6)) for r in record["auc"]} == {
        ("fishermask", 0.5),
        ("random", 0.2),
    }
    for figure in ("learning_curves", "learning_curves_balanced_accuracy", "round_timings"):
        assert (out / f"{figure}.png").stat().st_size > 0 and (out / f"{figure}.svg").is_file()
    assert main(["compare", str(runs / "fm-2"), "-o", str(out)]) == 2
    assert "none of the 1 runs matched is finished" in error_line(capsys, "compare")
    assert main(["compare", str(runs / "fm-2"), "-o", str(tmp_path / "all"), "--all"]) == 0


def test_compare_reports_a_glob_without_runs_in_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nothing" / "*"), "-o", str(tmp_path / "out")]) == 2
    assert "no run directories (holding config.json) match" in error_line(capsys, "compare")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- fmlib bench and grid


def fake_benchmarks(folder: Path, fail: str | None = None) -> Path:
    """Benchmark scripts that append their name and arguments to ``calls.txt`` (and ``fail`` exits
    1)."""
    folder.mkdir()
    for name in ("bench_fisher.py", "bench_select.py"):
        code = 1 if name == fail else 0
        (folder / name).write_text(
            "import sys, pathlib\n"
            "with open(pathlib.Path(__file__).with_name('calls.txt'), 'a') as f:\n"
            f"    f.write(' '.join([pathlib.Path(sys.argv[0]).name, *sys.argv[1:]]) + '\\n')\n"
            f"sys.exit({code})\n"
        )
    return folder


def test_bench_runs_both_benchmarks_with_the_flags(tmp_path, capsys):
    folder = fake_benchmarks(tmp_path / "benchmarks")
    assert main(["bench", "--quick", "--threads", "1", "--benchmarks", str(folder)]) == 0
    assert main(["bench", "--only", "select", "--device", "cpu", "--benchmarks", str(folder)]) == 0
    assert (folder / "calls.txt").read_text().splitlines() == [
        "bench_fisher.py --quick --threads 1",
        "bench_select.py --quick --threads 1",
        "bench_select.py --device cpu",
    ]
    failing = fake_benchmarks(tmp_path / "failing", fail="bench_fisher.py")
    assert main(["bench", "--benchmarks", str(failing)]) == 1
    assert "bench_fisher.py failed" in capsys.readouterr().err
    assert len((failing / "calls.txt").read_text().splitlines()) == 2  # the other one still ran


def test_bench_finds_the_checkout_and_says_when_there_is_none(tmp_path, monkeypatch, capsys):
    if (ROOT / "benchmarks" / "bench_fisher.py").is_file() and Path(
        fmlib.__file__
    ).resolve().parents[1] == ROOT:
        assert benchmarks_dir() == ROOT / "benchmarks"
    site = tmp_path / "site-packages" / "fmlib"
    site.mkdir(parents=True)
    # as if installed from a wheel
    monkeypatch.setattr(fmlib, "__file__", str(site / "__init__.py"))
    monkeypatch.chdir(tmp_path)  # no checkout here either: never the real benchmarks
    assert main(["bench", "--quick"]) == 2
    line = error_line(capsys, "bench")
    assert "source checkout, not with the installed package" in line and str(tmp_path) in line


def test_grid_hands_its_arguments_to_the_grid_command_line(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(fmlib.grid.cli, "main", lambda argv, **kw: calls.append(list(argv)) or 7)
    assert main(["grid", "grids/x.json", "--dry-run", "--seed", "0"]) == 7
    assert calls == [["grids/x.json", "--dry-run", "--seed", "0"]]
    monkeypatch.undo()
    with pytest.raises(SystemExit) as exit:
        main(["grid", "--help"])
    assert exit.value.code == 0 and "examples:" in capsys.readouterr().out


# ------------------------------------------------------------ help, python -m fmlib, console script


@pytest.mark.parametrize("command", [None, "run", "compare", "bench"])
def test_help_at_every_level_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"] if command else ["--help"])
    printed = capsys.readouterr().out
    assert exit.value.code == 0 and "examples:" in printed
    assert f"    fmlib {command or 'run'} " in printed.split("examples:")[1]


@pytest.mark.slow
def test_python_dash_m_fmlib_runs_and_reports_errors_without_traceback(tmp_path, fashion_root):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "fmlib",
        "run",
        "--strategy",
        "random",
        *tiny(fashion_root),
        "-o",
        str(tmp_path / "r"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (
        "[3/3] round 2: 20 labels, accuracy" in done.stdout
        and (tmp_path / "r" / "results.json").is_file()
    )
    bad = subprocess.run(
        [*command, "--set", "query_size=-1"], capture_output=True, text=True, env=env, timeout=300
    )
    assert bad.returncode == 2 and bad.stderr.startswith(
        "fmlib run: error: query_size must be an integer >= 1"
    )
    missing = subprocess.run(
        [*command, "-c", "missing.json"], capture_output=True, text=True, env=env, timeout=300
    )
    assert (
        missing.returncode == 2
        and missing.stderr == "fmlib run: error: config file missing.json not found\n"
    )
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_console_script_is_installed_when_fmlib_is():
    scripts = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "fmlib"
    ]
    if not scripts:
        pytest.skip("fmlib is installed without its console script (reinstall: pip install -e .)")
    assert scripts[0].value == "fmlib.cli:main"
    script = shutil.which("fmlib", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip(f"no fmlib script beside {sys.executable}")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "fmlib run" in done.stdout


def cli_flags(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flags += ["--set", f"{key}={json.dumps(value)}"]
    return flags


def test_the_cli_runs_the_users_dataset_model_and_strategy_by_name(tmp_path, capsys):
    from fmlib.cli import main

    out = tmp_path / "run"
    rest = {
        k: v
        for k, v in user_run().items()
        if k not in ("dataset", "model", "strategy", "imbalance", "progress")
    }
    flags = [
        "--dataset",
        DATA,
        "--model",
        MODEL,
        "--strategy",
        USER,
        "--imbalance",
        "none",
        "--no-progress",
    ]
    assert (
        main(["run", *flags, *cli_flags(rest), "--set", "model_options.hidden=8", "-o", str(out)])
        == 0
    )
    saved = json.loads((out / "config.json").read_text())["config"]
    assert (saved["dataset"], saved["model"], saved["strategy"], saved["model_options"]) == (
        DATA,
        MODEL,
        USER,
        {"hidden": 8},
    )
    assert list(pd.read_csv(out / "rounds.csv")["n_labeled"]) == [6, 12]
    assert (
        main(
            [
                "run",
                "--strategy",
                "tests.user_strategy:Missing",
                *flags[:4],
                "-o",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "has no attribute 'Missing'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_console_script_finds_the_users_modules_in_the_working_directory(tmp_path):
    import shutil
    import subprocess
    import sys

    script = Path(sys.executable).with_name("fmlib")
    if not script.is_file():
        pytest.skip("the fmlib console script is not installed next to this python")
    (tmp_path / "mine").mkdir()
    for name in ("user_parts.py", "user_strategy.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / "mine" / name)
    # only the working directory can find mine/
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    values = user_run(
        dataset="mine.user_parts:blob_data",
        model="mine.user_parts:mlp",
        strategy="mine.user_strategy:LowestMaxProb",
    )
    (tmp_path / "config.json").write_text(json.dumps(values))
    done = subprocess.run(
        [str(script), "run", "-c", "config.json", "-o", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert list(pd.read_csv(tmp_path / "run" / "rounds.csv")["n_labeled"]) == [6, 12]
