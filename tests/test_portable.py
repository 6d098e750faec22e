"""Portability: fmlib imports without ``fcntl`` (Windows), the run-directory lock never follows a
symlinked ``.lock``, and caches follow one XDG rule."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fmlib.records import RunDirectory, RunLockedError

ROOT = Path(__file__).resolve().parents[1]


def test_fmlib_imports_without_fcntl():
    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "import fmlib, fmlib.records, fmlib.cli, fmlib.grid, fmlib.experiment\n"
        "print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_lock_names_its_holder_and_releases(tmp_path):
    run = RunDirectory(tmp_path / "run")
    with run.lock():
        holder = json.loads((tmp_path / "run" / ".lock").read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=rf"process {os.getpid()} on"):
            with RunDirectory(tmp_path / "run").lock():
                pass
    with run.lock():  # released: taken again without a stale warning
        pass


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symlinks")
def test_a_symlinked_lock_is_never_written_through(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / ".lock").symlink_to(outside)
    with pytest.warns(UserWarning, match=r"\.lock is a symbolic link.*replaced"):
        with RunDirectory(run).lock():
            assert not (run / ".lock").is_symlink()
            assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
            assert outside.read_text() == "keep me\n"
    assert outside.read_text() == "keep me\n"


def test_fmlib_and_the_toy_primer_import_without_ipywidgets():
    code = (
        "import sys; sys.modules['ipywidgets'] = None\n"
        "import fmlib, fmlib.primer, fmlib.primer.toy, fmlib.experiment\n"
        "print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_resuming_with_another_torch_version_is_refused_unless_allowed_and_recorded(
    fashion_root, tmp_path, monkeypatch
):
    import pandas as pd
    import torch

    from fmlib.experiment import run_experiment
    from tests.records.test_directory import small_config

    run = tmp_path / "run"
    config = small_config(fashion_root, run)
    run_experiment(config, max_rounds=1)
    here = str(torch.__version__)
    monkeypatch.setattr(torch, "__version__", "2.99.0")
    with pytest.raises(
        ValueError,
        match=rf"made with torch {re.escape(here)}.*has torch 2\.99\.0.*allow_torch_change=True",
    ):
        run_experiment(config)
    assert len(pd.read_csv(run / "rounds.csv")) == 1  # nothing ran
    run_experiment({**config, "allow_torch_change": True})
    meta = json.loads((run / "config.json").read_text())
    assert meta["torch_versions"] == [here, "2.99.0"] and meta["torch_mixed"] is True


def test_every_cache_path_follows_xdg_cache_home(tmp_path, monkeypatch):
    from fmlib.data import cache_dir
    from fmlib.datasets import load_dataset
    from fmlib.primer.toy import default_figures_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_dir() == tmp_path / "xdg" / "fmlib"
    assert default_figures_dir() == cache_dir() / "primer"
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(cache_dir()))}"):
        load_dataset("cifar10")
