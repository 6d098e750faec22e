"""Grid runner: grid files expand into named runs; runs execute through papermill (one process or a
pool), inline or as submitit jobs; finished runs are skipped, unfinished ones resume, failed ones are
reported with their executed notebook; every grid file in grids/ validates."""

import copy
import json
import shlex
from dataclasses import MISSING, fields
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import fmlib.grid.spec
from fmlib.experiment import ExperimentConfig, run_experiment
from fmlib.grid.cli import main, parser, usage_examples
from fmlib.grid.runner import EXECUTED, RESULTS, RUNS, SUMMARY, run_grid
from fmlib.grid.spec import expand_grid, load_grid
from fmlib.records import run_status

ROOT = Path(__file__).resolve().parents[1]
GRID_FILES = sorted((ROOT / "grids").glob("*.json"))
READY_GRIDS = ("cifar10_gpu", "cifar10_cpu", "fashion_mnist_gpu", "fashion_mnist_cpu")
STRATEGIES = {"fishermask", "bait", "badge", "coreset", "entropy", "margin", "random", "bald"}
BROKEN = {
    "name": "broken",
    "strategy": "margin",
    "strategy_options": {"no_such_option": 1},
}  # fails in validate

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def notebook(tmp_path_factory) -> Path:
    """A stand-in for notebooks/active_learning.ipynb: every ExperimentConfig field (output_dir
    included) in a ``parameters`` cell, then run_experiment and write_results as its last cell."""
    defaults = {
        f.name: f.default if f.default is not MISSING else f.default_factory()
        for f in fields(ExperimentConfig)
    }
    parameters = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in defaults.items()))
    parameters.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from fmlib.experiment import run_experiment\n"
        "from fmlib.records import write_results\n\n"
        f"records = run_experiment({{name: globals()[name] for name in {list(defaults)!r}}})\n"
        "write_results(output_dir, records)"
    )
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path_factory.mktemp("notebook") / "active_learning.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[parameters, body], metadata={"kernelspec": kernelspec}),
        path,
    )
    return path


def tiny_grid(root: str, *strategies) -> dict:
    """Runs of seconds: 10 labels, one round of 5 more, one epoch."""
    base = dict(
        dataset="fashion_mnist", data_root=root, imbalance="none", model="cnn", initial_size=10, query_size=5,
        budget=15, train_preset="default", train_options={"epochs": 1, "batch_size": 16}, device="cpu", progress=False,
    )  # fmt: skip
    return {"base": base, "axes": {"strategy": list(strategies)}}


def write_grid(path: Path, grid: dict) -> str:
    path.write_text(json.dumps(grid))
    return str(path)


# ----------------------------------------------------------------------------- grid -> runs


def test_axes_come_in_canonical_order_and_name_the_runs():
    axes = {
        "query_size": [35, 70],
        "seed": [0, 1],
        "strategy": ["random", "entropy"],
        "dataset": ["fashion_mnist"],
    }
    runs = expand_grid({"base": {"model": "cnn"}, "axes": axes})
    assert (
        [r.name for r in runs[:5]]
        == [
            "fashion_mnist-random-seed0-query_size35",  # dataset, imbalance, strategy, seed, then the others
            "fashion_mnist-random-seed0-query_size70",  # the last axis varies fastest
            "fashion_mnist-random-seed1-query_size35",
            "fashion_mnist-random-seed1-query_size70",
            "fashion_mnist-entropy-seed0-query_size35",
        ]
    )
    assert len(runs) == 8 and len({r.name for r in runs}) == 8
    assert runs[0].params == {
        "model": "cnn",
        "dataset": "fashion_mnist",
        "strategy": "random",
        "seed": 0,
        "query_size": 35,
    }
    assert runs[0].path("out") == Path("out") / runs[0].name


def option_grid() -> dict:
    return {
        "base": {"strategy_options": {"batch_size": 64}, "train_options": {"epochs": 5}},
        "axes": {
            "strategy": [
                {
                    "strategy": "fishermask",
                    "strategy_options": {"fraction": 0.003},
                },  # labelled by its strategy
                {
                    "name": "fm_random",
                    "strategy": "fishermask",
                    "strategy_options": {"method": "random"},
                },
                "entropy",
            ],
            "imbalance": {
                "imbalanced": {"imbalance": "paper", "budget": 575},
                "balanced": {"imbalance": "none"},
            },
        },
    }


def test_dict_variants_and_dict_elements_merge_into_the_base():
    grid = option_grid()
    before = copy.deepcopy(grid)
    runs = {r.name: r.params for r in expand_grid(grid)}
    assert list(runs) == [
        f"{i}-{s}"
        for i in ("imbalanced", "balanced")
        for s in ("fishermask", "fm_random", "entropy")
    ]
    assert runs["imbalanced-fishermask"] == {
        "strategy_options": {
            "batch_size": 64,
            "fraction": 0.003,
        },  # dict fields merge one level deep
        "train_options": {"epochs": 5},
        "imbalance": "paper",
        "budget": 575,
        "strategy": "fishermask",
    }
    assert runs["balanced-fm_random"]["strategy_options"] == {
        "batch_size": 64,
        "method": "random",
    }  # no "name" field
    assert runs["balanced-entropy"] == {"strategy_options": {"batch_size": 64}, "train_options": {"epochs": 5},
                                        "imbalance": "none", "strategy": "entropy"}  # fmt: skip
    runs["balanced-entropy"]["strategy_options"]["batch_size"] = (
        1  # runs share no dicts with each other or the grid
    )
    assert grid == before and runs["imbalanced-entropy"]["strategy_options"] == {"batch_size": 64}


def test_overrides_apply_after_the_axes_and_merge_dict_fields():
    overrides = {
        "budget": 155,
        "strategy_options": {"max_candidates": 500},
        "train_options": {"epochs": 1},
    }
    runs = {r.name: r.params for r in expand_grid(option_grid(), overrides=overrides)}
    assert {p["budget"] for p in runs.values()} == {155}
    assert runs["imbalanced-fishermask"]["strategy_options"] == {
        "batch_size": 64,
        "fraction": 0.003,
        "max_candidates": 500,
    }
    assert runs["balanced-entropy"]["train_options"] == {"epochs": 1}


@pytest.mark.parametrize(
    "select, names",
    [
        ({"imbalance": ["paper"]}, ["imbalanced-fishermask", "imbalanced-fm_random", "imbalanced-entropy"]),  # by value
        ({"strategy": ["fm_random", "entropy"], "imbalance": ["balanced"]}, ["balanced-fm_random", "balanced-entropy"]),
        ({"strategy": ["fishermask"], "imbalance": ["none"]}, ["balanced-fishermask", "balanced-fm_random"]),
        ({"strategy": ["entropy"], "seed": [0, 1], "dataset": []},  # a new axis; an empty one changes nothing
         ["imbalanced-entropy-seed0", "imbalanced-entropy-seed1", "balanced-entropy-seed0", "balanced-entropy-seed1"]),
    ],
    ids=["value", "labels", "value-matches-two", "new-axis"],
)  # fmt: skip
def test_select_keeps_axis_elements_by_label_or_value_or_adds_an_axis(select, names):
    assert [r.name for r in expand_grid(option_grid(), select=select)] == names


def test_select_of_a_missing_value_is_an_error():
    with pytest.raises(
        ValueError,
        match=r"axis 'strategy' has no values \['bald'\]; it has \['fishermask', 'fm_random', ",
    ):
        expand_grid(option_grid(), select={"strategy": ["bald", "entropy"]})


def test_runs_with_the_same_name_are_an_error():
    grid = {
        "axes": {
            "strategy": ["random", {"strategy": "random", "strategy_options": {"batch_size": 8}}]
        }
    }
    with pytest.raises(ValueError, match="two runs are both named 'random'"):
        expand_grid(grid)


@pytest.mark.parametrize(
    "grid, overrides, message",
    [
        ({"base": {"budgt": 5}}, None, r"base: unknown config fields \['budgt'\]; allowed: \['dataset', "),
        ({"axes": {"imbalance": {"x": {"imbalace": "paper"}}}}, None, r"axis 'imbalance': unknown config fields \['imbalace'\]"),
        ({"axes": {"sed": [0, 1]}}, None, r"axis 'sed': unknown config fields \['sed'\]"),
        ({}, {"querysize": 5}, r"--set: unknown config fields \['querysize'\]"),
        ({"base": {"output_dir": "x"}}, None, r"unknown config fields \['output_dir'\]"),  # the runner sets it
    ],
    ids=["base", "variant", "axis", "override", "reserved"],
)  # fmt: skip
def test_unknown_config_fields_are_named(grid, overrides, message):
    with pytest.raises(ValueError, match=message):
        expand_grid(grid, overrides=overrides)


def test_dict_elements_need_a_label_and_grid_files_known_keys(tmp_path):
    with pytest.raises(ValueError, match=r"dict element .* needs a 'name' or a 'strategy' field"):
        expand_grid({"axes": {"strategy": [{"strategy_options": {}}]}})
    with pytest.raises(ValueError, match=r"unknown grid keys \['bases'\]"):
        load_grid(write_grid(tmp_path / "g.json", {"bases": {}}))


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


def test_the_docstring_example_grid_expands_to_valid_runs():
    example = fmlib.grid.spec.__doc__.split("::\n\n", 1)[1].split("\n\nAn axis", 1)[0]
    runs = expand_grid(json.loads(example))
    assert len(runs) == 12 and runs[0].name == "fashion_mnist-imbalanced-random-seed0"
    assert "fashion_mnist-imbalanced-fishermask-seed0" in {r.name for r in runs}
    for run in runs:
        ExperimentConfig.from_dict(run.params).validate(check_dataset=False)


@pytest.mark.parametrize("path", GRID_FILES, ids=[p.stem for p in GRID_FILES])
def test_every_grid_file_expands_to_valid_configs(path):
    grid = load_grid(path)
    runs = expand_grid(grid)
    assert grid.get("description") and runs
    for run in runs:
        ExperimentConfig.from_dict(run.params).validate(check_dataset=False)


@pytest.mark.parametrize("name", READY_GRIDS)
def test_ready_grids_compare_fishermask_with_every_baseline_balanced_and_imbalanced(name):
    path = ROOT / "grids" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    runs = expand_grid(load_grid(path))
    assert {r.params["strategy"] for r in runs} == STRATEGIES
    assert {r.params["imbalance"] for r in runs} == {"paper", "none"}
    assert len({r.params["seed"] for r in runs}) == 3
    assert {r.params["dataset"] for r in runs} == {name.rsplit("_", 1)[0]}


# ----------------------------------------------------------------------------- command line


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


# ----------------------------------------------------------------------------- running


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
        injected = nbformat.read(run_dir / EXECUTED, as_version=4).cells[
            1
        ]  # papermill's cell after "parameters"
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
    assert (
        json.loads((out / RUNS).read_text())[0]["params"]["data_root"] == fashion_root
    )  # made absolute


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, fashion_root, torch_threads):
    (run,) = expand_grid(tiny_grid(fashion_root, "random"), overrides={"budget": 20})
    run_dir = run.path(tmp_path)
    run_experiment(
        {**run.params, "output_dir": str(run_dir)}, max_rounds=1
    )  # stopped after round 0
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
    outcomes = run_grid(runs, out, notebook=notebook, workers=2, executor="submitit", progress=False,
                        submitit={"cluster": "local", "timeout": 10, "cpus": 1})  # fmt: skip
    assert [(o.name, o.status) for o in outcomes] == [("random", "done"), ("broken", "failed")]
    assert run_outputs(out / "random")["n_labeled"] == 15
    assert "no_such_option" in outcomes[1].error and outcomes[1].notebook == str(
        out / "broken" / EXECUTED
    )
    assert any((out / ".submitit").rglob("*_log.out"))  # the jobs' logs


def test_every_options_field_merges_including_a_dataset_factorys():
    grid = {"base": {"dataset": "mine:load", "dataset_options": {"n": 100, "dim": 8}, "model_options": {"hidden": 8}},
            "axes": {"size": {"small": {"dataset_options": {"n": 50}}, "wide": {"model_options": {"width": 2}}}}}  # fmt: skip
    runs = {r.name: r.params for r in expand_grid(grid, overrides={"dataset_options": {"seed": 3}})}
    assert runs["small"]["dataset_options"] == {"n": 50, "dim": 8, "seed": 3}
    assert runs["wide"]["model_options"] == {"hidden": 8, "width": 2}
    assert runs["wide"]["dataset_options"] == {"n": 100, "dim": 8, "seed": 3}
