"""Figure properties a reader relies on: class colours, byte-identical files, readable axes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from fmlib.analysis import plots  # noqa: E402

CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress"]  # not in alphabetical order


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def rounds_frame(seeds=(0, 1, 2), strategies=("random", "fishermask"), settings=None):
    rows = []
    for setting in settings or [None]:
        for strategy in strategies:
            for seed in seeds:
                for r in range(4):
                    row = {"run": f"{strategy}-{setting}-{seed}", "strategy": strategy,
                           "seed": seed,
                           "round": r, "n_labeled": 10 + 20 * r,
                           "accuracy": 0.5 + 0.1 * r + 0.01 * seed,
                           "train_time": 1.0 + r, "embed_time": 0.5, "select_time": 2.0,
                           "eval_time": 0.1}  # fmt: skip
                    if setting is not None:
                        row["setting"] = setting
                    for c in range(len(CLASSES)):
                        row[f"acc_{c}"] = 0.2 * c + 0.01 * r
                        row[f"count_{c}"] = 2 + r + c
                        row[f"query_{c}"] = c + 1 if r < 3 else 0
                    rows.append(row)
    return pd.DataFrame(rows)


def by_class_frame():
    rows = [{"round": r, "label": c, "class": CLASSES[c], "n_picked": c + 1,
             "score_sum": float(c + 1), "score_share": (c + 1) / 10}
            for r in range(3) for c in range(len(CLASSES))]  # fmt: skip
    return pd.DataFrame(rows)


def legend_colours(fig) -> dict:
    legend = fig.axes[0].get_legend()
    colours = {}
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
        if not isinstance(colour, str):
            colour = tuple(np.ravel(colour)[:3])
        colours[text.get_text()] = to_hex(colour)
    return colours


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


def test_round_timings_one_panel_per_setting_phases_stacked_legend_outside():
    frame = rounds_frame(seeds=(0,), settings=["balanced", "imbalanced"])
    frame.loc[frame["setting"] == "imbalanced", "select_time"] = 9.0
    fig = plots.round_timings(frame)
    axes = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title() for ax in axes] == ["balanced", "imbalanced"]
    for ax, select in zip(axes, (2.0, 9.0)):
        # one stacked bar per strategy, one segment per phase: the select segment is its mean
        assert len(ax.patches) == 2 * 4
        widths = {round(p.get_width(), 6) for p in ax.containers[2].patches}
        assert widths == {select}
        assert [t.get_text() for t in ax.get_yticklabels()] == ["fishermask", "random"]
    fig.canvas.draw()
    legend = fig.legends[0] if fig.legends else axes[-1].get_legend()
    box = legend.get_window_extent()
    for ax in axes:  # the legend covers no panel
        assert not box.overlaps(ax.get_window_extent())
    assert [t.get_text() for t in legend.get_texts()] == ["train", "embed", "select", "eval"]


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


def overlap_frame():
    return pd.DataFrame({"round": [0, 1, 2, 3] * 2, "strategy": "fishermask",
                         "seed": [0] * 4 + [1] * 4,
                         "jaccard_previous": [np.nan, 0.5, 0.6, 0.7] * 2,
                         "jaccard_first": [1.0, 0.5, 0.4, 0.3] * 2,
                         "fisher_trace": [1.0, 2.0, 3.0, 4.0] * 2})  # fmt: skip


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


def test_layer_summary_range_of_a_fraction_stays_in_zero_one():
    from fmlib.analysis.sensitivity import layer_share_summary

    shares = pd.DataFrame({"round": [0, 1, 2, 3], "layer": "a", "numel": 10,
                           "in_mask": [0, 0, 0, 9], "fraction": [0, 0, 0, 0.9],
                           "share": [0, 0, 0, 1.0]})  # fmt: skip
    summary = layer_share_summary(shares)
    assert summary.loc[0, "fraction_mean"] - summary.loc[0, "fraction_std"] < 0  # mean ± std would
    ax = plots.layer_share_summary(summary).axes[0]
    (bars,) = [c for c in ax.containers if hasattr(c, "lines")]
    segments = bars.lines[2][0].get_segments()
    assert min(s[:, 0].min() for s in segments) >= 0
    assert max(s[:, 0].max() for s in segments) <= 1
    ax = plots.layer_share_summary(summary[["layer", "fraction_mean", "fraction_std"]]).axes[0]
    (bars,) = [c for c in ax.containers if hasattr(c, "lines")]
    assert min(s[:, 0].min() for s in bars.lines[2][0].get_segments()) >= 0  # clipped mean ± std


def test_per_class_legend_lies_beside_the_curves():
    fig = plots.per_class_accuracy(rounds_frame(seeds=(0,), strategies=("random",)), errorbar=None)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())
