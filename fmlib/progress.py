"""Progress bars that suit where fmlib runs: :func:`progress_bar` builds every bar fmlib draws.

The mode is ``FMLIB_PROGRESS`` (``widget`` | ``text`` | ``off``) when set, else picked per bar:

- ``widget``: tqdm.auto's bars, a widget in a notebook a person watches (JupyterLab, Notebook 7,
  VS Code, Colab), a redrawn line in a terminal. The default outside a kernel, and in a kernel
  whose cell a live frontend sent (:func:`live_frontend`).
- ``text``: nothing while a bar runs; one line when a kept bar (``leave``) closes, e.g.
  ``fishermask: 100%|██████████| 3/3 [00:41<00:00, 13.8s/round]``; bars with ``leave=False``
  (epochs, Fisher chunks) print nothing. The default in a kernel no frontend watches (papermill,
  nbconvert, nbval, myst-nb): the notebook they save keeps a widget as its text fallback, a bar
  frozen at ``0%``.
- ``off``: no bars.
"""

from __future__ import annotations

import os
import sys

from tqdm import std

MODES = ("widget", "text", "off")


def _kernel():
    """The IPython kernel running this code, or ``None`` (a script, a terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return getattr(get_ipython(), "kernel", None)


def live_frontend() -> bool:
    """Whether the cell running now came from a frontend that draws widgets as they change.

    JupyterLab, Notebook 7 and VS Code put the cell's id (``cellId``) in the metadata of the
    execute request; nbclient (papermill, nbconvert, nbval, myst-nb) and a plain
    ``jupyter_client`` send none. A papermill run started from a live notebook is told apart so,
    where an environment variable the kernels inherit would not be. Google Colab's kernel counts
    as live. Outside a kernel: ``False``.
    """
    kernel = _kernel()
    get_parent = getattr(kernel, "get_parent", None)
    if get_parent is None:
        return False
    if "google.colab" in sys.modules:
        return True
    parent = get_parent("shell") or {}
    return "cellId" in (parent.get("metadata") or {})


def progress_mode() -> str:
    """``FMLIB_PROGRESS`` when set, else ``"text"`` in a kernel without a live frontend and
    ``"widget"`` elsewhere.

    Raises:
        ValueError: ``FMLIB_PROGRESS`` is set to none of :data:`MODES`.
    """
    forced = os.environ.get("FMLIB_PROGRESS", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(
                f"FMLIB_PROGRESS must be one of {list(MODES)}, got {os.environ['FMLIB_PROGRESS']!r}"
            )
        return forced
    return "text" if _kernel() is not None and not live_frontend() else "widget"


class TextBar(std.tqdm):
    """A tqdm bar that draws nothing while it runs and, closed with ``leave``, writes its last
    state once as a line (to stdout unless ``file`` says otherwise)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("file", sys.stdout)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        """Draw nothing while the bar runs."""
        return None  # no redraws: a saved notebook keeps every one of them

    def clear(self, nolock=False):
        """Clear nothing."""
        pass  # nothing was drawn (``tqdm.write`` clears the bars around its line)

    def close(self):
        if self.disable:
            return
        leave = self.pos == 0 if self.leave is None else self.leave
        if leave:
            self.fp.write(f"{self}\n")
            self.fp.flush()
        self.leave = False  # the line is written: tqdm's close only forgets the bar
        super().close()


def progress_bar(*args, **kwargs) -> std.tqdm:
    """A tqdm bar (same arguments) drawn as :func:`progress_mode` says: tqdm.auto's, a
    :class:`TextBar`, or a disabled one."""
    mode = progress_mode()
    if mode == "off":
        return std.tqdm(*args, **{**kwargs, "disable": True})
    if mode == "text":
        return TextBar(*args, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(*args, **kwargs)
