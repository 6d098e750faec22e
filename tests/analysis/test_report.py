"""A comparison as files (fmlib.analysis.report): the runs the globs match, the metric checked,
then the Markdown tables, the AUC summary and the figures written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fmlib.analysis.report import REPORT, SUMMARY, check_metric, load_comparison, write_comparison
from tests.test_cli import write_run


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root / f"fm-{seed}", "fishermask", "none", seed, [0.3 + seed / 10, 0.5, 0.7])
        write_run(root / f"rnd-{seed}", "random", "none", seed, [0.2, 0.3, 0.4])
    write_run(root / "fm-late", "fishermask", "none", 2, [0.9], finished=False)
    (root / "notes").mkdir()
    return root


def test_the_finished_runs_are_compared_and_every_run_is_kept(runs):
    frame, every = load_comparison([str(runs / "*")])
    assert sorted(frame["run"].unique()) == ["fm-0", "fm-1", "rnd-0", "rnd-1"]
    assert every["run"].nunique() == 5 and set(frame["setting"]) == {"balanced"}
    frame, _ = load_comparison([str(runs / "fm-*")], include_unfinished=True)
    assert sorted(frame["run"].unique()) == ["fm-0", "fm-1", "fm-late"]


def test_globs_without_runs_or_finished_runs_say_so(runs):
    with pytest.raises(
        ValueError, match=r"no run directories \(holding config.json\) match '.*notes'"
    ):
        load_comparison([str(runs / "notes")])
    with pytest.raises(ValueError, match="none of the 1 runs matched is finished; --all"):
        load_comparison([str(runs / "fm-late")])


def test_only_a_numeric_rounds_column_is_a_metric():
    frame = pd.DataFrame({"accuracy": [0.5], "strategy": ["a"], "finished": [True]})
    check_metric(frame, "accuracy")
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        check_metric(frame, "auc")
    for column in ("strategy", "finished"):
        with pytest.raises(ValueError, match=f"non-numeric metric '{column}'"):
            check_metric(frame, column)


def test_the_report_summary_and_figures_are_written(runs, tmp_path):
    frame, every = load_comparison([str(runs / "*")])
    out = tmp_path / "report"
    report, figures = write_comparison(frame, every, out, runs=["runs/*"], target=0.5, budgets=[20])
    assert report == (out / REPORT).read_text()
    assert report.startswith("4 finished runs from runs/* (1 unfinished left out); mean ± std")
    for title in (
        "### AUC, final accuracy, labels to reach the target",
        "### Accuracy at fixed label budgets, balanced",
        "### Seconds per round",
    ):
        assert title in report
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["runs"] == 4 and summary["metric"] == "accuracy"
    assert sorted(row["strategy"] for row in summary["auc"]) == ["fishermask", "random"]
    names = {p.name for p in figures}
    assert {
        "learning_curves.png",
        "learning_curves_balanced_accuracy.svg",
        "round_timings.png",
    } <= names
    assert all(p.is_file() for p in figures) and summary["figures"][-1] == REPORT
