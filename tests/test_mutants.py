"""One test per hand-made one-line bug that the rest of the suite lets through.

Each test builds the input that tells the right code from the mutant; the comment says which
one-line bug it kills.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fmlib.analysis.compare import area_under_curve
from fmlib.data import ImageData
from fmlib.datasets import make_imbalanced
from fmlib.models import build_model
from fmlib.strategies import kmeans_pp
from fmlib.train import TrainConfig, evaluate, fit
from tests.fakes import fake_images


def test_badge_starts_at_the_largest_gradient_embedding_not_the_largest_feature():
    # kills: first centre = argmax ||h||² instead of argmax ||a||² ||h||²
    h = torch.tensor(
        [[10.0, 0.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64
    )  # point 0: largest features
    a = torch.tensor(
        [[0.01, -0.01], [0.5, -0.5], [0.1, -0.1]], dtype=torch.float64
    )  # ... but confident
    assert kmeans_pp(a, h, 1, first="norm") == [1]  # ||a||²||h||²: 0.02, 0.5, 0.01


def test_make_imbalanced_keeps_other_samples_for_another_seed_with_the_same_counts():
    # kills: make_imbalanced ignoring its seed
    labels = np.repeat(np.arange(4), 50)
    first, second = (make_imbalanced(labels, "step", ratio=4.0, seed=s) for s in (0, 1))
    assert np.array_equal(np.bincount(labels[first]), np.bincount(labels[second]))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, make_imbalanced(labels, "step", ratio=4.0, seed=0))


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


def test_the_area_under_an_unevenly_spaced_curve_weighs_each_step_by_its_labels():
    # kills: the trapezoid taken as if labels were evenly spaced (a budget-truncated last step is not)
    frame = pd.DataFrame(
        {"path": "run", "seed": 0, "n_labeled": [10, 20, 22], "accuracy": [0.5, 0.7, 0.9]}
    )
    (auc,) = area_under_curve(frame, by=())["auc"]
    assert auc == pytest.approx((0.6 * 10 + 0.8 * 2) / 12)  # evenly spaced would give 0.7


def test_training_stops_when_the_target_accuracy_is_met_exactly():
    # kills: the early stop `>=` target turned into `>` (a target of 1.0 is then never met)
    labels = np.arange(4)
    data = ImageData(torch.from_numpy(fake_images(labels, (28, 28))).unsqueeze(1), torch.from_numpy(labels),
                     ["a", "b", "c", "d"], (0.3,), (0.3,))  # fmt: skip
    torch.manual_seed(0)
    stats = fit(
        build_model("cnn", 4, 1),
        data,
        labels,
        TrainConfig(epochs=60, lr=1e-2, target_train_acc=1.0),
        seed=0,
    )
    assert stats["train_accuracy"] == 1.0 and stats["epochs"] < 60
