"""How fmlib draws progress bars: widgets where a person watches, one line at the end in a kernel
no frontend watches (papermill, nbconvert), none when asked."""

from __future__ import annotations

import io
import sys
import types

import pytest
from tqdm import std

import fmlib.progress
from fmlib.progress import TextBar, live_frontend, progress_bar, progress_mode


class FakeKernel:
    """An ipykernel whose current execute request carries ``metadata``."""

    def __init__(self, metadata):
        self.metadata = metadata

    def get_parent(self, channel="shell"):
        return {"header": {"msg_type": "execute_request"}, "metadata": self.metadata}


JUPYTERLAB = {"cellId": "6a3b", "deletedCells": [], "recordTiming": False}  # what JupyterLab sends
NBCLIENT = {}  # papermill, nbconvert, nbval and myst-nb send no metadata

CASES = [
    # (id, kernel metadata or None outside a kernel, FMLIB_PROGRESS, mode)
    ("a script", None, None, "widget"),
    ("JupyterLab", JUPYTERLAB, None, "widget"),
    ("papermill", NBCLIENT, None, "text"),
    ("papermill, widget asked", NBCLIENT, "widget", "widget"),
    ("JupyterLab, off asked", JUPYTERLAB, "off", "off"),
    ("a script, text asked", None, " Text ", "text"),
]


@pytest.mark.parametrize(
    ("metadata", "forced", "mode"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_mode_follows_the_frontend_unless_the_environment_says(
    monkeypatch, metadata, forced, mode
):
    kernel = None if metadata is None else FakeKernel(metadata)
    monkeypatch.setattr(fmlib.progress, "_kernel", lambda: kernel)
    if forced is None:
        monkeypatch.delenv("FMLIB_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("FMLIB_PROGRESS", forced)
    assert live_frontend() is (metadata is JUPYTERLAB)
    assert progress_mode() == mode


def test_a_colab_kernel_counts_as_live(monkeypatch):
    monkeypatch.setattr(fmlib.progress, "_kernel", lambda: FakeKernel(NBCLIENT))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert live_frontend()


def test_an_unknown_mode_names_the_variable_and_the_allowed_values(monkeypatch):
    monkeypatch.setenv("FMLIB_PROGRESS", "1")
    allowed = r"\['widget', 'text', 'off'\]"
    with pytest.raises(ValueError, match=rf"FMLIB_PROGRESS must be one of {allowed}, got '1'"):
        progress_bar(total=3)


def test_a_text_bar_writes_one_line_when_a_kept_bar_closes():
    out = io.StringIO()
    with TextBar(total=3, desc="fishermask", unit="round", file=out) as bar:
        for _ in range(3):
            bar.update(1)
            bar.refresh()
        assert out.getvalue() == ""  # nothing while it runs
    (line,) = out.getvalue().splitlines()
    assert line.startswith("fishermask: 100%|") and "3/3" in line and "\r" not in out.getvalue()


def test_a_text_bar_that_goes_when_done_writes_nothing():
    out = io.StringIO()
    for _ in TextBar(range(4), desc="train", leave=False, file=out):
        pass
    TextBar.write("a round line", file=out)  # tqdm.write clears the bars around its line
    assert out.getvalue() == "a round line\n"


@pytest.mark.parametrize(("mode", "kind"), [("text", TextBar), ("off", std.tqdm)])
def test_progress_bar_builds_the_bar_of_the_mode(monkeypatch, mode, kind):
    monkeypatch.setenv("FMLIB_PROGRESS", mode)
    bar = progress_bar(total=2, file=io.StringIO())
    assert type(bar) is kind and bar.disable is (mode == "off")
    bar.close()
