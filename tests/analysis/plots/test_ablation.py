"""Figures of an ablation: what the axis measures, rows with fewer seeds cut at the edge, the
per-budget panels."""

import numpy as np
import pandas as pd
import pytest

from fmlib.analysis import plots


def differences_table(measures=("auc", "85", "155")):
    """FisherMask − two baselines for three arms: ``ours`` 10 seeds, ``arm`` 5, ``authors`` 3
    (wide)."""
    rows = []
    for arm, n, half in (("ours", 10, 0.01), ("arm", 5, 0.02), ("authors", 3, 0.6)):
        for base, diff in (("entropy", 0.01), ("random", 0.1)):
            for m in measures:
                rows.append(
                    {
                        "arm": arm,
                        "baseline": base,
                        "measure": m,
                        "n": n,
                        "diff": diff,
                        "ci_low": diff - half,
                        "ci_high": diff + half,
                    }
                )
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
    # the 3-seed interval stops at the edge
    assert lo - 1e-9 <= ends.min() and ends.max() <= hi + 1e-9
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
        "ours (10 seeds)",
        "arm (5 seeds)",
        "authors (3 seeds), bands cut at ▲▼",
    ]
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


def test_a_baseline_keeps_its_strategy_colour_in_both_difference_figures():
    from matplotlib.colors import to_hex

    expected = to_hex(plots.strategy_palette(["random"])["random"])
    table = differences_table()
    bars = plots.paired_differences(table, measure="auc").axes[0]
    (random_bars,) = [c for c in bars.containers if c.get_label() == "random"]
    assert to_hex(random_bars.lines[0].get_color()) == expected
    panels = plots.paired_differences_by_budget(table)
    (line,) = [ln for ln in panels.axes[0].get_lines() if ln.get_label() == "random"]
    assert to_hex(line.get_color()) == expected


def test_many_budgets_get_ticks_that_do_not_overlap_and_a_title_that_fits():
    table = differences_table(measures=tuple(str(b) for b in range(500, 5751, 250)))
    fig = plots.paired_differences_by_budget(table[table["arm"] == "ours"], ncols=1)
    ticks = [t for t in fig.axes[0].get_xticks() if 500 <= t <= 5750]
    assert 3 <= len(ticks) <= 10
    title = fig._suptitle.get_text()
    assert "\n" in title  # wrapped to the one panel's width
