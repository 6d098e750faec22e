"""The notebooks: committed clean and on the template, then executed by papermill with small
parameters, checking what they record (pyhf's ``tests/test_notebooks.py``).

``make test`` also executes every notebook in place under nbval (``--nbval-lax``) with
``FMLIB_SMOKE=1``; the papermill tests here inject parameters and read the JSON and figures the
notebooks write.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from fmlib.experiment import ExperimentConfig
from fmlib.records import RunDirectory, RunRecords
from tests.conftest import requires_fashion_mnist
from tests.fakes import DATA, MODEL, NAMED, USER, write_fake_fashion_mnist

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"
FROZEN = re.compile(r"(?<![\d.])0%\|")  # a bar's text at 0 %, not the end of 10 % or 100 %
NAMES = ["active_learning", "sensitivity", "compare", "fisher_primer", "ablation", "label_yourself"]


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def parameters(name: str) -> dict:
    """The parameters cell's assignments, evaluated as literals."""
    (cell,) = [c for c in read(name).cells if "parameters" in c.metadata.get("tags", [])]
    return {
        (node.target if isinstance(node, ast.AnnAssign) else node.targets[0]).id: ast.literal_eval(
            node.value
        )
        for node in ast.parse(cell.source).body
    }


def execute(name: str, tmp_path: Path, **params) -> nbformat.NotebookNode:
    """Run a notebook with papermill (kernel in ``tmp_path``) and return the executed notebook."""
    import papermill as pm

    output = tmp_path / f"{name}.executed.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(output),
        parameters=params,
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    return nbformat.read(output, as_version=4)


def assert_no_frozen_bars(executed: nbformat.NotebookNode) -> list[str]:
    """No output of ``executed`` is a widget (papermill keeps a tqdm widget as its text at 0 %)
    nor a bar's text at 0 %; returns the outputs' texts."""
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    widgets = [o["data"].get("text/plain", "") for o in outputs if WIDGET in o.get("data", {})]
    assert not widgets, widgets
    texts = [o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs]
    assert not [t for t in texts if FROZEN.search(t)], [t for t in texts if FROZEN.search(t)]
    return texts


# ----------------------------------------------------------------------------- the committed files


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_have_no_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_follow_the_template(name):
    cells = read(name).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    i = tagged[0]
    # papermill injects in between
    assert cells[i].cell_type == "code" and cells[i + 1].cell_type == "code"
    body = ast.parse(cells[i].source).body
    assert body and all(
        (isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name))
        or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None)
        for n in body
    ), "plain (optionally annotated) assignments only"
    lines = [line for line in cells[i].source.splitlines() if line and not line.startswith("#")]
    assert all("  # " in line for line in lines), (
        "every parameter has a comment (allowed values, units)"
    )
    assert "smoke" in parameters(name)
    headings = [
        line
        for c in cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    assert [int(re.match(r"## (\d+)\. ", h).group(1)) for h in headings] == list(
        range(1, len(headings) + 1)
    )


@pytest.mark.parametrize("name", NAMES)
def test_papermill_lists_every_parameter_with_its_type_and_help(name):
    """``papermill --help-notebook`` shows each parameter typed (not "Unknown type") with its
    comment: papermill skips a line holding a second ``=``, even in the comment."""
    import papermill as pm

    inferred = pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
    assert list(inferred) == list(parameters(name))
    assert [
        k for k, p in inferred.items() if p["inferred_type_name"] == "None" or not p["help"]
    ] == []


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_opens_with_the_prologue(name):
    """The cell after the parameters starts with ``fmlib.notebook.prologue`` (parameters checked,
    smoke mode, progress bars, output folders), and no notebook settles these itself."""
    cells = read(name).cells
    (i,) = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert cells[i + 1].source.startswith(f'nb = prologue("{name}", smoke)')
    assert cells[i + 1].source.splitlines()[1] == (
        "smoke = nb.smoke  # the parameter, or FMLIB_SMOKE=1 (make test sets it)"
    )
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    for own in ("tempfile", "repo_root", "check_parameters", 'environ.get("FMLIB_SMOKE")'):
        assert own not in code, own


OUTPUTS = {
    "active_learning": "output_dir",
    "compare": "figures_dir",
    "ablation": "figures_dir",
    "sensitivity": "figures_dir",
}


def test_the_makefile_names_where_each_notebook_it_runs_writes():
    """Every papermill call in the Makefile passes the notebook's output folder: what a target
    writes is in the Makefile, not in a notebook's default."""
    text = (NOTEBOOKS.parent / "Makefile").read_text().replace("\\\n", " ")
    calls = re.findall(r"papermill notebooks/(\w+)\.ipynb (.*)", text)
    assert {name for name, _ in calls} == set(OUTPUTS)
    for name, arguments in calls:
        assert re.search(rf"-p {OUTPUTS[name]} \S", arguments), (name, arguments)


def test_active_learning_parameters_are_the_config_fields_with_their_defaults():
    values = parameters("active_learning")
    defaults = ExperimentConfig().to_dict()
    assert set(values) == set(defaults) | {"smoke"}
    assert {k: values[k] for k in defaults} == defaults and values["smoke"] is False


def test_active_learning_ends_with_write_results():
    last = read("active_learning").cells[-1]
    assert last.cell_type == "code" and "write_results(output_dir, records" in last.source


# ----------------------------------------------------------------------------- papermill runs


@pytest.mark.slow
@pytest.mark.notebook
def test_active_learning_records_a_smoke_run(tmp_path, monkeypatch):
    monkeypatch.delenv("FMLIB_PROGRESS", raising=False)  # the mode papermill's kernel picks
    data_root = write_fake_fashion_mnist(tmp_path / "data", n_train=600, n_test=200)
    run = tmp_path / "run"
    executed = execute(
        "active_learning",
        tmp_path,
        output_dir=str(run),
        data_root=str(data_root),
        imbalance="none",
        strategy="fishermask",
        strategy_options={"fraction": 0.004},
        smoke=True,
    )
    # the bars as one line at the end (the rounds'), no widget frozen at 0 %: papermill saves it
    bars = [
        line for t in assert_no_frozen_bars(executed) for line in t.splitlines() if "%|" in line
    ]
    assert len(bars) == 1 and bars[0].startswith("fishermask: 100%|"), bars
    results = json.loads((run / "results.json").read_text())
    assert results["finished"] and results["n_labeled_per_round"] == [15, 25, 35]
    assert len(results["accuracy"]) == 3 and all(0 <= a <= 1 for a in results["accuracy"])
    assert 0 <= results["auc"] <= 1 and results["smoke"] is True
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["data_root"] == str(data_root) and config["strategy_options"] == {
        "fraction": 0.004,
        "fisher_samples": 64,
    }
    assert config["pool_size"] == 200 and config["imbalance"] == "none"
    for figure in (
        "learning_curve",
        "labeled_classes",
        "round_timings",
        "mask_overlap",
        "class_sensitivity",
    ):
        assert (run / "figures" / f"{figure}.png").stat().st_size > 0, figure
        assert f"{figure}.png" in results["figures"]


@pytest.mark.slow
@pytest.mark.notebook
@requires_fashion_mnist
def test_sensitivity_makes_the_run_it_is_missing_and_records_its_summary(tmp_path):
    execute(
        "sensitivity",
        tmp_path,
        run_dir=str(tmp_path / "run"),
        figures_dir=str(tmp_path / "figures"),
        top_k=4,
        smoke=True,
    )
    summary = json.loads((tmp_path / "figures" / "sensitivity.json").read_text())
    assert summary["rounds"] == 2 and summary["smoke"] is True
    assert 0 <= summary["jaccard_previous_mean"] <= 1 and 0 <= summary["jaccard_last_first"] <= 1
    assert 0 < summary["masked_share_mean"] <= 1 and "head" in summary["top_layers"]
    assert (tmp_path / "run" / "config.json").is_file()  # the smoke run went where run_dir said
    for figure in (
        "mask_overlap",
        "mask_layer_fraction",
        "fisher_trace",
        "top_samples",
        "class_sensitivity",
    ):
        assert (tmp_path / "figures" / f"{figure}.png").stat().st_size > 0, figure


def write_fake_run(
    path: Path,
    strategy: str,
    imbalance: str,
    seed: int,
    accuracy: list[float],
    finished: bool = True,
):
    """A run directory whose learning curve is ``accuracy`` at 10, 20, 30, ... labels."""
    schedule = [10 * (r + 1) for r in range(len(accuracy) + (0 if finished else 1))]
    meta = {
        "config": {
            "dataset": "fashion_mnist",
            "imbalance": imbalance,
            "strategy": strategy,
            "seed": seed,
        },
        "schedule": schedule,
        "data": {"classes": ["zero", "one"]},
    }
    rows = [
        {
            "round": r,
            "n_labeled": 10 * (r + 1),
            "accuracy": a,
            "balanced_accuracy": a,
            "train_time": 1.0,
            "embed_time": 0.5 if strategy == "fishermask" else float("nan"),
            "eval_time": 0.1,
            "select_time": 2.0 if r < len(schedule) - 1 else float("nan"),
        }
        for r, a in enumerate(accuracy)
    ]
    run = RunDirectory(path)
    run.write_meta(meta)
    run.write_records(RunRecords(meta, rows, [], path))


@pytest.mark.slow
@pytest.mark.notebook
def test_compare_tables_runs_it_finds(tmp_path, monkeypatch):
    monkeypatch.delenv("FMLIB_SMOKE", raising=False)  # real runs, not the demo
    runs = tmp_path / "results"
    for seed, shift in ((0, 0.0), (1, 0.2)):
        write_fake_run(
            runs / f"imb-fm-{seed}",
            "fishermask",
            "paper",
            seed,
            [0.2 + shift, 0.4 + shift, 0.6 + shift],
        )
        write_fake_run(runs / f"imb-rnd-{seed}", "random", "paper", seed, [0.1, 0.2, 0.3])
        write_fake_run(runs / f"bal-rnd-{seed}", "random", "none", seed, [0.5, 0.6, 0.7])
    # left out
    write_fake_run(runs / "imb-fm-2", "fishermask", "paper", 2, [0.9, 0.9], finished=False)
    figures = tmp_path / "figures"
    execute(
        "compare",
        tmp_path,
        runs_glob=str(runs / "*"),
        figures_dir=str(figures),
        target=0.55,
        budgets={"imbalanced": [20, 30], "balanced": [10]},
        smoke=False,
    )
    record = json.loads((figures / "compare.json").read_text())
    assert record["demo"] is False and record["runs"] == 6
    auc = {(r["setting"], r["strategy"]): r for r in record["auc"]}
    assert (
        auc[("imbalanced", "fishermask")]["mean"] == pytest.approx(0.5)
        and auc[("imbalanced", "fishermask")]["n"] == 2
    )
    assert (
        auc[("imbalanced", "random")]["mean"] == pytest.approx(0.2)
        and auc[("balanced", "random")]["n"] == 2
    )
    table = (figures / "results_table.md").read_text()
    assert "6 finished runs from" in table and "DEMO" not in table
    assert (
        "| fashion_mnist | imbalanced | fishermask | 2 | 0.500 ± 0.141 | 0.700 ± 0.141 | 25 ± 7 |"
        " 2/2 |" in table
    )
    # at 20 and 30 labels
    assert "| fashion_mnist | imbalanced | fishermask | 0.500 ± 0.141 | 0.700 ± 0.141 |" in table
    assert "| fashion_mnist | balanced | random | 0.500 ± 0.000 |" in table
    for figure in ("learning_curves", "round_timings"):
        assert (figures / f"{figure}.png").stat().st_size > 0 and f"{figure}.png" in record[
            "figures"
        ]


@pytest.mark.slow
@pytest.mark.notebook
def test_fisher_primer_records_the_mask_and_bait_batch(tmp_path):
    execute(
        "fisher_primer",
        tmp_path,
        n_points=60,
        train_steps=60,
        fraction=0.3,
        batch_size=4,
        lamb=0.5,
        figures_dir=str(tmp_path / "primer"),
        smoke=True,
    )
    record = json.loads((tmp_path / "primer" / "fisher_primer.json").read_text())
    # the ToyMLP for 3 classes
    assert record["parameters"] == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    assert record["mask_size"] == int(0.3 * record["parameters"])
    assert 0 < record["fisher_trace_masked"] <= record["fisher_trace"]
    assert len(set(record["bait_picks"])) == 4 and all(0 <= i < 60 for i in record["bait_picks"])
    assert record["bait_objective"] > 0
    for figure in ("fisher_map", "mask", "mask_vs_fraction", "bait"):
        assert (tmp_path / "primer" / f"{figure}.png").stat().st_size > 0, figure


# ------------------------------------------------------------------------- the checkout stays clean

ROOT = NOTEBOOKS.parent
CLEAN = [  # (notebook, parameters, what it writes under <cache>/fmlib/notebooks/): records or smoke
    ("compare", {"smoke": False}, "compare/compare.json"),  # results/balanced
    ("ablation", {"smoke": False}, "ablation/ablation.json"),  # results/ablation
    (
        "sensitivity",
        {"run_dir": "results/balanced/fishermask-seed0", "top_k": 4, "smoke": False},
        "sensitivity/fishermask-seed0/sensitivity.json",
    ),
    ("active_learning", {"smoke": True}, None),
    ("label_yourself", {"smoke": True}, None),
    ("fisher_primer", {"smoke": True}, None),
]


def checkout_state() -> set[str]:
    """``git status`` of the checkout, ignored files too (``runs/`` is ignored, not a place to
    write unasked), bytecode left out."""
    lines = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in lines.splitlines() if "__pycache__" not in line}


@pytest.mark.slow
@pytest.mark.notebook
def test_papermill_runs_the_users_dataset_model_and_strategy_by_name(tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "active_learning.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={**NAMED, "output_dir": str(run), "model_options": {"hidden": 8}, "smoke": True},
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    results = json.loads((run / "results.json").read_text())
    saved = json.loads((run / "config.json").read_text())["config"]
    assert results["finished"] and (saved["dataset"], saved["model"], saved["strategy"]) == (
        DATA,
        MODEL,
        USER,
    )


@pytest.mark.slow
@pytest.mark.notebook
@requires_fashion_mnist
@pytest.mark.parametrize(("name", "params", "written"), CLEAN, ids=[c[0] for c in CLEAN])
def test_running_a_notebook_with_its_defaults_leaves_the_checkout_as_it_was(
    tmp_path, monkeypatch, name, params, written
):
    """On the committed records (or in smoke mode), from the notebooks folder as JupyterLab runs
    it: nothing appears or changes in the checkout; the figures go to the user cache."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for variable in ("FMLIB_SMOKE", "FMLIB_PROGRESS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the kernel's user cache
    before = checkout_state()
    import papermill as pm

    pm.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(tmp_path / f"{name}.ipynb"),
        parameters=params,
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        kernel_name="python3",
    )
    assert checkout_state() == before
    if written:
        assert (tmp_path / "cache" / "fmlib" / "notebooks" / written).is_file()
