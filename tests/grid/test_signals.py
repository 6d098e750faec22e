"""SIGTERM or SIGHUP to a grid with two workers: the workers and their kernels stop, and the grid
writes ``grid_summary.json`` and exits with 128 + the signal's number (real papermill kernels)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


def sleeping_notebook(path: Path) -> Path:
    """A notebook that writes its kernel's pid into its run directory, then sleeps."""
    params = nbformat.v4.new_code_cell("output_dir = None", metadata={"tags": ["parameters"]})
    body = nbformat.v4.new_code_cell("import os, pathlib, time\n"
                                     "pathlib.Path(output_dir, 'kernel.pid').write_text(str(os.getpid()))\n"
                                     "time.sleep(600)")  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[params, body])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["2", "1"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_workers_and_their_kernels_and_writes_the_summary(
    tmp_path, signum, workers
):
    notebook = sleeping_notebook(tmp_path / "sleep.ipynb")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    grid = subprocess.Popen([sys.executable, "-m", "fmlib.grid", "--strategy", "random", "--seed", "0", "1",
                             "--workers", workers, "--notebook", str(notebook), "-o", str(out), "--no-progress",
                             "--threads", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    started = (0, 1) if workers == "2" else (0,)  # one worker runs one run at a time
    pids = [out / f"random-seed{s}" / "kernel.pid" for s in started]
    try:
        deadline = time.monotonic() + 240
        while not all(p.is_file() and p.read_text() for p in pids):
            assert grid.poll() is None, grid.stdout.read().decode()
            assert time.monotonic() < deadline, "the kernels never started"
            time.sleep(0.5)
        kernels = [int(p.read_text()) for p in pids]
        grid.send_signal(signum)
        status = grid.wait(timeout=60)
    finally:
        if grid.poll() is None:
            grid.kill()
    output = grid.stdout.read().decode()
    assert status == 128 + signum, output
    summary = json.loads((out / "grid_summary.json").read_text())
    assert [o["status"] for o in summary] == ["failed", "failed"]
    deadline = time.monotonic() + 20
    while any(alive(k) for k in kernels) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(alive(k) for k in kernels), "a kernel outlived its grid"
