"""The run directory's lock: an ``flock`` on ``.lock`` (``LockFileEx`` on Windows, through
``filelock``) that records its holder, refuses a second one at once and takes over a dead one's
record with a warning."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import filelock

from fmlib.records.files import LOCK, RunDirectoryError


class RunLockedError(RunDirectoryError):
    """Another process holds the run directory."""


@contextmanager
def hold(path: Path, owner=None):
    """Hold the directory ``path`` for this process (created when missing) inside the block, which
    gets ``owner``.

    A second holder, in this process or another, gets :class:`RunLockedError` naming the
    holder's process id and host at once. The lock is an ``flock`` (``LockFileEx`` on
    Windows, through ``filelock``) on ``.lock``, so the operating system releases it when its
    holder dies; a dead holder's record left in the file is taken over with a warning. A
    ``.lock`` that is a symbolic link is replaced, never followed. A directory this call created
    is removed again when the block leaves it empty (a config refused before anything was
    written).
    """
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    file = path / LOCK
    fd = _open_lock_file(file)
    try:
        if not filelock.lock_descriptor(fd, blocking=False):  # flock (POSIX), LockFileEx (Windows)
            holder = _read_holder(fd)
            who = _who(holder) if holder else "another process"
            raise RunLockedError(
                f"{path} is in use by {who}; wait for it to finish or use another "
                f"output_dir (if that process is gone, delete {file})"
            ) from None
        stale = _read_holder(fd)
        if stale:
            warnings.warn(
                f"{path}: taking over the stale lock of {_who(stale)}: {_why_stale(stale)}",
                stacklevel=3,
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        _write_holder(fd, json.dumps(holder).encode())
        try:
            yield owner
        finally:
            _write_holder(fd, b"")  # released cleanly: no stale record
            if created and [p.name for p in path.iterdir()] == [LOCK]:
                os.close(fd)  # Windows removes no open file
                fd = None
                file.unlink()
                path.rmdir()
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _who(holder: dict) -> str:
    return f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


def _open_lock_file(file: Path) -> int:
    """``.lock`` opened read-write, never through a symbolic link: a link (to anything, anywhere)
    is replaced by a plain file with a warning, its target left as it was."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    flags = os.O_RDWR | os.O_CREAT | nofollow | getattr(os, "O_BINARY", 0)
    for _ in range(3):
        if file.is_symlink():
            warnings.warn(
                f"{file} is a symbolic link (to {os.readlink(file)}): replaced by a plain lock"
                " file, its target untouched",
                stacklevel=4,
            )
            file.unlink()
        try:
            return os.open(file, flags, 0o666)
        except OSError as err:  # ELOOP: made a link between the check and the open
            if err.errno != errno.ELOOP or not nofollow:
                raise
    raise RunDirectoryError(
        f"{file} keeps turning into a symbolic link; refusing to lock {file.parent}"
    )


def _write_holder(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def _why_stale(holder: dict) -> str:
    """Why a lock record nobody holds is stale: its process is gone, or its pid (or host) now
    belongs to another process, which does not hold the lock."""
    pid, host = holder.get("pid"), holder.get("host")
    if host != socket.gethostname():
        return f"it was written on host {host!r}, and no process holds the lock now"
    if not isinstance(pid, int) or pid <= 0:
        return "its process is unknown, and no process holds the lock now"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "that process is gone"
    except PermissionError:
        pass  # alive, another user's
    return f"pid {pid} is alive but does not hold the lock (the pid was reused by another process)"


def _read_holder(fd: int) -> dict:
    try:  # os.pread is POSIX-only; on Windows the holder's locked byte cannot be read
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
    except OSError:
        return {}
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except ValueError:
        holder = {"pid": "?", "host": "?", "since": raw[:40]}
    return holder if isinstance(holder, dict) else {}
