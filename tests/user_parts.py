"""A dataset and a model defined outside fmlib, as a user would write them: reached from a config,
the CLI, papermill and the grid as ``"tests.user_parts:blob_data"`` and ``"tests.user_parts:mlp"``
(test_byo)."""

import torch
from torch import nn
from torch.utils.data import TensorDataset


def blobs(n: int, seed: int, dim: int = 20, classes: int = 3) -> TensorDataset:
    """Well separated Gaussian blobs in ``dim`` dimensions, class ``i % classes`` for item ``i``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = 4 * torch.eye(classes, dim)
    return TensorDataset(centres[y] + torch.randn(n, dim, generator=g), y)


def blob_data(
    pool: int = 90, test: int = 45, dim: int = 20, seed: int = 3
) -> tuple[TensorDataset, TensorDataset]:
    """A dataset factory: the (pool, test) pair of TensorDatasets of blobs."""
    return blobs(pool, seed, dim), blobs(test, seed + 1, dim)


class MLP(nn.Module):
    """The model contract: ``forward`` -> logits, ``embed`` -> penultimate features, ``head``."""

    def __init__(self, num_classes: int, dim: int = 20, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.embed(x))


def mlp(num_classes: int, dim: int = 20, hidden: int = 16) -> MLP:
    """A model factory: ``mlp(num_classes, **model_options)``."""
    return MLP(num_classes, dim, hidden)


NOT_CALLABLE = 3
