"""Hostile papermill parameters: a bad value passed to a notebook fails its first cell after the
parameters, before any data is loaded, with a ``ValueError`` naming the parameter and the allowed
values (smoke mode, so a parameter that slips through runs in seconds and fails the row).
One row per probe: ``(id, parameters, pattern of the error)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["active_learning", "sensitivity", "compare", "fisher_primer", "ablation"]

ACTIVE_LEARNING = [
    (
        "misspelled name",
        {"quey_size": 5},
        r"unknown notebook parameters \['quey_size'\].*'query_size'",
    ),
    ("query_size a string", {"query_size": "70"}, r"query_size must be an integer >= 1, got '70'"),
    ("initial_size zero", {"initial_size": 0}, r"initial_size must be an integer >= 1, got 0"),
    (
        "pool_size a string",
        {"pool_size": "big"},
        r"pool_size must be an integer >= 1 or None, got 'big'",
    ),
    ("budget negative", {"budget": -5}, r"budget must be an integer >= 15 or None, got -5"),
    ("rounds a float", {"rounds": 1.5}, r"rounds must be an integer >= 0 or None, got 1.5"),
    ("unknown strategy", {"strategy": "fishermsk"}, r"unknown strategy 'fishermsk'.*'fishermask'"),
    (
        "fraction out of range",
        {"strategy_options": {"fraction": 2.0}},
        r"strategy_options: fraction must be a number in \(0, 1\], got 2.0",
    ),
    (
        "misspelled option",
        {"strategy_options": {"fracton": 0.01}},
        r"strategy_options: unknown options \['fracton'\].*'fraction'",
    ),
    (
        "options not a dict",
        {"strategy_options": "fraction=0.01"},
        (
            r"parameter 'strategy_options' is dict, got the string 'fraction=0.01'.*-y"
            r" 'strategy_options: "
        ),
    ),
    (
        "epochs zero",
        {"train_options": {"epochs": 0}},
        r"train_options: epochs must be an integer >= 1, got 0",
    ),
    (
        "unknown imbalance",
        {"imbalance": "paperr"},
        r"unknown imbalance 'paperr'; allowed values: \['none'",
    ),
    ("unknown model", {"model": "vgg"}, r"unknown model 'vgg'; allowed values: \['cnn'"),
    (
        "ratio below one",
        {"imbalance": "step", "ratio": 0.5},
        r"ratio must be a finite number >= 1, got 0.5",
    ),
    (
        "lamb too large",
        {"strategy_options": {"lamb": 1e300}},
        r"strategy_options: lamb must be .* at most 1e\+06",
    ),
    ("flag a string", {"full_fisher": "yes"}, r"full_fisher must be true or false, got 'yes'"),
]


def _fails(name: str, tmp_path: Path, parameters: dict):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(tmp_path / "out.ipynb"),
            cwd=str(tmp_path),
            parameters={**parameters, "smoke": True},
            progress_bar=False,
            kernel_name="python3",
        )
    return err.value


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("parameters", "pattern"),
    [row[1:] for row in ACTIVE_LEARNING],
    ids=[row[0] for row in ACTIVE_LEARNING],
)
def test_a_bad_parameter_fails_active_learning_before_data_is_loaded(tmp_path, parameters, pattern):
    error = _fails("active_learning", tmp_path, parameters)
    assert error.ename == "ValueError" and re.search(pattern, error.evalue, re.S), error.evalue
    # failed in the cell after the parameters, before run_experiment loads the data
    assert "prologue(" in error.source and "run_experiment(" not in error.source
    assert not list(tmp_path.glob("**/rounds.csv"))


@pytest.mark.notebook
@pytest.mark.parametrize("name", NAMES)
def test_a_misspelled_parameter_fails_the_notebook_listing_the_valid_names(tmp_path, name):
    message = str(_fails(name, tmp_path, {"quey_size": 5}))
    assert "unknown notebook parameters ['quey_size']" in message and "'smoke'" in message, message


@pytest.mark.parametrize(
    ("field", "value"),
    [("pool_size", "big"), ("budget", -5), ("initial_size", 0), ("train_options", [])],
)
def test_smoke_config_names_a_bad_size_instead_of_shrinking_it_away(field, value):
    from fmlib.experiment import smoke_config

    with pytest.raises(ValueError, match=rf"^{field} must be"):
        smoke_config({field: value})


def test_the_parameter_check_reads_the_cells_papermill_ran():
    from fmlib.notebook import unknown_parameters

    parameters = "a = 1  # first\nb = 'x'  # second\n"
    assert unknown_parameters(parameters, "# Parameters\nb = 'y'\nc = 2\nquey = 3\n") == [
        "c",
        "quey",
    ]
    assert unknown_parameters(parameters, "# Parameters\na = 2\n") == []
    assert unknown_parameters(parameters, "print('an ordinary cell')") == []  # nothing injected
