"""Record files: the provenance each run saves names the machine it ran on."""

import errno
import os
import socket

import pytest

from fmlib.records import files
from fmlib.records.files import atomic_write


def test_environment_names_the_machine_and_its_cpu():
    env = files.environment()
    assert env["hostname"] == socket.gethostname()
    assert env["cpu_count"] == os.cpu_count()
    assert env["cpu"], "the CPU model is part of a run's provenance"
    assert env["torch_threads"] >= 1


def test_cpu_model_falls_back_when_proc_cpuinfo_is_unreadable(monkeypatch):
    monkeypatch.setattr(
        files.Path, "read_text", lambda self, *a, **k: (_ for _ in ()).throw(OSError("no"))
    )
    monkeypatch.setattr(files.platform, "processor", lambda: "Some CPU")
    assert files.cpu_model() == "Some CPU"


@pytest.mark.parametrize("link", ["__context__", "__cause__"])
def test_a_full_disk_hidden_in_an_exceptions_chain_is_said_plainly(tmp_path, link):
    def write(handle):
        error = RuntimeError("PytorchStreamWriter failed writing file data/0")
        setattr(error, link, OSError(errno.ENOSPC, "No space left on device"))
        raise error

    with pytest.raises(
        OSError, match=r"No space left on the device while writing .*checkpoint.pt"
    ) as caught:
        atomic_write(tmp_path / "checkpoint.pt", write)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")

    def half_then_fail(f):
        f.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError, match="the writer failed"):
        files.atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


@pytest.mark.parametrize(
    "text", ['{"config": 3}', '{"git": {}}', "[1, 2]", '{"config": [1]}'], ids=str
)
def test_read_meta_refuses_a_record_without_its_config_object(tmp_path, text):
    (tmp_path / files.CONFIG).write_text(text)
    with pytest.raises(files.DamagedRunError, match="'config' object"):
        files.read_meta(tmp_path)


def test_another_os_error_of_a_write_is_raised_as_it_is(tmp_path):
    def refused(f):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError) as caught:
        atomic_write(tmp_path / "rounds.csv", refused)
    assert caught.value.errno == errno.EACCES and "No space" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", r"not JSON"),
        ("[1, 2]", r"not an object with a 'config' object"),
        ('{"config": [1]}', r"not an object with a 'config' object"),
    ],
    ids=["syntax", "list", "config-list"],
)
def test_read_meta_names_a_damaged_config_json(tmp_path, content, reason):
    assert files.read_meta(tmp_path) is None  # no config.json: no run
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(files.DamagedRunError, match=rf"config.json is damaged \({reason}"):
        files.read_meta(tmp_path)
    (tmp_path / "config.json").write_text('{"config": {"seed": 1}, "schedule": [5]}')
    assert files.read_meta(tmp_path) == {"config": {"seed": 1}, "schedule": [5]}


def test_a_written_file_gets_the_umask_s_permissions_and_the_umask_stays(tmp_path):
    old = os.umask(0o027)
    try:
        files.write_json(tmp_path / "a.json", {"x": 1})
        assert os.umask(0o027) == 0o027  # the umask is read, never changed
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640


def test_json_writes_numpy_values_arrays_tuples_and_paths_and_names_what_it_cannot(tmp_path):
    import json

    import numpy as np

    value = {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(3), "t": (1, 2)}
    files.write_json(tmp_path / "a.json", {**value, "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "n": 3,
        "x": 0.5,
        "a": [0, 1, 2],
        "t": [1, 2],
        "p": str(tmp_path),
    }
    with pytest.raises(TypeError, match="cannot write object to JSON"):
        files.json_bytes({"o": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_git_commit_says_whether_the_checkout_is_dirty(tmp_path):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    assert files.git_commit(tmp_path) is None  # not a checkout
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("one")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert files.git_commit(tmp_path) == {"commit": head.strip(), "dirty": False}
    (tmp_path / "new.txt").write_text("untracked files do not count")
    assert files.git_commit(tmp_path)["dirty"] is False
    (tmp_path / "a.txt").write_text("two")
    assert files.git_commit(tmp_path) == {"commit": head.strip(), "dirty": True}
