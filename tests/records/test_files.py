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
