"""The labeling widget driven as a browser drives it (dropdown values, button clicks): the same
picks and records as the scripted oracle and the simulation for the same answers; undo,
progress, a wrong submit refused, answers kept when the widget is opened again."""

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("ipywidgets")
from fmlib.experiment import run_experiment  # noqa: E402
from fmlib.labeling import UNSET, LabelingWidget, image_png  # noqa: E402
from fmlib.session import open_session  # noqa: E402
from tests.conftest import requires_fashion_mnist  # noqa: E402
from tests.test_session import POOL_LABELS, config, same_records, true_labels  # noqa: E402


def click_through(widget):
    """Choose the true class of every item in its dropdown, then click submit."""
    for position, choice in widget.choices.items():
        choice.value = widget.classes[int(POOL_LABELS[position])]
    widget.submit_button.click()


def test_the_widget_gives_the_oracle_s_and_the_simulation_s_records(one_thread, tmp_path):
    simulated = run_experiment(config(tmp_path / "sim"))
    scripted = run_experiment(config(tmp_path / "oracle"), oracle=true_labels)
    seen = []
    with open_session(config(tmp_path / "widget")) as session:
        widget = LabelingWidget(session, on_round=[seen.append])
        while not session.finished:
            click_through(widget)
        records = session.records
    same_records(scripted, records)
    same_records(simulated, records, sources=False)
    assert [row["round"] for row in seen] == [0, 1, 2, 3] and "done" in widget.title.value


def test_progress_undo_and_a_submit_before_every_item_has_a_class(one_thread, tmp_path):
    with open_session(config(tmp_path)) as session:
        widget = LabelingWidget(session, classes=["zero", "one", "two"])
        positions = widget.query.positions.tolist()
        assert widget.progress.value == "0 / 5 labeled" and widget.submit_button.disabled
        assert "round 0" in widget.title.value and len(widget.grid.children) == 5
        widget.choose(positions[0], 2)
        widget.choose(positions[1], 1)
        assert session.pending.answers == {positions[0]: 2, positions[1]: 1}
        widget.undo()
        assert (
            session.pending.answers == {positions[0]: 2}
            and widget.choices[positions[1]].value == UNSET
        )
        assert widget.progress.value == "1 / 5 labeled"
        # refused, kept
        assert widget.submit() is None and "have no label yet" in widget.message.value
        assert len(session.records.rounds) == 0
    with open_session(config(tmp_path)) as session:  # opened again: the answer given is there
        widget = LabelingWidget(session, classes=["zero", "one", "two"])
        assert (
            widget.query.positions.tolist() == positions
            and widget.choices[positions[0]].value == "two"
        )
        widget.answer_with(true_labels)
        assert not widget.submit_button.disabled
        row = widget.submit()
        assert row["round"] == 0 and "round 1" in widget.title.value


def test_images_are_drawn_and_any_item_goes_through_render():
    png = image_png(torch.randint(0, 255, (1, 28, 28), dtype=torch.uint8))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from fmlib.labeling import LabelingWidget as Widget

    class Fake:
        render = staticmethod(lambda item: f"<b>{int(item.sum())}</b>")

    view = Widget._view(Fake(), torch.ones(4))
    assert view.value == "<b>4</b>"
    assert "tensor" in Widget._view(type("NoRender", (), {"render": None})(), torch.ones(4)).value
    assert (
        np.asarray(
            Widget._view(
                type("NoRender", (), {"render": None})(), torch.zeros(1, 4, 4, dtype=torch.uint8)
            ).value[:4]
        ).tobytes()
        == b"\x89PNG"
    )


@pytest.mark.slow
@pytest.mark.notebook
@requires_fashion_mnist
def test_label_yourself_runs_unattended_under_papermill(tmp_path):
    import json

    import papermill as pm

    from tests.test_notebooks import NOTEBOOKS

    run = tmp_path / "run"
    pm.execute_notebook(
        str(NOTEBOOKS / "label_yourself.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"output_dir": str(run), "smoke": True},
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    results = json.loads((run / "results.json").read_text())
    assert (
        results["finished"]
        and results["smoke"] is True
        and results["figures"] == ["label_yourself.png"]
    )
    queries = pd.read_csv(run / "queries.csv")
    assert (
        set(queries.query("round > 0")["source"]) == {"oracle"}
        and len(queries.query("round > 0")) == 12
    )
    assert not (run / "pending.pt").exists() and (run / "figures" / "label_yourself.png").is_file()


def test_an_answer_of_class_zero_shows_and_answer_with_asks_only_the_rest(one_thread, tmp_path):
    def widget_of(session):
        return LabelingWidget(session, classes=["zero", "one", "two"])

    entropy = dict(strategy="entropy", strategy_options={})
    with open_session(config(tmp_path, **entropy)) as session:
        widget = widget_of(session)
        positions = widget.query.positions.tolist()
        widget.choose(positions[0], 0)
        widget.choose(positions[1], 2)
    with open_session(config(tmp_path, **entropy)) as session:  # opened again
        widget = widget_of(session)
        assert [widget.choices[p].value for p in positions[:3]] == ["zero", "two", UNSET]
        asked = []
        widget.answer_with(lambda p, items: asked.append(p.tolist()) or [1] * len(p))
        assert asked == [positions[2:]]
        assert session.pending.answers == {
            positions[0]: 0,
            positions[1]: 2,
            **{p: 1 for p in positions[2:]},
        }
