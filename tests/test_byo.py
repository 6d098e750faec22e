"""Bring your own data, model and strategy: a TensorDataset + an MLP + a strategy defined outside
fmlib (tests/user_strategy.py) through fit, the strategies, ActiveLoop, run_experiment, the CLI,
the grid and papermill."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from fmlib.config import ExperimentConfig, build
from fmlib.data import DatasetData, as_al_data, as_data
from fmlib.experiment import run_experiment
from fmlib.strategies import STRATEGIES, get_strategy, strategy_class
from fmlib.train import TrainConfig, evaluate, fit
from tests.user_strategy import LowestMaxProb

ROOT = Path(__file__).resolve().parents[1]
USER = "tests.user_strategy:LowestMaxProb"


def blobs(n: int, seed: int, dim: int = 20, classes: int = 3) -> TensorDataset:
    """Three well separated Gaussian blobs in ``dim`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = 4 * torch.eye(classes, dim)
    return TensorDataset(centres[y] + torch.randn(n, dim, generator=g), y)


class MLP(nn.Module):
    def __init__(self, num_classes: int, dim: int = 20, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.embed(x))


class LogitsOnly(nn.Module):
    def __init__(self, num_classes: int, dim: int = 20):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 8), nn.ReLU(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.net(x)


class ItemDataset(Dataset):
    """A plain map-style dataset (not a TensorDataset): items read one by one."""

    def __init__(self, base: TensorDataset):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x.numpy(), int(y)


def config(**changes) -> ExperimentConfig:
    values = dict(initial_size=6, query_size=6, budget=18, strategy="entropy", train_preset="default",
                  train_options={"epochs": 20, "lr": 1e-2, "batch_size": 8}, device="cpu", progress=False)  # fmt: skip
    return ExperimentConfig(**{**values, **changes})


# ----------------------------------------------------------------------------- the adapter


def test_dataset_data_reads_a_tensor_dataset_and_a_plain_dataset_alike():
    base = blobs(30, 0)
    fast, slow = DatasetData(base), DatasetData(ItemDataset(base))
    idx = [3, 0, 17]
    assert torch.equal(fast.inputs(idx), base.tensors[0][idx]) and torch.equal(slow.inputs(idx), fast.inputs(idx))
    assert torch.equal(fast.labels, slow.labels) and fast.num_classes == 3 and fast.shape == (20,)
    assert fast.class_counts().tolist() == [10, 10, 10] and fast.class_counts([0, 1, 4]).tolist() == [1, 2, 0]
    for sub in (slow.subset([5, 6]), fast.subset([5, 6])):
        assert torch.equal(sub.inputs(), base.tensors[0][[5, 6]]) and sub.labels.tolist() == [2, 0]
    assert isinstance(fast.subset([5, 6]).dataset, TensorDataset)  # the fast path survives subsetting
    assert as_data(DataLoader(base, batch_size=4)).num_classes == 3


def test_pool_and_test_share_the_classes_and_bad_data_is_named():
    pool, test = blobs(30, 0), TensorDataset(torch.zeros(4, 20), torch.zeros(4, dtype=torch.long))
    data = as_al_data((pool, test))
    assert data.pool.num_classes == data.test.num_classes == 3
    with pytest.raises(ValueError, match="integer classes"):
        DatasetData(TensorDataset(torch.zeros(3, 2), torch.zeros(3)))
    with pytest.raises(ValueError, match="Dataset"):
        as_data([1, 2, 3])
    with pytest.raises(ValueError, match=r"\(pool, test\) pair"):
        as_al_data(pool)


# ----------------------------------------------------------------------------- fit, strategies, loop


def test_fit_and_evaluate_take_a_dataset_and_match_the_tensor_path():
    base = blobs(60, 1)
    train = TrainConfig(epochs=20, lr=1e-2, batch_size=8)
    models = [MLP(3), MLP(3)]
    fit(models[0], base, np.arange(30), train, seed=3)
    fit(models[1], ItemDataset(base), np.arange(30), train, seed=3)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
    metrics = evaluate(models[0], base)
    assert metrics["accuracy"] > 0.9  # separable blobs
    manual = (models[0](base.tensors[0]).argmax(1) == base.tensors[1]).float().mean().item()
    assert metrics["accuracy"] == pytest.approx(manual)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_selects_from_a_tensor_dataset(name):
    base = blobs(40, 2)
    model = MLP(3)
    fit(model, base, np.arange(9), TrainConfig(epochs=2, batch_size=8), seed=0)
    options = {"fisher_samples": 16} if "fisher_samples" in STRATEGIES[name].defaults else {}
    picks = get_strategy(name, **options).select(model, base, np.arange(9), np.arange(9, 40), 5, seed=0)
    assert len(set(picks.tolist())) == 5 and set(picks.tolist()) <= set(range(9, 40))


class TokenBag(nn.Module):
    """Integer token ids [N, L] -> mean embedding -> logits: inputs that must stay integers."""

    def __init__(self, num_classes: int, vocab: int = 12):
        super().__init__()
        self.tokens = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, num_classes)

    def embed(self, x):
        return self.tokens(x).mean(1)

    def forward(self, x):
        return self.head(self.embed(x))


@pytest.mark.parametrize("strategy", ["entropy", "badge", "fishermask"])
def test_integer_token_inputs_stay_integers_through_a_run(strategy):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    tokens = (y[:, None] * 4 + torch.randint(0, 4, (60, 5), generator=g)).long()  # class c uses tokens 4c..4c+3
    data = TensorDataset(tokens, y)
    options = {"fisher_samples": 16, "fraction": 0.05} if strategy == "fishermask" else {}
    records = run_experiment(config(strategy=strategy, budget=12, strategy_options=options), data=(data, data),
                             model=TokenBag)  # fmt: skip
    assert [r["n_labeled"] for r in records.rounds] == [6, 12]


# ----------------------------------------------------------------------------- run_experiment


def test_run_experiment_runs_a_tensor_dataset_an_mlp_and_a_user_strategy(tmp_path):
    data = (blobs(90, 3), blobs(45, 4))
    records = run_experiment(config(strategy=USER, output_dir=str(tmp_path / "run")), data=data, model=MLP)
    rounds = pd.read_csv(tmp_path / "run" / "rounds.csv")
    assert list(rounds["n_labeled"]) == [6, 12, 18] and rounds["accuracy"].iloc[-1] > 0.8
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["model_factory"].endswith("test_byo.MLP") and meta["data"]["source"] == "in-memory"
    assert meta["data"]["classes"] == ["0", "1", "2"] and len(records.rounds) == 3
    # the user's strategy picked least-confident points: recompute round 0's picks by hand
    queries = pd.read_csv(tmp_path / "run" / "queries.csv")
    assert len(queries[queries["round"] == 1]) == 6


def test_the_user_strategy_picks_what_it_says():
    base = blobs(30, 5)
    model = LogitsOnly(3)
    unlabeled = np.arange(4, 30)
    picks = get_strategy(USER).select(model, base, np.arange(4), unlabeled, 3)
    top = model(base.tensors[0][unlabeled]).softmax(1).max(1).values
    assert picks.tolist() == unlabeled[torch.argsort(top, stable=True)[:3].numpy()].tolist()


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least_confidence", "random", USER])
def test_strategies_that_need_only_logits_run_without_embed_or_head(strategy):
    records = run_experiment(config(strategy=strategy, budget=12), data=(blobs(60, 6), blobs(30, 7)), model=LogitsOnly)
    assert [r["n_labeled"] for r in records.rounds] == [6, 12]


def test_fishermask_without_head_runs_on_a_model_without_one():
    cfg = config(strategy="fishermask", budget=12, strategy_options={"include_head": False, "fisher_samples": 16,
                                                                     "fraction": 0.05})  # fmt: skip
    records = run_experiment(cfg, data=(blobs(60, 6), blobs(30, 7)), model=LogitsOnly)
    assert len(records.rounds) == 2


@pytest.mark.parametrize(("strategy", "options", "missing"), [
    ("badge", {}, "needs embed.* and head"),
    ("coreset", {}, "needs embed"),
    ("bait", {"fisher_samples": 16}, "needs embed.* and head"),
    ("fishermask", {"fisher_samples": 16}, r"needs head .*include_head=False"),
    ("tests.user_strategy:NeedsEmbed", {}, "'needs_embed' needs embed"),
])  # fmt: skip
def test_a_model_lacking_what_the_strategy_needs_is_refused_before_anything_is_written(tmp_path, strategy, options,
                                                                                        missing):  # fmt: skip
    out = tmp_path / "run"
    cfg = config(strategy=strategy, strategy_options=options, output_dir=str(out))
    with pytest.raises(ValueError, match=missing):
        run_experiment(cfg, data=(blobs(60, 6), blobs(30, 7)), model=LogitsOnly)
    assert not (out / "config.json").exists() and not (out / "rounds.csv").exists()


@pytest.mark.parametrize(("factory", "message"), [
    (lambda c: "not a model", "must be a torch nn.Module"),
    (lambda c: nn.Linear(20, c + 1), r"logits \[N, 3\]"),
    (lambda c: nn.Linear(7, c), "fails on a batch of the pool's inputs"),
    ("MLP", "model must be a factory"),
])  # fmt: skip
def test_a_bad_model_factory_is_named(factory, message):
    with pytest.raises(ValueError, match=message):
        build(config(), data=(blobs(30, 0), blobs(9, 1)), model=factory)


def test_an_image_model_on_vector_data_points_to_the_factory():
    with pytest.raises(ValueError, match="takes square images.*model=factory"):
        build(config(), data=(blobs(30, 0), blobs(9, 1)))


# ----------------------------------------------------------------------------- strategies by name


def test_a_strategy_is_found_by_module_and_class():
    assert strategy_class(USER) is LowestMaxProb
    assert isinstance(get_strategy(USER, batch_size=8), LowestMaxProb)
    assert ExperimentConfig(strategy=USER).problems(check_dataset=False, parts=False) == []


@pytest.mark.parametrize(("name", "message"), [
    ("tests.no_such_module:X", "cannot import module 'tests.no_such_module'"),
    ("tests.user_strategy:Missing", "has no attribute 'Missing'"),
    ("tests.user_strategy:NOT_A_STRATEGY", "is a object, not a subclass of fmlib.strategies.Strategy"),
    ("tests.user_strategy:NotAStrategy", "is class NotAStrategy, not a subclass of fmlib.strategies.Strategy"),
    ("tests.user_strategy:", "write 'package.module:Class'"),
    ("no_such_strategy", "unknown strategy 'no_such_strategy'.*package.module:Class"),
])  # fmt: skip
def test_a_bad_strategy_name_says_what_is_wrong(name, message):
    with pytest.raises(ValueError, match=message):
        strategy_class(name)
    assert any(message.split(".*")[0] in p for p in ExperimentConfig(strategy=name).problems(check_dataset=False,
                                                                                             parts=False))  # fmt: skip


def test_the_cli_runs_a_user_strategy_by_name(tmp_path, fashion_root, capsys):
    from fmlib.cli import main

    out = tmp_path / "run"
    flags = ["--set", f"data_root={fashion_root}", "--imbalance", "none", "--set", "initial_size=10",
             "--set", "query_size=5", "--set", "budget=15", "--set", "train_preset=default",
             "--set", "train_options.epochs=1", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(["run", "--strategy", USER, *flags, "-o", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["strategy"] == USER
    assert list(pd.read_csv(out / "rounds.csv")["n_labeled"]) == [10, 15]
    assert main(["run", "--strategy", "tests.user_strategy:Missing", *flags, "-o", str(tmp_path / "bad")]) == 2
    assert "has no attribute 'Missing'" in capsys.readouterr().err


def test_the_inline_grid_runs_a_user_strategy_by_name(tmp_path, fashion_root):
    from fmlib.grid import expand_grid
    from fmlib.runner import run_grid

    threads = torch.get_num_threads()
    base = dict(dataset="fashion_mnist", data_root=fashion_root, imbalance="none", initial_size=10, query_size=5,
                budget=15, train_preset="default", train_options={"epochs": 1}, device="cpu", progress=False)  # fmt: skip
    grid = {"base": base, "axes": {"strategy": [USER]}}
    try:
        (outcome,) = run_grid(expand_grid(grid), tmp_path, executor="inline", threads=threads, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert outcome.status == "done", outcome.error
    (run,) = tmp_path.glob("*/rounds.csv")
    assert list(pd.read_csv(run)["n_labeled"]) == [10, 15] and "lowestmaxprob" in run.parent.name.lower()


@pytest.mark.slow
@pytest.mark.notebook
def test_papermill_runs_a_user_strategy_by_name(tmp_path, fashion_root, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    pm.execute_notebook(str(ROOT / "notebooks" / "active_learning.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"output_dir": str(run), "data_root": fashion_root, "imbalance": "none",
                                    "strategy": USER, "smoke": True},
                        cwd=str(tmp_path), progress_bar=False, kernel_name="python3")  # fmt: skip
    results = json.loads((run / "results.json").read_text())
    assert results["finished"] and json.loads((run / "config.json").read_text())["config"]["strategy"] == USER


# ----------------------------------------------------------------------------- progress


@pytest.mark.parametrize("progress", [True, False])
def test_progress_shows_nested_bars_for_training_fisher_embeddings_and_greedy(capsys, progress):
    strategy = get_strategy("fishermask", fisher_samples=16, fraction=0.05)
    cfg = config(strategy="fishermask", budget=12, progress=progress)
    run_experiment(cfg, data=(blobs(60, 6), blobs(30, 7)), model=MLP, strategy=strategy)
    err = capsys.readouterr().err
    bars = ("train:", "fisher diagonal:", "fishermask embeddings:", "greedy_trace_select:", "fishermask:")
    assert [bar in err for bar in bars] == [progress] * len(bars), err
    assert strategy.options["progress"] is False  # turned on only while it selected
