"""Ask/tell (fmlib.session): a round as query() then label(); a scripted oracle, the session and
the simulation give the same picks and records for the same answers; a kill between query and
label resumes with the same query and the answers already given."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fmlib.config import ExperimentConfig
from fmlib.experiment import run_experiment
from fmlib.records import load_snapshots
from fmlib.session import ANSWERS, PENDING, open_session
from tests.fakes import blobs_run
from tests.user_parts import blob_data

ROOT = Path(__file__).resolve().parents[1]
TIMES = ["train_time", "eval_time", "select_time", "embed_time"]
POOL_LABELS = blob_data()[0].tensors[1]


def config(tmp_path=None, **changes) -> ExperimentConfig:
    fishermask = dict(
        query_size=5,
        budget=21,
        strategy="fishermask",
        strategy_options={"fisher_samples": 40, "fraction": 0.05},
        train_options={"epochs": 10, "lr": 1e-2, "batch_size": 8},
    )
    return ExperimentConfig(**blobs_run(tmp_path, **{**fishermask, **changes}))


def true_labels(positions, items):
    return POOL_LABELS[torch.as_tensor(positions)].numpy()


def rounds(records) -> pd.DataFrame:
    return records.rounds_frame().drop(columns=TIMES)


def same_records(a, b, *, sources=True) -> None:
    pd.testing.assert_frame_equal(rounds(a), rounds(b))
    qa, qb = a.queries_frame(), b.queries_frame()
    pd.testing.assert_frame_equal(qa.drop(columns="source"), qb.drop(columns="source"))
    if sources:
        assert qa["source"].tolist() == qb["source"].tolist()
    assert a.snapshots == b.snapshots and len(a.snapshots) == len(a.rounds) - 1


def test_oracle_with_the_true_labels_gives_the_simulation(one_thread, tmp_path):
    simulated = run_experiment(config(tmp_path / "sim"))
    asked = run_experiment(config(tmp_path / "oracle"), oracle=true_labels)
    same_records(simulated, asked, sources=False)
    assert set(simulated.queries_frame()["source"]) == {"pool"}
    queries = pd.read_csv(tmp_path / "oracle" / "queries.csv")
    # the initial set: the pool's labels
    assert queries.query("round == 0")["source"].eq("pool").all()
    assert queries.query("round > 0")["source"].eq("oracle").all() and len(queries) == 21


def test_session_query_and_label_give_the_simulation(one_thread, tmp_path):
    simulated = run_experiment(config(tmp_path / "sim"))
    with open_session(config(tmp_path / "session")) as session:
        while not session.finished:
            query = session.query()
            assert session.query().positions is query.positions or np.array_equal(
                session.query().positions, query.positions
            )
            if len(query.positions):
                assert query.items.shape == (len(query.positions), 20)  # the inputs, for display
            order = query.positions[::-1].copy()  # any order
            session.label(order, true_labels(order, None))
        records = session.records
    same_records(simulated, records, sources=False)
    assert (
        not (tmp_path / "session" / PENDING).exists()
        and not (tmp_path / "session" / ANSWERS).exists()
    )


def test_the_oracle_s_labels_are_recorded_and_trained_on(one_thread, tmp_path):
    from tests import user_trainer

    user_trainer.CALLS.clear()
    wrong = lambda positions, items: (true_labels(positions, items) + 1) % 3  # noqa: E731
    records = run_experiment(config(tmp_path), oracle=wrong, train=user_trainer.sgd)
    queries = pd.read_csv(tmp_path / "queries.csv")
    later = queries.query("round > 0")
    assert (
        later["label"].to_numpy()
        == (POOL_LABELS[later["pool_index"].to_numpy().copy()].numpy() + 1) % 3
    ).all()
    # training sees the given labels: the last call trains on every label so far as recorded
    positions, labels = user_trainer.CALLS[-1]
    recorded = dict(zip(queries["pool_index"], queries["label"]))
    assert labels == [recorded[p] for p in positions] and len(positions) == 21
    last = records.rounds[-1]  # the class counts are of the given labels
    assert [last[f"count_{c}"] for c in range(3)] == np.bincount(
        queries.query("round < 4")["label"], minlength=3
    ).tolist()
    snapshot = load_snapshots(records)[0]
    assert snapshot["picked_label"].tolist() == queries.query("round == 1")["label"].tolist()


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda p, items: [0] * (len(p) - 1), "got 4 labels for 5 positions"),
        (lambda p, items: [3] * len(p), "labels must be classes 0..2"),
        (lambda p, items: [-1] * len(p), "labels must be classes 0..2"),
        (lambda p, items: [0.5] * len(p), "labels must be classes 0..2"),
        (lambda p, items: None, "returned None"),
    ],
    ids=["count", "too-large", "negative", "fraction", "none"],
)
def test_a_bad_answer_is_refused_and_the_query_stays_pending(one_thread, tmp_path, answer, message):
    with pytest.raises(ValueError, match=message):
        run_experiment(config(tmp_path), oracle=answer)
    pending = torch.load(tmp_path / PENDING, weights_only=True)
    # no round recorded
    assert pending["loop"]["round"] == 0 and not (tmp_path / "rounds.csv").exists()
    asked = []
    records = run_experiment(
        config(tmp_path), oracle=lambda p, items: asked.append(p.tolist()) or true_labels(p, items)
    )
    assert asked[0] == pending["loop"]["positions"].tolist()  # the same query, asked again
    same_records(run_experiment(config(tmp_path / "sim")), records, sources=False)


def test_answer_checks_and_undo(one_thread, tmp_path):
    with open_session(config(tmp_path)) as session:
        query = session.query()
        with pytest.raises(ValueError, match="not in the query"):
            session.answer(int(np.setdiff1d(np.arange(90), query.positions)[0]), 0)
        with pytest.raises(ValueError, match="labels must be classes 0..2"):
            session.answer(int(query.positions[0]), 7)
        session.answer(int(query.positions[0]), 1)
        session.answer(int(query.positions[1]), 2)
        session.undo(int(query.positions[1]))
        assert session.query().answers == {int(query.positions[0]): 1}
        assert session.query().remaining.tolist() == query.positions[1:].tolist()
        with pytest.raises(ValueError, match="have no label yet"):
            session.label(query.positions[2:], [0, 0, 0])
        kept = json.loads((tmp_path / ANSWERS).read_text())
        assert kept == {"round": 0, "answers": {str(query.positions[0]): 1}}


KILLED = """
import os, sys, torch
torch.set_num_threads(1)
from tests.test_session import config, true_labels
from fmlib.session import open_session
session = open_session(config(sys.argv[1]))
q = session.query()  # round 0
session.label(q.positions, true_labels(q.positions, None))
q = session.query()  # round 1: two answers, then killed
for p in q.positions[:2]:
    session.answer(int(p), int(true_labels([p], None)[0]))
print(q.positions.tolist(), flush=True)
os._exit(9)
"""


def test_a_kill_between_query_and_label_resumes_with_the_same_query_and_answers(
    one_thread, tmp_path
):
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-c", KILLED, str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 9, out.stderr
    positions = json.loads(out.stdout.strip().splitlines()[-1])
    assert (run / PENDING).is_file() and len(pd.read_csv(run / "rounds.csv")) == 1
    with pytest.warns(UserWarning, match="stale lock"), open_session(config(run)) as session:
        query = session.query()
        assert query.round == 1 and query.positions.tolist() == positions
        assert sorted(query.answers) == sorted(positions[:2])  # kept: never asked again
        asked = []

        def oracle(p, items):
            asked.append(p.tolist())
            return true_labels(p, items)

        records = session.run(oracle)
    assert asked[0] == positions[2:]
    simulated = run_experiment(config(tmp_path / "sim"))
    same_records(simulated, records, sources=False)
    on_disk = pd.read_csv(run / "rounds.csv").drop(columns=TIMES)
    pd.testing.assert_frame_equal(on_disk, rounds(simulated), check_dtype=False)


def test_the_pending_query_is_on_disk_before_it_is_handed_out(one_thread, tmp_path):
    seen = []

    class Look:
        def on_query(self, query):
            state = torch.load(tmp_path / PENDING, weights_only=True)
            seen.append(state["loop"]["positions"].tolist() == query.positions.tolist())

    run_experiment(config(tmp_path, budget=11), callbacks=[Look()])
    assert seen == [True, True]


def test_the_loop_s_query_stays_until_labeled_and_bad_answers_leave_it_pending(one_thread):
    from fmlib.build import build
    from fmlib.loop import ActiveLoop

    def loop():
        parts = build(config(strategy="entropy", strategy_options={}))
        return ActiveLoop(
            parts.data,
            parts.model,
            parts.strategy,
            parts.schedule,
            parts.training,
            initial=parts.initial,
            seed=0,
            device="cpu",
        )

    stepped, asked = loop(), loop()
    stepped.step()
    query = asked.query()
    assert asked.query() is query and query.positions.tolist() == stepped.last.picked.tolist()
    other = int(np.setdiff1d(np.arange(90), np.concatenate([query.positions, asked.labeled]))[0])
    bad = [
        (query.positions[:-1], [0] * 4, "the query holds 5 positions"),
        ([*query.positions[:-1], other], [0] * 5, f"not queried: \\[{other}\\]"),
        ([query.positions[0]] * 5, [0] * 5, "each once"),
        (query.positions, [0, 1, 2, 3, 0], "labels must be classes 0..2"),
    ]
    for positions, labels, message in bad:
        with pytest.raises(ValueError, match=message):
            asked.label(positions, labels)
        assert asked.pending is query and asked.round == 0
    result = asked.label(query.positions, true_labels(query.positions, None))
    pd.testing.assert_frame_equal(
        pd.DataFrame([result.row]).drop(columns=TIMES),
        pd.DataFrame([stepped.last.row]).drop(columns=TIMES),
    )
    assert result.source == "oracle" and stepped.last.source == "pool"
    assert asked.pending is None and asked.round == 1
    with pytest.raises(ValueError, match="no pending query"):
        asked.label([], [])


def test_the_checkpoint_keeps_the_given_answers_not_the_pool_s_labels(one_thread):
    from fmlib.build import build
    from fmlib.loop import ActiveLoop

    def loop():
        parts = build(config(strategy="entropy", strategy_options={}))
        return ActiveLoop(
            parts.data,
            parts.model,
            parts.strategy,
            parts.schedule,
            parts.training,
            initial=parts.initial,
            seed=0,
            device="cpu",
        )

    asked = loop()
    query = asked.query()
    wrong = (true_labels(query.positions, None) + 1) % 3
    asked.label(query.positions, wrong)
    state = asked.state_dict()
    given = dict(zip(query.positions.tolist(), wrong.tolist()))
    kept = dict(zip(state["labeled"].tolist(), state["labels"].tolist()))
    assert all(kept[p] == label for p, label in given.items())
    resumed = loop()
    resumed.load_state_dict(state)
    assert resumed.known[torch.as_tensor(query.positions)].tolist() == wrong.tolist()


def test_kept_answers_come_back_only_for_the_pending_round_and_its_positions(one_thread, tmp_path):
    def reopened(kept):
        (tmp_path / ANSWERS).write_text(json.dumps(kept))
        with open_session(config(tmp_path, strategy="entropy", strategy_options={})) as session:
            return session.query().answers

    with open_session(config(tmp_path, strategy="entropy", strategy_options={})) as session:
        query = session.query()
        session.answer(int(query.positions[0]), 1)
    first, other = str(query.positions[0]), str(np.setdiff1d(np.arange(90), query.positions)[0])
    assert json.loads((tmp_path / ANSWERS).read_text()) == {"round": 0, "answers": {first: 1}}
    assert reopened({"round": 0, "answers": {first: 2, other: 1}}) == {int(first): 2}
    assert reopened({"round": 1, "answers": {first: 2}}) == {}  # another round's answers
