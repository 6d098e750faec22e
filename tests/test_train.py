import numpy as np
import pytest
import torch
from torch import nn

from fmlib.data import ImageData
from fmlib.datasets import initial_labeled, prepare_data
from fmlib.models import build_model
from fmlib.train import (
    TrainConfig,
    _augment,
    evaluate,
    fit,
    predict_proba,
    recompute_batchnorm,
    reset_parameters,
    train_config,
)
from tests.conftest import requires_fashion_mnist
from tests.fakes import fake_images, image_data
from tests.user_parts import MLP, ItemDataset, blobs, trained_noisy


def tiny_data(n=80, seed=0):
    labels = np.arange(n) % 4
    images = torch.from_numpy(fake_images(labels, (28, 28), seed)).unsqueeze(1)
    return ImageData(images, torch.from_numpy(labels), ["a", "b", "c", "d"], (0.3,), (0.3,))


def test_fit_is_deterministic_for_a_seed():
    data = tiny_data()
    states = []
    for _ in range(2):
        model = build_model("cnn", 4, 1)
        stats = fit(model, data, np.arange(40), TrainConfig(epochs=2, batch_size=16), seed=3)
        states.append(model.state_dict())
    assert stats["epochs"] == 2
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_reinit_resets_weights_and_batchnorm_statistics():
    data = tiny_data()
    model = build_model("cnn", 4, 1)
    reset_parameters(model, seed=7)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, data, np.arange(40), TrainConfig(epochs=1, reinit=False), seed=0)
    assert not torch.equal(model.features[1].running_mean, fresh["features.1.running_mean"])
    reset_parameters(model, seed=7)
    assert all(torch.equal(fresh[k], v) for k, v in model.state_dict().items())


def test_target_accuracy_stops_early_and_clamps_gradients():
    data = tiny_data()
    model = build_model("cnn", 4, 1)
    stats = fit(model, data, np.arange(80), train_config("paper", epochs=50), seed=0)
    assert stats["train_accuracy"] >= 0.99 and stats["epochs"] < 50


def test_grad_clip_value_is_applied(monkeypatch):
    seen = []
    real = torch.nn.utils.clip_grad_value_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_value_", lambda p, v: (seen.append(v), real(p, v))
    )
    fit(
        build_model("cnn", 4, 1),
        tiny_data(),
        np.arange(16),
        TrainConfig(epochs=1, grad_clip_value=0.1),
        seed=0,
    )
    assert seen and set(seen) == {0.1}


def test_augment_keeps_shape_and_is_seeded():
    x = torch.randn(5, 3, 32, 32)
    a = _augment(x, torch.Generator().manual_seed(1))
    b = _augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_single_sample_labeled_set_trains():
    stats = fit(build_model("cnn", 4, 1), tiny_data(), [3], TrainConfig(epochs=1), seed=0)
    assert stats["epochs"] == 1


def test_predict_and_evaluate():
    data = tiny_data()
    model = build_model("cnn", 4, 1)
    fit(model, data, np.arange(80), TrainConfig(epochs=5), seed=0)
    proba = predict_proba(model, data, batch_size=7)
    assert proba.shape == (80, 4) and torch.allclose(proba.sum(1), torch.ones(80))
    metrics = evaluate(model, data)
    pred = proba.argmax(1).numpy()
    assert metrics["accuracy"] == pytest.approx((pred == data.labels.numpy()).mean())
    assert metrics["balanced_accuracy"] == pytest.approx(np.mean(metrics["per_class_accuracy"]))
    assert not model.training


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(optimizer="rmsprop"), "adam"),
        (dict(epochs=0), "epochs"),
        (dict(lr=0), "lr"),
        (dict(target_train_acc=1.5), "target_train_acc"),
    ],
    ids=["optimizer", "epochs", "lr", "target"],
)
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_presets_and_unknown_options():
    assert (
        train_config("paper").grad_clip_value == 0.1 and train_config("paper", epochs=5).epochs == 5
    )
    with pytest.raises(ValueError, match="allowed"):
        train_config("fast")
    with pytest.raises(ValueError, match="momentumm"):
        train_config("default", momentumm=0.5)


@requires_fashion_mnist
def test_short_training_beats_chance_on_fashion_mnist():
    data = prepare_data("fashion_mnist", pool_size=2000, test_size=1000, seed=0)
    model = build_model("cnn", 10, 1)
    fit(
        model,
        data.pool,
        initial_labeled(data.pool.labels.numpy(), 300, "balanced", 0),
        TrainConfig(epochs=5),
        seed=0,
    )
    assert evaluate(model, data.test)["accuracy"] > 0.6  # chance is 0.1


def test_reinit_without_batchnorm_keeps_its_statistics_and_draws_the_same_weights():
    from torch import nn

    from fmlib.train import reset_parameters

    def net():
        torch.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
        model[1].running_mean.fill_(0.7)
        model[1].weight.data.fill_(2.0)
        return model

    kept, reset = net(), net()
    reset_parameters(kept, seed=1, batchnorm=False)
    reset_parameters(reset, seed=1)
    assert torch.equal(kept[1].running_mean, torch.full((2,), 0.7))
    assert torch.equal(kept[1].weight, torch.full((2,), 2.0))
    assert torch.equal(reset[1].running_mean, torch.zeros(2))
    for a, b in [(kept[0], reset[0]), (kept[3], reset[3])]:
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


class Constant(nn.Module):
    """Predicts class 0 for every input."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(len(x), 2)


def test_balanced_accuracy_is_the_mean_recall_on_an_imbalanced_test_set():
    # kills: evaluate's balanced accuracy replaced by plain accuracy
    labels = np.array([0] * 8 + [1] * 2)
    data = ImageData(
        torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.from_numpy(labels), ["a", "b"]
    )
    metrics = evaluate(Constant(), data, device="cpu")
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)  # (8/8 + 0/2) / 2
    assert metrics["per_class_accuracy"] == [1.0, 0.0]


def test_training_stops_when_the_target_accuracy_is_met_exactly():
    # kills: the early stop `>=` target turned into `>` (a target of 1.0 is then never met)
    labels = np.arange(4)
    data = ImageData(
        torch.from_numpy(fake_images(labels, (28, 28))).unsqueeze(1),
        torch.from_numpy(labels),
        ["a", "b", "c", "d"],
        (0.3,),
        (0.3,),
    )
    torch.manual_seed(0)
    stats = fit(
        build_model("cnn", 4, 1),
        data,
        labels,
        TrainConfig(epochs=60, lr=1e-2, target_train_acc=1.0),
        seed=0,
    )
    assert stats["train_accuracy"] == 1.0 and stats["epochs"] < 60


@pytest.mark.parametrize("kind", ["std", "notebook"])
def test_the_train_bar_ends_full_and_unfailed_when_training_stops_early(monkeypatch, kind):
    """Stopped at the target accuracy, the bar counts the epochs run, its total is that count, and
    the JupyterLab widget is not marked failed (red), even after the garbage collector ran."""
    import gc

    from tqdm import notebook, std

    import fmlib.train

    bars = []
    base = notebook.tqdm if kind == "notebook" else std.tqdm

    class Recorded(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(fmlib.train, "progress_bar", Recorded)
    model = build_model("cnn", 4, 1)
    stats = fit(
        model, tiny_data(), np.arange(80), train_config("paper", epochs=50), seed=0, progress=True
    )
    gc.collect()
    (bar,) = bars
    assert stats["epochs"] < 50 and bar.n == bar.total == stats["epochs"]
    assert bar.disable  # closed
    if kind == "notebook":
        assert bar.container.children[1].bar_style != "danger"


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


POOL = blobs(80, 0)


def test_predict_proba_scores_in_eval_mode_and_restores_the_mode():
    model = trained_noisy().train()
    x = POOL.tensors[0]
    with torch.no_grad():
        expected = model.eval()(x).softmax(1)
    model.train()
    torch.manual_seed(1)
    assert torch.allclose(predict_proba(model, x), expected)
    assert model.training and model.body[3].training


def test_fit_shuffles_by_its_seed():
    def weights(seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 3))
        fit(
            model, POOL, np.arange(60), TrainConfig(epochs=2, batch_size=8, reinit=False), seed=seed
        )
        return model[0].weight.detach().clone()

    assert torch.equal(weights(0), weights(0)) and not torch.equal(weights(0), weights(1))


class ConstantOfThree(nn.Module):
    """Always predicts class 0 of three."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(len(x), 3)


def test_balanced_accuracy_averages_the_classes_the_test_set_holds():
    # kills: the mean taken over every class, NaN for a class without test samples
    labels = np.array([0] * 8 + [1] * 2)
    data = ImageData(
        torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.from_numpy(labels), ["a", "b", "c"]
    )
    metrics = evaluate(ConstantOfThree(), data, device="cpu")
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)  # (8/8 + 0/2) / 2; class c: none
    assert np.isnan(metrics["per_class_accuracy"][2])


def test_train_accuracy_counts_every_labeled_sample_of_the_epoch():
    # kills: the epoch's correct count divided by the last batch's size (10 samples, batches 4-4-2)
    data = ImageData(
        torch.zeros(10, 1, 4, 4, dtype=torch.uint8),
        torch.zeros(10, dtype=torch.long),
        ["a", "b", "c"],
    )
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-3)
    stats = fit(ConstantOfThree(), data, np.arange(10), config, seed=0, device="cpu")
    assert stats["train_accuracy"] == 1.0  # class 0 is always predicted, every label is 0


def test_reset_parameters_follows_its_seed():
    # kills: the re-initialisation seeded with a constant instead of its seed
    def weights(seed):
        model = build_model("cnn", 4, 1)
        reset_parameters(model, seed)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(3), weights(3)) and not torch.equal(weights(3), weights(4))


@pytest.mark.parametrize(
    "kwargs, ok",
    [
        (dict(epochs=1), True),
        (dict(batch_size=1), True),
        (dict(batch_size=0), False),
        (dict(epochs=-1), False),
        (dict(lr=1e-12), True),
        (dict(lr=-1e-3), False),
        (dict(target_train_acc=1.0), True),
        (dict(target_train_acc=1e-6), True),
        (dict(target_train_acc=0.0), False),
        (dict(target_train_acc=1.0001), False),
        (dict(grad_clip_value=1e-9), True),
        (dict(grad_clip_value=0.0), False),
        (dict(grad_clip_value=-1.0), False),
        (dict(optimizer="sgd"), True),
    ],
    ids=repr,
)
def test_train_config_values_at_their_bounds(kwargs, ok):
    if ok:
        assert TrainConfig(**kwargs).to_dict() == {**TrainConfig().to_dict(), **kwargs}
    else:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            TrainConfig(**kwargs)


def constant_data(n: int) -> ImageData:
    return ImageData(
        torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
        torch.zeros(n, dtype=torch.long),
        ["a", "b", "c"],
    )


def test_a_batch_of_one_is_skipped_unless_it_is_the_whole_labeled_set():
    # 9 samples in batches 4-4-1: the last one trains nothing and counts as not correct
    config = TrainConfig(epochs=1, batch_size=4)
    stats = fit(ConstantOfThree(), constant_data(9), np.arange(9), config, seed=0, device="cpu")
    assert stats["train_accuracy"] == pytest.approx(8 / 9)
    stats = fit(ConstantOfThree(), constant_data(9), [4], config, seed=0, device="cpu")
    assert stats["train_accuracy"] == 1.0 and stats["epochs"] == 1


def test_fit_reports_the_mean_loss_over_the_labeled_set_and_its_time():
    config = TrainConfig(epochs=3, batch_size=4, lr=1e-12)
    stats = fit(ConstantOfThree(), constant_data(10), np.arange(10), config, seed=0, device="cpu")
    loss = -torch.log_softmax(torch.tensor([1.0, 0.0, 0.0]), 0)[0].item()
    assert stats["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert stats["epochs"] == 3 and stats["seconds"] >= 0
    assert set(stats) == {"epochs", "train_accuracy", "train_loss", "seconds"}
    with pytest.raises(ValueError, match="indices must not be empty"):
        fit(ConstantOfThree(), constant_data(10), [], config, device="cpu")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fit_builds_the_optimizer_with_every_value_of_the_config(monkeypatch, optimizer):
    seen = {}
    real = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]

    def spy(params, **kwargs):
        seen.update(kwargs)
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, {"adam": "Adam", "sgd": "SGD"}[optimizer], spy)
    config = TrainConfig(epochs=1, optimizer=optimizer, lr=0.02, momentum=0.3, weight_decay=0.01)
    fit(ConstantOfThree(), constant_data(4), np.arange(4), config, seed=0, device="cpu")
    expected = {"lr": 0.02, "weight_decay": 0.01}
    assert seen == (expected if optimizer == "adam" else {**expected, "momentum": 0.3})


def test_without_a_target_accuracy_every_epoch_runs():
    config = TrainConfig(epochs=4, batch_size=4, target_train_acc=None)
    stats = fit(ConstantOfThree(), constant_data(8), np.arange(8), config, seed=0, device="cpu")
    assert stats["epochs"] == 4 and stats["train_accuracy"] == 1.0
    config = TrainConfig(epochs=4, batch_size=4, target_train_acc=1.0)
    stats = fit(ConstantOfThree(), constant_data(8), np.arange(8), config, seed=0, device="cpu")
    assert stats["epochs"] == 1


def test_recompute_batchnorm_needs_two_samples_and_a_batchnorm_layer():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    assert not recompute_batchnorm(model, torch.randn(1, 3))
    assert torch.equal(model[1].running_mean, torch.zeros(3))
    x = torch.randn(2, 3)
    assert recompute_batchnorm(model, x)
    with torch.no_grad():
        torch.testing.assert_close(model[1].running_mean, model[0](x).mean(0))
    assert not recompute_batchnorm(nn.Sequential(nn.Linear(3, 3)), x)


def test_predict_proba_of_nothing_is_empty():
    assert predict_proba(ConstantOfThree(), torch.zeros(0, 1, 4, 4), device="cpu").shape == (0, 0)


def test_predict_proba_names_a_non_finite_sample_by_its_place_among_all_inputs():
    x = torch.zeros(7, 20)
    x[5] = float("nan")
    model = nn.Linear(20, 3)
    with pytest.raises(ValueError, match=r"NaN or inf logits for samples \[5\] of the non-finite"):
        predict_proba(model, x, batch_size=2)


class NanForLargeInputs(nn.Module):
    """Logits ``[x.sum(), 0, 0]`` per sample, NaN where the sample's sum exceeds 1: finite inputs,
    non-finite logits."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        s = x.flatten(1).sum(1) * self.scale
        s = torch.where(s > 1, torch.full_like(s, float("nan")), s)
        return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], 1)


def test_predict_proba_refuses_nan_logits_of_finite_inputs_and_names_the_sample():
    x = torch.zeros(6, 4)
    x[3] = 1.0
    with pytest.raises(ValueError, match=r"NaN or inf logits for samples \[3\] of the finite"):
        predict_proba(NanForLargeInputs(), x, batch_size=4, device="cpu")
    probs = predict_proba(NanForLargeInputs(), torch.zeros(5, 4), batch_size=4, device="cpu")
    torch.testing.assert_close(probs, torch.full((5, 3), 1 / 3))
