"""What every figure shares: class colours, byte-identical files, integer round and label ticks,
upright round labels, a title on each standalone figure."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from fmlib.analysis import plots
from tests.analysis.plots.frames import (
    CLASSES,
    by_class_frame,
    legend_colours,
    overlap_frame,
    rounds_frame,
)


def test_class_palette_follows_class_order():
    palette = plots.class_palette(CLASSES)
    assert list(palette) == CLASSES
    tab10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
    assert [to_hex(c) for c in palette.values()] == tab10[: len(CLASSES)]


def test_a_class_has_one_colour_in_every_figure():
    frame = rounds_frame(seeds=(0,), strategies=("random",))
    expected = {name: to_hex(c) for name, c in plots.class_palette(CLASSES).items()}
    figures = {
        "per_class": plots.per_class_accuracy(frame, classes=CLASSES, errorbar=None),
        "labeled": plots.class_histogram(frame, classes=CLASSES),
        "queried": plots.class_histogram(frame, kind="query", classes=CLASSES),
        "sensitivity": plots.class_sensitivity(by_class_frame()),
    }
    for name, fig in figures.items():
        assert legend_colours(fig) == expected, name
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert labels == CLASSES, name  # legends list classes in class order


def test_class_colours_by_label_without_names():
    frame = rounds_frame(seeds=(0,), strategies=("random",))
    by_class = by_class_frame().drop(columns="class")
    tab10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
    expected = {str(c): tab10[c] for c in range(len(CLASSES))}
    assert legend_colours(plots.class_histogram(frame)) == expected
    assert legend_colours(plots.class_sensitivity(by_class)) == expected


def test_two_renders_of_the_same_records_are_byte_identical(tmp_path):
    frame = rounds_frame()
    frame["accuracy"] += np.random.default_rng(0).normal(0, 0.05, len(frame))  # bands to bootstrap
    written = []
    for name in ("a", "b"):
        fig = plots.learning_curves(frame, errorbar=("ci", 95))
        written.append(plots.save_figure(fig, tmp_path / name / "curves", dpi=40))
    for first, second in zip(*written):
        assert first.read_bytes() == second.read_bytes(), first.suffix
    assert b"<dc:date>" not in written[0][1].read_bytes()
    assert plt.rcParams["svg.hashsalt"] is None  # the salt is set for the save only


def test_round_and_label_axes_have_integer_ticks():
    frame = rounds_frame(seeds=(0,), strategies=("random",))
    figures = {
        "overlap": plots.mask_overlap(overlap_frame(), errorbar=None),
        "fisher": plots.fisher_over_rounds(overlap_frame(), errorbar=None),
        "curves": plots.learning_curves(frame.assign(n_labeled=frame["round"] + 1), errorbar=None),
    }
    for name, fig in figures.items():
        ax = fig.axes[0]
        ax.figure.canvas.draw()
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)


def test_short_round_labels_are_not_rotated():
    frame = rounds_frame(seeds=(0,), strategies=("random",))
    for fig in (plots.class_histogram(frame), plots.class_sensitivity(by_class_frame())):
        assert {t.get_rotation() for t in fig.axes[0].get_xticklabels()} == {0.0}


def test_standalone_figures_have_titles():
    frame = rounds_frame(seeds=(0,), strategies=("random",))
    summary = pd.DataFrame({"layer": ["a"], "fraction_mean": [0.5], "fraction_std": [0.1]})
    matrix = pd.DataFrame(np.eye(2))
    figures = {
        "curves": plots.learning_curves(frame, errorbar=None),
        "per_class": plots.per_class_accuracy(frame, errorbar=None),
        "labeled": plots.class_histogram(frame),
        "queried": plots.class_histogram(frame, kind="query"),
        "overlap": plots.mask_overlap(overlap_frame(), errorbar=None),
        "matrix": plots.mask_overlap_matrix(matrix),
        "summary": plots.layer_share_summary(summary),
        "fisher": plots.fisher_over_rounds(overlap_frame(), errorbar=None),
        "sensitivity": plots.class_sensitivity(by_class_frame()),
    }
    titles = {name: fig.axes[0].get_title() for name, fig in figures.items()}
    assert all(titles.values()), titles
    assert len(set(titles.values())) == len(titles)  # no two figures share a title


def test_a_strategy_has_one_colour_whatever_else_a_figure_shows():
    tab10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
    small = plots.strategy_palette(["random", "fishermask"])
    large = plots.strategy_palette(["badge", "bait", "bald", "coreset", "entropy", "fishermask"])
    ablation = plots.strategy_palette(["fm", "fm-scale-none", "fm-random-mask", "random"])
    assert to_hex(small["fishermask"]) == to_hex(large["fishermask"]) == to_hex(ablation["fm"])
    assert to_hex(small["random"]) == to_hex(ablation["random"]) == tab10[4]
    # variants take colours that no strategy of the figure holds, each its own
    held = {to_hex(ablation[n]) for n in ("fm", "random")}
    variants = [to_hex(ablation[n]) for n in ("fm-scale-none", "fm-random-mask")]
    assert len(set(variants)) == 2 and not held & set(variants)
    many = plots.strategy_palette([f"mine-{i}" for i in range(12)])
    assert len({to_hex(c) for c in many.values()}) == 12


def test_learning_curves_colour_a_strategy_by_its_name_not_its_place():
    def colours(fig):
        return {k.split(" (n=")[0]: v for k, v in legend_colours(fig).items()}

    two = rounds_frame(strategies=("random", "fishermask"))
    three = rounds_frame(strategies=("bait", "entropy", "random"))
    expected = {k: to_hex(c) for k, c in plots.strategy_palette(["random", "fishermask"]).items()}
    assert colours(plots.learning_curves(two, errorbar=None)) == expected
    assert colours(plots.learning_curve_panels(two.assign(setting="s"), errorbar=None)) == expected
    random = colours(plots.learning_curves(three, errorbar=None))["random"]
    assert random == expected["random"]
