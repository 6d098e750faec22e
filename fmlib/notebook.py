"""What the notebooks share: the repository root for relative paths, and the check that fails a
notebook on a papermill parameter it does not define.

Papermill injects the parameters it is given as a cell right after the notebook's cell tagged
``parameters``, and only warns ("Passed unknown parameter") about names that cell lacks, so
``-p quey_size 5`` would run with the default ``query_size``. Every notebook calls
:func:`check_parameters` first in the cell after its parameters cell::

    from fmlib.notebook import check_parameters

    check_parameters()  # a misspelled papermill parameter fails here, listing the valid names
"""

from __future__ import annotations

import ast
from pathlib import Path

INJECTED = "# Parameters"  # the first line of the cell papermill injects


def repo_root() -> Path:
    """The checkout holding fmlib (editable install), else the working directory."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "notebooks").is_dir() else Path.cwd()


def notebooks_dir() -> Path:
    """The notebooks fmlib runs: the checkout's ``notebooks/`` (editable install), else the copies
    the wheel carries in ``fmlib/notebooks/``."""
    checkout = Path(__file__).resolve().parents[1] / "notebooks"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "notebooks"


def notebook_path(name: str) -> Path:
    """One notebook of :func:`notebooks_dir` by file name, e.g. ``"active_learning.ipynb"``."""
    return notebooks_dir() / name


def copy_notebooks(target, *, overwrite: bool = False) -> list[Path]:
    """Copy every notebook of :func:`notebooks_dir` into ``target`` (created); return the copies.

    An existing file is kept unless ``overwrite`` (``FileExistsError`` naming them otherwise).
    """
    import shutil

    target = Path(target)
    sources = sorted(notebooks_dir().glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(
            f"{notebooks_dir()} holds no notebooks: this fmlib was installed without them"
        )
    there = [target / s.name for s in sources if (target / s.name).exists()]
    if there and not overwrite:
        raise FileExistsError(
            f"{', '.join(map(str, there))} exist already; pass overwrite (--force) to replace them"
        )
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(s, target / s.name)) for s in sources]


def assigned_names(source: str) -> list[str]:
    """Names a cell's top-level assignments bind, in order."""
    names = []
    for node in ast.parse(source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def unknown_parameters(parameters_cell: str, previous_cell: str) -> list[str]:
    """Names papermill injected (``previous_cell``, when it is papermill's) that the parameters
    cell does not define, sorted."""
    if previous_cell.lstrip().splitlines()[:1] != [INJECTED]:
        return []  # nothing injected: the notebook runs with its own values
    return sorted(set(assigned_names(previous_cell)) - set(assigned_names(parameters_cell)))


def check_parameters() -> None:
    """Raise ``ValueError`` naming every injected parameter the parameters cell does not define,
    and the valid ones. Call it first in the cell after the parameters cell.

    Reads the kernel's input history: the cell before this one is papermill's injected cell when
    parameters were given, and the one before that the parameters cell. Outside IPython, or when
    nothing was injected, it does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    history = list(getattr(shell, "user_ns", {}).get("In", [])) if shell is not None else []
    if len(history) < 3:
        return
    parameters_cell, injected = history[-3], history[-2]  # history[-1] is the calling cell
    unknown = unknown_parameters(parameters_cell, injected)
    if unknown:
        raise ValueError(
            f"unknown notebook parameters {unknown}; valid names: {sorted(assigned_names(parameters_cell))}"
        )
