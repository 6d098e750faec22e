"""The bounds a run is checked against before anything is allocated (:mod:`fmlib.bounds`): BAIT's
and FisherMask's candidate embeddings against the memory free, checked once per run."""

from __future__ import annotations

import pytest

from fmlib.config import ExperimentConfig
from fmlib.experiment import run_experiment
from fmlib.session import open_session
from fmlib.strategies import fisher
from tests.user_parts import mlp

MIB = 2**20


def bait(fashion_root, tmp_path=None, **options) -> ExperimentConfig:
    """BAIT on the CNN and the paper's pool (5750 samples, 4 classes; 15 labeled: 5735 left)."""
    output_dir = None if tmp_path is None else str(tmp_path / "run")
    return ExperimentConfig(
        strategy="bait",
        strategy_options=options,
        device="cpu",
        data_root=fashion_root,
        progress=False,
        output_dir=output_dir,
    )


def test_bait_embeddings_too_big_for_memory_are_refused_at_validation(monkeypatch, fashion_root):
    # [5735, 4, 512] float32 embeddings (the CNN's head: 4 classes x 128 features) need 47 MiB
    monkeypatch.setattr(fisher, "available_memory", lambda device: 20 * MIB)
    pattern = (
        r"strategy_options: BAIT's embeddings hold the 512 weights of the head of "
        r"SmallCNN \(4 classes x 128 features\) for each of 5735 candidates "
        r"\(max_candidates=None\): .* set max_candidates=(\d+) or fewer"
    )
    with pytest.raises(ValueError, match=pattern) as err:
        bait(fashion_root).validate()
    fits = int(err.value.args[0].split("set max_candidates=")[1].split()[0])
    assert 1000 < fits < 5735
    bait(fashion_root, max_candidates=fits).validate()  # what the message names fits
    with pytest.raises(ValueError, match=r"with the bias"):
        bait(fashion_root, include_bias=True).validate()


def test_fishermask_too_big_names_a_fraction_that_fits(monkeypatch, fashion_root):
    monkeypatch.setattr(fisher, "available_memory", lambda device: 64 * MIB)

    def fishermask(fraction) -> ExperimentConfig:
        return ExperimentConfig(
            strategy="fishermask",
            strategy_options={"fraction": fraction},
            device="cpu",
            data_root=fashion_root,
            progress=False,
        )

    pattern = r"fraction=0.05 keeps \d+ of the \d+ parameters .* a fraction of at most \S+ fits"
    with pytest.raises(ValueError, match=pattern) as err:
        fishermask(0.05).validate()
    fits = float(err.value.args[0].split("a fraction of at most ")[1].split()[0])
    # 16 k^2 + 5735 candidates x 4 classes x 4 bytes x k <= 64 MiB: k about 720 of the CNN's
    # parameters, above its head's 516
    fishermask(0.95 * fits).validate()
    with pytest.raises(ValueError, match="a fraction of at most"):
        fishermask(1.1 * fits).validate()


def test_run_experiment_refuses_bait_too_big_before_the_data_loads(
    monkeypatch, fashion_root, tmp_path
):
    monkeypatch.setattr(fisher, "available_memory", lambda device: 20 * MIB)
    monkeypatch.setattr("fmlib.build.load_data", lambda config: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match=r"BAIT's embeddings hold the 512 weights"):
        run_experiment(bait(fashion_root, tmp_path))
    assert not (tmp_path / "run").exists()


@pytest.fixture
def bounds_checked(monkeypatch) -> list:
    """The memory bounds checked (one entry per check of a strategy's embeddings), with 100 GiB
    free."""
    monkeypatch.setattr(fisher, "available_memory", lambda device: 100 * 2**30)
    calls = []
    check = fisher.check_embedding_memory
    monkeypatch.setattr(
        fisher, "check_embedding_memory", lambda *args: calls.append(args) or check(*args)
    )
    return calls


@pytest.mark.parametrize("strategy", ["bait", "fishermask"])
def test_a_run_checks_its_memory_bound_once(bounds_checked, fashion_root, tmp_path, strategy):
    config = ExperimentConfig(
        strategy=strategy,
        device="cpu",
        data_root=fashion_root,
        imbalance="none",
        budget=100,
        progress=False,
    )
    with open_session(config):
        pass
    assert len(bounds_checked) == 1
    built = {}  # the CLI's way: validated first, then run with the strategy validation built
    config = ExperimentConfig(**{**config.to_dict(), "output_dir": str(tmp_path / "run")})
    config.validate(built=built)
    with open_session(config, strategy=built["strategy"]):
        pass
    assert len(bounds_checked) == 2


def test_a_run_on_its_own_data_and_model_checks_the_memory_bound_on_them(
    bounds_checked, monkeypatch
):
    from tests.user_parts import blob_data

    config = ExperimentConfig(
        strategy="bait",
        device="cpu",
        initial_size=6,
        query_size=3,
        budget=None,
        rounds=1,
        progress=False,
    )
    with open_session(config, data=blob_data(), model=mlp):
        pass
    assert [args[:3] for args in bounds_checked] == [(84, 3, 48)]  # 90 - 6 candidates, 3 x 16
    monkeypatch.setattr(fisher, "available_memory", lambda device: 10_000)
    with pytest.raises(ValueError, match=r"the 48 weights of the head .* 84 candidates"):
        open_session(config, data=blob_data(), model=mlp)


@pytest.mark.parametrize("momentum, bad", [(1.0, True), (0.99, False), (0.0, False)])
def test_momentum_must_be_below_one(momentum, bad):
    from fmlib.bounds import training_problems

    problems = training_problems({"momentum": momentum})
    assert bool(problems) == bad and all("momentum" in p for p in problems)


def test_label_schedule_runs_exactly_the_rounds_asked():
    from fmlib.bounds import label_schedule

    assert label_schedule(6, 3, rounds=2) == [6, 9, 12]
    assert label_schedule(6, 3, budget=20, rounds=3) == [6, 9, 12, 15]


def sizes(**changes):
    """A config-like object with valid sizes, ``changes`` applied."""
    from types import SimpleNamespace

    values = dict(
        pool_size=None, test_size=None, initial_size=6, query_size=3, rounds=None, budget=20
    )
    return SimpleNamespace(**{**values, **changes})


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({}, None),
        ({"pool_size": 1, "test_size": 1}, None),
        ({"pool_size": 0}, "pool_size must be an integer >= 1 or None, got 0"),
        ({"test_size": 0}, "test_size must be an integer >= 1 or None, got 0"),
        ({"test_size": 2.0}, "test_size must be an integer >= 1 or None"),
        ({"initial_size": 1, "budget": 1}, None),
        ({"initial_size": 0}, "initial_size must be an integer >= 1, got 0"),
        ({"initial_size": None}, "initial_size must be an integer >= 1, got None"),
        ({"query_size": 1}, None),
        ({"query_size": 0}, "query_size must be an integer >= 1, got 0"),
        ({"query_size": None}, "query_size must be an integer >= 1, got None"),
        ({"query_size": True}, "query_size must be an integer >= 1, got True"),
        ({"rounds": 0}, None),
        ({"rounds": -1}, "rounds must be an integer >= 0 or None, got -1"),
        ({"budget": 6}, None),
        ({"budget": None, "rounds": 2}, None),
        ({"budget": 5}, "budget must be an integer >= 6 or None, got 5"),
    ],
    ids=repr,
)
def test_size_problems_at_each_minimum(changes, problem):
    from fmlib.bounds import size_problems

    problems = size_problems(sizes(**changes))
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(problem)


@pytest.mark.parametrize(
    "initial, query, budget, rounds, expected",
    [
        (6, 3, 20, None, 5),  # 14 labels in steps of 3: 5 rounds, the last one shorter
        (6, 3, 21, None, 5),
        (6, 3, 22, None, 6),
        (6, 3, 6, None, 0),
        (6, 3, 5, None, 0),
        (6, 3, None, 2, 2),
        (6, 3, 20, 3, 3),
        (6, 3, 20, 7, 5),
        (6, 3, None, 0, 0),
        (0, 1, 10_000, None, 10_000),
        (0, 1, None, 10_000, 10_000),
    ],
)
def test_schedule_rounds_counts_the_query_rounds(initial, query, budget, rounds, expected):
    from fmlib.bounds import label_schedule, schedule_rounds

    assert schedule_rounds(initial, query, budget, rounds) == expected
    if initial:
        schedule = label_schedule(initial, query, budget=budget, rounds=rounds)
        assert len(schedule) == expected + 1 and schedule[0] == initial
        assert schedule[-1] == (
            initial + expected * query
            if budget is None
            else min(initial + expected * query, max(budget, initial))
        )


@pytest.mark.parametrize(
    "budget, rounds, message",
    [
        (10_001, None, r"^budget 10001: the run would have 10001 query rounds"),
        (None, 10_001, r"^rounds 10001: the run would have 10001 query rounds"),
        (20_000, 10_001, r"^rounds 10001: the run would have 10001 query rounds"),
        (10_001, 10_001, r"^rounds 10001: the run would have 10001"),
        (10_001, 20_000, r"^budget 10001: the run would have 10001"),
        (None, None, r"^budget None: the run would have unbounded query rounds"),
    ],
)
def test_schedules_beyond_the_most_rounds_are_refused(budget, rounds, message):
    from fmlib.bounds import label_schedule, schedule_rounds

    with pytest.raises(ValueError, match=message):
        schedule_rounds(0, 1, budget, rounds)
    with pytest.raises(ValueError, match=message.replace("^", "")):
        label_schedule(0, 1, budget=budget, rounds=rounds)


def test_label_schedule_steps_and_its_last_step_shrinks_to_the_budget():
    from fmlib.bounds import label_schedule

    assert label_schedule(6, 3, budget=14) == [6, 9, 12, 14]
    assert label_schedule(6, 3, budget=15) == [6, 9, 12, 15]
    assert label_schedule(6, 3, budget=6) == [6]
    assert label_schedule(6, 3, rounds=0) == [6]
    assert label_schedule(6, 1, rounds=1) == [6, 7]
    assert label_schedule(6, 3, budget=100, rounds=1) == [6, 9]
    with pytest.raises(ValueError, match="query_size must be >= 1, got 0"):
        label_schedule(6, 0, rounds=1)


@pytest.mark.parametrize(
    "initial, budget, rounds, pool, message",
    [
        (6, 20, None, 20, None),
        (6, 20, None, 19, r"budget: the run would label 20 samples, beyond the pool \(19\)"),
        (6, 20, 2, 12, None),
        (6, 20, 2, 11, r"would label 12 samples, beyond the pool \(11\)"),
        (6, None, 3, 15, None),
        (6, None, 3, 14, r"would label 15 samples"),
        (6, 6, None, 6, None),
        (7, 7, None, 6, r"initial_size 7 is larger than the pool \(6\)"),
    ],
)
def test_labels_fit_in_the_pool_up_to_its_size(initial, budget, rounds, pool, message):
    from fmlib.bounds import check_labels_fit

    config = sizes(initial_size=initial, budget=budget, rounds=rounds)
    if message is None:
        check_labels_fit(config, pool)
    else:
        with pytest.raises(ValueError, match=message):
            check_labels_fit(config, pool)


@pytest.mark.parametrize(
    "name, good, bad",
    [
        ("epochs", [1, 500], [0, -1, 1.0, True, None]),
        ("batch_size", [1, 4096], [0, 2.5, False]),
        ("lr", [1e-9, 10, 10.0, 1], [0, -1e-3, 10.001, float("nan"), float("inf"), True, None]),
        ("momentum", [0, 0.0, 0.999], [1, 1.0, -1e-9, float("nan"), None]),
        ("weight_decay", [0, 0.0, 5.0], [-1e-9, float("inf"), True, None]),
        ("target_train_acc", [None, 1, 1.0, 1e-9], [0, 0.0, 1.001, -0.5, float("nan"), True]),
        ("grad_clip_value", [None, 1e-9, 100], [0, -1, float("inf"), True]),
        ("augment", [True, False], [1, 0, None, "yes"]),
        ("reinit", [True, False], [1, None]),
        ("reinit_batchnorm", [False], [0]),
        ("recompute_bn", [True], ["true"]),
    ],
)
def test_training_values_at_the_edges_of_their_ranges(name, good, bad):
    from fmlib.bounds import training_problems

    for value in good:
        assert training_problems({name: value}) == [], (name, value)
    for value in bad:
        problems = training_problems({name: value})
        assert len(problems) == 1 and problems[0].startswith(f"{name} must be "), (name, value)
        assert problems[0].endswith(f"got {value!r}")
    assert training_problems({}) == []
