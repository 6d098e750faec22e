"""Batch runs: ``notebooks/active_learning.ipynb`` executed over a grid of configs.

A grid file (``grids/*.json``) holds ``base`` config fields and ``axes``; every combination of
axis values is one run, in ``<output>/<name>/`` with the executed notebook beside its records::

    {"description": "...",
     "base": {"model": "cnn", "train_preset": "paper"},
     "axes": {"dataset": ["fashion_mnist"],
              "imbalance": {"imbalanced": {"imbalance": "paper", "budget": 575},
                            "balanced": {"imbalance": "none", "pool_size": 10000}},
              "strategy": ["random",
                           {"strategy": "fishermask", "strategy_options": {"fraction": 0.003}}],
              "seed": [0, 1, 2]}}

An axis is a list (a scalar sets the field named like the axis; a dict is merged and labelled by
its ``name``, else by its value for that field) or a dict of named variants (each merged, labelled
by its key). Dict-valued fields (``strategy_options`` ...) merge one level deep. The axes
``dataset``, ``imbalance``, ``strategy``, ``seed`` come first in that order, then the others as
written; the run's name joins the labels: ``fashion_mnist-imbalanced-fishermask-seed0``.

Usage (``python -m fmlib.grid --help`` lists every option)::

    python -m fmlib.grid grids/fashion_mnist_cpu.json --dry-run
    python -m fmlib.grid grids/fashion_mnist_cpu.json --output runs/fashion_mnist_cpu --workers 2
    python -m fmlib.grid grids/fashion_mnist_cpu.json --strategy fishermask random --seed 0 \\
        --dry-run
    python -m fmlib.grid --dataset fashion_mnist --imbalance paper none --strategy entropy \\
        --seed 0 1 --set budget=155 --output runs/quick
    python -m fmlib.grid grids/cifar10_gpu.json --executor submitit --partition gpu --gpus 1 \\
        --cpus 8 --timeout 720

A run is done when it finished with the grid's config and its notebook's last cell wrote
``results.json``; done runs are skipped, others re-executed (``run_experiment`` resumes from the
checkpoint). A run made with another config (the grid was edited) is stale: reported, never done,
never rerun silently; ``--rerun-stale`` moves its directory aside to ``<output>/.stale/`` (never
deleted) and runs it again. A failing run does not stop the grid: its executed notebook stays in
its directory to read the error, and the summary (printed, and ``grid_summary.json``) lists it.

This module expands grids into runs; :mod:`fmlib.grid.runner` executes them, :mod:`fmlib.grid.cli`
is the command line.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CANONICAL_AXES = ("dataset", "imbalance", "strategy", "seed")
_RESERVED = ("output_dir",)  # set by the runner


# ----------------------------------------------------------------------------- grid -> runs


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: its directory name and its config fields (``output_dir`` excluded)."""

    name: str
    params: dict = field(hash=False)

    def path(self, root) -> Path:
        _check_name(self.name)
        return Path(root) / self.name


def load_grid(path) -> dict:
    """Read a grid file (JSON, see the module docstring); ``ValueError`` naming the file when it is
    not a grid."""
    try:
        grid = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(grid, dict):
        raise ValueError(
            f"{path}: a grid file holds a JSON object with 'base' and 'axes', got {_kind(grid)}"
        )
    unknown = sorted(set(grid) - {"description", "base", "axes"})
    if unknown:
        raise ValueError(
            f"{path}: unknown grid keys {unknown}; allowed: ['axes', 'base', 'description']"
        )
    try:
        _check_shape(grid)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return grid


def _check_shape(grid: Mapping) -> None:
    if not isinstance(grid.get("base", {}), Mapping):
        raise ValueError(f"base must be an object of config fields, got {_kind(grid['base'])}")
    if not isinstance(grid.get("axes", {}), Mapping):
        raise ValueError(
            f"axes must be an object of axis name -> values, got {_kind(grid['axes'])}"
        )


def _kind(value) -> str:
    """How JSON would name a value's type: 'a list', 'null', ..."""
    if value is None:
        return "null"
    names = {
        list: "a list",
        tuple: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def slug(text) -> str:
    """``text`` as a file-name part: runs of other characters than ``A-Za-z0-9._=+-`` become
    ``_``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(text)).strip("_") or "_"


def _label(axis: str, value) -> str:
    if isinstance(value, str):
        return slug(value)
    if value is None or isinstance(value, (bool, int, float)):
        return slug(f"{axis}{json.dumps(value)}")
    raise ValueError(
        f"axis {axis!r}: cannot name a run after {value!r}; give dict elements a 'name'"
    )


def _axis_items(axis: str, values) -> list[tuple[str, dict]]:
    """``(label, fields)`` for every value of an axis."""
    if isinstance(values, Mapping) and values:
        return [(slug(name), dict(fields)) for name, fields in values.items()]
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(
            f"axis {axis!r} must be a non-empty list or a non-empty dict of named variants, "
            f"got {values!r}"
        )
    items = []
    for value in values:
        if isinstance(value, Mapping):
            fields = dict(value)
            name = fields.pop("name", None)
            if name is None and axis not in fields:
                raise ValueError(
                    f"axis {axis!r}: dict element {value!r} needs a 'name' or a {axis!r} field"
                )
            items.append((slug(name) if name is not None else _label(axis, fields[axis]), fields))
        else:
            items.append((_label(axis, value), {axis: value}))
    return items


def _merge(params: dict, update: Mapping) -> dict:
    from fmlib.config import OPTION_FIELDS  # dict fields merged key by key, not replaced

    out = dict(params)
    for key, value in copy.deepcopy(
        dict(update)
    ).items():  # runs share no nested dicts with the grid
        if (
            key in OPTION_FIELDS
            and isinstance(out.get(key), Mapping)
            and isinstance(value, Mapping)
        ):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _check_fields(params: Mapping, where: str) -> None:
    from dataclasses import fields

    from fmlib.config import ExperimentConfig

    valid = [f.name for f in fields(ExperimentConfig) if f.name not in _RESERVED]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown config fields {unknown}; allowed: {valid}")


def _check_name(name: str) -> None:
    """``ValueError`` unless ``name`` is one directory inside the grid's output: not ``.`` or
    ``..``, no path separator, not absolute."""
    if name in (".", "..") or "/" in name or "\\" in name or os.sep in name or os.path.isabs(name):
        raise ValueError(
            f"run name {name!r} would leave its grid directory (a run's directory is"
            " <output>/<name>): name the axis values with letters, digits or . _ = + - (not '.' or"
            " '..', no separators)"
        )


def expand_grid(
    grid: Mapping | None = None,
    *,
    select: Mapping[str, Sequence] | None = None,
    overrides: Mapping | None = None,
) -> list[GridRun]:
    """The runs of a grid.

    Args:
        grid: ``{"base": {...}, "axes": {...}}`` (see the module docstring); ``None``: empty.
        select: axis -> values from the command line. For an axis of the grid, keeps the elements
            whose label (or value) is listed; otherwise adds a list axis with these values.
        overrides: config fields set in every run, after the axes (``--set``).

    Returns:
        Runs in grid order (the last axis varies fastest), with unique names.
    """
    grid = dict(grid or {})
    _check_shape(grid)
    base = dict(grid.get("base", {}))
    axes = {name: _axis_items(name, values) for name, values in dict(grid.get("axes", {})).items()}
    for axis, wanted in (select or {}).items():
        wanted = list(wanted)
        if not wanted:
            continue
        if axis not in axes:
            axes[axis] = _axis_items(axis, wanted)
            continue
        keep = [
            (label, fields)
            for label, fields in axes[axis]
            if label in map(str, wanted) or fields.get(axis, object()) in wanted
        ]
        found = {label for label, _ in keep} | {str(f.get(axis)) for _, f in keep}
        missing = [w for w in wanted if str(w) not in found and w not in found]
        if missing:
            raise ValueError(
                f"axis {axis!r} has no values {missing}; it has"
                f" {[label for label, _ in axes[axis]]}"
            )
        axes[axis] = keep
    order = [a for a in CANONICAL_AXES if a in axes] + [a for a in axes if a not in CANONICAL_AXES]
    _check_fields(base, "base")
    _check_fields(dict(overrides or {}), "--set")
    runs, seen = [], {}
    for combo in itertools.product(*(axes[a] for a in order)):
        params = copy.deepcopy(base)
        for axis, (_, fields) in zip(order, combo):
            _check_fields(fields, f"axis {axis!r}")
            params = _merge(params, fields)
        params = _merge(params, overrides or {})
        name = "-".join(label for label, _ in combo) or "run"
        _check_name(name)
        if name in seen:
            raise ValueError(
                f"two runs are both named {name!r}: give the axis values distinct labels"
            )
        seen[name] = True
        runs.append(GridRun(name, params))
    return runs
