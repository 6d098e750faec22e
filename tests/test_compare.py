"""fmlib.compare on hand-built learning curves whose numbers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from fmlib.compare import area_under_curve, at_budget, comparison_table, labels_to_reach, mean_std, run_summary


def curves(rows):
    """rows: (strategy, imbalance, seed, [(n_labeled, accuracy), ...]) -> tidy per-round frame."""
    out = []
    for strategy, imbalance, seed, points in rows:
        for r, (n, acc) in enumerate(points):
            path = f"runs/{imbalance}-{strategy}-seed{seed}"
            out.append(dict(path=path, dataset="fashion_mnist", imbalance=imbalance, strategy=strategy, seed=seed,
                            round=r, n_labeled=n, accuracy=acc, balanced_accuracy=acc / 2))  # fmt: skip
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
    assert got.loc["runs/none-a-seed1", "n_labeled"] == 20 and got.loc["runs/none-a-seed1", "accuracy"] == 0.6
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
    one = FRAME[FRAME["path"] == "runs/none-a-seed0"]
    summary = run_summary(one)
    assert summary["n_labeled"] == 30 and summary["final_accuracy"] == 0.6 and summary["rounds"] == 3
    assert summary["auc"] == pytest.approx(0.4) and summary["n_labeled_per_round"] == [10, 20, 30]
