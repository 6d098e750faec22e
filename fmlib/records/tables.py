"""A run's records in memory (:class:`RunRecords`), the one definition of a finished run, the
``results.json`` summary, and tidy tables of runs on disk (:func:`load_run`, :func:`load_runs`)."""

from __future__ import annotations

import glob as globlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fmlib.records.files import CONFIG, QUERIES, RESULTS, ROUNDS, read_meta
from fmlib.records.formats import QUERY_COLUMNS, thread_counts


def is_finished(meta: Mapping, n_rounds: int) -> bool:
    """Whether a run with ``n_rounds`` finished rounds is done: every round of its schedule ran.

    The one definition, used by :class:`RunRecords`, the tidy tables' ``finished`` column, the
    ``results.json`` summary and the run directories' status.
    """
    stopped = meta.get("stopped")  # a stopping rule ended the run in that round (fmlib.stopping)
    if isinstance(stopped, Mapping) and n_rounds == stopped.get("round", -2) + 1:
        return True
    return n_rounds == len(meta.get("schedule", [])) > 0


@dataclass
class RunRecords:
    """Per-round rows and per-sample query rows of one run, its metadata (``config.json``) and the
    Fisher snapshots (``round -> npz bytes``, as written to ``sensitivity/``)."""

    meta: dict
    rounds: list[dict] = field(default_factory=list)
    queries: list[dict] = field(default_factory=list)
    path: Path | None = None
    snapshots: dict[int, bytes] = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    @property
    def finished(self) -> bool:
        return is_finished(self.meta, len(self.rounds))

    def rounds_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rounds)

    def queries_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.queries, columns=list(QUERY_COLUMNS))

    def frame(self) -> pd.DataFrame:
        """Tidy table: one row per round with the run's config fields as columns (as
        :func:`load_run`)."""
        return _tidy(self.meta, self.rounds_frame(), self.path)

    def state(self) -> dict:
        """Plain lists, dicts and bytes (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "meta": self.meta,
            "rounds": self.rounds,
            "queries": self.queries,
            "snapshots": self.snapshots,
        }

    @classmethod
    def from_state(cls, state: dict, path=None) -> RunRecords:
        snapshots = {int(r): bytes(b) for r, b in state.get("snapshots", {}).items()}
        return cls(
            state["meta"],
            list(state["rounds"]),
            list(state["queries"]),
            Path(path) if path else None,
            snapshots,
        )


def curve_area(n_labeled, values) -> float:
    """Normalised area under one learning curve: the trapezoid area of ``values`` against
    ``n_labeled`` divided by the label range, i.e. the mean value over the budget (one point, or
    one label count: the last value; no points: NaN)."""
    x, y = np.asarray(n_labeled, dtype=float), np.asarray(values, dtype=float)
    if len(x) == 0:
        return float("nan")
    if len(x) == 1 or x[-1] == x[0]:
        return float(y[-1])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def run_summary(frame: pd.DataFrame, *, metric: str = "accuracy") -> dict:
    """Small JSON-able summary of one run's tidy table: rounds, finished, final and per-round
    accuracy, the area under its learning curve (:func:`curve_area`)."""
    rounds = frame.sort_values("n_labeled")
    last = rounds.iloc[-1] if len(rounds) else None
    return {
        "rounds": len(rounds),
        "finished": bool(rounds["finished"].iloc[-1])
        if "finished" in rounds and len(rounds)
        else False,
        "n_labeled": int(last["n_labeled"]) if last is not None else 0,
        "final_accuracy": float(last["accuracy"]) if last is not None else float("nan"),
        "final_balanced_accuracy": float(last["balanced_accuracy"])
        if last is not None
        else float("nan"),
        "auc": curve_area(rounds["n_labeled"], rounds[metric]),
        "accuracy": [float(a) for a in rounds["accuracy"]],
        "n_labeled_per_round": [int(n) for n in rounds["n_labeled"]],
    }


def results_summary(records: RunRecords) -> dict:
    """The summary in ``results.json``: :func:`run_summary` of the records (rounds, finished, final
    and per-round accuracy, AUC) and the torch thread counts that computed them."""
    meta = records.meta
    threads = thread_counts(meta)
    summary = {
        **run_summary(records.frame()),
        "torch_threads": threads,
        "threads_mixed": len(set(threads)) > 1,
    }
    if "stopped" in meta:
        summary["stopped"] = meta["stopped"]
    return summary


def run_columns(meta: dict, path=None) -> dict:
    """Per-run columns of the tidy tables: ``run``, ``path``, the config fields."""
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
    columns["finished"] = is_finished(meta, len(rounds))
    front = pd.DataFrame({k: [v] * len(rounds) for k, v in columns.items()}, index=rounds.index)
    return pd.concat([front, rounds], axis=1)


def _scalar(value):
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


# ----------------------------------------------------------------------------- loading runs


def load_run(path) -> pd.DataFrame:
    """One run's ``rounds.csv`` as a tidy table with its config fields as columns.

    Config dicts become ``field.key`` columns (``strategy_options.fraction``); lists are JSON
    strings. ``run`` is the directory name, ``finished`` whether every planned round is done.
    """
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        raise FileNotFoundError(f"{path} holds no {CONFIG}: not a run directory")
    file = path / ROUNDS
    rounds = pd.read_csv(file) if file.is_file() else pd.DataFrame()
    return _tidy(meta, rounds, path)


def is_smoke(path) -> bool:
    """Whether the run in ``path`` is a smoke run: its ``results.json`` says ``smoke``."""
    try:
        results = json.loads((Path(path) / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and results.get("smoke", False) is not False


def load_queries(path) -> pd.DataFrame:
    """One run's ``queries.csv`` (round, order, pool_index, label)."""
    return pd.read_csv(Path(path) / QUERIES)


def load_runs(pattern, *, include_smoke: bool = False) -> pd.DataFrame:
    """Tidy table of every run directory matching a glob pattern (or in an iterable of paths).

    Matches that are not run directories (no ``config.json``) are skipped; a ``config.json``
    match stands for its directory. Runs moved aside as stale (``.stale/``) do not match ``*``.
    Smoke runs (``results.json`` says ``smoke``: ``fmlib run --smoke``, ``FMLIB_SMOKE=1``) are
    tests, not results: left out unless ``include_smoke``.
    """
    paths = (
        sorted(globlib.glob(str(pattern), recursive=True))
        if isinstance(pattern, (str, Path))
        else list(pattern)
    )
    runs = [Path(p).parent if Path(p).name == CONFIG else Path(p) for p in paths]
    runs = [
        r
        for r in dict.fromkeys(runs)
        if (r / CONFIG).is_file() and (include_smoke or not is_smoke(r))
    ]
    frames = [load_run(r) for r in runs]
    if not frames:
        raise FileNotFoundError(f"no run directories match {pattern!r}")
    return pd.concat(frames, ignore_index=True)
