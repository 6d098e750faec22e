"""The declared record formats: the loop's rows are RoundRows in file order, the per-class
columns name and sort by class, the run metadata holds what run_meta says, and a resume with
another thread count or torch version is refused unless allowed, then recorded."""

import numpy as np
import pytest
from torch import nn

from fmlib.loop import ActiveLoop
from fmlib.records import (
    QUERY_COLUMNS,
    QUERY_TIME_COLUMNS,
    ROUND_COLUMNS,
    TIME_COLUMNS,
    RunRecords,
    class_column,
    class_columns,
    class_values,
    column_class,
    data_summary,
    planned_rounds,
    query_rows,
    resume_threads,
    resume_torch,
    round_row,
    run_meta,
    thread_counts,
    torch_versions,
)
from fmlib.strategies import get_strategy
from fmlib.train import TrainConfig
from tests.user_parts import blob_data


def test_the_loop_s_rows_are_declared_round_rows_in_file_order(one_thread):
    loop = ActiveLoop(
        blob_data(),
        nn.Linear(20, 3),
        get_strategy("random"),
        [6, 9],
        TrainConfig(epochs=2),
        initial=np.arange(6),
    )
    loop.step()
    row = loop.last.row
    per_class = [class_column(kind, c) for kind in ("acc", "count", "query") for c in range(3)]
    assert list(row) == [*ROUND_COLUMNS[:5], *per_class, *ROUND_COLUMNS[5:]]
    assert [row[c] for c in class_columns(row, "count")] == [2, 2, 2]
    assert sum(row[c] for c in class_columns(row, "query")) == row["n_queried"] == 3


def test_the_time_columns_are_the_round_rows_seconds_and_the_querys_are_among_them():
    assert TIME_COLUMNS == ("train_time", "eval_time", "select_time", "embed_time")
    assert QUERY_TIME_COLUMNS == ("train_time", "embed_time", "select_time")


def test_round_row_names_a_missing_or_unknown_column():
    values = dict.fromkeys(ROUND_COLUMNS, 0)
    row = round_row(values, acc=[1.0], count=[2], query=[3])
    assert list(row)[5:8] == ["acc_0", "count_0", "query_0"]
    with pytest.raises(ValueError, match=r"missing \['torch_threads'\], unknown \['extra'\]"):
        round_row({**{c: 0 for c in ROUND_COLUMNS[:-1]}, "extra": 1}, acc=[], count=[], query=[])


def test_per_class_columns_sort_by_class_not_by_text():
    columns = ["acc_10", "acc_2", "accuracy", "acc_x", "count_1", "acc_0"]
    assert class_columns(columns, "acc") == ["acc_0", "acc_2", "acc_10"]
    assert column_class("query_12") == 12
    assert class_values("count", [4, 5]) == {"count_0": 4, "count_1": 5}
    with pytest.raises(ValueError, match=r"kind must be one of \['acc', 'count', 'query'\]"):
        class_column("accuracy", 0)


def test_query_rows_follow_the_declared_columns():
    rows = query_rows(2, np.array([7, 3]), [1, 0], ["pool", "oracle"])
    assert [tuple(r) for r in rows] == [QUERY_COLUMNS] * 2
    assert [r["order"] for r in rows] == [0, 1] and rows[1]["source"] == "oracle"
    assert [r["pool_index"] for r in rows] == [7, 3] and [r["label"] for r in rows] == [1, 0]
    assert rows[0] == {"round": 2, "order": 0, "pool_index": 7, "label": 1, "source": "pool"}


class Counted:
    """A dataset as data_summary reads it: a name, classes, a length and class counts."""

    def __init__(self, name, counts):
        self.name, self.classes, self.counts = name, ["a", "b", "c"], np.array(counts)

    def __len__(self):
        return int(self.counts.sum())

    def class_counts(self):
        return self.counts


def test_data_summary_counts_the_pool_and_the_test_set_each():
    summary = data_summary("blobs", Counted("pool", [5, 3, 2]), Counted("test", [1, 1, 4]))
    assert summary == {
        "source": "blobs",
        "name": "pool",
        "pool_size": 10,
        "test_size": 6,
        "classes": ["a", "b", "c"],
        "pool_counts": [5, 3, 2],
        "test_counts": [1, 1, 4],
    }


def meta(**changes):
    values = dict(
        version="1",
        git={},
        environment={"torch_threads": 2},
        threads=2,
        torch_version="2.4",
        data={},
        schedule=[6, 9, 12],
    )
    return run_meta({"seed": 0}, **{**values, **changes})


def test_run_meta_and_its_readers():
    made = meta(train_hook="m.f")
    assert thread_counts(made) == [2] and torch_versions(made) == ["2.4"]
    assert planned_rounds(made) == 3 and made["train_hook"] == "m.f"
    assert "model_factory" not in made and RunRecords(made).config == {"seed": 0}
    older = {"environment": {"torch_threads": 4, "torch": "2.3"}}  # before the lists
    assert thread_counts(older) == [4] and torch_versions(older) == ["2.3"]
    assert planned_rounds({"schedule": []}) is None and planned_rounds([1]) is None


def test_a_resume_with_other_threads_is_refused_unless_allowed_then_recorded():
    made = meta()
    resume_threads(made, [{"torch_threads": 2}], 2, allowed=False, path="run")
    with pytest.raises(ValueError, match="run was made with 2 torch thread"):
        resume_threads(made, [{"torch_threads": 2}], 3, allowed=False, path="run")
    resume_threads(made, [{"torch_threads": 2}], 3, allowed=True, path="run")
    assert made["torch_threads"] == [2, 3] and made["threads_mixed"]


def test_a_resume_with_another_torch_is_refused_unless_allowed_then_recorded():
    made = meta()
    with pytest.raises(ValueError, match="made with torch 2.4 and this process has torch 2.5"):
        resume_torch(made, "2.5", allowed=False, path="run")
    resume_torch(made, "2.5", allowed=True, path="run")
    assert made["torch_versions"] == ["2.4", "2.5"] and made["torch_mixed"]


def test_a_resume_compares_threads_with_the_last_round_not_the_last_recorded_count():
    made = meta(threads=1)
    # a resume with 2 threads was allowed, then stopped before any round ran with 2
    resume_threads(made, [{"torch_threads": 1}], 2, allowed=True, path="run")
    assert made["torch_threads"] == [1, 2]
    resume_threads(made, [{"torch_threads": 1}], 1, allowed=False, path="run")  # as round 0 ran
    assert made["torch_threads"] == [1, 2]  # nothing changed, nothing recorded
    with pytest.raises(ValueError, match="run was made with 1 torch thread"):
        resume_threads(made, [{"torch_threads": 1}], 2, allowed=False, path="run")


def test_a_run_that_recorded_no_torch_version_resumes_with_any():
    older = {"environment": {"torch_threads": 1}}  # neither torch_versions nor environment torch
    resume_torch(older, "2.5", allowed=False, path="run")
    assert "torch_versions" not in older and "torch_mixed" not in older
