"""The run directory's lock (fmlib.records.lock): the block gets its owner, a second holder is
refused naming the first, a directory made for the lock alone is removed, a stale record says
why."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import pytest

from fmlib.records import RunDirectory
from fmlib.records.lock import RunLockedError, hold


def test_a_second_holder_is_refused_at_once_not_left_waiting(tmp_path):
    import threading

    refused = []

    def second():
        try:
            with hold(tmp_path / "run"):
                refused.append(False)
        except RunLockedError:
            refused.append(True)

    with hold(tmp_path / "run"):
        other = threading.Thread(target=second, daemon=True)
        other.start()
        other.join(10)
        waiting = other.is_alive()
    other.join(10)
    assert not waiting and refused == [True], "the second holder waited for the lock"


def test_a_stale_lock_of_a_live_reused_pid_is_called_reused_not_gone(tmp_path):
    run = RunDirectory(tmp_path / "run")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cases = [
            (
                {"pid": alive.pid, "host": socket.gethostname(), "since": "then"},
                rf"pid {alive.pid} is alive but does "
                r"not hold the lock \(the pid was reused",
            ),
            (
                {"pid": alive.pid, "host": "elsewhere.example", "since": "then"},
                r"written on host 'elsewhere.example'",
            ),
            (
                {"pid": 2**22 + 12345, "host": socket.gethostname(), "since": "then"},
                r"that process is gone",
            ),
        ]
        for holder, message in cases:
            (tmp_path / "run").mkdir(exist_ok=True)
            (tmp_path / "run" / ".lock").write_text(json.dumps(holder))
            with pytest.warns(UserWarning, match=message), run.lock():
                pass
    finally:
        alive.kill()
        alive.wait()
    assert os.path.isdir(tmp_path / "run")


def test_the_block_gets_its_owner_and_a_second_holder_is_refused_naming_the_first(tmp_path):
    owner = object()
    (tmp_path / "run").mkdir()  # not made by the lock: kept after it, with the released .lock
    with hold(tmp_path / "run", owner) as got:
        assert got is owner
        held = json.loads((tmp_path / "run" / ".lock").read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(RunLockedError, match=rf"in use by process {os.getpid()} on "):
            with hold(tmp_path / "run"):
                pass
    assert (tmp_path / "run" / ".lock").read_text() == ""  # released cleanly: no stale record
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # taken again without a stale warning
        with hold(tmp_path / "run"):
            pass


def test_a_directory_made_for_the_lock_alone_is_removed_and_one_with_records_is_kept(tmp_path):
    with hold(tmp_path / "empty"):
        assert (tmp_path / "empty").is_dir()
    assert not (tmp_path / "empty").exists()
    with hold(tmp_path / "written"):
        (tmp_path / "written" / "config.json").write_text("{}")
    assert (tmp_path / "written" / "config.json").is_file()
    (tmp_path / "there").mkdir()
    with hold(tmp_path / "there"):
        pass
    assert (tmp_path / "there").is_dir()  # not made by the lock: left alone


@pytest.mark.parametrize("pid", [0, -1, "?", None])
def test_a_stale_record_without_a_real_pid_is_called_unknown(tmp_path, pid):
    (tmp_path / "run").mkdir()
    holder = {"pid": pid, "host": socket.gethostname(), "since": "then"}
    (tmp_path / "run" / ".lock").write_text(json.dumps(holder))
    with pytest.warns(UserWarning, match=r"its process is unknown"), hold(tmp_path / "run"):
        pass


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_lock_file_that_is_a_link_is_replaced_and_its_target_untouched(tmp_path, dangling):
    target = tmp_path / "elsewhere.txt"
    if not dangling:
        target.write_text("someone else's file")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(target)
    with pytest.warns(UserWarning, match=r"\.lock is a symbolic link"), hold(tmp_path / "run"):
        assert not (tmp_path / "run" / ".lock").is_symlink()
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "someone else's file"


@pytest.mark.parametrize("record", ["[1, 2]", "null", "7"])
def test_a_lock_record_that_is_not_an_object_is_taken_without_a_warning(tmp_path, record):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text(record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with hold(tmp_path / "run"):
            pass
    assert (tmp_path / "run" / ".lock").read_text() == ""


def test_a_stale_record_longer_than_the_new_one_is_replaced_whole(tmp_path):
    (tmp_path / "run").mkdir()
    holder = {"pid": 2**22 + 1, "host": socket.gethostname(), "since": "x" * 500}
    (tmp_path / "run" / ".lock").write_text(json.dumps(holder))
    with pytest.warns(UserWarning, match="that process is gone"), hold(tmp_path / "run"):
        held = json.loads((tmp_path / "run" / ".lock").read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert (tmp_path / "run" / ".lock").read_text() == ""
