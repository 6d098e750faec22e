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
