"""One plain line per round, read from a run directory while a run writes it.

:func:`~fmlib.experiment.run_experiment` rewrites ``rounds.csv`` (atomically) after every round.
:func:`watch_rounds` polls that file from a background thread and writes a line for every round
it has not shown yet, so wherever only text arrives (a terminal behind
``papermill --stdout-file -``, a log file, ``fmlib run``) one sees which round a run is in and its
accuracy::

    [3/9] round 2: 155 labels, accuracy 0.712 (balanced 0.655), train 12.3 s, select 45.6 s

The run itself is untouched: this reads the records the run writes anyway.
"""

from __future__ import annotations

import csv
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fmlib.records import CONFIG, ROUNDS, planned_rounds


def round_line(row: Mapping, total: int | None = None, *, earlier: bool = False) -> str:
    """``[done/total] round r: n labels, accuracy a (balanced b), train t s, select s s``.

    Args:
        row: a ``rounds.csv`` row (``round``, ``n_labeled``, ``accuracy`` ...; missing or NaN
            values are left out).
        total: rounds the run has in all (its label schedule's length); ``None``: unknown.
        earlier: the row was recorded before the watch began (a resumed or finished run).
    """
    r = int(row["round"])
    parts = [f"[{r + 1}/{total if total else '?'}] round {r}: {int(row['n_labeled'])} labels"]
    accuracy, balanced = _number(row.get("accuracy")), _number(row.get("balanced_accuracy"))
    if accuracy is not None:
        parts.append(
            f"accuracy {accuracy:.3f}"
            + (f" (balanced {balanced:.3f})" if balanced is not None else "")
        )
    for name in ("train", "select"):
        seconds = _number(row.get(f"{name}_time"))
        if seconds is not None:
            parts.append(f"{name} {seconds:.1f} s")
    return ", ".join(parts) + (" (recorded earlier)" if earlier else "")


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def read_rounds(path) -> list[dict]:
    """The rows of ``<path>/rounds.csv`` as dicts of strings; ``[]`` when there is none (yet)."""
    try:
        with open(Path(path) / ROUNDS, newline="") as handle:
            return [row for row in csv.DictReader(handle) if row.get("round", "").strip().isdigit()]
    except (OSError, csv.Error):
        return []


def _planned_rounds(path) -> int | None:
    """Rounds of the run in ``path`` (its ``config.json`` label schedule); ``None`` when unknown
    (no config yet, or one being written)."""
    try:
        meta = json.loads((Path(path) / CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return planned_rounds(meta)


class RoundWatcher:
    """Writes a line for every round of ``path``'s ``rounds.csv`` not written yet (see
    :func:`watch_rounds`)."""

    def __init__(self, path, write: Callable[[str], object] = print):
        self.path, self.write = Path(path), write
        self.shown: set[int] = set()  # rounds seen, written or pending
        self.pending: list[
            str
        ] = []  # lines of rounds recorded before the watch, written with the first new one
        self.new = 0  # rounds recorded since the watch began
        self.total: int | None = None
        self._stamp = None
        self._lock = threading.Lock()  # the polling thread and on_round share what was shown

    def poll(self, *, earlier: bool = False) -> int:
        """Write the rounds not shown yet (``earlier``: keep them pending); return how many were
        new."""
        try:
            stat = (self.path / ROUNDS).stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            return 0
        if stamp == self._stamp:
            return 0
        self._stamp = stamp
        with self._lock:
            self.total = self.total or _planned_rounds(self.path)
            lines = []
            for row in read_rounds(self.path):
                if int(row["round"]) not in self.shown:
                    self.shown.add(int(row["round"]))
                    lines.append(round_line(row, self.total, earlier=earlier))
            if earlier:
                self.pending += lines
            elif lines:
                self.flush_pending()
                for line in lines:
                    self.write(line)
                self.new += len(lines)
        return 0 if earlier else len(lines)

    def on_round(self, row: Mapping) -> None:
        """A callback of the run (:mod:`fmlib.callbacks`): the round's line at once, after the
        lines of rounds recorded earlier."""
        with self._lock:
            if int(row["round"]) in self.shown:
                return
            self.shown.add(int(row["round"]))
            self.total = self.total or _planned_rounds(self.path)
            self.flush_pending()
            self.write(round_line(row, self.total))
            self.new += 1

    def flush_pending(self) -> None:
        for line in self.pending:
            self.write(line)
        self.pending = []


@contextmanager
def watch_rounds(
    path, write: Callable[[str], object] = print, *, interval: float = 1.0
) -> Iterator[RoundWatcher]:
    """Inside the block, write one line per round as the run in ``path`` records it.

    Rounds recorded before the block (a resumed or finished run) are marked "recorded earlier"
    and written just before the first new round, or when the block ends without an exception;
    not when it fails first, so a run refused at the start (another config in ``path``) does not
    show rounds that are not its own. On leaving the block the rounds recorded last are written
    too, so every round finished inside the block gets its line.

    Args:
        path: the run directory (``output_dir``); it need not exist yet.
        write: called with each line (default ``print``).
        interval: seconds between looks at ``rounds.csv``.

    Example::

        with watch_rounds(config.output_dir):
            records = run_experiment(config)
    """
    watcher = RoundWatcher(path, write)
    watcher.poll(earlier=True)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            watcher.poll()

    thread = threading.Thread(target=loop, name="fmlib-watch-rounds", daemon=True)
    thread.start()
    try:
        yield watcher
    except BaseException:
        _finish(stop, thread, watcher)
        raise
    _finish(stop, thread, watcher)
    watcher.flush_pending()


def _finish(stop: threading.Event, thread: threading.Thread, watcher: RoundWatcher) -> None:
    stop.set()
    thread.join()
    watcher.poll()
