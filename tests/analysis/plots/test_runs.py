"""Figures of runs: seconds per round by phase, the per-class legend, learning-curve panels."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from fmlib.analysis import plots
from tests.analysis.plots.frames import rounds_frame


def test_round_timings_one_panel_per_setting_phases_stacked_legend_outside():
    frame = rounds_frame(seeds=(0,), settings=["balanced", "imbalanced"])
    frame.loc[frame["setting"] == "imbalanced", "select_time"] = 9.0
    fig = plots.round_timings(frame)
    axes = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title() for ax in axes] == ["balanced", "imbalanced"]
    for ax, select in zip(axes, (2.0, 9.0)):
        # one stacked bar per strategy, one segment per phase: the select segment is the rest of
        # the selection call besides its embed part (0.5 s), so a bar is the round's whole time
        assert len(ax.patches) == 2 * 4
        widths = {round(p.get_width(), 6) for p in ax.containers[2].patches}
        assert widths == {select - 0.5}
        ends = {round(p.get_x() + p.get_width(), 6) for p in ax.containers[3].patches}
        assert ends == {round(2.5 + select + 0.1, 6)}  # train 2.5 (mean), embed + rest, eval
        assert [t.get_text() for t in ax.get_yticklabels()] == ["fishermask", "random"]
    fig.canvas.draw()
    legend = fig.legends[0] if fig.legends else axes[-1].get_legend()
    box = legend.get_window_extent()
    for ax in axes:  # the legend covers no panel
        assert not box.overlaps(ax.get_window_extent())
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["train", "embed", "select, besides embed", "eval"]


def test_round_timings_of_one_strategy_has_a_bar_per_round():
    frame = rounds_frame(seeds=(0, 1), strategies=("fishermask",))
    (ax,) = plots.round_timings(frame).axes
    assert len(ax.containers[0].patches) == 4  # rounds 0..3
    assert [round(p.get_height(), 6) for p in ax.containers[0].patches] == [1.0, 2.0, 3.0, 4.0]


def test_round_timings_refuses_to_pool_settings_on_one_axis():
    frame = rounds_frame(seeds=(0,), settings=["balanced", "imbalanced"])
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax"):
        plots.round_timings(frame, ax=ax)


def test_per_class_legend_lies_beside_the_curves():
    fig = plots.per_class_accuracy(rounds_frame(seeds=(0,), strategies=("random",)), errorbar=None)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())


def protocols_frame():
    """Three protocols with different strategies, two seeds each: ``ours`` has five series."""
    labels = {
        "ours": ["bait", "entropy", "fm", "fm-random-mask", "random"],
        "authors": ["entropy", "fm"],
        "resnet": ["fm", "margin"],
    }
    rows = [
        {
            "run": f"{p}/{label}-{seed}",
            "protocol": p,
            "label": label,
            "seed": seed,
            "round": r,
            "n_labeled": 15 + 70 * r,
            "accuracy": 0.4 + 0.1 * r + 0.01 * i,
        }
        for p, names in labels.items()
        for i, label in enumerate(names)
        for seed in (0, 1)
        for r in range(4)
    ]
    return pd.DataFrame(rows), labels


def legend_labels(ax) -> list[str]:
    return [t.get_text().split(" (n=")[0] for t in ax.get_legend().get_texts()]


def test_learning_curve_panels_legends_list_only_their_own_series_beside_the_curves():
    frame, labels = protocols_frame()
    fig = plots.learning_curve_panels(frame, col="protocol", hue="label", errorbar=None, ncols=2)
    fig.canvas.draw()
    assert len(fig.axes) == 3  # the empty fourth cell of the 2 x 2 grid is removed
    columns = {round(ax.get_position().x0, 3) for ax in fig.axes}
    assert len(columns) == 2
    colours = {}
    for ax in fig.axes:
        protocol = ax.get_title().removeprefix("protocol: ")
        assert legend_labels(ax) == sorted(labels[protocol])  # exactly the series it draws
        drawn = [line for line in ax.get_lines() if len(line.get_xdata())]
        assert len(drawn) == len(labels[protocol])
        legend = ax.get_legend()
        assert not legend.get_window_extent().overlaps(ax.get_window_extent())
        for text, handle in zip(legend.get_texts(), legend.legend_handles):
            colours.setdefault(text.get_text().split(" (n=")[0], set()).add(handle.get_color())
    assert all(len(c) == 1 for c in colours.values())  # a label keeps its colour in every panel


def test_learning_curve_panels_wrap_into_rows_of_two_beyond_three_panels():
    frame, _ = protocols_frame()
    four = pd.concat([frame, frame[frame["protocol"] == "resnet"].assign(protocol="whole")])
    fig = plots.learning_curve_panels(four, col="protocol", hue="label", errorbar=None)
    assert len({round(ax.get_position().x0, 3) for ax in fig.axes}) == 2
    assert len({round(ax.get_position().y0, 3) for ax in fig.axes}) == 2
    with pytest.raises(ValueError, match="ncols"):
        plots.learning_curve_panels(frame, col="protocol", hue="label", ncols=0)
