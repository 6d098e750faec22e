"""fmlib.analysis.compare on hand-built learning curves whose numbers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from fmlib.analysis.compare import (
    area_under_curve,
    at_budget,
    budget_table,
    comparison_table,
    cost_table,
    labels_to_reach,
    markdown_report,
    markdown_table,
    mean_std,
)
from fmlib.records.formats import QUERY_TIME_COLUMNS


def curves(rows):
    """rows: (strategy, imbalance, seed, [(n_labeled, accuracy), ...]) -> tidy per-round frame."""
    out = []
    for strategy, imbalance, seed, points in rows:
        for r, (n, acc) in enumerate(points):
            path = f"runs/{imbalance}-{strategy}-seed{seed}"
            out.append(
                dict(
                    path=path,
                    dataset="fashion_mnist",
                    imbalance=imbalance,
                    strategy=strategy,
                    seed=seed,
                    round=r,
                    n_labeled=n,
                    accuracy=acc,
                    balanced_accuracy=acc / 2,
                )
            )
    return pd.DataFrame(out)


FRAME = curves(
    [
        ("a", "none", 0, [(10, 0.2), (20, 0.4), (30, 0.6)]),
        ("a", "none", 1, [(10, 0.4), (20, 0.6), (30, 0.8)]),
        ("b", "none", 0, [(10, 0.1), (20, 0.1), (30, 0.3)]),
        ("a", "paper", 0, [(15, 0.5), (85, 0.5)]),
    ]
)


def test_area_under_curve_is_the_trapezoid_mean():
    auc = area_under_curve(FRAME)
    got = dict(zip(auc["path"], auc["auc"]))
    assert got["runs/none-a-seed0"] == pytest.approx(0.4)  # (0.3*10 + 0.5*10) / 20
    assert got["runs/none-b-seed0"] == pytest.approx((0.1 * 10 + 0.2 * 10) / 20)
    assert got["runs/paper-a-seed0"] == pytest.approx(0.5)
    assert len(auc) == 4


def test_area_under_curve_upto_cuts_the_range():
    got = dict(zip(*area_under_curve(FRAME, upto=20)[["path", "auc"]].to_numpy().T))
    assert got["runs/none-a-seed0"] == pytest.approx(0.3)


def test_labels_to_reach_and_never_reached():
    got = dict(zip(*labels_to_reach(FRAME, 0.6)[["path", "labels"]].to_numpy().T))
    assert got["runs/none-a-seed0"] == 30 and got["runs/none-a-seed1"] == 20
    assert math.isnan(got["runs/none-b-seed0"])


def test_at_budget_takes_the_last_round_within_it():
    got = at_budget(FRAME, 25).set_index("path")
    assert (
        got.loc["runs/none-a-seed1", "n_labeled"] == 20
        and got.loc["runs/none-a-seed1", "accuracy"] == 0.6
    )
    assert at_budget(FRAME, 5)["accuracy"].isna().all()


def test_mean_std_uses_sample_std_and_counts_nan():
    per_run = pd.DataFrame({"strategy": ["a", "a", "b"], "x": [1.0, 3.0, np.nan]})
    out = mean_std(per_run, "x", by=["strategy"]).set_index("strategy")
    assert out.loc["a", "mean"] == 2 and out.loc["a", "std"] == pytest.approx(math.sqrt(2))
    assert out.loc["b", "n"] == 1 and out.loc["b", "n_valid"] == 0 and out.loc["b", "text"] == "–"
    assert out.loc["a", "text"] == "2.000 ± 1.414"


def test_comparison_table_groups_by_setting_and_strategy():
    table = comparison_table(FRAME, target=0.6).set_index(["setting", "strategy"])
    assert list(table.index) == [("balanced", "a"), ("balanced", "b"), ("imbalanced", "a")]
    assert table.loc[("balanced", "a"), "runs"] == 2
    assert table.loc[("balanced", "a"), "auc"] == "0.500 ± 0.141"
    assert table.loc[("balanced", "a"), "accuracy_at_end"] == "0.700 ± 0.141"
    assert table.loc[("balanced", "a"), "labels_to_0.6"] == "25 ± 7"
    assert table.loc[("balanced", "b"), "reached"] == "0/1"


def test_run_summary_is_json_ready():
    from fmlib.records import run_summary

    one = FRAME[FRAME["path"] == "runs/none-a-seed0"]
    summary = run_summary(one)
    assert (
        summary["n_labeled"] == 30 and summary["final_accuracy"] == 0.6 and summary["rounds"] == 3
    )
    assert summary["auc"] == pytest.approx(0.4) and summary["n_labeled_per_round"] == [10, 20, 30]


def test_budget_table_counts_a_run_only_at_budgets_it_reached():
    table = budget_table(FRAME, [10, 25, 30, 85]).set_index(["setting", "strategy"])
    assert list(table.columns) == ["dataset", "10", "25", "30", "85"]
    assert (
        table.loc[("balanced", "a"), "10"] == "0.300 ± 0.141"
        and table.loc[("balanced", "a"), "25"] == "0.500 ± 0.141"
    )
    assert table.loc[("balanced", "b"), "30"] == "0.300"  # one run: no std
    assert table.loc[("balanced", "a"), "85"] == "–"  # the balanced runs stop at 30 labels
    assert (
        table.loc[("imbalanced", "a"), "10"] == "–"
        and table.loc[("imbalanced", "a"), "85"] == "0.500"
    )


def test_cost_table_averages_the_timed_rounds():
    frame = FRAME.assign(
        train_time=1.0, embed_time=np.nan, select_time=[2.0, 4.0, np.nan] * 3 + [3.0, np.nan]
    )
    frame.loc[frame["strategy"] == "b", "embed_time"] = 0.5
    table = cost_table(frame)
    timed = [c for c in table.columns if c.endswith(" [s]")]
    assert timed == [f"{phase} [s]" for phase in QUERY_TIME_COLUMNS]
    table = table.set_index(["setting", "strategy"])
    assert (
        table.loc[("balanced", "a"), "runs"] == 2
        and table.loc[("balanced", "a"), "select_time [s]"] == "3.00 ± 0.00"
    )
    assert (
        table.loc[("balanced", "a"), "embed_time [s]"] == "–"
        and table.loc[("balanced", "b"), "embed_time [s]"] == "0.50"
    )
    assert table.loc[("imbalanced", "a"), "train_time [s]"] == "1.00"


def test_markdown_table_and_report():
    frame = pd.DataFrame({"strategy": ["a|b", "c"], "auc": [0.12345, np.nan], "runs": [3, 1]})
    assert markdown_table(frame, digits=2).splitlines() == [
        "| strategy | auc | runs |",
        "|---|---|---|",
        "| a\\|b | 0.12 | 3 |",
        "| c | – | 1 |",
    ]
    report = markdown_report({"First": frame, "Second": frame.head(1)}, intro="Mean ± std.")
    assert (
        report.startswith("Mean ± std.\n\n### First\n\n| strategy |") and report.count("### ") == 2
    )


def test_learning_curve_panels_draw_one_panel_per_setting(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fmlib.analysis.compare import with_setting
    from fmlib.analysis.plots import learning_curve_panels, save_figure

    fig = learning_curve_panels(with_setting(FRAME).assign(run=lambda f: f["path"]), errorbar="sd")
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["setting: balanced", "setting: imbalanced"]
        colors = [
            {
                t.get_text().split(" (")[0]: line.get_color()
                for t, line in zip(ax.get_legend().get_texts(), ax.get_legend().get_lines())
            }
            for ax in fig.axes
        ]
        assert colors[0]["a"] == colors[1]["a"]  # a strategy keeps its colour across panels
        (path,) = save_figure(fig, tmp_path / "curves", formats=("png",), dpi=40)
        assert path.stat().st_size > 0
    finally:
        plt.close(fig)


def test_at_budget_is_nan_for_runs_that_stopped_before_it():
    got = at_budget(FRAME, 80).set_index("path")
    # the none-runs stopped at 30 labels
    assert got["accuracy"].drop("runs/paper-a-seed0").isna().all()
    assert (
        got.loc["runs/paper-a-seed0", "accuracy"] == 0.5
        and got.loc["runs/paper-a-seed0", "n_labeled"] == 15
    )


def test_strategy_differences_by_hand():
    from scipy import stats

    from fmlib.analysis.compare import strategy_differences

    rng = np.random.default_rng(0)
    rows, curve = [], {}
    for strategy in ("fm", "b", "c"):
        for seed in range(4):
            accs = [0.3, *rng.uniform(0.4, 0.9, size=3)]  # round 0 shared in spirit, not in value
            curve[strategy, seed] = accs
            rows.append((strategy, "none", seed, list(zip([10, 20, 30, 40], accs))))
    table = strategy_differences(curves(rows), treatment="fm", margin=0.05, budgets=(30,))
    assert set(table["measure"]) == {"auc_from_first_query", "auc", "30"}

    def first_query_auc(accs):  # trapezoid over 20, 30, 40 labels, divided by the range
        return ((accs[1] + accs[2]) / 2 * 10 + (accs[2] + accs[3]) / 2 * 10) / 20

    p = {}
    for base in ("b", "c"):
        diff = [first_query_auc(curve["fm", s]) - first_query_auc(curve[base, s]) for s in range(4)]
        row = table[(table["measure"] == "auc_from_first_query") & (table["baseline"] == base)]
        assert row["diff"].item() == pytest.approx(np.mean(diff))
        p[base] = stats.ttest_rel(diff, np.zeros(4)).pvalue
        at_30 = table[(table["measure"] == "30") & (table["baseline"] == base)]
        assert at_30["diff"].item() == pytest.approx(
            np.mean([curve["fm", s][2] - curve[base, s][2] for s in range(4)])
        )
    low, high = sorted(p, key=p.get)  # Holm over the two rows of one measure
    holm = table[table["measure"] == "auc_from_first_query"].set_index("baseline")["p_holm"]
    assert holm[low] == pytest.approx(min(1, 2 * p[low]))
    assert holm[high] == pytest.approx(min(1, max(2 * p[low], p[high])))


def test_the_area_under_an_unevenly_spaced_curve_weighs_each_step_by_its_labels():
    # kills: the trapezoid taken as if labels were evenly spaced (a budget-truncated last step is
    # not)
    frame = pd.DataFrame(
        {"path": "run", "seed": 0, "n_labeled": [10, 20, 22], "accuracy": [0.5, 0.7, 0.9]}
    )
    (auc,) = area_under_curve(frame, by=())["auc"]
    assert auc == pytest.approx((0.6 * 10 + 0.8 * 2) / 12)  # evenly spaced would give 0.7
