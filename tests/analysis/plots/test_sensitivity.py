"""Figures of the sensitivity tables: layer shares, log Fisher axes, mask overlap and chance."""

import numpy as np
import pandas as pd

from fmlib.analysis import plots
from tests.analysis.plots.frames import overlap_frame


def test_layer_summary_range_of_a_fraction_stays_in_zero_one():
    from fmlib.analysis.sensitivity import layer_share_summary

    shares = pd.DataFrame(
        {
            "round": [0, 1, 2, 3],
            "layer": "a",
            "numel": 10,
            "in_mask": [0, 0, 0, 9],
            "fraction": [0, 0, 0, 0.9],
            "share": [0, 0, 0, 1.0],
        }
    )
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


def test_a_log_axis_has_at_least_three_labelled_ticks():
    for traces in ([600.0, 700.0, 800.0, 900.0], [1.0, 10.0, 100.0, 1000.0], [50.0, 52.0, 54.0]):
        frame = pd.DataFrame({"round": range(len(traces)), "fisher_trace": traces})
        ax = plots.fisher_over_rounds(frame, errorbar=None).axes[0]
        ax.figure.canvas.draw()
        assert ax.get_yscale() == "log"
        lo, hi = ax.get_ylim()
        labelled = [
            t for t in ax.yaxis.get_major_ticks() if t.label1.get_text() and lo <= t.get_loc() <= hi
        ]
        assert len(labelled) >= 3, traces


def test_layers_are_named_with_their_module_type():
    shares = pd.DataFrame(
        {
            "round": [0, 0, 1, 1],
            "layer": ["features.0", "head"] * 2,
            "layer_type": ["Conv2d", "Linear"] * 2,
            "numel": [10, 4] * 2,
            "in_mask": [2, 4] * 2,
            "fraction": [0.2, 1.0] * 2,
            "share": [1 / 3, 2 / 3] * 2,
        }
    )
    from fmlib.analysis.sensitivity import layer_share_summary

    expected = ["features.0 (Conv2d)", "head (Linear)"]
    heatmap = plots.layer_share(shares).axes[0]
    assert [t.get_text() for t in heatmap.get_yticklabels()] == expected
    bars = plots.layer_share_summary(layer_share_summary(shares)).axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == expected
    untyped = plots.layer_share(shares.drop(columns="layer_type")).axes[0]
    assert [t.get_text() for t in untyped.get_yticklabels()] == ["features.0", "head"]


def test_mask_overlap_draws_the_chance_reference_in_grey():
    overlap = overlap_frame().assign(chance_previous=[np.nan, 0.3, 0.3, 0.3] * 2, chance_first=0.25)
    ax = plots.mask_overlap(overlap, errorbar=None).axes[0]
    chance = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label().startswith("chance")}
    assert sorted(chance) == ["chance, first round", "chance, previous round"]
    assert chance["chance, previous round"].get_xdata().tolist() == [1, 2, 3]
    assert np.allclose(chance["chance, first round"].get_ydata(), 0.25)
    assert "Fisher-sampling noise" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "chance, previous round" in labels


def test_mask_overlap_draws_the_split_half_noise_reference_when_recorded():
    overlap = overlap_frame().assign(split_jaccard=[0.4, 0.5, np.nan, 0.6, 0.2, 0.3, np.nan, 0.4])
    ax = plots.mask_overlap(overlap, errorbar=None).axes[0]
    (noise,) = [ln for ln in ax.get_lines() if ln.get_label() == "two halves of one Fisher sample"]
    assert noise.get_xdata().tolist() == [0, 1, 3]  # mean over seeds, rounds without it left out
    np.testing.assert_allclose(noise.get_ydata(), [0.3, 0.4, 0.5])
    assert "two halves" in ax.get_xlabel() and "no Fisher-sampling" not in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "two halves of one Fisher sample" in labels
    unrecorded = overlap_frame().assign(split_jaccard=np.nan)
    ax = plots.mask_overlap(unrecorded, errorbar=None).axes[0]
    assert "no Fisher-sampling noise reference" in ax.get_xlabel()
    assert all(ln.get_label() != "two halves of one Fisher sample" for ln in ax.get_lines())


def test_a_small_layer_heatmap_prints_its_values_so_zero_and_small_differ():
    shares = pd.DataFrame(
        {
            "round": [0, 0, 1, 1],
            "layer": ["a", "b"] * 2,
            "numel": 10,
            "in_mask": [0, 1] * 2,
            "fraction": [0.0, 0.003] * 2,
            "share": [0.0, 1.0] * 2,
        }
    )
    ax = plots.layer_share(shares).axes[0]
    assert [t.get_text() for t in ax.texts] == ["0", "0", "0.003", "0.003"]
