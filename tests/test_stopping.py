"""Stopping rules: a label budget, a target accuracy and a plateau end a run early; the round that
stops queries nothing, the records say which rule stopped it, and the run counts as finished."""

import json

import pandas as pd
import pytest

from fmlib.config import ExperimentConfig
from fmlib.experiment import run_experiment
from fmlib.records import RunDirectory, write_results
from fmlib.stopping import (
    LabelBudget,
    Plateau,
    TargetAccuracy,
    check_stop,
    rule_specs,
    stop_rules,
)
from tests.fakes import blobs_run


def small_run(tmp_path=None, **changes) -> dict:
    longer = dict(budget=30, train_options={"epochs": 30, "lr": 1e-2, "batch_size": 8})
    return blobs_run(tmp_path, **{**longer, **changes})


def rows(*accuracies):
    return [
        {"round": r, "n_labeled": 6 * (r + 1), "accuracy": a, "balanced_accuracy": a}
        for r, a in enumerate(accuracies)
    ]


def test_the_rules_decide_on_the_rows_so_far():
    assert LabelBudget(12).should_stop(rows(0.1, 0.2)) and not LabelBudget(13).should_stop(
        rows(0.1, 0.2)
    )
    assert TargetAccuracy(0.8).should_stop(rows(0.5, 0.8)) and not TargetAccuracy(0.8).should_stop(
        rows(0.9, 0.7)
    )
    flat, rising = rows(0.5, 0.7, 0.702, 0.701), rows(0.5, 0.6, 0.7, 0.8)
    assert Plateau(patience=2, min_delta=0.01).should_stop(flat) and not Plateau(
        2, 0.01
    ).should_stop(rising)
    assert not Plateau(patience=3).should_stop(rows(0.5, 0.5, 0.5))  # too few rounds to judge
    assert (
        check_stop(stop_rules([{"rule": "plateau", "patience": 2, "min_delta": 0.01}]), flat)[
            "rule"
        ]
        == "plateau"
    )
    assert check_stop([TargetAccuracy(0.99)], rising) is None


@pytest.mark.parametrize(
    "specs, message",
    [
        ([{"rule": "patience"}], "'rule' one of"),
        ([{"rule": "target_accuracy", "accuracy": 1.5}], r"accuracy must be in \(0, 1\]"),
        ([{"rule": "plateau", "patience": 0}], "patience must be an integer >= 1"),
        ([{"rule": "label_budget", "label": 5}], "unexpected keyword argument 'label'"),
        ({"rule": "plateau"}, "stopping must be a list"),
    ],
    ids=["unknown", "accuracy", "patience", "option", "not-a-list"],
)
def test_bad_rules_are_named_by_the_config(specs, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**small_run(stopping=specs)).validate()


def test_a_target_accuracy_stops_the_run_and_the_records_say_so(one_thread, tmp_path):
    rule = TargetAccuracy(0.9)
    records = run_experiment(small_run(tmp_path, stopping=[rule]))
    frame = pd.read_csv(tmp_path / "rounds.csv")
    last = frame.iloc[-1]
    assert (
        last["accuracy"] >= 0.9
        and (frame["accuracy"].iloc[:-1] < 0.9).all()
        and last["n_queried"] == 0
    )
    assert len(frame) < 5 and records.finished  # the schedule had 5 rounds
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["config"]["stopping"] == [rule.to_dict()]
    assert meta["stopped"] == {"round": int(last["round"]), **rule.to_dict()}
    write_results(tmp_path, records)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["finished"] and results["stopped"]["rule"] == "target_accuracy"
    assert RunDirectory(tmp_path).status() == "done"
    # reloads: nothing more to run
    again = run_experiment(small_run(tmp_path, stopping=[rule.to_dict()]))
    pd.testing.assert_frame_equal(again.rounds_frame(), records.rounds_frame())


def test_a_label_budget_stops_where_the_labels_reach_it(one_thread):
    records = run_experiment(small_run(stopping=[{"rule": "label_budget", "labels": 12}]))
    assert [r["n_labeled"] for r in records.rounds] == [6, 12] and records.rounds[-1][
        "n_queried"
    ] == 0
    assert records.meta["stopped"]["rule"] == "label_budget"
    unstopped = run_experiment(small_run())
    assert [r["n_labeled"] for r in unstopped.rounds] == [
        6,
        12,
        18,
        24,
        30,
    ] and "stopped" not in unstopped.meta


@pytest.mark.parametrize(
    "spec",
    [
        {"rule": "label_budget", "labels": 1},
        {"rule": "target_accuracy", "accuracy": 1},
        {"rule": "target_accuracy", "accuracy": 1e-9, "metric": "balanced_accuracy"},
        {"rule": "plateau", "patience": 1, "min_delta": 0},
        {"rule": "plateau", "metric": "balanced_accuracy"},
    ],
    ids=repr,
)
def test_rules_at_their_bounds_are_accepted_and_round_trip(spec):
    (rule,) = stop_rules([spec])
    again = stop_rules(rule_specs([rule]))[0]
    assert again.to_dict() == rule.to_dict()
    assert {k: v for k, v in rule.to_dict().items() if k in spec} == spec


@pytest.mark.parametrize(
    "spec",
    [
        {"rule": "label_budget", "labels": 0},
        {"rule": "label_budget", "labels": True},
        {"rule": "label_budget", "labels": 2.0},
        {"rule": "target_accuracy", "accuracy": 0},
        {"rule": "target_accuracy", "accuracy": 1.0000001},
        {"rule": "target_accuracy", "accuracy": float("nan")},
        {"rule": "target_accuracy", "accuracy": True},
        {"rule": "target_accuracy", "accuracy": 0.5, "metric": "loss"},
        {"rule": "plateau", "patience": 0},
        {"rule": "plateau", "patience": True},
        {"rule": "plateau", "min_delta": -1e-9},
        {"rule": "plateau", "min_delta": float("inf")},
        {"rule": "plateau", "metric": "loss"},
        {"rule": "plateau", "unknown": 1},
    ],
    ids=repr,
)
def test_rules_past_their_bounds_are_refused(spec):
    with pytest.raises(ValueError, match=f"stopping rule {spec['rule']}"):
        stop_rules([spec])


def test_the_rules_look_at_the_last_row_and_stop_at_equality():
    late = rows(0.9, 0.5)  # the best row first, the current one last
    assert not TargetAccuracy(0.9).should_stop(late)
    assert TargetAccuracy(0.5).should_stop(late) and not TargetAccuracy(0.51).should_stop(late)
    balanced = [{**r, "balanced_accuracy": 0.2} for r in rows(0.9)]
    assert not TargetAccuracy(0.5, metric="balanced_accuracy").should_stop(balanced)
    assert LabelBudget(6).should_stop(rows(0.1)) and not LabelBudget(7).should_stop(rows(0.1))
    # plateau: the gain of the last `patience` rows over the best before them, strictly below
    assert Plateau(patience=1, min_delta=0.25).should_stop(rows(0.5, 0.74))
    assert not Plateau(patience=1, min_delta=0.25).should_stop(rows(0.5, 0.75))
    assert Plateau(patience=1, min_delta=0.1).should_stop(rows(0.5, 0.9, 0.1, 0.95))
    assert Plateau(patience=2, min_delta=0.1).should_stop(rows(0.8, 0.5, 0.85))
    assert not Plateau(patience=2).should_stop(rows(0.5, 0.5))  # no row before the window
    assert Plateau(patience=2).should_stop(rows(0.5, 0.5, 0.5))
    # the window is the last `patience` rows only: the best row just before it is not in it, so a
    # fall below it is a gain < 0 = min_delta (with that row in the window the gain would be 0)
    assert Plateau(patience=2, min_delta=0).should_stop(rows(0.5, 0.9, 0.8, 0.85))
    assert Plateau(patience=1, min_delta=0).should_stop(rows(0.2, 0.9, 0.5))
    assert not Plateau(patience=1, min_delta=0).should_stop(rows(0.2, 0.9, 0.9))
    assert not Plateau(metric="balanced_accuracy", min_delta=0.1).should_stop(
        [{**r, "balanced_accuracy": b} for r, b in zip(rows(0.5, 0.5, 0.5), (0.1, 0.5, 0.6))]
    )


def test_check_stop_names_the_first_rule_that_stops_and_none_without_rows():
    rules = [LabelBudget(100), TargetAccuracy(0.5), LabelBudget(6)]
    assert check_stop(rules, rows(0.6)) == TargetAccuracy(0.5).to_dict()
    assert check_stop(rules, []) is None
    assert check_stop([], rows(0.6)) is None
    assert stop_rules([rules[1]])[0] is rules[1]  # a rule object passes as it is
