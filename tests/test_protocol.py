"""The authors' protocol and model beside ours: first query, their ResNet-18,
BatchNorm statistics after short training, float64 selection."""

import copy

import numpy as np
import pytest
import torch

from fmlib.data import ALData, ImageData
from fmlib.experiment import ExperimentConfig, run_experiment
from fmlib.models import build_model
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import get_strategy
from fmlib.train import TrainConfig, evaluate, fit, recompute_batchnorm, train_config
from tests.fakes import fake_images


def image_data(n, seed, classes=4):
    labels = np.arange(n) % classes
    images = torch.from_numpy(fake_images(labels, (28, 28), seed)).unsqueeze(1)
    return ImageData(
        images, torch.from_numpy(labels), [str(c) for c in range(classes)], (0.3,), (0.3,)
    )


# ----------------------------------------------------------------------------- the authors' model


@pytest.mark.parametrize(
    "channels, classes, theirs",
    [(1, 4, 700_400), (1, 10, 701_168), (3, 10, 701_456)],
    ids=["fmnist-imbalanced", "fmnist-10", "cifar10"],
)
def test_authors_resnet18_has_their_parameter_count(channels, classes, theirs):
    # Counts of their resnet.py ResNet18(num_classes) with conv1 set to `channels` inputs.
    model = build_model("authors_resnet18", classes, channels, 28)
    assert sum(p.numel() for p in model.parameters()) == theirs
    assert model.head.bias is None and model.head.in_features == 128
    assert model(torch.zeros(2, channels, 28, 28)).shape == (2, classes)
    assert model(torch.zeros(2, channels, 32, 32)).shape == (2, classes)


def test_authors_resnet18_equals_resnet18_width16_without_head_bias():
    torch.manual_seed(1)
    theirs = build_model("authors_resnet18", 4, 1)
    torch.manual_seed(1)
    ours = build_model("resnet18", 4, 1, width=16, head_bias=False)
    assert all(
        torch.equal(a, b) for a, b in zip(theirs.state_dict().values(), ours.state_dict().values())
    )


@pytest.mark.parametrize(
    "options, match", [({"width": 8}, "no options"), ({"depth": 3}, "no options")]
)
def test_authors_resnet18_takes_no_options(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("authors_resnet18", 4, 1, **options)


@pytest.mark.parametrize(
    "options, match", [({"width": 0}, "width"), ({"head_bias": "no"}, "head_bias")]
)
def test_resnet18_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("resnet18", 4, 1, **options)


# ----------------------------------------------------------------------------- BatchNorm statistics


def test_recompute_batchnorm_sets_the_statistics_of_the_inputs(float64):
    model = build_model("cnn", 4, 1).train()
    x = torch.randn(40, 1, 28, 28) * 3 + 1
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    assert recompute_batchnorm(model, x)
    conv, bn = model.features[0], model.features[1]
    out = conv(x)  # [40, 32, 28, 28]: what the first BatchNorm normalises
    torch.testing.assert_close(bn.running_mean, out.mean((0, 2, 3)))
    torch.testing.assert_close(bn.running_var, out.var((0, 2, 3), unbiased=True))
    assert bn.momentum == 0.1 and model.training and bn.training  # restored
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_recompute_batchnorm_averages_blocks_and_skips_a_single_sample_block(float64):
    model = build_model("cnn", 4, 1).eval()
    x = torch.randn(41, 1, 28, 28)
    recompute_batchnorm(model, x, batch_size=20)  # blocks 20, 20 and a lone 1 (skipped)
    out = model.features[0](x)
    expected = (out[:20].mean((0, 2, 3)) + out[20:40].mean((0, 2, 3))) / 2
    torch.testing.assert_close(model.features[1].running_mean, expected)
    assert not model.training
    assert not recompute_batchnorm(build_model("cnn", 4, 1), x[:1])


def test_a_resnet_trained_on_a_few_labels_beats_chance_in_eval_mode():
    """The paper recipe stops after a few steps on few labels; without recomputed statistics the
    eval-mode ResNet is at chance (0.25 with 4 classes)."""
    pool, test = image_data(48, 0), image_data(200, 1)
    accuracy = {}
    for recompute in (False, True):
        model = build_model("authors_resnet18", 4, 1)
        stats = fit(
            model, pool, np.arange(48), train_config("paper", recompute_bn=recompute), seed=0
        )
        accuracy[recompute] = evaluate(model, test)["accuracy"]
    assert stats["epochs"] <= 10
    assert accuracy[True] >= 0.6, accuracy
    assert accuracy[True] > accuracy[False] + 0.2, accuracy


# ----------------------------------------------------------------------------- first query


def tiny_run(strategy, first_query, **overrides):
    config = dict(
        initial_size=8, query_size=6, budget=None, rounds=2, strategy=strategy, train_preset="default",
        train_options={"epochs": 2, "batch_size": 16}, first_query=first_query, seed=3, device="cpu",
        progress=False, imbalance="none",
    )  # fmt: skip
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


@pytest.mark.parametrize(
    "strategy, first_query, trains", [("bait", "authors", True), ("fishermask", "authors", False),
                                      ("entropy", "authors", False), ("bait", "initial", False),
                                      ("entropy", "trained", True)],
)  # fmt: skip
def test_authors_protocol_trains_only_bait_first(strategy, first_query, trains):
    assert ExperimentConfig(strategy=strategy, first_query=first_query).trains_first() is trains


def test_authors_protocol_run_matches_initial_for_non_bait():
    _, _, authors = tiny_run("margin", "authors")
    _, _, initial = tiny_run("margin", "initial")
    assert authors.queries_frame().equals(initial.queries_frame())


def test_first_query_rejects_unknown_values():
    with pytest.raises(ValueError, match="first_query.*allowed values"):
        ExperimentConfig(first_query="untrained").validate()


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("name, options", [("fishermask", {"fraction": 0.01}), ("bait", {})])
def test_float64_precision_equals_the_strategy_on_a_float64_model(name, options, one_thread):
    pool = image_data(50, 0)
    model = build_model("cnn", 4, 1)
    fit(model, pool, np.arange(12), TrainConfig(epochs=2, batch_size=16), seed=0)
    labeled, unlabeled = np.arange(12), np.arange(12, 50)
    fast = get_strategy(name, precision="float64", fisher_samples=40, **options)
    picks = fast.select(model, pool, labeled, unlabeled, 8, seed=1)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    oracle = get_strategy(name, fisher_samples=40, **options)
    expected = oracle.select(copy.deepcopy(model).double(), pool, labeled, unlabeled, 8, seed=1)
    assert picks.tolist() == expected.tolist()
    assert fast.report.fisher.fisher_trace == pytest.approx(
        oracle.report.fisher.fisher_trace, rel=1e-12
    )


def test_precision_rejects_unknown_values():
    with pytest.raises(ValueError, match="precision.*allowed values"):
        get_strategy("fishermask", precision="half")
