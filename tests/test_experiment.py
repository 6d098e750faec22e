import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fmlib.data import ALData, ImageData
from fmlib.experiment import (
    ActiveLoop,
    ExperimentConfig,
    label_schedule,
    run_experiment,
    smoke_config,
)
from fmlib.records import load_queries, load_run, load_snapshots
from fmlib.seeds import round_seed
from fmlib.strategies import FisherReport, SelectionReport
from fmlib.train import TrainConfig
from tests.fakes import DATA, MODEL, NAMED, USER, fake_images, user_config
from tests.user_parts import MLP, LogitsOnly, blobs

# ----------------------------------------------------------------------------- fakes


class FirstUnlabeled:
    """Picks the n smallest unlabeled positions: the correct picks are known."""

    def __init__(self):
        self.report = SelectionReport()

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        self.report = SelectionReport()
        return np.sort(unlabeled)[:n]


class SeededRandom(FirstUnlabeled):
    """Random picks from ``seed`` and the global torch RNG (both must be fixed per round)."""

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        self.report = SelectionReport()
        jitter = int(torch.randint(0, 1000, (1,)))
        return np.random.default_rng(seed + jitter).choice(unlabeled, size=n, replace=False)


class FakeFisher(FirstUnlabeled):
    """Largest unlabeled positions, with a Fisher-strategy ``info`` derived from the model
    weights."""

    def __init__(self, fraction=0.01):
        self.fraction, self.report = fraction, SelectionReport()

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        diag = {k: p.detach().cpu().double() ** 2 for k, p in model.named_parameters()}
        flat = torch.cat([d.reshape(-1) for d in diag.values()])
        k = max(1, int(self.fraction * len(flat)))
        threshold = flat.topk(k).values[-1]
        mask = {name: d >= threshold for name, d in diag.items()}
        picks = np.sort(unlabeled)[::-1][:n].copy()
        fisher = FisherReport(
            diag, mask, picked_scores=np.linspace(2, 1, n), fisher_trace=float(flat.sum())
        )
        self.report = SelectionReport(embed_time=0.1, fisher=fisher)
        return picks


class CrashAfter:
    """Wraps a strategy and raises on its ``calls``-th select: a crash in the middle of a run."""

    def __init__(self, inner, calls):
        self.inner, self.calls = inner, calls

    @property
    def report(self):
        return self.inner.report

    def select(self, *args, **kwargs):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt("simulated crash")
        return self.inner.select(*args, **kwargs)


# ----------------------------------------------------------------------------- helpers


def small_config(root, **overrides) -> dict:
    config = dict(
        dataset="fashion_mnist",
        data_root=root,
        imbalance="step",
        ratio=2.0,
        pool_size=60,
        test_size=30,
        initial_size=10,
        query_size=5,
        budget=None,
        rounds=3,
        strategy="random",
        train_preset="default",
        train_options={"epochs": 2, "batch_size": 16},
        seed=0,
        device="cpu",
        progress=False,
    )
    return {**config, **overrides}


def tiny_aldata(n_pool=40, n_test=20):
    def make(n, seed):
        labels = np.arange(n) % 4
        images = torch.from_numpy(fake_images(labels, (28, 28), seed)).unsqueeze(1)
        return ImageData(images, torch.from_numpy(labels), ["a", "b", "c", "d"], (0.3,), (0.3,))

    return ALData(make(n_pool, 0), make(n_test, 1))


def check_consistent(records, config):
    rounds, queries = records.rounds_frame(), records.queries_frame()
    num_classes = len(records.meta["data"]["classes"])
    assert list(rounds["round"]) == list(range(config["rounds"] + 1))
    assert list(rounds["n_labeled"]) == label_schedule(
        config["initial_size"], config["query_size"], rounds=config["rounds"]
    )
    assert (rounds["n_labeled"].diff().dropna() == config["query_size"]).all()
    assert queries["pool_index"].is_unique
    assert len(queries) == rounds["n_labeled"].iloc[-1]
    counts = rounds[[f"count_{c}" for c in range(num_classes)]].to_numpy()
    query = rounds[[f"query_{c}" for c in range(num_classes)]].to_numpy()
    assert (counts.sum(1) == rounds["n_labeled"]).all() and (
        query.sum(1) == rounds["n_queried"]
    ).all()
    assert (counts[1:] == counts[:-1] + query[:-1]).all() and query[-1].sum() == 0
    for r in range(len(rounds)):  # the labeled histogram is that of queries up to round r
        hist = np.bincount(queries.loc[queries["round"] <= r, "label"], minlength=num_classes)
        assert (hist == counts[r]).all()
    assert rounds["accuracy"].between(0, 1).all() and (rounds["train_epochs"] >= 1).all()


# ----------------------------------------------------------------------------- schedule and seeds


@pytest.mark.parametrize(
    "initial, query, budget, rounds, expected",
    [
        (15, 70, 575, None, [15, 85, 155, 225, 295, 365, 435, 505, 575]),
        (10, 5, None, 3, [10, 15, 20, 25]),
        (10, 5, 22, None, [10, 15, 20, 22]),
        (10, 5, 100, 2, [10, 15, 20]),
        (10, 5, 10, None, [10]),
        (10, 5, None, 0, [10]),
    ],
    ids=[
        "paper-tiny",
        "rounds",
        "budget-truncates-last",
        "rounds-first",
        "budget-is-initial",
        "zero-rounds",
    ],
)
def test_label_schedule(initial, query, budget, rounds, expected):
    assert label_schedule(initial, query, budget=budget, rounds=rounds) == expected


def test_round_seeds_differ_by_round_and_purpose():
    seeds = {round_seed(0, r, p) for r in range(5) for p in ("init", "train", "select")}
    assert len(seeds) == 15 and round_seed(3, 2, "train") == round_seed(3, 2, "train")


def test_config_round_trips_through_plain_dicts():
    config = ExperimentConfig(
        strategy="bait", strategy_options={"lam": 1.0}, minority_classes=(0, 1)
    )
    again = ExperimentConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == ExperimentConfig.from_dict(config.to_dict()) and again.minority_classes == [
        0,
        1,
    ]
    with pytest.raises(ValueError, match="unknown config fields.*'nope'"):
        ExperimentConfig.from_dict({"nope": 1})


def test_default_config_is_the_paper_tiny_budget_setting():
    config = ExperimentConfig()
    assert config.schedule() == [15, 85, 155, 225, 295, 365, 435, 505, 575]
    assert config.imbalance == "paper" and config.train_preset == "paper"


# ----------------------------------------------------------------------------- the loop


def test_active_loop_steps_with_known_picks():
    data = tiny_aldata()
    from fmlib.models import build_model

    loop = ActiveLoop(
        data,
        build_model("cnn", 4, 1),
        FirstUnlabeled(),
        [4, 7, 10],
        TrainConfig(epochs=1),
        initial=[0, 1, 2, 3],
        seed=0,
        device="cpu",
    )
    assert loop.step() and loop.last.picked.tolist() == [4, 5, 6]
    assert loop.step() and loop.last.picked.tolist() == [7, 8, 9]
    assert loop.last.row["n_labeled"] == 7 and loop.last.row["n_queried"] == 3
    assert not loop.step() and len(loop.last.picked) == 0 and loop.last.report == SelectionReport()
    assert (
        loop.labeled.tolist() == list(range(10))
        and loop.finished
        and loop.last.row["n_labeled"] == 10
    )
    with pytest.raises(RuntimeError, match="finished"):
        loop.step()


def test_in_memory_run_records_are_consistent():
    config = dict(
        initial_size=8,
        query_size=4,
        budget=None,
        rounds=3,
        strategy="first",
        train_preset="default",
        train_options={"epochs": 1},
        device="cpu",
        progress=False,
    )
    records = run_experiment(config, data=tiny_aldata(), strategy=FirstUnlabeled())
    check_consistent(records, config)
    picked = records.queries_frame().query("round > 0")["pool_index"].to_numpy()
    initial = records.queries_frame().query("round == 0")["pool_index"].to_numpy()
    assert picked.tolist() == np.setdiff1d(np.arange(40), initial)[:12].tolist()
    assert records.meta["data"]["source"] == "in-memory" and records.finished


def test_run_writes_every_file(fashion_root, tmp_path):
    config = small_config(fashion_root, output_dir=str(tmp_path / "run"), strategy="fake_fisher")
    records = run_experiment(config, strategy=FakeFisher())
    check_consistent(records, config)
    run = tmp_path / "run"
    meta = json.loads((run / "config.json").read_text())
    assert (
        meta["config"]["strategy"] == "fake_fisher"
        and meta["environment"]["torch"] == torch.__version__
    )
    assert meta["schedule"] == [10, 15, 20, 25] and len(meta["data"]["classes"]) == 10
    assert {"fmlib_version", "git"} <= set(meta)
    frame = load_run(run)
    pd.testing.assert_frame_equal(
        frame.drop(columns=["run", "path"]), records.frame().drop(columns=["run", "path"])
    )
    assert (frame["strategy"] == "fake_fisher").all() and (frame["imbalance"] == "step").all()
    assert (
        load_queries(run)["pool_index"].tolist() == records.queries_frame()["pool_index"].tolist()
    )
    snapshots = load_snapshots(run)
    assert sorted(snapshots) == [0, 1, 2]  # the last round picks nothing
    batch = records.queries_frame().query("round == 2")
    assert snapshots[1]["picked_pool_index"].tolist() == batch["pool_index"].tolist()
    assert snapshots[1]["picked_label"].tolist() == batch["label"].tolist()
    types = dict(zip(snapshots[0]["param_names"], snapshots[0]["param_types"]))  # module classes
    assert types and set(types.values()) <= {"Conv2d", "BatchNorm2d", "Linear"}
    assert frame["fisher_trace"].iloc[:3].gt(0).all() and frame["mask_size"].iloc[:3].gt(0).all()
    assert not list(run.glob(".*.tmp")) and not list((run / "sensitivity").glob(".*.tmp"))


ALL_STRATEGIES = [
    "random",
    "entropy",
    "margin",
    "least_confidence",
    "bald",
    "coreset",
    "badge",
    "bait",
    "fishermask",
]
SMALL_OPTIONS = {
    "bald": {"samples": 3},
    "bait": {"fisher_samples": 16},
    "fishermask": {"fisher_samples": 16, "fraction": 0.001},
}


@pytest.mark.parametrize(
    "name",
    [n if n == "random" else pytest.param(n, marks=pytest.mark.slow) for n in ALL_STRATEGIES],
)
def test_every_strategy_gives_complete_records(tmp_path, name):
    strategies = pytest.importorskip("fmlib.strategies")
    if name not in strategies.STRATEGIES:
        pytest.skip(f"strategy {name!r} not registered")
    config = dict(
        initial_size=8,
        query_size=4,
        budget=None,
        rounds=3,
        strategy=name,
        strategy_options=SMALL_OPTIONS.get(name, {}),
        train_preset="default",
        train_options={"epochs": 1},
        device="cpu",
        progress=False,
        output_dir=str(tmp_path / name),
    )
    records = run_experiment(config, data=tiny_aldata())
    check_consistent(records, config)
    rounds, snapshots = records.rounds_frame(), load_snapshots(tmp_path / name)
    assert rounds["select_time"].iloc[:-1].ge(0).all() and np.isnan(rounds["select_time"].iloc[-1])
    if name in ("bait", "fishermask"):
        assert sorted(snapshots) == [0, 1, 2]
        for r, snap in snapshots.items():
            assert snap["mask_size"] == rounds["mask_size"][r] > 0 and snap["fisher_trace"] > 0
            assert (
                len(snap["picked_score"]) == config["query_size"]
                and np.isfinite(snap["picked_score"]).all()
            )
            batch = records.queries_frame().query(f"round == {r + 1}")
            assert snap["picked_pool_index"].tolist() == batch["pool_index"].tolist()
    else:
        assert not snapshots and (rounds["mask_size"] == -1).all()


# ----------------------------------------------------------------------------- resume


def test_interrupted_run_resumes_to_the_uninterrupted_result(fashion_root, tmp_path):
    config = small_config(fashion_root, strategy="seeded_random")
    whole = run_experiment(
        {**config, "output_dir": str(tmp_path / "whole")}, strategy=SeededRandom()
    )
    part = {**config, "output_dir": str(tmp_path / "part")}
    with pytest.raises(KeyboardInterrupt):
        # dies selecting in round 1
        run_experiment(part, strategy=CrashAfter(SeededRandom(), calls=1))
    assert len(load_run(tmp_path / "part")) == 1
    partial = run_experiment(part, strategy=SeededRandom(), max_rounds=1)  # round 1 only
    assert len(partial.rounds) == 2 and not partial.finished
    resumed = run_experiment(part, strategy=SeededRandom())
    timing = ["train_time", "eval_time", "select_time", "embed_time"]
    pd.testing.assert_frame_equal(
        resumed.rounds_frame().drop(columns=timing),
        whole.rounds_frame().drop(columns=timing),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(resumed.queries_frame(), whole.queries_frame())
    assert resumed.finished

    class Untouchable(FirstUnlabeled):
        def select(self, *args, **kwargs):
            raise AssertionError("a finished run must not select again")

    # neutral fields
    again = run_experiment({**part, "progress": True, "device": None}, strategy=Untouchable())
    pd.testing.assert_frame_equal(again.rounds_frame(), resumed.rounds_frame(), check_exact=True)


def test_mismatched_config_refuses(fashion_root, tmp_path):
    config = small_config(fashion_root, output_dir=str(tmp_path / "run"), rounds=1)
    run_experiment(config, strategy=FirstUnlabeled())
    with pytest.raises(ValueError, match=r"different config.*query_size: 5 there, 6 here"):
        run_experiment({**config, "query_size": 6}, strategy=FirstUnlabeled())


# ----------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"dataset": "mnist"},
            r"unknown dataset 'mnist'; allowed values: \['fashion_mnist', 'cifar10'\]",
        ),
        ({"model": "vgg"}, r"unknown model 'vgg'; allowed values"),
        ({"imbalance": "zipf"}, r"unknown imbalance 'zipf'"),
        ({"initial_method": "kmeans"}, r"unknown initial_method"),
        ({"train_preset": "fast"}, r"unknown train_preset 'fast'"),
        ({"train_options": {"epoch": 3}}, r"train_options: unknown training options \['epoch'\]"),
        (
            {"train_options": {"lr": -1}},
            r"train_options: lr must be a finite number > 0 \(at most 10\), got -1",
        ),
        ({"query_size": 0}, r"query_size must be an integer >= 1"),
        ({"initial_size": 0}, r"initial_size must be an integer >= 1"),
        ({"rounds": None, "budget": None}, r"set budget .* or rounds"),
        ({"budget": 5}, r"budget must be an integer >= 10"),
        (
            {"pool_size": 20, "rounds": 3},
            r"budget: the run would label 25 samples, beyond pool_size \(20\)",
        ),
        ({"pool_size": 5}, r"initial_size 10 is larger than pool_size \(5\)"),
        ({"seed": -1}, r"seed must be an integer >= 0"),
        ({"device": "tpu:0"}, r"device"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}" for k in v),
)
def test_bad_configs_fail_before_any_work(fashion_root, overrides, message, monkeypatch):
    monkeypatch.setattr("fmlib.build.prepare_data", lambda *a, **k: pytest.fail("loaded data"))
    with pytest.raises(ValueError, match=message):
        run_experiment(small_config(fashion_root, **overrides), strategy=FirstUnlabeled())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"pool_size": None, "rounds": 40},
            r"budget: the run would label 210 samples, beyond the pool \(150\)",
        ),
        (
            {"model_options": {"depth": 3}},
            r"model_options: model 'cnn' takes no options",
        ),  # the model is built once
    ],
    ids=["budget", "model_options"],
)
def test_what_needs_the_data_fails_before_training_and_writing(
    fashion_root, tmp_path, monkeypatch, overrides, message
):
    monkeypatch.setattr("fmlib.loop.fit", lambda *a, **k: pytest.fail("trained"))
    # the pool (150) is known once loaded
    config = small_config(fashion_root, output_dir=str(tmp_path / "run"), **overrides)
    with pytest.raises(ValueError, match=message):
        run_experiment(config, strategy=FirstUnlabeled())
    assert not (tmp_path / "run").exists()


def test_unknown_strategy_and_options_fail_early(fashion_root):
    pytest.importorskip("fmlib.strategies")
    with pytest.raises(ValueError, match=r"unknown strategy 'oracle'; allowed values"):
        run_experiment(small_config(fashion_root, strategy="oracle"))
    with pytest.raises(ValueError, match=r"strategy_options: unknown options \['nope'\]"):
        run_experiment(small_config(fashion_root, strategy="random", strategy_options={"nope": 1}))


# ----------------------------------------------------------------------------- smoke configs


def test_smoke_config_shrinks_sizes_and_keeps_everything_else():
    config = ExperimentConfig(
        strategy="fishermask",
        strategy_options={"fraction": 0.005},
        seed=3,
        train_options={"lr": 0.01},
    )
    small = smoke_config(config)
    assert small.schedule() == [15, 25, 35] and small.budget is None
    assert (small.pool_size, small.test_size, small.train_options) == (
        200,
        200,
        {"lr": 0.01, "epochs": 2},
    )
    assert small.strategy_options == {"fraction": 0.005, "fisher_samples": 64}
    assert (small.seed, small.imbalance, small.strategy) == (
        3,
        "paper",
        "fishermask",
    ) and config.pool_size is None
    small.validate()
    # smaller sizes stay; options a strategy does not take are not added
    tiny = smoke_config(
        {
            "strategy": "random",
            "pool_size": 50,
            "query_size": 4,
            "rounds": 1,
            "train_options": {"epochs": 1},
        }
    )
    assert (tiny.pool_size, tiny.schedule(), tiny.train_options, tiny.strategy_options) == (
        50,
        [15, 19],
        {"epochs": 1},
        {},
    )
    assert smoke_config(ExperimentConfig(strategy="bait"), fisher_samples=8).strategy_options == {
        "fisher_samples": 8
    }


def test_config_from_a_run_directory(fashion_root, tmp_path):
    config = small_config(fashion_root, output_dir=str(tmp_path / "run"), rounds=1)
    run_experiment(config)
    assert ExperimentConfig.from_run(tmp_path / "run") == ExperimentConfig.from_dict(config)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        ExperimentConfig.from_run(tmp_path)


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
    records = run_experiment(
        user_config(strategy=strategy, budget=12, strategy_options=options),
        data=(data, data),
        model=TokenBag,
    )
    assert [r["n_labeled"] for r in records.rounds] == [6, 12]


def test_run_experiment_runs_a_tensor_dataset_an_mlp_and_a_user_strategy(tmp_path):
    data = (blobs(90, 3), blobs(45, 4))
    records = run_experiment(
        user_config(strategy=USER, output_dir=str(tmp_path / "run")), data=data, model=MLP
    )
    rounds = pd.read_csv(tmp_path / "run" / "rounds.csv")
    assert list(rounds["n_labeled"]) == [6, 12, 18] and rounds["accuracy"].iloc[-1] > 0.8
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["model_factory"] == "tests.user_parts.MLP" and meta["data"]["source"] == "in-memory"
    assert meta["data"]["classes"] == ["0", "1", "2"] and len(records.rounds) == 3
    # the user's strategy picked least-confident points: recompute round 0's picks by hand
    queries = pd.read_csv(tmp_path / "run" / "queries.csv")
    assert len(queries[queries["round"] == 1]) == 6


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least_confidence", "random", USER])
def test_strategies_that_need_only_logits_run_without_embed_or_head(strategy):
    records = run_experiment(
        user_config(strategy=strategy, budget=12),
        data=(blobs(60, 6), blobs(30, 7)),
        model=LogitsOnly,
    )
    assert [r["n_labeled"] for r in records.rounds] == [6, 12]


def test_fishermask_without_head_runs_on_a_model_without_one():
    cfg = user_config(
        strategy="fishermask",
        budget=12,
        strategy_options={"include_head": False, "fisher_samples": 16, "fraction": 0.05},
    )
    records = run_experiment(cfg, data=(blobs(60, 6), blobs(30, 7)), model=LogitsOnly)
    assert len(records.rounds) == 2


@pytest.mark.parametrize(
    ("strategy", "options", "missing"),
    [
        ("badge", {}, "needs embed.* and head"),
        ("coreset", {}, "needs embed"),
        ("bait", {"fisher_samples": 16}, "needs embed.* and head"),
        ("fishermask", {"fisher_samples": 16}, r"needs head .*include_head=False"),
        ("tests.user_strategy:NeedsEmbed", {}, "'needs_embed' needs embed"),
    ],
)
def test_a_model_lacking_what_the_strategy_needs_is_refused_before_anything_is_written(
    tmp_path, strategy, options, missing
):
    out = tmp_path / "run"
    cfg = user_config(strategy=strategy, strategy_options=options, output_dir=str(out))
    with pytest.raises(ValueError, match=missing):
        run_experiment(cfg, data=(blobs(60, 6), blobs(30, 7)), model=LogitsOnly)
    assert not (out / "config.json").exists() and not (out / "rounds.csv").exists()


def test_a_config_names_the_users_dataset_and_model_and_runs_as_the_objects_do(tmp_path):
    named = user_config(
        **NAMED,
        dataset_options={"pool": 60, "seed": 5},
        model_options={"hidden": 8},
        output_dir=str(tmp_path / "named"),
    )
    records = run_experiment(named)
    from tests.user_parts import blob_data, mlp

    by_object = run_experiment(
        user_config(strategy=USER),
        data=blob_data(pool=60, seed=5),
        model=lambda c: mlp(c, hidden=8),
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
    # the config alone reopens the finished run: nothing in memory needed
    again = run_experiment(named)
    assert [r["accuracy"] for r in again.rounds] == [r["accuracy"] for r in records.rounds]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"dataset_options": {"size": 3}},
            (
                "dataset 'tests.user_parts:blob_data' cannot be called with dataset_options"
                " {'size': 3}"
            ),
        ),
        (
            {"model_options": {"depth": 3}},
            (
                "model 'tests.user_parts:mlp' cannot be called as mlp(num_classes, **model_options)"
                " with model_options {'depth': 3}"
            ),
        ),
        (
            {"model_options": {"dim": 7}},
            "model 'tests.user_parts:mlp' fails on a batch of the pool's inputs",
        ),
        (
            {"dataset": "tests.user_parts:blobs", "dataset_options": {"n": 9, "seed": 0}},
            (
                "dataset 'tests.user_parts:blobs' must return a (pool, test) pair of Datasets or an"
                " ALData, got TensorDataset"
            ),
        ),
    ],
)
def test_the_users_factories_failing_on_their_options_are_named_before_anything_is_written(
    tmp_path, changes, message
):
    with pytest.raises(ValueError) as err:
        run_experiment(user_config(**{**NAMED, **changes}, output_dir=str(tmp_path / "run")))
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()
