"""The seeds of a run.

``data_seed`` (default ``seed``) fixes the pool, the test subset and the initial set. Everything
random in round ``r`` (weight init, shuffling, the strategy's choices) is seeded from
``round_seed(seed, r, purpose)``, never from RNG state carried over from earlier rounds.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

_PURPOSES = {"init": 0, "train": 1, "select": 2}


def round_seed(seed: int, round: int, purpose: str) -> int:
    """Independent 32-bit seed for one purpose (``"init"``, ``"train"``, ``"select"``) in one
    round."""
    if purpose not in _PURPOSES:
        raise ValueError(f"purpose must be one of {list(_PURPOSES)}, got {purpose!r}")
    return int(
        np.random.SeedSequence(entropy=seed, spawn_key=(round, _PURPOSES[purpose])).generate_state(
            1
        )[0]
    )


@contextmanager
def seeded(seed: int, device: torch.device | None = None):
    """Seed torch, numpy and ``random``'s global RNGs inside the block and restore them after,
    so a strategy or model that draws from global state stays a function of ``seed``."""
    devices = [device] if device is not None and device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
