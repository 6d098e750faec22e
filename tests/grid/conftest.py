"""Fixtures of the grid's tests: a stand-in for the run notebook."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import nbformat
import pytest

from fmlib.experiment import ExperimentConfig


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
