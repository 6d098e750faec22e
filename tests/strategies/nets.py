"""Small models and pools for the strategies' tests: a tanh MLP with ``embed`` and ``head``, a
model that predicts a lookup table of probabilities, and a seeded pool of images."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fmlib.data import ImageData

NUM_CLASSES = 3


class TinyNet(nn.Module):
    """``embed``: flatten, linear 64 -> 6, tanh; ``head``: linear 6 -> 3."""

    def __init__(self, side: int = 8, width: int = 6, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(side * side, width), nn.Tanh())
        self.head = nn.Linear(width, num_classes)

    def embed(self, x):
        return self.features(x)

    def forward(self, x):
        return self.head(self.embed(x))


class LookupModel(nn.Module):
    """Predicts ``probs[i]`` for the image whose first pixel is ``i`` (see :func:`make_pool`)."""

    def __init__(self, probs):
        super().__init__()
        probs = torch.as_tensor(probs, dtype=torch.get_default_dtype()).clamp_min(1e-9)
        self.head = nn.Linear(len(probs), probs.shape[1], bias=False)
        with torch.no_grad():
            self.head.weight.copy_(probs.log().T)

    def embed(self, x):
        index = (x[:, 0, 0, 0] * 255).round().long()
        return nn.functional.one_hot(index, self.head.in_features).to(x.dtype)

    def forward(self, x):
        return self.head(self.embed(x))


def make_pool(n: int = 40, side: int = 8, seed: int = 0) -> ImageData:
    """Random 1 x side x side images whose first pixel is the sample index; mean 0, std 1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, side, side), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    labels = rng.integers(0, NUM_CLASSES, size=n)
    return ImageData(
        torch.from_numpy(images), torch.from_numpy(labels), ["a", "b", "c"], (0.0,), (1.0,)
    )


FAST_OPTIONS = {  # small settings so every strategy runs in well under a second
    "random": {},
    "entropy": {},
    "margin": {},
    "least_confidence": {},
    "bald": {"samples": 4},
    "coreset": {},
    "badge": {},
    "bait": {"fisher_samples": 16},
    "fishermask": {"fisher_samples": 16, "fraction": 0.05},
}
