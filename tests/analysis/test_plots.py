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


def protocols_frame():
    """Three protocols with different strategies, two seeds each: ``ours`` has five series."""
    labels = {"ours": ["bait", "entropy", "fm", "fm-random-mask", "random"],
              "authors": ["entropy", "fm"], "resnet": ["fm", "margin"]}  # fmt: skip
    rows = [{"run": f"{p}/{label}-{seed}", "protocol": p, "label": label, "seed": seed,
             "round": r, "n_labeled": 15 + 70 * r, "accuracy": 0.4 + 0.1 * r + 0.01 * i}
            for p, names in labels.items() for i, label in enumerate(names)
            for seed in (0, 1) for r in range(4)]  # fmt: skip
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


def differences_table(measures=("auc", "85", "155")):
    """FisherMask − two baselines for three arms: ``ours`` 10 seeds, ``arm`` 5, ``authors`` 3 (wide)."""
    rows = []
    for arm, n, half in (("ours", 10, 0.01), ("arm", 5, 0.02), ("authors", 3, 0.6)):
        for base, diff in (("entropy", 0.01), ("random", 0.1)):
            for m in measures:
                rows.append({"arm": arm, "baseline": base, "measure": m, "n": n, "diff": diff,
                             "ci_low": diff - half, "ci_high": diff + half})  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_differences_axis_says_what_it_measures():
    table = differences_table()
    assert (
        "accuracy at 85 labels"
        in plots.paired_differences(table, measure="85").axes[0].get_xlabel()
    )
    label = plots.paired_differences(table, measure="auc").axes[0].get_xlabel()
    assert "AUC" in label and "mean accuracy" in label


def test_a_row_with_fewer_seeds_is_cut_not_squeezing_the_others():
    ax = plots.paired_differences(differences_table(), measure="auc").axes[0]
    lo, hi = ax.get_xlim()
    assert -0.05 < lo < -0.01 and 0.12 < hi < 0.2  # set by the 10- and 5-seed rows
    (random_bars,) = [c for c in ax.containers if c.get_label() == "random"]
    ends = np.concatenate([s[:, 0] for s in random_bars.lines[2][0].get_segments()])
    assert (
        lo - 1e-9 <= ends.min() and ends.max() <= hi + 1e-9
    )  # the 3-seed interval stops at the edge
    arrows = [line for line in ax.get_lines() if line.get_marker() in ("<", ">")]
    assert len(arrows) == 4  # both ends of both baselines' 3-seed intervals
    texts = {t.get_text() for t in ax.texts}
    assert {"+0.61", "+0.70", "-0.59", "-0.50"} <= texts  # the cut ends, printed
    ax = plots.paired_differences(differences_table(), measure="auc", range_seeds=3).axes[0]
    assert ax.get_xlim()[1] > 0.7 and not [ln for ln in ax.get_lines() if ln.get_marker() == ">"]


def test_paired_differences_by_budget_one_panel_per_arm_one_line_per_baseline():
    table = differences_table(measures=("auc", "85", "155", "225"))
    table.loc[table["measure"] == "155", "diff"] += 0.02
    fig = plots.paired_differences_by_budget(table)
    assert [ax.get_title() for ax in fig.axes] == [
        "ours (10 seeds)", "arm (5 seeds)", "authors (3 seeds), bands cut at ▲▼"
    ]  # fmt: skip
    for ax in fig.axes:
        lines = {
            ln.get_label(): ln for ln in ax.get_lines() if ln.get_label() in ("entropy", "random")
        }
        assert sorted(lines) == ["entropy", "random"]
        assert lines["entropy"].get_xdata().tolist() == [85, 155, 225]  # the AUC rows left out
        assert np.allclose(lines["entropy"].get_ydata(), [0.01, 0.03, 0.01])
        lo, hi = ax.get_ylim()
        assert -0.05 < lo and hi < 0.2  # one shared range, not the 3-seed bands'
        arrows = [ln for ln in ax.get_lines() if ln.get_marker() in ("^", "v")]
        assert len(arrows) == (2 * 2 * 3 if ax.get_title().startswith("authors") else 0)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["entropy", "random"]
    with pytest.raises(ValueError, match="budgets"):
        plots.paired_differences_by_budget(differences_table(measures=("auc",)))


def test_a_log_axis_has_at_least_three_labelled_ticks():
    for traces in ([600.0, 700.0, 800.0, 900.0], [1.0, 10.0, 100.0, 1000.0], [50.0, 52.0, 54.0]):
        frame = pd.DataFrame({"round": range(len(traces)), "fisher_trace": traces})
        ax = plots.fisher_over_rounds(frame, errorbar=None).axes[0]
        ax.figure.canvas.draw()
        assert ax.get_yscale() == "log"
        lo, hi = ax.get_ylim()
        labelled = [t for t in ax.yaxis.get_major_ticks() if t.label1.get_text()
                    and lo <= t.get_loc() <= hi]  # fmt: skip
        assert len(labelled) >= 3, traces


def test_layers_are_named_with_their_module_type():
    shares = pd.DataFrame({"round": [0, 0, 1, 1], "layer": ["features.0", "head"] * 2,
                           "layer_type": ["Conv2d", "Linear"] * 2, "numel": [10, 4] * 2,
                           "in_mask": [2, 4] * 2, "fraction": [0.2, 1.0] * 2,
                           "share": [1 / 3, 2 / 3] * 2})  # fmt: skip
    from fmlib.analysis.sensitivity import layer_share_summary

    expected = ["features.0 (Conv2d)", "head (Linear)"]
    heatmap = plots.layer_share(shares).axes[0]
    assert [t.get_text() for t in heatmap.get_yticklabels()] == expected
    bars = plots.layer_share_summary(layer_share_summary(shares)).axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == expected
    untyped = plots.layer_share(shares.drop(columns="layer_type")).axes[0]
    assert [t.get_text() for t in untyped.get_yticklabels()] == ["features.0", "head"]


def test_mask_overlap_draws_the_chance_reference_in_grey():
    overlap = overlap_frame().assign(chance_previous=[np.nan, 0.3, 0.3, 0.3] * 2,
                                     chance_first=0.25)  # fmt: skip
    ax = plots.mask_overlap(overlap, errorbar=None).axes[0]
    chance = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label().startswith("chance")}
    assert sorted(chance) == ["chance, first round", "chance, previous round"]
    assert chance["chance, previous round"].get_xdata().tolist() == [1, 2, 3]
    assert np.allclose(chance["chance, first round"].get_ydata(), 0.25)
    assert "Fisher-sampling noise" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "chance, previous round" in labels


def test_a_small_layer_heatmap_prints_its_values_so_zero_and_small_differ():
    shares = pd.DataFrame({"round": [0, 0, 1, 1], "layer": ["a", "b"] * 2, "numel": 10,
                           "in_mask": [0, 1] * 2, "fraction": [0.0, 0.003] * 2,
                           "share": [0.0, 1.0] * 2})  # fmt: skip
    ax = plots.layer_share(shares).axes[0]
    assert [t.get_text() for t in ax.texts] == ["0", "0", "0.003", "0.003"]
