"""The built wheel: it carries the notebooks, installs beside any torch without touching it, and
``fmlib run --smoke``, ``fmlib notebooks`` and one ``fmlib grid`` cell work from it in a fresh
venv in another directory.

The fresh venv borrows this one's packages (torch, numpy, papermill, ipykernel) through a ``.pth``
file instead of installing them: offline and seconds, and the venv's own site-packages, where the
wheel goes, comes first on ``sys.path``. A ``.pth`` line adds a folder without processing its own
``.pth`` files, so this checkout's editable install of fmlib stays out of it.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.fakes import write_fake_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(command, cwd, **kwargs):
    # FMLIB_SMOKE of the suite stays out: the grid cell must be a real (tiny) run, not a smoke one
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "FMLIB_SMOKE")
    }
    out = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**env, **kwargs}, timeout=600
    )
    assert out.returncode == 0, f"{command}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        cwd=out,
    )
    (path,) = out.glob("fmlib-*.whl")
    return path


def _venv(path: Path) -> Path:
    """A venv without pip that sees this interpreter's site-packages after its own."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120
    )
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    borrowed = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    Path(purelib, "borrowed.pth").write_text("\n".join(dict.fromkeys(borrowed)) + "\n")
    return python


def test_the_wheel_carries_the_notebooks_and_one_version(wheel):
    import fmlib

    names = zipfile.ZipFile(wheel).namelist()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"fmlib/notebooks/{notebook.name}" in names
    for grid in sorted((ROOT / "grids" / "demo").rglob("*.json")):
        assert f"fmlib/grids/demo/{grid.relative_to(ROOT / 'grids' / 'demo').as_posix()}" in names
    assert wheel.name.startswith(f"fmlib-{fmlib.__version__}-")


def test_installing_beside_another_torch_leaves_it(wheel, tmp_path):
    python = _venv(tmp_path / "venv")
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # an older torch "already installed"
    for name, version in (
        ("torch", "2.1.0"),
        ("torchvision", "0.16.0"),
    ):
        info = purelib / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    report = tmp_path / "report.json"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--dry-run",
            "--no-index",
            "-q",
            "--report",
            str(report),
            str(wheel),
        ],
        cwd=tmp_path,
    )
    installs = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert installs == {"fmlib": wheel.name.split("-")[1]}  # torch and torchvision untouched


@pytest.mark.notebook
def test_run_notebooks_and_a_grid_cell_from_the_installed_wheel(wheel, tmp_path):
    python = _venv(tmp_path / "venv")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        cwd=tmp_path,
    )
    fmlib = str(tmp_path / "venv" / "bin" / "fmlib")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(
        [
            str(python),
            "-c",
            "import fmlib, fmlib.grid.runner as r; print(fmlib.__file__); print(r.NOTEBOOK)",
        ],
        cwd=work,
    ).stdout.split()
    assert (
        str(tmp_path / "venv") in where[0]
        and Path(where[1]).is_file()
        and str(ROOT) not in where[1]
    )

    data = write_fake_fashion_mnist(tmp_path / "data", n_train=200, n_test=60)
    out = _run(
        [
            fmlib,
            "run",
            "--smoke",
            "--strategy",
            "random",
            "--imbalance",
            "none",
            "--set",
            f"data_root={data}",
            "--device",
            "cpu",
            "--no-progress",
            "--output",
            str(work / "smoke"),
        ],
        cwd=work,
        OMP_NUM_THREADS="1",
    )
    assert json.loads((work / "smoke" / "results.json").read_text())["finished"], out.stdout

    copied = _run([fmlib, "notebooks", str(work / "nb")], cwd=work).stdout.split()
    assert sorted(Path(p).name for p in copied) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb")
    )

    base = dict(
        dataset="fashion_mnist",
        data_root=str(data),
        imbalance="none",
        model="cnn",
        initial_size=10,
        query_size=5,
        budget=15,
        train_preset="default",
        train_options={"epochs": 1, "batch_size": 16},
        device="cpu",
        progress=False,
    )
    (work / "grid.json").write_text(json.dumps({"base": base, "axes": {"strategy": ["random"]}}))
    out = _run(
        [fmlib, "grid", "grid.json", "-o", "cells", "--no-progress", "--threads", "1"], cwd=work
    )
    results = json.loads((work / "cells" / "random" / "results.json").read_text())
    assert results["finished"] and results["n_labeled_per_round"] == [10, 15], out.stdout
