"""Hostile grid files and grid reruns: a run's name never leaves its grid directory, and a rerun
reopens finished runs (verify on reopen) instead of trusting their files. One row per hostile
grid: ``(id, grid or axis selection, pattern of the error)``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fmlib.grid.cli import main as grid_main
from fmlib.grid.runner import run_grid
from fmlib.grid.spec import GridRun, expand_grid
from fmlib.records import load_runs

BASE = {"strategy": "random"}
LEAVES = r"would leave its grid directory"

# id, grid, --axis selection, pattern
CASES = [
    ("variant_dotdot", {"base": BASE, "axes": {"variant": {"..": {"seed": 1}}}}, None, LEAVES),
    ("variant_dot", {"base": BASE, "axes": {"variant": {".": {"seed": 1}}}}, None, LEAVES),
    (
        "element_named_dotdot",
        {"base": BASE, "axes": {"seed": [{"name": "..", "seed": 1}]}},
        None,
        LEAVES,
    ),
    ("value_dotdot", {"base": BASE, "axes": {"strategy": [".."]}}, None, LEAVES),
    ("selected_axis_dotdot", {"base": {}}, {"strategy": [".."]}, LEAVES),
]


@pytest.mark.parametrize(
    ("grid", "select", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_run_name_that_leaves_the_grid_directory_is_refused_at_expansion(grid, select, pattern):
    with pytest.raises(ValueError, match=pattern):
        expand_grid(grid, select=select)


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", "/tmp/abs", "a/b", "a\\b", "..\\up"])
def test_a_run_name_with_a_separator_or_dots_has_no_path(tmp_path, name):
    with pytest.raises(ValueError, match=LEAVES):
        GridRun(name, dict(BASE)).path(tmp_path)
    assert GridRun("a.b", {}).path(tmp_path) == tmp_path / "a.b"


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", "/tmp/abs", "a/b"])
def test_a_hand_made_grid_run_with_a_path_for_a_name_writes_nothing(tmp_path, name):
    root = tmp_path / "grid" / "out"
    with pytest.raises(ValueError, match=LEAVES):
        run_grid([GridRun(name, dict(BASE))], root, executor="inline", progress=False)
    assert (
        not (tmp_path / "grid" / "rounds.csv").exists() and not (tmp_path / "rounds.csv").exists()
    )


def test_the_grid_cli_names_a_dotdot_variant_in_one_line(tmp_path, capsys):
    file = tmp_path / "g.json"
    file.write_text(json.dumps({"base": BASE, "axes": {"variant": {"..": {"seed": 1}}}}))
    assert (
        grid_main(
            [str(file), "-o", str(tmp_path / "out"), "--executor", "inline"], prog="fmlib grid"
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fmlib grid: error: ") and "'..'" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


def test_a_grid_rerun_reopens_a_finished_run_and_rebuilds_an_edited_rounds_csv(
    tmp_path, fashion_root, torch_threads
):
    base = dict(
        dataset="fashion_mnist",
        data_root=fashion_root,
        imbalance="none",
        initial_size=10,
        query_size=5,
        budget=15,
        train_preset="default",
        train_options={"epochs": 1, "batch_size": 16},
        device="cpu",
        progress=False,
        strategy="random",
    )
    runs = expand_grid({"base": base, "axes": {"seed": [0]}})
    (done,) = run_grid(runs, tmp_path, executor="inline", threads=1, progress=False)
    assert done.status == "done"
    rounds = tmp_path / runs[0].name / "rounds.csv"
    honest = rounds.read_bytes()
    edited = pd.read_csv(rounds).assign(accuracy=0.99)
    edited.to_csv(rounds, index=False)
    assert (load_runs(tmp_path / "*")["accuracy"] == 0.99).all()  # what compare would report
    (again,) = run_grid(runs, tmp_path, executor="inline", threads=1, progress=False)
    assert again.status == "skipped" and "rounds.csv" in again.repaired
    assert rounds.read_bytes() == honest
