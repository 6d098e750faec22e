"""How a grid stops on SIGTERM or SIGHUP: inside :func:`signals_interrupt` either signal raises
:class:`GridInterrupted` in the main thread, wherever the grid is (consuming its workers'
outcomes, or running a run itself: inline, or papermill with one worker); the runner then stops
its workers (:func:`stop_pool`), writes ``grid_summary.json`` and re-raises, and the command line
exits with 128 + the signal's number."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class GridInterrupted(KeyboardInterrupt):
    """The grid was stopped by SIGTERM or SIGHUP: its workers were stopped and ``grid_summary.json``
    written; ``outcomes`` holds every run's outcome (the unfinished ones failed)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.outcomes = signum, []


@contextmanager
def signals_interrupt():
    """Inside the block SIGTERM and SIGHUP raise :class:`GridInterrupted` (main thread only; a
    grid run from another thread keeps the signals' handlers as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise GridInterrupted(signum)

    old = {s: signal.signal(s, interrupt) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def stop_pool(pool: ProcessPoolExecutor, grace: float = 20.0) -> None:
    """Cancel what has not started and SIGTERM the workers (papermill's client then shuts its
    kernel down); SIGKILL the ones still alive after ``grace`` seconds."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(5)
