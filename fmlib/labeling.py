"""Label it yourself: an ipywidgets view of a session's query, one class dropdown per item.

:class:`LabelingWidget` shows the pending query of an :class:`~fmlib.session.ActiveSession`:
its items in a grid (images drawn as PNGs; anything else through ``render``), a dropdown of the
classes under each, a progress count, "undo" (the last answer) and "submit". Every choice is an
:meth:`~fmlib.session.ActiveSession.answer`, kept on disk at once; "submit" (enabled when every
item has a class) calls ``label(...)``, which records the round, and then asks for the next
query, which it shows. ``on_round`` functions see each recorded row (a learning curve, a mask
figure). Like :mod:`fmlib.primer.widgets` it uses no ``ipywidgets.Output``, so papermill and
nbval run it; :meth:`LabelingWidget.answer_with` answers a query without a person (the notebook's
unattended mode, tests).
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch

from fmlib.records import class_names

UNSET = "?"  # the dropdown's value before a class is chosen


def image_png(item, *, scale: int = 3) -> bytes:
    """A ``uint8 [C, H, W]`` image (or a float one in [0, 1]) as PNG bytes, ``scale`` times
    larger."""
    x = torch.as_tensor(item).detach().cpu()
    if x.is_floating_point():
        x = (x.clamp(0, 1) * 255).to(torch.uint8)
    x = x.numpy()
    x = x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)  # [H, W] or [H, W, 3]
    x = np.kron(x, np.ones((scale, scale) + (() if x.ndim == 2 else (1,)), dtype=x.dtype))
    buffer = io.BytesIO()
    plt.imsave(buffer, x, cmap="gray" if x.ndim == 2 else None, vmin=0, vmax=255, format="png")
    return buffer.getvalue()


class LabelingWidget(w.VBox):
    """The pending query of ``session`` with a class dropdown per item, undo, progress, submit.

    Args:
        session: an open :class:`~fmlib.session.ActiveSession`.
        render: ``render(item) -> widget | str (HTML) | bytes (PNG)`` for one item; default: a
            PNG of an image item, else the item's values as text.
        classes: class names shown in the dropdowns (default the pool's).
        on_round: functions called with each recorded round's row, before the next query.
        columns: items per row of the grid.

    Attributes:
        rows: the rows recorded through this widget.
    """

    def __init__(
        self,
        session,
        *,
        render: Callable | None = None,
        classes: Sequence[str] | None = None,
        on_round: Sequence[Callable] = (),
        columns: int = 10,
    ):
        self.session, self.render, self.columns = session, render, columns
        known = class_names(session.records.meta)  # a finished run has no parts built
        self.classes = list(
            classes or (session.parts.data.pool.classes if session.parts else known)
        )
        self.on_round = list(on_round)
        self.rows: list[dict] = []
        self._history: list[int] = []  # positions in the order they were answered (undo)
        self.title = w.HTML().add_class("fmlib-label-round")
        self.progress = w.HTML().add_class("fmlib-label-progress")
        self.message = w.HTML().add_class("fmlib-label-message")
        self.undo_button = w.Button(description="undo", icon="undo").add_class("fmlib-label-undo")
        self.submit_button = w.Button(description="submit", button_style="success").add_class(
            "fmlib-label-submit"
        )
        self.undo_button.on_click(lambda _: self.undo())
        self.submit_button.on_click(lambda _: self.submit())
        self.grid = w.GridBox(
            layout=w.Layout(grid_template_columns=f"repeat({columns}, max-content)", grid_gap="6px")
        )
        self.choices: dict[int, w.Dropdown] = {}
        super().__init__(
            [
                self.title,
                self.grid,
                w.HBox([self.undo_button, self.submit_button, self.progress]),
                self.message,
            ]
        )
        self.add_class("fmlib-labeling")
        self.show()

    # ------------------------------------------------------------------------- the view

    def show(self) -> None:
        """Draw the session's pending query (asking for one when none is pending)."""
        session = self.session
        if session.finished:
            self.grid.children, self.choices = (), {}
            self.title.value = f"<b>done</b>: {len(session.records.rounds)} rounds recorded"
            self._update()
            return
        query = session.query()
        if not len(query.positions):  # the last round: trained and evaluated, nothing to label
            self.submit()
            return
        self.query = query
        self.title.value = (
            f"<b>round {query.round}</b>: label {len(query.positions)} items "
            f"({len(session.records.rounds)} rounds recorded)"
        )
        cards, self.choices = [], {}
        for i, position in enumerate(query.positions.tolist()):
            choice = w.Dropdown(options=[UNSET, *self.classes], layout=w.Layout(width="110px"))
            known = query.answers.get(position)
            choice.value = self.classes[known] if known is not None else UNSET
            choice.add_class("fmlib-label-choice")
            choice.observe(lambda change, p=position: self._chosen(p, change["new"]), names="value")
            self.choices[position] = choice
            card = w.VBox([self._view(query.items[i]), choice]).add_class("fmlib-label-item")
            card.add_class(f"fmlib-position-{position}")
            cards.append(card)
        self.grid.children = cards
        self._history = [p for p in query.positions.tolist() if p in query.answers]
        self._update()

    def _view(self, item) -> w.Widget:
        shown = self.render(item) if self.render is not None else None
        if shown is None:
            x = torch.as_tensor(item) if not isinstance(item, dict) else None
            if x is not None and x.ndim == 3 and x.shape[0] in (1, 3):
                shown = image_png(x)
            else:
                shown = f"<pre>{html.escape(str(item))[:300]}</pre>"
        if isinstance(shown, w.Widget):
            return shown
        if isinstance(shown, bytes):
            return w.Image(value=shown, format="png")
        return w.HTML(str(shown))

    def _update(self) -> None:
        query = self.session.pending
        done = len(query.answers) if query is not None else 0
        total = len(query.positions) if query is not None else 0
        self.progress.value = f"{done} / {total} labeled"
        self.submit_button.disabled = query is None or done < total
        self.undo_button.disabled = not self._history

    # ------------------------------------------------------------------------- answering

    def _chosen(self, position: int, value: str) -> None:
        if getattr(self, "_quiet", False):
            return
        try:
            if value == UNSET:
                self.session.undo(position)
                self._history = [p for p in self._history if p != position]
            else:
                self.session.answer(position, self.classes.index(value))
                self._history = [p for p in self._history if p != position] + [position]
            self.message.value = ""
        except ValueError as err:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        self._update()

    def choose(self, position: int, label: int) -> None:
        """Choose class ``label`` for ``position`` (as a click in its dropdown does)."""
        self.choices[int(position)].value = self.classes[int(label)]

    def undo(self) -> None:
        """Take back the last answer."""
        if self._history:
            self.choices[self._history[-1]].value = UNSET

    def answer_with(self, oracle: Callable) -> None:
        """Answer every item still without a class by ``oracle(positions, items) -> labels``."""
        query = self.session.query()
        rest = query.remaining
        if len(rest):
            for position, label in zip(
                rest.tolist(), np.asarray(oracle(rest, None)).reshape(-1).tolist()
            ):
                self.choose(position, label)

    def submit(self) -> dict | None:
        """Label the query with the answers given; record the round; show the next query."""
        try:
            row = self.session.label()
        except ValueError as err:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return None
        self.rows.append(row)
        self.message.value = f"round {row['round']} recorded: accuracy {row['accuracy']:.3f}"
        for fn in self.on_round:
            fn(row)
        self.show()
        return row
