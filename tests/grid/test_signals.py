"""SIGTERM or SIGHUP to a grid (one or two papermill workers with real kernels, or the inline
executor): the workers and their kernels stop, and the grid writes ``grid_summary.json`` and exits
with 128 + the signal's number."""

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
    body = nbformat.v4.new_code_cell(
        "import os, pathlib, time\n"
        "pathlib.Path(output_dir, 'kernel.pid').write_text(str(os.getpid()))\n"
        "time.sleep(600)"
    )
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
    grid = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fmlib.grid",
            "--strategy",
            "random",
            "--seed",
            "0",
            "1",
            "--workers",
            workers,
            "--notebook",
            str(notebook),
            "-o",
            str(out),
            "--no-progress",
            "--threads",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
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


def sleeping_data():
    """A dataset factory that writes its process's pid to ``$FMLIB_TEST_LOADING``, then sleeps: a
    run of the inline executor caught while its data loads."""
    Path(os.environ["FMLIB_TEST_LOADING"]).write_text(str(os.getpid()))
    time.sleep(600)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_an_inline_grid_and_writes_the_summary(tmp_path, signum):
    out, loading = tmp_path / "out", tmp_path / "loading"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FMLIB_TEST_LOADING": str(loading)}
    grid = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fmlib.grid",
            "--executor",
            "inline",
            "--dataset",
            "tests.grid.test_signals:sleeping_data",
            "--imbalance",
            "none",
            "--strategy",
            "random",
            "--seed",
            "0",
            "1",
            "-o",
            str(out),
            "--no-progress",
            "--threads",
            "1",
            "--set",
            "device=cpu",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not (loading.is_file() and loading.read_text()):
            assert grid.poll() is None, grid.stdout.read().decode()
            assert time.monotonic() < deadline, "the first run never started loading its data"
            time.sleep(0.2)
        assert int(loading.read_text()) == grid.pid  # inline: the run is the grid's own process
        grid.send_signal(signum)
        status = grid.wait(timeout=60)
    finally:
        if grid.poll() is None:
            grid.kill()
    output = grid.stdout.read().decode()
    assert status == 128 + signum, output
    assert f"stopped by {signal.Signals(signum).name}" in output
    summary = json.loads((out / "grid_summary.json").read_text())
    assert [o["status"] for o in summary] == ["failed", "failed"]
    assert all("the grid was stopped by" in o["error"] for o in summary), summary
