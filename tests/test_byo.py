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

from fmlib.build import build
from fmlib.config import ExperimentConfig
from fmlib.data import DatasetData, as_al_data, as_data
from fmlib.experiment import run_experiment
from fmlib.strategies import STRATEGIES, get_strategy, strategy_class
from fmlib.train import TrainConfig, evaluate, fit
from tests.user_parts import MLP, blobs
from tests.user_strategy import LowestMaxProb

ROOT = Path(__file__).resolve().parents[1]
USER = "tests.user_strategy:LowestMaxProb"


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
    assert torch.equal(fast.inputs(idx), base.tensors[0][idx]) and torch.equal(
        slow.inputs(idx), fast.inputs(idx)
    )
    assert torch.equal(fast.labels, slow.labels) and fast.num_classes == 3 and fast.shape == (20,)
    assert fast.class_counts().tolist() == [10, 10, 10] and fast.class_counts(
        [0, 1, 4]
    ).tolist() == [1, 2, 0]
    for sub in (slow.subset([5, 6]), fast.subset([5, 6])):
        assert torch.equal(sub.inputs(), base.tensors[0][[5, 6]]) and sub.labels.tolist() == [2, 0]
    assert isinstance(
        fast.subset([5, 6]).dataset, TensorDataset
    )  # the fast path survives subsetting
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
    picks = get_strategy(name, **options).select(
        model, base, np.arange(9), np.arange(9, 40), 5, seed=0
    )
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
    tokens = (
        y[:, None] * 4 + torch.randint(0, 4, (60, 5), generator=g)
    ).long()  # class c uses tokens 4c..4c+3
    data = TensorDataset(tokens, y)
    options = {"fisher_samples": 16, "fraction": 0.05} if strategy == "fishermask" else {}
    records = run_experiment(config(strategy=strategy, budget=12, strategy_options=options), data=(data, data),
                             model=TokenBag)  # fmt: skip
    assert [r["n_labeled"] for r in records.rounds] == [6, 12]


# ----------------------------------------------------------------------------- run_experiment


def test_run_experiment_runs_a_tensor_dataset_an_mlp_and_a_user_strategy(tmp_path):
    data = (blobs(90, 3), blobs(45, 4))
    records = run_experiment(
        config(strategy=USER, output_dir=str(tmp_path / "run")), data=data, model=MLP
    )
    rounds = pd.read_csv(tmp_path / "run" / "rounds.csv")
    assert list(rounds["n_labeled"]) == [6, 12, 18] and rounds["accuracy"].iloc[-1] > 0.8
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["model_factory"] == "tests.user_parts.MLP" and meta["data"]["source"] == "in-memory"
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
    records = run_experiment(
        config(strategy=strategy, budget=12), data=(blobs(60, 6), blobs(30, 7)), model=LogitsOnly
    )
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


# ----------------------------------------------------------------------------- the user's parts by name

DATA, MODEL = "tests.user_parts:blob_data", "tests.user_parts:mlp"
NAMED = dict(
    dataset=DATA, imbalance="none", model=MODEL, strategy=USER
)  # a TensorDataset, an MLP, a strategy


def test_a_config_names_the_users_dataset_and_model_and_runs_as_the_objects_do(tmp_path):
    named = config(**NAMED, dataset_options={"pool": 60, "seed": 5}, model_options={"hidden": 8},
                   output_dir=str(tmp_path / "named"))  # fmt: skip
    records = run_experiment(named)
    from tests.user_parts import blob_data, mlp

    by_object = run_experiment(
        config(strategy=USER), data=blob_data(pool=60, seed=5), model=lambda c: mlp(c, hidden=8)
    )
    assert [r["accuracy"] for r in records.rounds] == [r["accuracy"] for r in by_object.rounds]
    assert [r["query_0"] for r in records.rounds] == [r["query_0"] for r in by_object.rounds]
    meta = json.loads((tmp_path / "named" / "config.json").read_text())
    assert (
        meta["config"]["dataset"] == DATA
        and meta["config"]["model"] == MODEL
        and meta["data"]["source"] == "config"
    )
    assert meta["data"]["pool_size"] == 60 and "model_factory" not in meta
    again = run_experiment(
        named
    )  # the config alone reopens the finished run: nothing in memory needed
    assert [r["accuracy"] for r in again.rounds] == [r["accuracy"] for r in records.rounds]


def test_the_users_dataset_is_shaped_like_a_built_in_one():
    parts = build(
        config(
            **{**NAMED, "imbalance": "step"},
            ratio=3.0,
            minority_classes=[0],
            pool_size=45,
            test_size=30,
        )
    )
    # blob_data's pool: 30 per class; step 3 keeps 10 of class 0 (70 in all), pool_size 45 keeps the proportions
    assert parts.data.pool.class_counts().tolist() == [7, 19, 19] and len(parts.data.test) == 30
    assert parts.data.test.class_counts().tolist() == [10, 10, 10]
    assert type(parts.model).__name__ == "MLP" and parts.model.head.out_features == 3


@pytest.mark.parametrize(("changes", "message"), [
    ({"dataset": "tests.user_parts:missing"},
     "dataset 'tests.user_parts:missing': module 'tests.user_parts' has no attribute 'missing'"),
    ({"dataset": "tests.no_such_module:f"}, "cannot import module 'tests.no_such_module'"),
    ({"dataset": "tests.user_parts:NOT_CALLABLE"}, "is a int, not a function that can be called"),
    ({"dataset": "fashion_mnist", "dataset_options": {"pool": 3}}, "built-in dataset 'fashion_mnist' takes none"),
    ({"imbalance": "paper"}, "with dataset factory 'tests.user_parts:blob_data' use 'none'"),
    ({"model": "tests.user_parts:Missing"}, "module 'tests.user_parts' has no attribute 'Missing'"),
    ({"model": "mlp"}, "or 'package.module:function' (your factory: function(num_classes, **model_options)"),
    ({"dataset": "cifar"}, "allowed values: ['fashion_mnist', 'cifar10'] or 'package.module:function'"),
    ({"dataset_options": [1]}, "dataset_options must be a dict, got list"),
])  # fmt: skip
def test_bad_names_of_the_users_parts_are_named_before_any_data_is_read(changes, message):
    problems = config(**{**NAMED, **changes}).problems()
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(("changes", "message"), [
    ({"dataset_options": {"size": 3}}, "dataset 'tests.user_parts:blob_data' cannot be called with dataset_options {'size': 3}"),
    ({"model_options": {"depth": 3}}, "model 'tests.user_parts:mlp' cannot be called as mlp(num_classes, **model_options) with "
                                      "model_options {'depth': 3}"),
    ({"model_options": {"dim": 7}}, "model 'tests.user_parts:mlp' fails on a batch of the pool's inputs"),
    ({"dataset": "tests.user_parts:blobs", "dataset_options": {"n": 9, "seed": 0}},
     "dataset 'tests.user_parts:blobs' must return a (pool, test) pair of Datasets or an ALData, got TensorDataset"),
])  # fmt: skip
def test_the_users_factories_failing_on_their_options_are_named_before_anything_is_written(
    tmp_path, changes, message
):
    with pytest.raises(ValueError) as err:
        run_experiment(config(**{**NAMED, **changes}, output_dir=str(tmp_path / "run")))
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()


def small_run(**changes) -> dict:
    return {**NAMED, "initial_size": 6, "query_size": 6, "budget": 12, "train_preset": "default",
            "train_options": {"epochs": 5, "batch_size": 8}, "device": "cpu", "progress": False, **changes}  # fmt: skip


def cli_flags(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flags += ["--set", f"{key}={json.dumps(value)}"]
    return flags


def test_the_cli_runs_the_users_dataset_model_and_strategy_by_name(tmp_path, capsys):
    from fmlib.cli import main

    out = tmp_path / "run"
    rest = {
        k: v
        for k, v in small_run().items()
        if k not in ("dataset", "model", "strategy", "imbalance", "progress")
    }
    flags = [
        "--dataset",
        DATA,
        "--model",
        MODEL,
        "--strategy",
        USER,
        "--imbalance",
        "none",
        "--no-progress",
    ]
    assert (
        main(["run", *flags, *cli_flags(rest), "--set", "model_options.hidden=8", "-o", str(out)])
        == 0
    )
    saved = json.loads((out / "config.json").read_text())["config"]
    assert (saved["dataset"], saved["model"], saved["strategy"], saved["model_options"]) == (
        DATA,
        MODEL,
        USER,
        {"hidden": 8},
    )
    assert list(pd.read_csv(out / "rounds.csv")["n_labeled"]) == [6, 12]
    assert (
        main(
            [
                "run",
                "--strategy",
                "tests.user_strategy:Missing",
                *flags[:4],
                "-o",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "has no attribute 'Missing'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_console_script_finds_the_users_modules_in_the_working_directory(tmp_path):
    import shutil
    import subprocess
    import sys

    script = Path(sys.executable).with_name("fmlib")
    if not script.is_file():
        pytest.skip("the fmlib console script is not installed next to this python")
    (tmp_path / "mine").mkdir()
    for name in ("user_parts.py", "user_strategy.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / "mine" / name)
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH"
    }  # only the working directory can find mine/
    values = small_run(dataset="mine.user_parts:blob_data", model="mine.user_parts:mlp",
                       strategy="mine.user_strategy:LowestMaxProb")  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(values))
    done = subprocess.run([str(script), "run", "-c", "config.json", "-o", "run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(pd.read_csv(tmp_path / "run" / "rounds.csv")["n_labeled"]) == [6, 12]


def test_the_inline_grid_runs_the_users_dataset_model_and_strategy_by_name(tmp_path):
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    threads = torch.get_num_threads()
    grid = {"base": small_run(), "axes": {"seed": [0, 1]}}
    try:
        outcomes = run_grid(
            expand_grid(grid), tmp_path, executor="inline", threads=threads, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    assert sorted(len(pd.read_csv(p)) for p in tmp_path.glob("*/rounds.csv")) == [2, 2]


@pytest.mark.slow
@pytest.mark.notebook
def test_the_notebook_grid_finds_the_users_modules_from_where_it_started(tmp_path, monkeypatch):
    """The local executor runs papermill kernels inside the run directories: the directory the grid
    started from must reach them (here, with no PYTHONPATH at all)."""
    from fmlib.grid.runner import run_grid
    from fmlib.grid.spec import expand_grid

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv(
        "FMLIB_SMOKE", raising=False
    )  # a grid refuses smoke results: this run is tiny anyway
    options = {"fisher_samples": 16, "fraction": 0.05}
    grid = {"base": small_run(strategy="fishermask", strategy_options=options)}
    (outcome,) = run_grid(expand_grid(grid), tmp_path, workers=1, threads=1, progress=False)
    assert outcome.status == "done", outcome.error
    (run,) = tmp_path.glob("*/rounds.csv")
    assert list(pd.read_csv(run)["n_labeled"]) == [6, 12] and (run.parent / "figures").is_dir()


@pytest.mark.slow
@pytest.mark.notebook
def test_papermill_runs_the_users_dataset_model_and_strategy_by_name(tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    pm.execute_notebook(str(ROOT / "notebooks" / "active_learning.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={**NAMED, "output_dir": str(run), "model_options": {"hidden": 8}, "smoke": True},
                        cwd=str(tmp_path), progress_bar=False, kernel_name="python3")  # fmt: skip
    results = json.loads((run / "results.json").read_text())
    saved = json.loads((run / "config.json").read_text())["config"]
    assert results["finished"] and (saved["dataset"], saved["model"], saved["strategy"]) == (
        DATA,
        MODEL,
        USER,
    )


# ----------------------------------------------------------------------------- progress


@pytest.mark.parametrize("progress", [True, False])
def test_progress_shows_nested_bars_for_training_fisher_embeddings_and_greedy(capsys, progress):
    strategy = get_strategy("fishermask", fisher_samples=16, fraction=0.05)
    cfg = config(strategy="fishermask", budget=12, progress=progress)
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
