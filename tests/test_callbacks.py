"""Callbacks: on_query and on_round in order with what the records hold; fmlib run's round lines
come from one; a TensorBoard logger's event files read back with tensorboard's EventAccumulator."""

import pandas as pd
import pytest

from fmlib.experiment import run_experiment
from tests.fakes import blobs_run


def small_run(tmp_path=None, **changes) -> dict:
    bait = dict(strategy="bait", strategy_options={"fisher_samples": 30})
    return blobs_run(tmp_path, **{**bait, **changes})


class Recorder:
    def __init__(self):
        self.events = []

    def on_query(self, query):
        self.events.append(("query", query.round, query.positions.tolist()))

    def on_round(self, row):
        self.events.append(("round", row["round"], row["n_labeled"]))


class OnlyRounds:
    def __init__(self):
        self.rows = []

    def on_round(self, row):
        self.rows.append(row)


def test_callbacks_see_every_query_and_round_in_order(one_thread, tmp_path):
    recorder, rounds = Recorder(), OnlyRounds()
    records = run_experiment(small_run(tmp_path), callbacks=[recorder, rounds])
    queries = records.queries_frame()
    picked = [queries.query(f"round == {r + 1}")["pool_index"].tolist() for r in range(3)]
    assert recorder.events == [
        ("query", 0, picked[0]),
        ("round", 0, 6),
        ("query", 1, picked[1]),
        ("round", 1, 12),
        ("query", 2, []),
        ("round", 2, 18),
    ]
    assert rounds.rows == records.rounds


def test_fmlib_run_prints_each_round_line_as_the_round_is_recorded(
    one_thread, tmp_path, monkeypatch
):
    import json

    import fmlib.cli
    from fmlib.cli import main
    from fmlib.watch import read_rounds

    run = tmp_path / "run"
    lines = []  # (line, rounds in rounds.csv when it was written)
    monkeypatch.setattr(
        fmlib.cli, "_line", lambda text: lines.append((text, len(read_rounds(run))))
    )
    values = small_run()
    flags = [
        arg for key, value in values.items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]
    # the rounds.csv poller does not look before the end (an hour between looks): on_round
    # writes the lines
    assert main(["run", *flags, "--no-progress", "--interval", "3600", "-o", str(run)]) == 0
    assert [(text.split(":")[0], count) for text, count in lines] == [
        ("[1/3] round 0", 1),
        ("[2/3] round 1", 2),
        ("[3/3] round 2", 3),
    ]


def test_tensorboard_event_files_read_back(one_thread, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fmlib.callbacks import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path / "tb")
    records = run_experiment(small_run(tmp_path / "run"), callbacks=[logger])
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "al/accuracy",
        "al/balanced_accuracy",
        "al/fisher_trace",
        "al/acc_0",
        "al/queried",
    } <= tags
    accuracy = events.Scalars("al/accuracy")
    assert [e.step for e in accuracy] == [6, 12, 18]
    assert [e.value for e in accuracy] == pytest.approx(
        pd.DataFrame(records.rounds)["accuracy"].tolist()
    )
    assert [e.value for e in events.Scalars("al/queried")] == [6, 6, 0]
    # NaN in the last round: left out
    assert [e.step for e in events.Scalars("al/fisher_trace")] == [
        6,
        12,
    ]


def test_fmlib_run_writes_tensorboard_events(one_thread, tmp_path):
    pytest.importorskip("tensorboard")
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fmlib.cli import main

    values = small_run()
    flags = [
        arg for key, value in values.items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]
    tb = tmp_path / "tb"
    assert (
        main(
            ["run", *flags, "--no-progress", "--tensorboard", str(tb), "-o", str(tmp_path / "run")]
        )
        == 0
    )
    events = EventAccumulator(str(tb))
    events.Reload()
    assert [e.step for e in events.Scalars("al/accuracy")] == [6, 12, 18]
