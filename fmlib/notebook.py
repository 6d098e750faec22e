"""What the notebooks share: the prologue of their second cell (smoke mode, progress bars, where
files go), and the check that fails a notebook on a papermill parameter it does not define.

Every notebook opens its cell after the ``parameters`` cell with :func:`prologue`::

    from fmlib.notebook import prologue

    nb = prologue("compare", smoke)  # checks papermill's parameters; smoke also from FMLIB_SMOKE=1
    smoke = nb.smoke

Papermill injects the parameters it is given as a cell right after the notebook's cell tagged
``parameters``, and only warns ("Passed unknown parameter") about names that cell lacks, so
``-p quey_size 5`` would run with the default ``query_size``; and ``-p`` passes a dict or a list
as a string. :func:`check_parameters` (which :func:`prologue` calls) fails on the first with a
"did you mean", and reads the second as the literal it spells (or says to pass it with ``-y``).
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import tempfile
from pathlib import Path

from fmlib.progress import progress_mode

INJECTED = "# Parameters"  # the first line of the cell papermill injects
CONTAINERS = ("dict", "list", "tuple")  # annotations whose values -p passes as strings


def repo_root() -> Path:
    """The checkout holding fmlib (editable install), else the working directory."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "notebooks").is_dir() else Path.cwd()


class Notebook:
    """What a notebook's prologue settles: smoke mode, progress bars, where files go.

    Attributes:
        name: the notebook's name, e.g. ``"compare"``; names its cache folder.
        smoke: the ``smoke`` parameter, or the environment variable ``FMLIB_SMOKE`` set to 1.
        progress: how fmlib draws progress bars here, ``"widget"``, ``"text"`` or ``"off"``
            (:func:`fmlib.progress.progress_mode`: ``text`` under papermill and nbconvert, whose
            saved notebooks would keep a widget bar frozen at ``0%``).
        root: the repository (:func:`repo_root`): relative paths given as parameters start there.
    """

    def __init__(self, name: str, smoke: bool = False):
        self.name = name
        self.smoke = bool(smoke) or os.environ.get("FMLIB_SMOKE") == "1"
        self.progress = progress_mode()  # a bad FMLIB_PROGRESS fails here, in the prologue
        self.root = repo_root()
        self._scratch: tempfile.TemporaryDirectory | None = None

    def path(self, value) -> Path:
        """``value`` (a parameter naming a file or folder) relative to the repository."""
        return self.root / Path(value).expanduser()

    def relative(self, path) -> str:
        """``path`` as written into records: relative to the repository when inside it (the same
        text in every checkout), else absolute."""
        path = Path(path).expanduser().resolve()
        try:
            return path.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def scratch(self) -> Path:
        """A temporary folder (made on the first call), removed by :meth:`cleanup`."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix=f"fmlib-{self.name}-")
        return Path(self._scratch.name)

    def output(self, value=None, *parts: str) -> Path:
        """Where the notebook writes: ``value`` relative to the repository when a parameter names
        it (asked for), else ``<fmlib's cache>/notebooks/<name>/<parts>``
        (``~/.cache/fmlib/...``): running a notebook never writes into the checkout unasked."""
        if value:
            return self.path(value)
        from fmlib.data import cache_dir

        return cache_dir().joinpath("notebooks", self.name, *parts)

    @property
    def scratched(self) -> bool:
        """Whether :meth:`scratch` made a temporary folder."""
        return self._scratch is not None

    def cleanup(self) -> None:
        """Remove the temporary folder of :meth:`scratch`, if any: nothing in it is kept."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def demo_grid(name: str) -> Path:
    """A notebook's demo grid file by name, e.g. ``"compare"`` or ``"ablation/ours"``: the
    checkout's ``grids/demo/<name>.json`` (editable install), else the copy the wheel carries in
    ``fmlib/grids/demo/``."""
    checkout = Path(__file__).resolve().parents[1] / "grids" / "demo" / f"{name}.json"
    if checkout.is_file():
        return checkout
    carried = Path(__file__).resolve().parent / "grids" / "demo" / f"{name}.json"
    if not carried.is_file():
        raise FileNotFoundError(f"no demo grid {name!r}: neither {checkout} nor {carried} exists")
    return carried


def prologue(name: str, smoke: bool = False) -> Notebook:
    """Check papermill's parameters (:func:`check_parameters`) and settle smoke mode, progress
    bars and output folders. Call it first in the cell after the parameters cell."""
    check_parameters()
    return Notebook(name, smoke)


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
    return list(annotations(source))


def annotations(source: str) -> dict[str, str | None]:
    """Name -> annotation source (``None`` for a plain assignment) of a cell's top-level
    assignments, in order."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign):
            found.update({t.id: None for t in node.targets if isinstance(t, ast.Name)})
    return found


def unknown_parameters(parameters_cell: str, previous_cell: str) -> list[str]:
    """Names papermill injected (``previous_cell``, when it is papermill's) that the parameters
    cell does not define, sorted."""
    if not _injected(previous_cell):
        return []  # nothing injected: the notebook runs with its own values
    return sorted(set(assigned_names(previous_cell)) - set(assigned_names(parameters_cell)))


def unknown_message(unknown: list[str], valid: list[str]) -> str:
    """The error for misspelled parameters: each with its closest valid name, then all of them."""
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        hints += [f"{name!r}: did you mean {close[0]!r}?"] if close else []
    return (
        f"unknown notebook parameters {unknown}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f"; valid names: {sorted(valid)}"
    )


def container_values(parameters_cell: str, values: dict) -> dict:
    """The injected ``values`` of parameters annotated as a dict, list or tuple that arrived as
    strings (papermill's ``-p`` passes ``{"a": 1}`` so), read as the JSON or Python literal they
    spell. Raises ``ValueError`` naming the parameter when a string spells none (pass it with
    ``-y``)."""
    read = {}
    for name, annotation in annotations(parameters_cell).items():
        value = values.get(name)
        if not isinstance(value, str) or not annotation:
            continue
        kinds = _kinds(ast.parse(annotation, mode="eval").body)
        if "str" in kinds or not kinds & set(CONTAINERS):
            continue  # a string is a value here, or not a container
        parsed = _literal(value)
        if not isinstance(parsed, (dict, list, tuple)):
            example = f"{name}: {{key: [1, 2]}}" if "dict" in kinds else f"{name}: [1, 2]"
            raise ValueError(
                f"parameter {name!r} is {annotation}, got the string {value!r}: papermill's -p "
                f"passes text; give it as YAML with -y, e.g. -y '{example}'"
            )
        read[name] = parsed
    return read


def check_parameters() -> None:
    """Raise ``ValueError`` naming every injected parameter the parameters cell does not define
    (with the closest valid name), and the valid ones; read a dict or list that papermill's
    ``-p`` passed as a string (:func:`container_values`). Call it first in the cell after the
    parameters cell (:func:`prologue` does).

    Reads the kernel's input history: the cell before this one is papermill's injected cell when
    parameters were given, and the one before that the parameters cell. Outside IPython, or when
    nothing was injected, it does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    namespace = getattr(shell, "user_ns", {}) if shell is not None else {}
    history = list(namespace.get("In", []))
    if len(history) < 3:
        return
    parameters_cell, injected = history[-3], history[-2]  # history[-1] is the calling cell
    unknown = unknown_parameters(parameters_cell, injected)
    if unknown:
        raise ValueError(unknown_message(unknown, assigned_names(parameters_cell)))
    if _injected(injected):
        values = {name: namespace.get(name) for name in assigned_names(injected)}
        namespace.update(container_values(parameters_cell, values))


def _kinds(node: ast.expr) -> set[str]:
    """The types an annotation allows at its top: ``Optional[dict[str, int]]`` -> dict, None."""
    if isinstance(node, ast.Subscript):
        base = _kinds(node.value)
        if base & {"Optional", "Union"}:
            inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return set().union(*(_kinds(n) for n in inner)) | (
                {"None"} if "Optional" in base else set()
            )
        return base
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _kinds(node.left) | _kinds(node.right)
    if isinstance(node, ast.Attribute):
        return {node.attr}
    if isinstance(node, ast.Name):
        return {node.id}
    return {"None"} if isinstance(node, ast.Constant) and node.value is None else set()


def _injected(cell: str) -> bool:
    return cell.lstrip().splitlines()[:1] == [INJECTED]


def _literal(text: str):
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
