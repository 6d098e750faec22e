"""Live figures for the primer: ipywidgets controls and a PNG redrawn when one moves.

:class:`LiveFigure` shows ``draw(**fixed, **values)`` (any ``fmlib.primer.toy.draw_*``) as an
``ipywidgets.Image`` and redraws it in the kernel whenever a control's value changes. It uses no
``ipywidgets.Output``: headless executors mimic the Output widget by writing to the kernel's shell
channel while they read it, and can hang there (nbclient#312). An Image widget only sends state,
so papermill, nbval and the tests build the live figures and move a slider
(:meth:`LiveFigure.check`) like a browser does.
"""

from __future__ import annotations

import base64
import html
import io
import math

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
from torch import nn

from fmlib import primer


class LiveFigure(w.VBox):
    """``draw(**fixed, **values)`` as a PNG under its ``controls``, redrawn when one changes.

    Args:
        draw: returns a matplotlib figure (closed here once rendered).
        controls: keyword of ``draw`` -> the value widget (slider, dropdown) that sets it.
        name: CSS class ``fmlib-live-<name>`` on the box, for a browser test to find it.
        dpi: resolution of the PNG.
        **fixed: the other keywords of ``draw``.

    Attributes:
        image: the ``ipywidgets.Image`` holding the current PNG.
        redraws: how many figures were drawn (1 after construction).
    """

    def __init__(
        self, draw, controls: dict[str, w.ValueWidget], *, name: str, dpi: int = 100, **fixed
    ):
        self._draw, self._fixed, self.controls, self.dpi = draw, fixed, dict(controls), dpi
        self.name = name
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.error = w.HTML()  # a failed redraw says why here, under the figure
        self.redraws = 0
        super().__init__([w.HBox(list(self.controls.values())), self.image, self.error])
        self.add_class("fmlib-live")
        self.add_class(f"fmlib-live-{name}")
        for control in self.controls.values():
            control.observe(self._redraw, names="value")
        self._redraw()

    def __repr__(self) -> str:
        values = ", ".join(f"{key}={value!r}" for key, value in self.values().items())
        return f"<live figure {self.name!r}: {values}; its sliders need a running kernel>"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The widget, and beside it its current figure as a PNG: a notebook saved by papermill or
        nbconvert (no widget state), or opened untrusted, shows the image instead of the widget's
        text."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if self.image.value:
            bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = repr(self)
        return bundle

    def values(self) -> dict:
        """The controls' current values by keyword."""
        return {key: control.value for key, control in self.controls.items()}

    def _redraw(self, change=None) -> None:
        try:
            fig = self._draw(**self._fixed, **self.values())
            try:
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=self.dpi)
            finally:
                # else the inline backend shows it a second time at the end of the cell
                plt.close(fig)
        except Exception as exc:
            self.error.value = (
                f"<pre class='fmlib-live-error'>{html.escape(f'{type(exc).__name__}: {exc}')}</pre>"
            )
            raise
        self.image.value = buffer.getvalue()
        self.error.value = ""
        self.redraws += 1

    def check(self) -> None:
        """Move the first control one step, as a user would, and back; raise if the figure did not
        change.

        Raises:
            RuntimeError: the PNG after the move equals the one before it.
        """
        control = next(iter(self.controls.values()))
        before, old = self.image.value, control.value
        control.value = _step(control)
        moved, after = control.value, self.image.value
        control.value = old
        if moved == old or after == before:
            raise RuntimeError(
                f"moving {control.description!r} from {old!r} to {moved!r} did not redraw the "
                "figure"
            )


def _step(control: w.ValueWidget):
    """The value one step from ``control.value`` (up, or down at the top), as a click or key
    would."""
    if isinstance(control, w.Dropdown):
        options = [option[1] if isinstance(option, tuple) else option for option in control.options]
        return options[(options.index(control.value) + 1) % len(options)]
    if isinstance(control, w.FloatLogSlider):
        exponent = math.log(control.value, control.base)
        exponent = (
            exponent + control.step
            if exponent + control.step <= control.max
            else exponent - control.step
        )
        return control.base**exponent
    value = control.value + control.step
    return value if value <= control.max else control.value - control.step


def show(live: LiveFigure, *, check: bool = False) -> LiveFigure:
    """Display ``live``; with ``check`` (smoke runs, the tests) also move a slider once and back
    and raise unless the figure was redrawn (:meth:`LiveFigure.check`)."""
    from IPython.display import display

    display(live)
    if check:
        live.check()
    return live


def interactive_mask(
    fisher_diag, *, model: nn.Module | None = None, fraction: float = 0.1
) -> LiveFigure:
    """:func:`fmlib.primer.toy.draw_mask` with a log slider for the fraction and a menu for the
    method."""
    controls = {
        "fraction": w.FloatLogSlider(
            value=fraction,
            base=10,
            min=-3,
            max=0,
            step=0.1,
            description="fraction",
            continuous_update=False,
        ),
        "method": w.Dropdown(
            options=["global", "per_layer", "random"], value="global", description="method"
        ),
    }
    return LiveFigure(primer.draw_mask, controls, name="mask", fisher_diag=fisher_diag, model=model)


def interactive_bait(
    model, pool, labels, *, batch_size: int = 10, lamb: float = 1.0, **options
) -> LiveFigure:
    """:func:`fmlib.primer.toy.draw_bait` of ``model`` on ``pool`` ``[N, 2]`` with ``labels``
    ``[N]``, with sliders for λ (log) and the batch size starting at ``lamb`` and ``batch_size``;
    ``options`` (``fraction``, ``random_draws``, ``seed``) go to ``draw_bait`` unchanged."""
    controls = {
        "lamb": w.FloatLogSlider(
            value=lamb, base=10, min=-3, max=2, step=0.25, description="λ", continuous_update=False
        ),
        "batch_size": w.IntSlider(
            value=batch_size, min=1, max=40, description="batch size", continuous_update=False
        ),
    }
    return LiveFigure(
        primer.draw_bait, controls, name="bait", model=model, pool=pool, labels=labels, **options
    )


def interactive_fisher_map(
    x: torch.Tensor, y: torch.Tensor, *, steps: int = 300, hidden: int = 16, seed: int = 0
) -> LiveFigure:
    """:func:`fmlib.primer.toy.draw_fisher_map` of a model trained for a chosen number of steps
    (the Fisher moves as it learns); ``hidden`` and ``seed`` as for
    :func:`fmlib.primer.toy.train_toy`, so the first figure is the notebook's model."""
    models = {}  # train steps -> model: moving back to a value redraws without training again

    def draw(train_steps: int):
        if train_steps not in models:
            models[train_steps] = primer.train_toy(
                x, y, hidden=hidden, steps=train_steps, seed=seed
            )
        return primer.draw_fisher_map(models[train_steps], x, y)

    slider = w.IntSlider(
        value=steps, min=0, max=1000, step=50, description="train steps", continuous_update=False
    )
    return LiveFigure(draw, {"train_steps": slider}, name="fisher-map")
