"""``ActiveLoop``: each round's own selection seed, the untrained first query, progress bars."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from fmlib.config import ExperimentConfig
from fmlib.data import ALData
from fmlib.experiment import run_experiment
from fmlib.loop import ActiveLoop
from fmlib.models import build_model
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import get_strategy
from fmlib.train import TrainConfig, evaluate
from tests.fakes import image_data, user_config
from tests.user_parts import MLP, blobs


@pytest.mark.parametrize("progress", [True, False])
def test_progress_shows_nested_bars_for_training_fisher_embeddings_and_greedy(capsys, progress):
    strategy = get_strategy("fishermask", fisher_samples=16, fraction=0.05)
    cfg = user_config(strategy="fishermask", budget=12, progress=progress)
    run_experiment(cfg, data=(blobs(60, 6), blobs(30, 7)), model=MLP, strategy=strategy)
    err = capsys.readouterr().err
    bars = (
        "train:",
        "fisher diagonal:",
        "fishermask embeddings:",
        "greedy_trace_select:",
        "fishermask:",
    )
    assert [bar in err for bar in bars] == [progress] * len(bars), err
    assert strategy.options["progress"] is False  # turned on only while it selected


def tiny_run(strategy, first_query, **overrides):
    config = dict(
        initial_size=8,
        query_size=6,
        budget=None,
        rounds=2,
        strategy=strategy,
        train_preset="default",
        train_options={"epochs": 2, "batch_size": 16},
        first_query=first_query,
        seed=3,
        device="cpu",
        progress=False,
        imbalance="none",
    )
    config.update(overrides)
    data = ALData(image_data(60, 0), image_data(40, 1))
    return ExperimentConfig.from_dict(config), data, run_experiment(config, data=data)


def untrained_model(config, data):
    with seeded(round_seed(config.seed, 0, "init")):
        return build_model(config.model, 4, 1, 28)


@pytest.mark.parametrize("strategy", ["entropy", "badge", "fishermask"])
def test_first_query_initial_is_made_by_the_untrained_model(strategy):
    config, data, records = tiny_run(strategy, "initial")
    queries, rounds = records.queries_frame(), records.rounds_frame()
    initial = queries.loc[queries["round"] == 0, "pool_index"].to_numpy()
    first = queries.loc[queries["round"] == 1].sort_values("order")["pool_index"].to_numpy()
    model = untrained_model(config, data)
    unlabeled = np.setdiff1d(np.arange(len(data.pool)), initial)
    strat = get_strategy(strategy)
    with seeded(round_seed(config.seed, 0, "select")):
        expected = strat.select(
            model, data.pool, initial, unlabeled, 6, seed=round_seed(config.seed, 0, "select")
        )
    assert first.tolist() == expected.tolist()
    row0 = rounds.iloc[0]
    assert row0["train_epochs"] == 0 and np.isnan(row0["train_accuracy"])
    assert row0["accuracy"] == pytest.approx(evaluate(model, data.test)["accuracy"])
    assert (rounds["train_epochs"].iloc[1:] >= 1).all()


def test_first_query_trained_differs_from_initial():
    _, _, trained = tiny_run("entropy", "trained")
    _, _, initial = tiny_run("entropy", "initial")
    t, i = trained.queries_frame(), initial.queries_frame()
    assert (
        t.loc[t["round"] == 0, "pool_index"].tolist()
        == i.loc[i["round"] == 0, "pool_index"].tolist()
    )
    assert (
        t.loc[t["round"] == 1, "pool_index"].tolist()
        != i.loc[i["round"] == 1, "pool_index"].tolist()
    )
    assert trained.rounds_frame()["train_epochs"].iloc[0] >= 1


def test_authors_protocol_run_matches_initial_for_non_bait():
    _, _, authors = tiny_run("margin", "authors")
    _, _, initial = tiny_run("margin", "initial")
    assert authors.queries_frame().equals(initial.queries_frame())


POOL = blobs(80, 0)


class SeedRecorder:
    name = "recorder"

    def __init__(self):
        self.seeds = []

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        self.seeds.append(seed)
        return unlabeled[:n]


def test_the_loop_gives_the_strategy_each_rounds_own_selection_seed():
    strategy = SeedRecorder()
    loop = ActiveLoop(
        (POOL, blobs(30, 1)),
        nn.Sequential(nn.Linear(20, 3)),
        strategy,
        [6, 9, 12, 15],
        TrainConfig(epochs=1),
        initial=np.arange(6),
        seed=7,
        device="cpu",
    )
    while not loop.finished:
        loop.step()
    assert strategy.seeds == [round_seed(7, r, "select") for r in range(3)]
    assert len(set(strategy.seeds)) == 3


def test_the_loop_trains_each_round_from_its_own_training_seed():
    seeds = []

    def train(model, data, labeled, *, seed, device):
        seeds.append(seed)
        return {"epochs": 1}

    loop = ActiveLoop(
        (POOL, blobs(30, 1)),
        nn.Sequential(nn.Linear(20, 3)),
        SeedRecorder(),
        [6, 9, 12],
        TrainConfig(epochs=1),
        initial=np.arange(6),
        seed=7,
        device="cpu",
        train=train,
    )
    while not loop.finished:
        loop.step()
    assert seeds == [round_seed(7, r, "train") for r in range(3)]
    assert len(set(seeds)) == 3


@pytest.mark.parametrize(
    "positions, labels, message",
    [
        ([5, 2, 9], [0, 2, 1], None),
        ([9, 5, 2], [1.0, 0.0, 2.0], None),
        ([5, 2, 9], [0, 3, 1], r"labels must be classes 0..2 \(integers\), got \[3\]"),
        ([5, 2, 9], [0, -1, 1], r"got \[-1\]"),
        ([5, 2, 9], [0, 1.5, 1], r"got \[0.0, 1.5, 1.0\]"),
        ([5, 2, 9], [0, 1], "got 2 labels for 3 positions"),
        ([5, 2], [0, 1], "the query holds 3 positions, got labels for 2"),
        ([5, 2, 2], [0, 1, 1], "each once"),
        ([5, 2, 7], [0, 1, 1], r"not queried: \[7\]"),
        ([5.0, 2.0, 9.0], [0, 1, 1], "positions must be the queried ones"),
    ],
    ids=repr,
)
def test_check_answer_places_each_queried_position_and_refuses_a_bad_answer(
    positions, labels, message
):
    from fmlib.loop import check_answer

    queried = [5, 2, 9]
    if message is None:
        order = check_answer(queried, positions, labels, 3)
        assert [positions[i] for i in order] == queried
    else:
        with pytest.raises(ValueError, match=message):
            check_answer(queried, positions, labels, 3)


def test_train_columns_take_the_stats_and_mark_missing_ones():
    from fmlib.loop import _train_columns

    stats = {"epochs": 3, "train_accuracy": 0.5, "train_loss": 1.25, "seconds": 2}
    assert _train_columns(stats) == {
        "train_epochs": 3,
        "train_accuracy": 0.5,
        "train_loss": 1.25,
        "train_time": 2.0,
    }
    empty = _train_columns({"epochs": 2.5})
    assert empty["train_epochs"] == -1 and all(
        np.isnan(empty[k]) for k in ("train_accuracy", "train_loss", "train_time")
    )


def blob_loop(schedule=(6, 9, 12), **options) -> ActiveLoop:
    """A loop on 80 blobs whose strategy takes the first unlabeled positions, trained by a hook
    that does nothing (``options`` on top)."""
    return ActiveLoop(
        (POOL, blobs(30, 1)),
        nn.Sequential(nn.Linear(20, 3)),
        SeedRecorder(),
        list(schedule),
        TrainConfig(epochs=1),
        initial=np.arange(6),
        seed=7,
        device="cpu",
        **{"train": lambda model, data, labeled, *, seed, device: {}, **options},
    )


def test_a_training_hook_s_own_seconds_are_the_row_s_training_time():
    hook = lambda model, data, labeled, *, seed, device: {"seconds": 123.5}  # noqa: E731
    loop = blob_loop(train=hook)
    loop.step()
    assert loop.last.row["train_time"] == 123.5
    assert blob_loop().query().row["train_time"] >= 0  # measured when the hook gives none


def test_a_stopping_rule_is_asked_in_every_round_that_would_query():
    asked = []

    def stop(row):
        asked.append(row["round"])
        return {"rule": "at round 1"} if row["round"] == 1 else None

    loop = blob_loop(schedule=(6, 9, 12))
    loop.stop = stop
    while not loop.finished:
        loop.step()
    # round 1 would query the last batch: the rule ends the run there, with 9 labels
    assert asked == [0, 1] and loop.round == 2 and loop.stopped == {"rule": "at round 1"}
    assert len(loop.labeled) == 9 and len(loop.last.picked) == 0


def test_a_resumed_loop_keeps_the_labels_the_oracle_gave():
    loop = blob_loop()
    query = loop.query()
    given = (POOL.tensors[1][query.positions].numpy() + 1) % 3  # not the pool's labels
    loop.label(query.positions, given)
    resumed = blob_loop()
    resumed.load_state_dict(loop.state_dict())
    assert resumed.round == 1 and resumed.labeled.tolist() == loop.labeled.tolist()
    assert resumed.known[query.positions].tolist() == given.tolist()
    assert resumed.known_pool().labels[query.positions].tolist() == given.tolist()
    assert resumed.known[:6].tolist() == POOL.tensors[1][:6].tolist()  # the initial set's own


def test_a_restored_pending_query_keeps_the_stopping_rule_that_ends_the_run():
    loop = blob_loop()
    loop.stop = lambda row: {"rule": "enough"}
    query = loop.query()
    assert query.stop == {"rule": "enough"} and len(query.positions) == 0
    resumed = blob_loop()
    resumed.load_state_dict(loop.state_dict())
    restored = resumed.restore_pending(loop.pending_state())
    assert restored.stop == {"rule": "enough"} and restored.round == 0
    resumed.label(restored.positions, [])
    assert resumed.finished and resumed.stopped == {"rule": "enough"}
