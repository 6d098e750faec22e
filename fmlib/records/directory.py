"""The one owner of a run directory: its lock (:mod:`~fmlib.records.lock`), the checkpoint,
verify-on-open, its status and the config comparison the grid uses, the ``results.json`` summary,
moving a stale run aside.

The checkpoint is the primary state; every other file is derived from it and written after it,
so a crash leaves the derived files at most one round behind, never ahead. Opening a directory
(:meth:`RunDirectory.open`) repairs what is derived and refuses what is not.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pandas as pd
import torch

from fmlib.records.files import (
    CHECKPOINT,
    CONFIG,
    LOCK,
    QUERIES,
    RESULTS,
    ROUNDS,
    SENSITIVITY,
    STALE,
    DamagedRunError,
    _json_default,
    atomic_write,
    csv_bytes,
    json_bytes,
    read_meta,
    save_torch,
    write_bytes,
    write_json,
)
from fmlib.records.lock import hold
from fmlib.records.snapshots import load_snapshot, snapshot_bytes
from fmlib.records.tables import RunRecords, is_finished, results_summary

FORMAT_VERSION = 1  # of checkpoint.pt; later additions (snapshots) are optional keys
STATUSES = ("new", "partial", "done", "stale")


def config_differences(
    old: Mapping,
    new: Mapping,
    ignore: Iterable[str] = (),
    defaults: Mapping | None = None,
    normalize: Callable[[Mapping], Mapping] | None = None,
) -> list[str]:
    """Lines ``field: old there, new here`` for every differing field not in ``ignore``.

    A field ``old`` lacks compares as its value in ``defaults`` (a config written before the field
    existed was made with its default), else as ``<absent>``. ``normalize`` maps both configs to
    the form compared (e.g. option defaults filled in).
    """
    ignore, defaults = set(ignore), dict(defaults or {})
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in ignore]
    missing = object()
    old = {**{k: v for k, v in defaults.items() if k in new}, **old}
    if normalize is not None:
        old, new = normalize(old), normalize(new)
    return [
        f"{k}: {old.get(k, missing)!r} there, {new.get(k, missing)!r} here".replace(
            repr(missing), "<absent>"
        )
        for k in keys
        if _jsonable(old.get(k, missing)) != _jsonable(new.get(k, missing))
    ]


def _jsonable(value):
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except TypeError:
        return value


def _same(a, b) -> bool:
    """Equal as JSON (NaN equals NaN here)."""
    return json.dumps(a, sort_keys=True, default=_json_default) == json.dumps(
        b, sort_keys=True, default=_json_default
    )


class RunDirectory:
    """The files of one run (see :mod:`fmlib.records`)."""

    def __init__(self, path):
        self.path = Path(path)
        # snapshot rounds already on disk since this directory was opened
        self._written: set[int] = set()

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # ------------------------------------------------------------------------- reading

    def read_meta(self) -> dict | None:
        """``config.json`` (``None`` when absent); :class:`DamagedRunError` when unreadable."""
        return read_meta(self.path)

    def read_results(self) -> dict | None:
        """``results.json``, or ``None`` when absent or unreadable."""
        try:
            results = json.loads((self.path / RESULTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return results if isinstance(results, dict) else None

    def load_checkpoint(self) -> dict | None:
        """The checkpoint (``None`` when absent); :class:`DamagedRunError` naming it and what to do
        when it cannot be read."""
        file = self.path / CHECKPOINT
        if not file.is_file():
            return None
        advice = (
            f"the run cannot resume from it; delete {self.path} (or move it aside) to run it again"
            " from the start"
        )
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # EOFError, UnpicklingError, RuntimeError from the zip reader, ...
            reason = "empty" if file.stat().st_size == 0 else f"unreadable: {type(err).__name__}"
            raise DamagedRunError(
                f"{file} is damaged ({reason}); {advice}"
            ) from None  # never torch's weights_only advice
        if (
            not isinstance(state, dict)
            or state.get("format") != FORMAT_VERSION
            or "records" not in state
        ):
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise DamagedRunError(
                f"{file} is damaged or not an fmlib checkpoint (format {got!r}, this fmlib "
                f"writes {FORMAT_VERSION}); {advice}"
            )
        return state

    def differences(
        self,
        config: Mapping,
        *,
        neutral: Iterable[str] = (),
        defaults: Mapping | None = None,
        normalize: Callable | None = None,
    ) -> list[str]:
        """How ``config`` differs from the one this directory was made with (fields in ``neutral``
        ignored); empty when it holds no run. Raises :class:`DamagedRunError` for a damaged
        ``config.json``."""
        meta = self.read_meta()
        return (
            []
            if meta is None
            else config_differences(meta["config"], config, neutral, defaults, normalize)
        )

    def status(
        self,
        config: Mapping | None = None,
        *,
        neutral: Iterable[str] = (),
        defaults: Mapping | None = None,
        normalize: Callable | None = None,
    ) -> str:
        """``"new"`` (nothing there), ``"stale"`` (made with a config that differs from ``config``
        in a field not in ``neutral``), ``"done"`` (finished, and ``results.json`` written by a real
        run, not a ``FMLIB_SMOKE=1`` one) or ``"partial"`` (anything else: started, failed,
        damaged)."""
        if not self.path.is_dir() or not [p for p in self.path.iterdir() if p.name != LOCK]:
            return "new"
        try:
            meta = self.read_meta()
        except DamagedRunError:
            return "partial"
        if meta is None:
            return "partial"
        if config is not None and config_differences(
            meta["config"], config, neutral, defaults, normalize
        ):
            return "stale"
        results = self.read_results()
        if results is None or results.get("smoke", False) is not False:
            return "partial"
        return "done" if is_finished(meta, results.get("rounds", 0)) else "partial"

    def snapshot_path(self, round: int) -> Path:
        return self.path / SENSITIVITY / f"round_{round:03d}.npz"

    # ------------------------------------------------------------------------- the lock

    def lock(self):
        """Hold the directory for this process inside a ``with`` block, which gets this
        :class:`RunDirectory` (:func:`~fmlib.records.lock.hold`: created when missing, a second
        holder refused with :class:`~fmlib.records.lock.RunLockedError` at once)."""
        return hold(self.path, self)

    # ------------------------------------------------------------------------- opening and writing

    def open(
        self,
        config: Mapping,
        *,
        neutral: Iterable[str] = (),
        defaults: Mapping | None = None,
        normalize: Callable | None = None,
    ) -> dict | None:
        """Verify the directory for a run of ``config`` (hold :meth:`lock`); return its checkpoint,
        or ``None`` when the run starts from scratch.

        Removes temporary files of killed writes; refuses a config that differs from the run's
        (``ValueError``), a damaged checkpoint, and records without a checkpoint
        (:class:`DamagedRunError`: nothing to resume from or verify against). With a checkpoint,
        every derived file (``config.json``, ``rounds.csv``, ``queries.csv``, the snapshots,
        ``results.json``'s summary) that differs from it is rewritten, with a warning naming them.
        """
        self._refuse_links()
        for tmp in [*self.path.glob(".*.tmp"), *(self.path / SENSITIVITY).glob(".*.tmp")]:
            tmp.unlink(missing_ok=True)
        checkpoint = self.load_checkpoint()
        if checkpoint is None:
            self._check_fresh(config, neutral, defaults, normalize)
            return None
        records = RunRecords.from_state(checkpoint["records"], self.path)
        diff = config_differences(records.config, config, neutral, defaults, normalize)
        if diff:
            raise ValueError(
                f"{self.path} holds a run with a different config ({'; '.join(diff)}); "
                "use another output_dir or delete that one"
            )
        # written before checkpoints kept them: adopt the files
        if "snapshots" not in checkpoint["records"]:
            checkpoint["records"]["snapshots"] = records.snapshots = self._adopt_snapshots(
                len(records.rounds)
            )
        rebuilt = self._rebuild(records)
        if rebuilt:
            warnings.warn(
                f"{self.path}: rebuilt from {CHECKPOINT}: {', '.join(sorted(rebuilt))}",
                stacklevel=3,
            )
        return checkpoint

    def _refuse_links(self) -> None:
        """Records never follow a link out of the run directory: a linked ``sensitivity/`` (whose
        files reopening would rewrite or delete) is refused, and nothing behind it is touched."""
        folder = self.path / SENSITIVITY
        if folder.is_symlink():
            raise DamagedRunError(
                f"{folder} is a symbolic link (to {os.readlink(folder)}), not a folder of this run:"
                " records never follow links out of their run directory, and nothing behind it was"
                f" touched; delete the link (the snapshots are rebuilt from {CHECKPOINT})"
            )

    def _check_fresh(self, config, neutral, defaults, normalize=None) -> None:
        """No checkpoint: nothing to resume. Refuse records it would overwrite or a config that
        differs."""
        leftovers = [
            p.name
            for p in (self.path / ROUNDS, self.path / QUERIES, self.path / RESULTS)
            if p.is_file()
        ]
        leftovers += [
            f"{SENSITIVITY}/{p.name}" for p in sorted((self.path / SENSITIVITY).glob("*.npz"))
        ]
        if leftovers:
            try:
                n_rounds = len(pd.read_csv(self.path / ROUNDS))
            except Exception:  # absent, empty or garbage: the count is unknown, the refusal is not
                n_rounds = "?"
            raise DamagedRunError(
                f"{self.path} holds records of {n_rounds} rounds but no {CHECKPOINT}"
                f" ({', '.join(leftovers)}; an export, or a deleted checkpoint): they cannot be"
                " resumed or verified, and a new run would overwrite them; move or delete"
                f" {self.path}"
            )
        try:
            diff = self.differences(config, neutral=neutral, defaults=defaults, normalize=normalize)
        except DamagedRunError as err:
            raise DamagedRunError(
                f"{err}, and there is no {CHECKPOINT} to rebuild it from: delete it to start the "
                "run again"
            ) from None
        if diff:
            raise ValueError(
                f"{self.path} holds a run with a different config ({'; '.join(diff)}); "
                "use another output_dir or delete that one"
            )

    def _adopt_snapshots(self, n_rounds: int) -> dict[int, bytes]:
        out = {}
        for r in range(n_rounds):
            file = self.snapshot_path(r)
            if not file.is_file():
                continue
            try:
                load_snapshot(file)
            except Exception as err:
                raise DamagedRunError(
                    f"{file} is damaged ({type(err).__name__}) and this run's {CHECKPOINT} predates"
                    f" stored snapshots, so it cannot be rebuilt; delete {self.path} to run it"
                    " again"
                ) from None
            out[r] = file.read_bytes()
        return out

    def _rebuild(self, records: RunRecords) -> list[str]:
        """Rewrite every derived file that differs from ``records``; return their names."""
        expected = {
            CONFIG: json_bytes(records.meta),
            ROUNDS: csv_bytes(records.rounds_frame()),
            QUERIES: csv_bytes(records.queries_frame()),
        }
        expected.update(
            {
                self.snapshot_path(r).relative_to(self.path).as_posix(): b
                for r, b in records.snapshots.items()
            }
        )
        rebuilt = []
        for name, data in expected.items():
            file = self.path / name
            if not file.is_file() or file.read_bytes() != data:
                write_bytes(file, data)
                rebuilt.append(name)
        # a round the checkpoint does not have
        for file in (self.path / SENSITIVITY).glob("round_*.npz"):
            if file.relative_to(self.path).as_posix() not in expected:
                file.unlink()
                rebuilt.append(file.relative_to(self.path).as_posix())
        self._written = set(records.snapshots)
        results = self.path / RESULTS
        if results.is_file():
            old = self.read_results()
            summary = results_summary(records)
            if old is None or not records.finished:
                # unreadable, or not a finished run's: whoever finishes it writes it again
                results.unlink()
                rebuilt.append(RESULTS)
            elif not _same({k: old.get(k) for k in summary}, summary):
                # the summary from the checkpoint, the writer's extras kept
                write_json(results, {**old, **summary})
                rebuilt.append(RESULTS)
        return rebuilt

    def write_meta(self, meta: dict) -> None:
        write_json(self.path / CONFIG, meta)

    def save(self, records: RunRecords, loop_state: dict) -> None:
        """Write the checkpoint, then what derives from it: ``config.json``, new snapshots, the
        CSVs."""
        save_torch(
            self.path / CHECKPOINT,
            {"format": FORMAT_VERSION, "loop": loop_state, "records": records.state()},
        )
        self.write_meta(records.meta)
        for r in sorted(set(records.snapshots) - self._written):
            write_bytes(self.snapshot_path(r), records.snapshots[r])
            self._written.add(r)
        self.write_records(records)

    def write_snapshot(self, round: int, snapshot) -> None:
        """One snapshot file, outside any run (tools, tests); a run's snapshots go through
        :meth:`save`."""
        write_bytes(self.snapshot_path(round), snapshot_bytes(snapshot))

    def write_records(self, records: RunRecords) -> None:
        write_bytes(self.path / QUERIES, csv_bytes(records.queries_frame()))
        write_bytes(self.path / ROUNDS, csv_bytes(records.rounds_frame()))

    def write_results(self, records: RunRecords, **extra) -> Path:
        """``results.json``: :func:`~fmlib.records.tables.results_summary` of the records plus
        ``extra`` (the notebook adds ``smoke`` and its figures)."""
        return write_json(self.path / RESULTS, {**results_summary(records), **extra})

    def move_aside(self) -> Path:
        """Move the whole directory to ``<parent>/.stale/<name>.<time>`` (never deleted; out of the
        ``runs/*`` globs) after taking its lock; return where it went."""
        target = self.path.parent / STALE / f"{self.path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        while target.exists():
            target = target.with_name(target.name + "_")
        with self.lock():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.path, target)
        return target


# ----------------------------------------------------------------------------- functions over paths


def write_results(run_dir, records: RunRecords, **extra) -> Path:
    """``results.json`` of a run (:meth:`RunDirectory.write_results`); its last notebook cell calls
    this."""
    return RunDirectory(run_dir).write_results(records, **extra)


def run_status(path, config: Mapping | None = None, **comparison) -> str:
    """:meth:`RunDirectory.status` of a path."""
    return RunDirectory(path).status(config, **comparison)


def export_runs(source, target, *, finished_only: bool = True) -> list[Path]:
    """Copy the small records of every run directory under ``source`` to ``target`` (for git).

    Keeps ``config.json``, ``rounds.csv``, ``queries.csv``, ``results.json`` and the sensitivity
    snapshots; leaves out checkpoints, locks and executed notebooks. Files are copied atomically,
    so an export can be re-run while a grid is still writing. ``finished_only``: runs whose status
    is ``"done"`` (every planned round ran and a real run wrote ``results.json``).

    Returns:
        The exported run directories in ``target``.
    """
    source, target = Path(source), Path(target)
    exported = []
    for config in sorted(source.glob(f"*/{CONFIG}")):
        run = config.parent
        if finished_only and RunDirectory(run).status() != "done":
            continue
        files = [run / name for name in (CONFIG, ROUNDS, QUERIES, RESULTS)] + sorted(
            (run / SENSITIVITY).glob("*.npz")
        )
        for file in (f for f in files if f.is_file()):
            dest = target / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, lambda handle, file=file: handle.write(file.read_bytes()))
        exported.append(target / run.name)
    return exported
