"""Hostile input at the Python door (``run_experiment``): every bad value is refused with a clear
error naming the parameter (or the round and the sample) before training starts or anything is
written. One row per probe: ``(id, what to change, the error's type, a pattern of its message)``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fmlib.data import ALData, ImageData
from fmlib.experiment import run_experiment
from fmlib.strategies import Strategy
from tests.user_parts import MLP, blobs

NAN = float("nan")


def config(output_dir=None, **overrides) -> dict:
    values = dict(
        initial_size=6,
        query_size=3,
        budget=None,
        rounds=1,
        strategy="random",
        train_preset="default",
        train_options={"epochs": 1},
        device="cpu",
        progress=False,
        output_dir=output_dir,
    )
    return {**values, **overrides}


class Picks(Strategy):
    """Returns what ``how(unlabeled, labeled, n)`` makes of the candidates."""

    name = "picks"

    def __init__(self, how):
        super().__init__()
        self.how = how

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        return self.how(unlabeled, labeled, n)


class RawPicks:
    """Not a Strategy subclass: the loop checks what it returns itself."""

    name = "raw"

    def __init__(self, how):
        self.how = how

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        return self.how(unlabeled, labeled, n)


class NanLogits(MLP):
    def forward(self, x):
        return super().forward(x) * NAN


class NanWhenTraining(MLP):
    """Finite in eval mode (the contract check), NaN while training: the loss is NaN."""

    def forward(self, x):
        out = super().forward(x)
        return out * NAN if self.training else out


def with_nan_input(row: int):
    pool = blobs(60, 0)
    x = pool.tensors[0].clone()
    x[row, 3] = NAN
    return TensorDataset(x, pool.tensors[1]), blobs(30, 1)


def labels_beyond_names():
    images = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(40) % 5  # classes 0..4, but only 4 names
    part = ImageData(images, labels, ["a", "b", "c", "d"])
    return ALData(part, part)


def pool_without_class_1():
    pool = blobs(60, 0)
    keep = pool.tensors[1] != 1
    return TensorDataset(pool.tensors[0][keep], pool.tensors[1][keep]), blobs(30, 1)


DATA = (blobs(60, 0), blobs(30, 1))

# id, keyword arguments of run_experiment beside the config (and config overrides), error, pattern
CASES = [
    ("max_rounds_negative", {"max_rounds": -1}, ValueError, r"max_rounds must be an integer >= 1"),
    (
        "max_rounds_zero",
        {"max_rounds": 0},
        ValueError,
        r"max_rounds must be an integer >= 1.*got 0",
    ),
    (
        "budget_just_beyond_the_pool",
        {"data": (blobs(9, 0), blobs(30, 1)), "config": {"budget": 10, "rounds": None}},
        ValueError,
        r"would label 10 samples, beyond the pool \(9\)",
    ),
    (
        "strategy_one_duplicate_pair",
        {"strategy": Picks(lambda u, lab, n: np.r_[u[:2], u[:1]])},
        RuntimeError,
        r"1 duplicated positions: \[\d+\]",
    ),
    (
        "max_rounds_float",
        {"max_rounds": 1.5},
        ValueError,
        r"max_rounds must be an integer >= 1.*1\.5",
    ),
    (
        "max_rounds_string",
        {"max_rounds": "2"},
        ValueError,
        r"max_rounds must be an integer >= 1.*'2'",
    ),
    (
        "budget_huge",
        {"config": {"budget": 10**12, "rounds": None}},
        ValueError,
        r"budget 10+: .*at most 10000",
    ),
    ("rounds_huge", {"config": {"rounds": 10**12}}, ValueError, r"rounds 10+: .*at most 10000"),
    (
        "lr_huge",
        {"config": {"train_options": {"lr": 1e6}}},
        ValueError,
        r"lr must be a finite number > 0 \(at most 10\), got 1000000.0",
    ),
    (
        "lamb_huge",
        {"config": {"strategy": "bait", "strategy_options": {"lamb": 1e300}}},
        ValueError,
        r"lamb must be a finite number > 0, got 1e\+300; at most 1e\+06",
    ),
    (
        "model_instance",
        {"model": MLP(3)},
        ValueError,
        r"model must be a factory.*nn.Module instance \(MLP\)",
    ),
    ("nan_logits", {"model": NanLogits}, ValueError, r"NaN or inf logits on pool samples"),
    (
        "nan_input",
        {"data": with_nan_input(7)},
        ValueError,
        r"pool's inputs must be finite.*samples \[7\]",
    ),
    (
        "labels_beyond_class_names",
        {"data": labels_beyond_names()},
        ValueError,
        r"class indices 0\.\.3 .*sample 4 has label 4",
    ),
    (
        "dataset_factory_fails",
        {
            "data": None,
            "config": {
                "dataset": "tests.user_parts:blob_data",
                "imbalance": "none",
                "dataset_options": {"pool": -5},
            },
        },
        ValueError,
        r"dataset 'tests.user_parts:blob_data' fails with dataset_options \{'pool': -5\}",
    ),
    (
        "strategy_returns_none",
        {"strategy": Picks(lambda u, lab, n: None)},
        RuntimeError,
        r"must return integer pool positions .*got None",
    ),
    (
        "strategy_returns_floats",
        {"strategy": Picks(lambda u, lab, n: u[:n] + 0.5)},
        RuntimeError,
        r"must return integer pool positions .*float64",
    ),
    (
        "strategy_too_few",
        {"strategy": Picks(lambda u, lab, n: u[: n - 1])},
        RuntimeError,
        r"2 picks where 3 were asked for",
    ),
    (
        "strategy_duplicates",
        {"strategy": Picks(lambda u, lab, n: np.repeat(u[:1], n))},
        RuntimeError,
        r"1 duplicated positions",
    ),
    (
        "strategy_labeled",
        {"strategy": Picks(lambda u, lab, n: np.r_[lab[:1], u[: n - 1]])},
        RuntimeError,
        r"1 already labeled",
    ),
    (
        "raw_strategy_out_of_range",
        {"strategy": RawPicks(lambda u, lab, n: np.r_[u[: n - 1], 10**6])},
        RuntimeError,
        (
            r"round 0: strategy 'raw' returned invalid picks: positions out of range 0\.\.59:"
            r" \[1000000\]"
        ),
    ),
    (
        "pool_class_without_samples",
        {"data": pool_without_class_1()},
        ValueError,
        r"leaves classes \[1\] without samples in the pool",
    ),
    (
        "raw_strategy_one_past_the_end",
        {"strategy": RawPicks(lambda u, lab, n: np.r_[u[: n - 1], 60])},
        RuntimeError,
        r"returned invalid picks: positions out of range 0\.\.59: \[60\]",
    ),
    (
        "raw_strategy_none",
        {"strategy": RawPicks(lambda u, lab, n: None)},
        RuntimeError,
        r"round 0: strategy 'raw' must return integer pool positions",
    ),
    (
        "nan_training_loss",
        {"model": NanWhenTraining},
        ValueError,
        r"round 0: the training loss is nan in epoch 1: NaN or inf logits for labeled samples",
    ),
]


@pytest.mark.parametrize(
    ("changes", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_value_at_the_api_is_refused_clearly_and_early(
    tmp_path, one_thread, changes, error, pattern
):
    changes = dict(changes)
    output = tmp_path / "run"
    kwargs = {"data": DATA, "model": MLP, **{k: v for k, v in changes.items() if k != "config"}}
    start = time.perf_counter()
    with pytest.raises(error, match=pattern):
        run_experiment(config(str(output), **changes.get("config", {})), **kwargs)
    assert time.perf_counter() - start < 30
    # found in round 0: the directory stays, unfinished
    trained = error is RuntimeError or "round 0" in pattern
    assert trained or not output.exists(), "refused before anything was written"


def test_fit_and_predict_proba_name_the_samples_with_nan():
    from fmlib.train import NonFiniteError, fit, predict_proba

    pool, _ = with_nan_input(7)
    with pytest.raises(
        NonFiniteError, match=r"training inputs hold NaN or inf: labeled samples \[7\]"
    ):
        fit(MLP(3), pool, np.arange(10))
    with pytest.raises(
        NonFiniteError, match=r"NaN or inf logits for samples \[7\] of the non-finite inputs"
    ):
        predict_proba(MLP(3), pool.tensors[0][:10])


GIB = 2**30


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"fraction": 0.5}, r"fraction=0\.5 keeps 210530 of the 421060 .*fraction of at most 0\.0"),
        ({"fraction": 0.02}, r"fraction=0\.02 .*max_candidates=None gives 5735.*max_candidates=\d"),
    ],
    ids=["mask_too_big", "candidates_too_many"],
)
def test_a_fisher_mask_too_big_for_memory_is_refused_at_validation(
    tmp_path, monkeypatch, fashion_root, options, pattern
):
    from fmlib.config import ExperimentConfig
    from fmlib.strategies import fisher

    monkeypatch.setattr(fisher, "available_memory", lambda device: int(1.5 * GIB))
    cfg = ExperimentConfig(
        strategy="fishermask",
        strategy_options=options,
        device="cpu",
        data_root=fashion_root,
        output_dir=str(tmp_path / "run"),
    )
    with pytest.raises(ValueError, match=r"strategy_options: " + pattern):
        cfg.validate()
    fits = {**options, "max_candidates": 500} if options["fraction"] < 0.1 else {"fraction": 0.002}
    ExperimentConfig(strategy="fishermask", strategy_options=fits, device="cpu").validate()


def test_run_experiment_refuses_a_fisher_mask_too_big_for_memory_before_round_0(
    tmp_path, monkeypatch, fashion_root
):
    from fmlib.config import ExperimentConfig
    from fmlib.strategies import fisher

    monkeypatch.setattr(fisher, "available_memory", lambda device: int(1.5 * GIB))
    cfg = ExperimentConfig(
        strategy="fishermask",
        strategy_options={"fraction": 0.5},
        device="cpu",
        imbalance="none",
        budget=100,
        data_root=fashion_root,
        output_dir=str(tmp_path / "run"),
    )
    with pytest.raises(ValueError, match=r"strategy_options: fraction=0\.5 keeps \d+ of the"):
        run_experiment(cfg)
    assert not (tmp_path / "run" / "rounds.csv").exists()
