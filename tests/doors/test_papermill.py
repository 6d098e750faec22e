"""Notebooks: a misspelled papermill parameter fails the notebook, listing the valid names."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["active_learning", "sensitivity", "compare", "fisher_primer", "ablation"]


@pytest.mark.notebook
@pytest.mark.parametrize("name", NAMES)
def test_a_misspelled_parameter_fails_the_notebook_listing_the_valid_names(tmp_path, name):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                            parameters={"quey_size": 5, "smoke": True}, progress_bar=False, kernel_name="python3")  # fmt: skip
    message = str(err.value)
    assert "unknown notebook parameters ['quey_size']" in message and "'smoke'" in message, message


def test_the_parameter_check_reads_the_cells_papermill_ran():
    from fmlib.notebook import unknown_parameters

    parameters = "a = 1  # first\nb = 'x'  # second\n"
    assert unknown_parameters(parameters, "# Parameters\nb = 'y'\nc = 2\nquey = 3\n") == [
        "c",
        "quey",
    ]
    assert unknown_parameters(parameters, "# Parameters\na = 2\n") == []
    assert unknown_parameters(parameters, "print('an ordinary cell')") == []  # nothing injected
