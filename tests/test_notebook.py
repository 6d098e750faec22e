"""The papermill parameter checks and paths of :mod:`fmlib.notebook`, without a kernel."""

from __future__ import annotations

import pytest

from fmlib.notebook import annotations, container_values, unknown_message

CELL = (
    "runs_glob: str = 'results/balanced/*'  # glob\n"
    "budgets: dict = {'balanced': [300]}  # labels\n"
    "sizes: Optional[list[int]] = None  # or None\n"
    "name: str | dict = 'x'  # a string is a value here\n"
    "smoke = False  # plain\n"
)


def test_annotations_are_read_per_parameter():
    assert annotations(CELL) == {
        "runs_glob": "str",
        "budgets": "dict",
        "sizes": "Optional[list[int]]",
        "name": "str | dict",
        "smoke": None,
    }


def test_a_misspelled_parameter_gets_the_closest_valid_name():
    message = unknown_message(["budget", "zzz"], ["budgets", "smoke", "target"])
    assert "'budget': did you mean 'budgets'?" in message
    assert "zzz" in message and "'zzz': did you mean" not in message
    assert "valid names: ['budgets', 'smoke', 'target']" in message


def test_a_dict_passed_with_p_is_read_as_the_literal_it_spells():
    values = {
        "budgets": '{"balanced": [300, 700]}',
        "sizes": "[1, 2]",
        "name": "{1: 2}",
        "runs_glob": "[x]",
        "smoke": "True",
    }
    assert container_values(CELL, values) == {"budgets": {"balanced": [300, 700]}, "sizes": [1, 2]}
    assert container_values(CELL, {"budgets": {"balanced": [1]}}) == {}  # -y: already a dict


def test_a_dict_parameter_given_text_names_it_and_says_to_use_y():
    with pytest.raises(ValueError, match=r"parameter 'budgets' is dict.*-y 'budgets: "):
        container_values(CELL, {"budgets": "balanced=300"})


def test_relative_writes_paths_inside_the_repository_relative_and_others_absolute(tmp_path):
    from fmlib.notebook import Notebook

    nb = Notebook("sensitivity")
    assert nb.relative(nb.path("results/sensitivity/fishermask-seed0")) == (
        "results/sensitivity/fishermask-seed0"
    )
    assert nb.relative(nb.root / "results" / ".." / "figures") == "figures"
    assert nb.relative(tmp_path / "run") == str((tmp_path / "run").resolve())
