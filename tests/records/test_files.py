"""Record files: the provenance each run saves names the machine it ran on."""

import os
import socket

import pytest

from fmlib.records import files


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
