"""Paired statistics (fmlib.analysis.compare) and the ablation's arms (fmlib.analysis.ablation)."""

import math

import numpy as np
import pandas as pd
import pytest

from fmlib.analysis.ablation import (
    ARMS,
    Arm,
    Effect,
    anchor_differences,
    arm_differences,
    arm_runs,
    class_coverage,
    factor_effects,
    label_effects,
    label_runs,
    noise_and_spread,
    query_shares,
)
from fmlib.analysis.compare import paired_differences, t_quantile


@pytest.mark.parametrize(
    "p, df, expected",
    [
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 4, 2.7764),
        (0.975, 9, 2.2622),
        (0.95, 3, 2.3534),
        (0.995, 6, 3.7074),
        (0.5, 7, 0.0),
        (0.025, 4, -2.7764),
    ],
)
def test_t_quantile_matches_the_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-4)


def test_t_quantile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="0 < p < 1"):
        t_quantile(1.0, 3)


def per_run_table(values: dict[str, list[float]], arm="a"):
    rows = [
        {"arm": arm, "label": label, "seed": s, "auc": v}
        for label, vs in values.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_paired_differences_against_a_hand_computation():
    rng = np.random.default_rng(0)
    fm, ent = rng.random(5), rng.random(5)
    out = paired_differences(per_run_table({"fm": fm, "entropy": ent}), "auc", treatment="fm")
    row = out.iloc[0]
    d = fm - ent
    mean, sd = sum(d) / 5, math.sqrt(sum((x - sum(d) / 5) ** 2 for x in d) / 4)
    assert row["baseline"] == "entropy" and row["n"] == 5
    assert row["diff"] == pytest.approx(mean)
    assert row["ci_low"] == pytest.approx(mean - 2.776445 * sd / math.sqrt(5), abs=1e-6)
    assert row["ci_high"] == pytest.approx(mean + 2.776445 * sd / math.sqrt(5), abs=1e-6)
    assert row["wins"] == int((d > 0).sum()) and row["losses"] == int((d < 0).sum())
    assert row["treatment_mean"] == pytest.approx(fm.mean()) and row[
        "baseline_mean"
    ] == pytest.approx(ent.mean())


def test_paired_differences_pair_by_seed_not_by_position():
    # Same numbers, seeds listed in another order for the baseline: pairing must follow the seed.
    table = pd.DataFrame(
        {
            "arm": "a",
            "label": ["fm"] * 3 + ["random"] * 3,
            "seed": [0, 1, 2, 2, 0, 1],
            "auc": [0.5, 0.6, 0.7, 0.65, 0.45, 0.55],
        }
    )
    row = paired_differences(table, "auc", treatment="fm").iloc[0]
    assert row["diff"] == pytest.approx(0.05) and row["wins"] == 3
    # no spread: the interval is a point
    assert row["ci_low"] == pytest.approx(0.05) and row["excludes_zero"]


def test_paired_differences_drop_unpaired_seeds_and_flag_zero():
    table = per_run_table({"fm": [0.5, 0.7, 0.6, np.nan], "bait": [0.6, 0.6, 0.6, 0.6]})
    row = paired_differences(table, "auc", treatment="fm").iloc[0]
    assert row["n"] == 3 and row["wins"] == 1 and row["losses"] == 1
    assert row["ci_low"] < 0 < row["ci_high"] and not row["excludes_zero"]
    one = paired_differences(
        per_run_table({"fm": [0.5], "bait": [0.4]}), "auc", treatment="fm"
    ).iloc[0]
    assert one["n"] == 1 and np.isnan(one["ci_low"]) and not one["excludes_zero"]


def fake_frame(tmp_labels):
    rows = []
    for protocol, label, seed, acc in tmp_labels:
        for n, a in ((15, acc - 0.1), (85, acc)):
            rows.append(
                {
                    "path": f"/r/{protocol}/{label}-seed{seed}",
                    "run": f"{label}-seed{seed}",
                    "seed": seed,
                    "n_labeled": n,
                    "accuracy": a,
                }
            )
    return label_runs(pd.DataFrame(rows))


def test_arms_use_their_protocols_baselines_and_borrow_where_told():
    frame = fake_frame(
        [
            ("ours", "fm", 0, 0.7),
            ("ours", "random", 0, 0.5),
            ("ours", "fm-x", 0, 0.9),
            ("pool", "fm", 0, 0.8),
            ("pool", "random", 0, 0.1),
        ]
    )
    arms = (
        Arm("ours", "ours", "anchor", "ours"),
        Arm("x", "ours", "f", "ours", "fm-x"),
        Arm("pool", "ours", "candidates", "pool"),
        Arm("pool-b", "ours", "candidates", "pool", borrow={"random": "ours"}),
    )
    out = arm_differences(frame, budgets=(85,), arms=arms, baselines=("random",)).set_index(
        ["arm", "measure"]
    )
    assert out.loc[("ours", "85"), "diff"] == pytest.approx(0.2)
    assert out.loc[("x", "85"), "diff"] == pytest.approx(0.4)
    assert out.loc[("pool", "85"), "diff"] == pytest.approx(0.7)
    assert out.loc[("pool-b", "85"), "diff"] == pytest.approx(0.3)  # borrowed ours/random
    assert out.loc[("ours", "auc"), "diff"] == pytest.approx(0.2)
    assert set(out.reset_index()["factor"]) == {"anchor", "f", "candidates"}


def test_label_runs_and_arm_runs_keep_every_run_once_per_arm():
    frame = fake_frame(
        [("ours", "fm", s, 0.5) for s in range(3)] + [("ours", "entropy", s, 0.5) for s in range(3)]
    )
    assert set(frame["label"]) == {"fm", "entropy"} and set(frame["protocol"]) == {"ours"}
    runs = arm_runs(frame.drop_duplicates("path"), arms=ARMS[:1])
    assert len(runs) == 6 and set(runs["arm"]) == {"ours"}


def test_every_arm_names_a_grid_and_a_strategy_label_in_it():
    import json
    from pathlib import Path

    grids = Path(__file__).resolve().parents[2] / "grids" / "ablation"
    for arm in ARMS:
        grid = json.loads((grids / f"{arm.protocol}.json").read_text())
        labels = [
            s if isinstance(s, str) else s.get("name", s.get("strategy"))
            for s in grid["axes"]["strategy"]
        ]
        assert arm.label in labels, arm
        for base, protocol in arm.borrow.items():
            other = json.loads((grids / f"{protocol}.json").read_text())
            assert base in [
                s if isinstance(s, str) else s.get("name", s.get("strategy"))
                for s in other["axes"]["strategy"]
            ]
            assert base not in labels, f"{arm.name} borrows {base} but its own grid runs it"


def test_with_setting_keeps_two_schedules_of_one_setting_apart():
    from fmlib.analysis.compare import comparison_table, with_setting

    rows = []
    for name, initial, query, final in (("big", 250, 250, 750), ("tiny", 15, 70, 155)):
        for seed in (0, 1):
            for n in range(initial, final + 1, query):
                rows.append(
                    {
                        "path": f"/r/{name}{seed}",
                        "run": f"{name}{seed}",
                        "dataset": "cifar10",
                        "imbalance": "paper",
                        "strategy": "random",
                        "seed": seed,
                        "initial_size": initial,
                        "query_size": query,
                        "budget": final,
                        "n_labeled": n,
                        "accuracy": 0.5 if name == "big" else 0.3,
                    }
                )
    frame = pd.DataFrame(rows)
    settings = set(with_setting(frame)["setting"])
    assert settings == {"imbalanced 250-750 by 250", "imbalanced 15-155 by 70"}
    table = comparison_table(frame)
    assert len(table) == 2 and set(table["runs"]) == {2}
    one = with_setting(frame[frame["run"].str.startswith("big")])
    assert set(one["setting"]) == {"imbalanced"}  # a single schedule keeps the plain name


def test_factor_effects_pair_an_arms_fishermask_with_its_anchors_by_seed():
    # ours fm: 0.70, 0.60 at 85 labels; fm-x: 0.90, 0.65 -> +0.20, +0.05; the random runs never
    # enter
    frame = fake_frame(
        [
            ("ours", "fm", 0, 0.7),
            ("ours", "fm", 1, 0.6),
            ("ours", "fm-x", 1, 0.65),
            ("ours", "fm-x", 0, 0.9),
            ("ours", "random", 0, 0.1),
            ("pool", "fm", 0, 0.8),
        ]
    )
    arms = (
        Arm("ours", "ours", "anchor", "ours"),
        Arm("x", "ours", "f", "ours", "fm-x"),
        Arm("pool", "ours", "candidates", "pool"),
        Arm("lonely", "authors", "f", "ours", "fm-x"),
    )
    out = factor_effects(frame, budgets=(85,), arms=arms).set_index(["arm", "measure"])
    x = out.loc[("x", "85")]
    assert x["baseline"] == "ours" and x["n"] == 2 and x["diff"] == pytest.approx(0.125)
    assert x["treatment_mean"] == pytest.approx(0.775) and x["wins"] == 2 and x["factor"] == "f"
    pool = out.loc[("pool", "85")]
    # seed 1 has no pool run: unpaired, dropped
    assert pool["n"] == 1 and pool["diff"] == pytest.approx(0.1)
    assert ("lonely", "85") not in out.index  # its anchor 'authors' has no anchor arm
    assert set(out.index.get_level_values("measure")) == {"auc", "85"}


def test_query_shares_are_per_run_class_fractions_averaged_over_seeds():
    rows = []
    for seed, (round0, round1) in enumerate((((7, 3), (0, 10)), ((2, 8), (2, 8)))):
        for r, (q0, q1) in enumerate((round0, round1)):
            rows.append(
                {
                    "path": f"/r/ours/fm-seed{seed}",
                    "seed": seed,
                    "round": r,
                    "query_0": q0,
                    "query_1": q1,
                }
            )
    # nothing queried yet
    rows.append({"path": "/r/ours/fm-seed2", "seed": 2, "round": 0, "query_0": 0, "query_1": 0})
    frame = label_runs(pd.DataFrame(rows))
    out = query_shares(frame).iloc[0]
    # seed 0: 7/20 of class 0, seed 1: 4/20; seed 2 queried nothing and has no share
    assert out["class 0"] == pytest.approx((7 / 20 + 4 / 20) / 2) and out[
        "class 1"
    ] == pytest.approx((13 / 20 + 16 / 20) / 2)
    assert out["seeds"] == 2 and (out["protocol"], out["label"]) == ("ours", "fm")
    first = query_shares(frame, first=True).iloc[0]
    assert first["class 0"] == pytest.approx((0.7 + 0.2) / 2)


def test_class_coverage_counts_runs_that_left_a_class_without_labels():
    rows = [
        {
            "path": "/r/ours/fm-seed0",
            "seed": 0,
            "round": 1,
            "count_0": 0,
            "count_1": 9,
            "count_2": 3,
        },
        {
            "path": "/r/ours/fm-seed1",
            "seed": 1,
            "round": 1,
            "count_0": 2,
            "count_1": 7,
            "count_2": 4,
        },
        {
            "path": "/r/ours/fm-seed1",
            "seed": 1,
            "round": 2,
            "count_0": 0,
            "count_1": 0,
            "count_2": 0,
        },
        {
            "path": "/r/ours/random-seed0",
            "seed": 0,
            "round": 1,
            "count_0": 5,
            "count_1": 5,
            "count_2": 5,
        },
    ]
    out = class_coverage(label_runs(pd.DataFrame(rows))).set_index("label")
    assert out.loc["fm", "seeds"] == 2 and out.loc["fm", "seeds_missing_a_class"] == 1
    assert (
        out.loc["fm", "smallest_class"] == pytest.approx(1.0)
        and out.loc["random", "seeds_missing_a_class"] == 0
    )
    assert (
        class_coverage(label_runs(pd.DataFrame(rows)), round=2)
        .set_index("label")
        .loc["fm", "seeds_missing_a_class"]
        == 1
    )


def test_noise_and_spread_compare_paired_gaps_with_the_seed_spread():
    rows = []
    for seed, (fm, f64) in enumerate(((0.70, 0.72), (0.80, 0.75), (0.60, 0.60))):
        rows += [
            {"path": f"/r/ours/fm-seed{seed}", "seed": seed, "n_labeled": 85, "accuracy": fm},
            {
                "path": f"/r/ours/fm-float64-seed{seed}",
                "seed": seed,
                "n_labeled": 85,
                "accuracy": f64,
            },
        ]
    # unpaired: spread only
    rows.append({"path": "/r/ours/fm-seed3", "seed": 3, "n_labeled": 85, "accuracy": 0.9})
    out = noise_and_spread(label_runs(pd.DataFrame(rows))).iloc[0]
    assert out["n_labeled"] == 85 and out["seeds"] == 3
    assert out["mean_abs_diff"] == pytest.approx((0.02 + 0.05 + 0.0) / 3) and out[
        "max_abs_diff"
    ] == pytest.approx(0.05)
    assert out["seed_sd"] == pytest.approx(np.std([0.7, 0.8, 0.6, 0.9], ddof=1))
    assert noise_and_spread(label_runs(pd.DataFrame(rows)), label="missing").empty


def test_anchor_differences_pair_each_strategy_across_anchors_by_seed():
    # authors minus ours at 85 labels, per strategy: fm (0.5 - 0.7, 0.4 - 0.6) = -0.2; random
    # borrowed by the authors' arm from 'pool-r' (0.3 - 0.5) = -0.2 for seed 0 only (ours has no
    # random seed 1)
    frame = fake_frame(
        [
            ("ours", "fm", 0, 0.7),
            ("ours", "fm", 1, 0.6),
            ("ours", "random", 0, 0.5),
            ("au", "fm", 1, 0.4),
            ("au", "fm", 0, 0.5),
            ("pool-r", "random", 0, 0.3),
            ("pool-r", "random", 1, 0.2),
            ("au", "fm-x", 0, 0.99),
        ]
    )
    arms = (
        Arm("ours", "ours", "anchor", "ours"),
        Arm("authors", "authors", "anchor", "au", borrow={"random": "pool-r"}),
        Arm("x", "authors", "f", "au", "fm-x"),
    )
    out = anchor_differences(frame, budgets=(85,), arms=arms, baselines=("random",)).set_index(
        ["strategy", "measure"]
    )
    fm = out.loc[("fm", "85")]
    assert (
        fm["baseline"] == "ours"
        and fm["n"] == 2
        and fm["diff"] == pytest.approx(-0.2)
        and fm["losses"] == 2
    )
    assert fm["treatment_mean"] == pytest.approx(0.45) and fm["baseline_mean"] == pytest.approx(
        0.65
    )
    rnd = out.loc[("random", "85")]
    assert rnd["n"] == 1 and rnd["diff"] == pytest.approx(-0.2)
    # both rounds move by the same amount
    assert out.loc[("fm", "auc"), "diff"] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="anchors of arms"):
        anchor_differences(frame, arms=arms[:1])


def test_paired_differences_plot_names_the_seed_count_of_a_row_with_fewer_seeds():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fmlib.analysis.plots import paired_differences as plot_paired

    rng = np.random.default_rng(1)
    table = pd.concat(
        [
            paired_differences(
                per_run_table({"fm": rng.random(5), "random": rng.random(5)}, arm="ours"),
                "auc",
                treatment="fm",
            ),
            paired_differences(
                per_run_table({"fm": rng.random(3), "random": rng.random(3)}, arm="authors"),
                "auc",
                treatment="fm",
            ),
        ]
    )
    fig = plot_paired(table)
    try:
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert labels == ["ours", "authors (3 seeds)"]
        assert "≤5 seeds" in fig.axes[0].get_xlabel()
    finally:
        plt.close(fig)


def test_the_auc_from_the_first_query_on_leaves_round_zero_out():
    # round 0 (15 labels) is 0.1 for fm and 0.9 for random; from the first query on only 85 and 155
    # count
    rows = []
    for label, accs in (("fm", (0.1, 0.6, 0.8)), ("random", (0.9, 0.5, 0.7))):
        for seed in range(3):
            for r, (n, a) in enumerate(zip((15, 85, 155), accs)):
                rows.append(
                    {
                        "path": f"/r/ours/{label}-seed{seed}",
                        "run": f"{label}-seed{seed}",
                        "seed": seed,
                        "round": r,
                        "n_labeled": n,
                        "accuracy": a + 0.01 * seed,
                    }
                )
    frame = label_runs(pd.DataFrame(rows))
    arms = (Arm("ours", "ours", "anchor", "ours"),)
    out = arm_differences(frame, arms=arms, baselines=("random",), from_first_query=True).set_index(
        "measure"
    )
    # (0.6+0.8)/2 - (0.5+0.7)/2
    assert out.loc["auc_from_first_query", "diff"] == pytest.approx(0.1)
    whole = (0.35 + 0.7) / 2 - (0.7 + 0.6) / 2  # trapezoids over 15 -> 155, weights 70/140 each
    assert out.loc["auc", "diff"] == pytest.approx(whole)


def test_a_margin_adds_the_tests_with_holm_over_each_measure():
    noise = np.random.default_rng(0).normal(0, 0.004, size=(5, 3))
    frame = fake_frame(
        [
            ("ours", lab, s, acc + 0.01 * s + noise[s, i])
            for s in range(5)
            for i, (lab, acc) in enumerate((("fm", 0.8), ("random", 0.5), ("entropy", 0.8)))
        ]
    )
    arms = (Arm("ours", "ours", "anchor", "ours"),)
    out = arm_differences(
        frame, budgets=(85,), arms=arms, baselines=("random", "entropy"), margin=0.02
    )
    assert {"p_value", "t_p_value", "p_holm", "p_tost", "verdict", "seeds_needed"} <= set(out)
    assert set(out.loc[out["baseline"] == "random", "verdict"]) == {"ahead"}
    effects = factor_effects(frame, arms=arms, margin=0.02)
    assert effects.empty or "p_holm" in effects


def test_label_effects_pair_a_strategys_changed_runs_with_its_reference_runs_by_seed():
    # bait under 'cold' 0.60, 0.80 vs under 'ours' 0.70, 0.60 -> -0.10, +0.20; fm-r against fm-x
    frame = fake_frame(
        [
            ("cold", "bait", 0, 0.6),
            ("cold", "bait", 1, 0.8),
            ("ours", "bait", 1, 0.6),
            ("ours", "bait", 0, 0.7),
            ("ours", "entropy", 0, 0.9),
            ("cold", "fm-r", 0, 0.5),
            ("ours", "fm-x", 0, 0.2),
        ]
    )
    effects = (Effect("BAIT", "cold", "bait"), Effect("r vs x", "cold", "fm-r", "ours", "fm-x"))
    out = label_effects(frame, effects, budgets=(85,)).set_index(["arm", "measure"])
    bait = out.loc[("BAIT", "85")]
    assert bait["n"] == 2 and bait["diff"] == pytest.approx(0.05)
    assert bait["treatment_mean"] == pytest.approx(0.7) and bait["wins"] == 1
    assert out.loc[("r vs x", "85")]["diff"] == pytest.approx(0.3)
    assert set(out.index.get_level_values("measure")) == {"auc", "85"}
