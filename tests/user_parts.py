"""Datasets and models defined outside fmlib, as a user would write them: reached from a config,
the CLI, papermill and the grid as ``"tests.user_parts:blob_data"`` and ``"tests.user_parts:mlp"``;
and the parts the tests pass as objects: a model of logits only, a map-style dataset read item by
item, a model whose train and eval modes score differently."""

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset


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


class LogitsOnly(nn.Module):
    """Logits only: no ``embed``, no ``head``."""

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


class Noisy(nn.Module):
    """BatchNorm and dropout: train mode and eval mode score differently."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(16, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.embed(x))


def trained_noisy() -> Noisy:
    """A :class:`Noisy` fitted for two epochs on the first 40 of ``blobs(80, 0)``."""
    from fmlib.train import TrainConfig, fit

    torch.manual_seed(0)
    model = Noisy()
    fit(model, blobs(80, 0), np.arange(40), TrainConfig(epochs=2, batch_size=16), seed=0)
    return model
