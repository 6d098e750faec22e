"""Writing record files atomically (with the user's umask, a full disk said plainly), reading
``config.json`` with a clear error when it is damaged, and the provenance saved with every run."""

from __future__ import annotations

import errno
import json
import os
import platform
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

CONFIG, ROUNDS, QUERIES, CHECKPOINT, SENSITIVITY = (
    "config.json",
    "rounds.csv",
    "queries.csv",
    "checkpoint.pt",
    "sensitivity",
)
RESULTS, LOCK, STALE = "results.json", ".lock", ".stale"


class RunDirectoryError(RuntimeError):
    """A run directory cannot be used as asked (busy, damaged); the message says what to do."""


class DamagedRunError(RunDirectoryError):
    """A record file cannot be read; the message names it and what to delete."""


# ----------------------------------------------------------------------------- atomic writes


def atomic_write(path, write: Callable, binary: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it into place.

    A crash leaves the old file or the new one, never half of one (and no temporary file unless
    the process is killed mid-write; :meth:`RunDirectory.open` removes those). The file gets the
    permissions of a plain ``open`` under the user's umask. A full disk raises ``OSError(ENOSPC)``
    naming ``path``, whatever layer (torch's zip writer) it surfaced in.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 whatever the umask
        with os.fdopen(
            fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})
        ) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _no_space(err):
            raise OSError(
                errno.ENOSPC,
                f"No space left on the device while writing {path}; free some space and "
                "run again (a run resumes from its last checkpoint)",
            ) from err
        raise
    return path


def write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_json(path, obj) -> Path:
    return write_bytes(path, json_bytes(obj))


def write_csv(path, rows: Iterable[Mapping] | pd.DataFrame) -> Path:
    return write_bytes(path, csv_bytes(rows))


def save_torch(path, obj) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_npz(path, arrays: Mapping[str, np.ndarray]) -> Path:
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def json_bytes(obj) -> bytes:
    """What :func:`write_json` writes."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default).encode("utf-8")


def csv_bytes(rows: Iterable[Mapping] | pd.DataFrame) -> bytes:
    """What :func:`write_csv` writes."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return frame.to_csv(index=False).encode("utf-8")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _no_space(err: BaseException) -> bool:
    """Whether ENOSPC is anywhere in ``err``'s chain (torch hides it under a RuntimeError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


# ----------------------------------------------------------------------------- config.json


def read_meta(path) -> dict | None:
    """A run directory's ``config.json`` (``None`` when absent); :class:`DamagedRunError` naming the
    file when it is not a JSON object with a ``config`` object."""
    file = Path(path) / CONFIG
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedRunError(f"{file} is damaged (not JSON: {err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise DamagedRunError(f"{file} is damaged (not an object with a 'config' object)")
    return meta


# ----------------------------------------------------------------------------- provenance


def git_commit(path=None) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (default: fmlib's), or
    ``None``."""
    cwd = Path(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {
        "commit": commit.stdout.strip(),
        "dirty": bool(status.stdout.strip()) if not status.returncode else None,
    }


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(device=None) -> dict:
    """Versions and hardware a run used: the machine (host name, CPU model and cores) names which
    runs can be compared without cross-machine noise."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # a grid worker's one GPU
        "torch_threads": torch.get_num_threads(),
    }


def fmlib_version() -> str:
    import fmlib  # at call time: fmlib/__init__ may import this module

    return fmlib.__version__
