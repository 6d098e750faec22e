"""Live figures (fmlib.primer.widgets): built without a browser, driven from Python as a slider
would be."""

import ipywidgets as w
import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib import primer
from fmlib.fisher.embeddings import fisher_diagonal  # noqa: E402
from fmlib.primer import widgets  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    x, y = primer.toy_data(60, 3, seed=1)
    return x, y, primer.train_toy(x, y, steps=60, seed=1)


def titled(calls: list):
    """A ``draw`` that records its keywords and titles a figure with them."""

    def draw(**kwargs):
        calls.append(kwargs)
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.set_title(", ".join(f"{k}={v}" for k, v in sorted(kwargs.items())))
        return fig

    return draw


def descendants(widget) -> list:
    children = list(getattr(widget, "children", ()))
    return children + [d for child in children for d in descendants(child)]


def test_live_figures_have_their_controls_and_no_output_widget(toy):
    x, y, model = toy
    lives = {
        ("batch size", "λ"): widgets.interactive_bait(model, x, y, batch_size=3),
        ("fraction", "method"): widgets.interactive_mask(
            fisher_diagonal(model, x), model=model, fraction=0.1
        ),
        ("train steps",): widgets.interactive_fisher_map(x, y, steps=20),
    }
    for descriptions, live in lives.items():
        assert sorted(c.description for c in live.controls.values()) == sorted(descriptions)
        # drawn once on construction
        assert live.redraws == 1 and bytes(live.image.value).startswith(b"\x89PNG")
        # an Output widget is what headless executors hang on (nbclient#312)
        assert not any(isinstance(d, w.Output) for d in descendants(live))
    # every drawn figure closed: the inline backend would show it again
    assert plt.get_fignums() == []


def test_the_bait_figure_gets_the_sliders_values_and_every_other_option(toy, monkeypatch):
    x, y, model = toy
    calls = []
    monkeypatch.setattr(primer, "draw_bait", titled(calls))
    live = widgets.interactive_bait(model, x, y, batch_size=3, fraction=0.3, random_draws=2, seed=5)
    (call,) = calls
    assert {k: call[k] for k in ("batch_size", "lamb", "fraction", "random_draws", "seed")} == {
        "batch_size": 3,
        "lamb": 1.0,
        "fraction": 0.3,
        "random_draws": 2,
        "seed": 5,
    }
    assert call["model"] is model and call["pool"] is x and call["labels"] is y
    live.controls["batch_size"].value = 4
    assert calls[-1]["batch_size"] == 4 and calls[-1]["fraction"] == 0.3


def test_moving_a_slider_redraws_with_the_new_value():
    calls = []
    slider = w.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.1, description="fraction")
    live = widgets.LiveFigure(titled(calls), {"fraction": slider}, name="test", extra=7)
    before = live.image.value
    slider.value = 0.5
    assert calls == [{"extra": 7, "fraction": 0.1}, {"extra": 7, "fraction": 0.5}]
    assert (
        live.redraws == 2
        and live.image.value != before
        and bytes(live.image.value).startswith(b"\x89PNG")
    )
    assert "fmlib-live-test" in live._dom_classes


def test_check_moves_the_first_control_and_back_and_needs_a_new_figure():
    calls = []
    size = w.IntSlider(value=40, min=1, max=40, description="batch size")
    live = widgets.LiveFigure(
        titled(calls), {"batch_size": size, "lamb": w.FloatSlider(value=1.0)}, name="test"
    )
    live.check()
    assert [c["batch_size"] for c in calls] == [
        40,
        39,
        40,
    ] and size.value == 40  # down at the top, then back

    frozen = widgets.LiveFigure(
        lambda value: titled([])(), {"value": w.IntSlider(value=3)}, name="frozen"
    )
    with pytest.raises(RuntimeError, match="did not redraw"):
        frozen.check()


def test_a_failing_redraw_says_why_under_the_figure():
    def draw(value):
        if value > 3:
            raise ValueError("value too large")
        return titled([])(value=value)

    slider = w.IntSlider(value=3)
    live = widgets.LiveFigure(draw, {"value": slider}, name="test")
    with pytest.raises(ValueError):
        slider.value = 4
    assert "ValueError: value too large" in live.error.value
    slider.value = 2
    assert live.error.value == ""


def test_step_is_one_slider_step():
    log = w.FloatLogSlider(value=1.0, base=10, min=-3, max=0, step=0.5)
    assert widgets._step(log) == pytest.approx(10**-0.5)  # at the top: one step down
    log.value = 0.01
    assert widgets._step(log) == pytest.approx(10**-1.5)
    assert widgets._step(w.IntSlider(value=5, step=2, max=10)) == 7
    assert widgets._step(w.Dropdown(options=["a", "b"], value="b")) == "a"


def test_show_checks_when_asked(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    frozen = widgets.LiveFigure(
        lambda value: titled([])(), {"value": w.IntSlider(value=3)}, name="frozen"
    )
    assert widgets.show(frozen) is frozen and shown == [frozen]
    with pytest.raises(RuntimeError):
        widgets.show(frozen, check=True)


def test_a_saved_live_figure_shows_its_image_not_the_widgets_text():
    """Papermill and nbconvert save no widget state: JupyterLab then falls back on a safe type of
    the output. The bundle carries the current figure as a PNG and a short text, never the
    widget's ``LiveFigure(children=(HBox(...`` repr."""
    import base64

    slider = w.IntSlider(value=3, description="value")
    live = widgets.LiveFigure(titled([]), {"value": slider}, name="saved")
    bundle = live._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live in a running kernel
    assert base64.b64decode(bundle["image/png"]) == live.image.value
    assert (
        bundle["text/plain"] == "<live figure 'saved': value=3; its sliders need a running kernel>"
    )
    slider.value = 4
    assert base64.b64decode(live._repr_mimebundle_()["image/png"]) == live.image.value  # the last
