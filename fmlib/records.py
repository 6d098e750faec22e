"""What a run leaves on disk, written atomically, and tidy tables to analyse it.

One directory per run::

    config.json              config, fmlib version, git commit, environment, classes, label schedule
    rounds.csv               one row per finished round (metrics, class histograms, timings)
    queries.csv              one row per labeled sample: round it joined (0 = initial set), order, pool index, label
    sensitivity/round_XXX.npz  Fisher strategies only: summaries of the Fisher diagonal and the mask of round XXX
    checkpoint.pt            loop state after the last finished round (resume)

Every file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

CONFIG, ROUNDS, QUERIES, CHECKPOINT, SENSITIVITY = "config.json", "rounds.csv", "queries.csv", "checkpoint.pt", "sensitivity"
QUANTILES = (0.5, 0.9, 0.99, 0.999)  # levels of the per-parameter Fisher quantiles in the snapshots
FORMAT_VERSION = 1

# ----------------------------------------------------------------------------- atomic writes


def atomic_write(path, write: Callable, binary: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=_json_default), False)


def write_csv(path, rows: Iterable[Mapping] | pd.DataFrame) -> Path:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return atomic_write(path, lambda f: frame.to_csv(f, index=False), False)


def save_torch(path, obj) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_npz(path, arrays: Mapping[str, np.ndarray]) -> Path:
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# ----------------------------------------------------------------------------- provenance


def git_commit(path=None) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (default: fmlib's), or ``None``."""
    cwd = Path(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if commit.returncode:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if not status.returncode else None}


def environment(device=None) -> dict:
    """Versions and hardware a run used."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
    }


def fmlib_version() -> str:
    import fmlib  # at call time: fmlib/__init__ may import this module

    return fmlib.__version__


# ----------------------------------------------------------------------------- in-memory records


@dataclass
class RunRecords:
    """Per-round rows and per-sample query rows of one run, plus its metadata (``config.json``)."""

    meta: dict
    rounds: list[dict] = field(default_factory=list)
    queries: list[dict] = field(default_factory=list)
    path: Path | None = None

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    @property
    def finished(self) -> bool:
        return len(self.rounds) == len(self.meta.get("schedule", [])) > 0

    def rounds_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rounds)

    def queries_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.queries, columns=["round", "order", "pool_index", "label"])

    def frame(self) -> pd.DataFrame:
        """Tidy table: one row per round with the run's config fields as columns (as :func:`load_run`)."""
        return _tidy(self.meta, self.rounds_frame(), self.path)

    def state(self) -> dict:
        """Plain lists and dicts (loadable with ``torch.load(weights_only=True)``)."""
        return {"meta": self.meta, "rounds": self.rounds, "queries": self.queries}

    @classmethod
    def from_state(cls, state: dict, path=None) -> RunRecords:
        return cls(state["meta"], list(state["rounds"]), list(state["queries"]), Path(path) if path else None)


def run_columns(meta: dict, path=None) -> dict:
    """Per-run columns of the tidy tables: ``run``, ``path``, the config fields, ``finished``."""
    columns = {"run": Path(path).name if path else meta.get("config", {}).get("strategy", "run")}
    columns["path"] = str(path) if path else None
    for key, value in meta.get("config", {}).items():
        if isinstance(value, Mapping):
            columns.update({f"{key}.{k}": _scalar(v) for k, v in value.items()})
        else:
            columns[key] = _scalar(value)
    return columns


def _tidy(meta: dict, rounds: pd.DataFrame, path) -> pd.DataFrame:
    columns = run_columns(meta, path)
    columns["finished"] = len(rounds) == len(meta.get("schedule", [])) > 0
    front = pd.DataFrame({k: [v] * len(rounds) for k, v in columns.items()}, index=rounds.index)
    return pd.concat([front, rounds], axis=1)


def _scalar(value):
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


# ----------------------------------------------------------------------------- run directory


class RunDirectory:
    """The files of one run (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)

    def read_meta(self) -> dict | None:
        file = self.path / CONFIG
        return json.loads(file.read_text()) if file.is_file() else None

    def write_meta(self, meta: dict) -> None:
        write_json(self.path / CONFIG, meta)

    def write_records(self, records: RunRecords) -> None:
        write_csv(self.path / QUERIES, records.queries_frame())
        write_csv(self.path / ROUNDS, records.rounds_frame())

    def snapshot_path(self, round: int) -> Path:
        return self.path / SENSITIVITY / f"round_{round:03d}.npz"

    def write_snapshot(self, round: int, snapshot: Mapping[str, np.ndarray]) -> None:
        save_npz(self.snapshot_path(round), snapshot)

    def save_checkpoint(self, state: dict) -> None:
        save_torch(self.path / CHECKPOINT, {"format": FORMAT_VERSION, **state})

    def load_checkpoint(self) -> dict | None:
        file = self.path / CHECKPOINT
        if not file.is_file():
            return None
        state = torch.load(file, map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT_VERSION:
            raise ValueError(f"{file}: checkpoint format {state.get('format')}, this fmlib reads {FORMAT_VERSION}")
        return state


def config_differences(old: Mapping, new: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """Lines ``field: old -> new`` for every differing field not in ``ignore``."""
    ignore = set(ignore)
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in ignore]
    missing = object()
    return [f"{k}: {old.get(k, missing)!r} there, {new.get(k, missing)!r} here".replace(repr(missing), "<absent>")
            for k in keys if _jsonable(old.get(k, missing)) != _jsonable(new.get(k, missing))]  # fmt: skip


def _jsonable(value):
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except TypeError:
        return value


# ----------------------------------------------------------------------------- sensitivity snapshots


def fisher_snapshot(
    info: Mapping, picked, labels, *, round: int, full: bool = False, quantiles=QUANTILES
) -> dict[str, np.ndarray]:
    """Compact arrays describing one Fisher-based selection (a ``round_XXX.npz``).

    Args:
        info: ``strategy.info`` after ``select``: ``fisher_diag`` (name -> tensor), ``mask``
            (:class:`~fmlib.masks.ParameterMask` or name -> bool tensor), ``picked_scores``
            (``[K]``, pick order), ``fisher_trace``.
        picked: ``int [K]`` pool positions the strategy returned (pick order).
        labels: ``int [K]`` their labels.
        round: the round whose model computed the Fisher.
        full: also keep the whole Fisher diagonal (``fisher_flat``, float32, large).

    Returns:
        Parameter tables ``[P]`` (``param_names``, ``param_shapes``, ``param_numel``,
        ``fisher_sum/mean/min/max``, ``fisher_masked_sum``, ``fisher_quantiles [P, Q]`` at
        ``quantile_levels [Q]``, ``mask_count``, ``mask_fraction``), the mask as flat indices per
        parameter (``mask_indices`` concatenated, parameter ``p`` owns
        ``mask_indices[mask_offsets[p]:mask_offsets[p + 1]]``), scalars ``round``,
        ``fisher_trace``, ``mask_size``, and the picked samples (``picked_pool_index``,
        ``picked_label``, ``picked_score``).
    """
    diag = {name: t.detach().to("cpu", torch.float64).reshape(-1) for name, t in info["fisher_diag"].items()}
    mask = mask_tensors(info.get("mask"))
    names = list(diag)
    unknown = sorted(set(mask) - set(names))
    if unknown:
        raise ValueError(f"mask has parameters without Fisher values: {unknown}")
    flat_masks = [mask[n].reshape(-1).to("cpu", torch.bool) if n in mask else torch.zeros(len(diag[n]), dtype=torch.bool)
                  for n in names]  # fmt: skip
    indices = [torch.nonzero(m).reshape(-1).numpy() for m in flat_masks]
    counts = np.array([len(i) for i in indices], dtype=np.int64)
    numel = np.array([len(diag[n]) for n in names], dtype=np.int64)
    levels = np.asarray(quantiles, dtype=np.float64)
    out = {
        "round": np.int64(round),
        "param_names": np.array(names, dtype=str),
        "param_shapes": np.array(["x".join(map(str, info["fisher_diag"][n].shape)) for n in names], dtype=str),
        "param_numel": numel,
        "fisher_sum": np.array([diag[n].sum().item() for n in names]),
        "fisher_mean": np.array([diag[n].mean().item() if len(diag[n]) else np.nan for n in names]),
        "fisher_min": np.array([diag[n].min().item() if len(diag[n]) else np.nan for n in names]),
        "fisher_max": np.array([diag[n].max().item() if len(diag[n]) else np.nan for n in names]),
        "fisher_masked_sum": np.array([diag[n][m].sum().item() for n, m in zip(names, flat_masks)]),
        "quantile_levels": levels,
        "fisher_quantiles": np.stack([np.quantile(diag[n].numpy(), levels) for n in names]),  # [P, Q]
        "mask_count": counts,
        "mask_fraction": counts / np.maximum(numel, 1),
        "mask_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "mask_indices": np.concatenate(indices).astype(np.int32 if numel.max(initial=0) < 2**31 else np.int64),
        "mask_size": np.int64(counts.sum()),
        "fisher_trace": np.float64(info.get("fisher_trace", np.nan)),
        "picked_pool_index": np.asarray(picked, dtype=np.int64),
        "picked_label": np.asarray(labels, dtype=np.int64),
        "picked_score": np.asarray(info.get("picked_scores", np.full(len(picked), np.nan)), dtype=np.float64),
    }
    if full:
        out["fisher_flat"] = torch.cat([diag[n] for n in names]).numpy().astype(np.float32)
    return out


def mask_tensors(mask) -> dict[str, torch.Tensor]:
    """Name -> bool tensor of a :class:`~fmlib.masks.ParameterMask`, a mapping, or ``None`` (empty)."""
    if mask is None:
        return {}
    if isinstance(mask, Mapping):
        return dict(mask)
    for attr in ("masks", "tensors"):
        if isinstance(getattr(mask, attr, None), Mapping):
            return dict(getattr(mask, attr))
    if hasattr(mask, "items"):
        return dict(mask.items())
    raise TypeError(f"cannot read a mask of type {type(mask).__name__}")


def load_snapshot(path) -> dict[str, np.ndarray]:
    """A ``round_XXX.npz`` as a dict of arrays (0-d arrays for the scalars)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_snapshots(run) -> dict[int, dict[str, np.ndarray]]:
    """All snapshots of a run directory, by round (empty for non-Fisher strategies)."""
    files = sorted((Path(run) / SENSITIVITY).glob("round_*.npz"))
    return {int(f.stem.split("_")[1]): load_snapshot(f) for f in files}


def snapshot_masks(snapshot: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameter name -> sorted flat indices of its entries in the mask."""
    offsets = snapshot["mask_offsets"]
    return {str(n): snapshot["mask_indices"][offsets[p] : offsets[p + 1]] for p, n in enumerate(snapshot["param_names"])}


# ----------------------------------------------------------------------------- loading runs


def load_run(path) -> pd.DataFrame:
    """One run's ``rounds.csv`` as a tidy table with its config fields as columns.

    Config dicts become ``field.key`` columns (``strategy_options.fraction``); lists are JSON
    strings. ``run`` is the directory name, ``finished`` whether every planned round is done.
    """
    path = Path(path)
    meta = RunDirectory(path).read_meta()
    if meta is None:
        raise FileNotFoundError(f"{path} holds no {CONFIG}: not a run directory")
    file = path / ROUNDS
    rounds = pd.read_csv(file) if file.is_file() else pd.DataFrame()
    return _tidy(meta, rounds, path)


def load_queries(path) -> pd.DataFrame:
    """One run's ``queries.csv`` (round, order, pool_index, label)."""
    return pd.read_csv(Path(path) / QUERIES)


def load_runs(pattern) -> pd.DataFrame:
    """Tidy table of every run directory matching a glob pattern (or in an iterable of paths).

    Matches that are not run directories (no ``config.json``) are skipped; a ``config.json``
    match stands for its directory.
    """
    paths = sorted(globlib.glob(str(pattern), recursive=True)) if isinstance(pattern, (str, Path)) else list(pattern)
    runs = [Path(p).parent if Path(p).name == CONFIG else Path(p) for p in paths]
    frames = [load_run(r) for r in dict.fromkeys(runs) if (r / CONFIG).is_file()]
    if not frames:
        raise FileNotFoundError(f"no run directories match {pattern!r}")
    return pd.concat(frames, ignore_index=True)


def export_runs(source, target, *, finished_only: bool = True) -> list[Path]:
    """Copy the small records of every run directory under ``source`` to ``target`` (for git).

    Keeps ``config.json``, ``rounds.csv``, ``queries.csv``, ``results.json`` and the sensitivity
    snapshots; leaves out checkpoints and executed notebooks. Files are copied atomically, so an
    export can be re-run while a grid is still writing. ``finished_only``: runs whose last planned
    round is done (their ``results.json`` exists).

    Returns:
        The exported run directories in ``target``.
    """
    source, target = Path(source), Path(target)
    exported = []
    for config in sorted(source.glob(f"*/{CONFIG}")):
        run = config.parent
        if finished_only and not (run / "results.json").is_file():
            continue
        files = [run / name for name in (CONFIG, ROUNDS, QUERIES, "results.json")] + sorted((run / SENSITIVITY).glob("*.npz"))
        for file in (f for f in files if f.is_file()):
            dest = target / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, lambda handle, file=file: handle.write(file.read_bytes()))
        exported.append(target / run.name)
    return exported
