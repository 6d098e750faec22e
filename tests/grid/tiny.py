"""Tiny grids of seconds-long runs on a fake FashionMNIST, for the grid's tests."""

from __future__ import annotations

import json
from pathlib import Path

# fails in validate
BROKEN = {
    "name": "broken",
    "strategy": "margin",
    "strategy_options": {"no_such_option": 1},
}


def tiny_grid(root: str, *strategies) -> dict:
    """Runs of seconds: 10 labels, one round of 5 more, one epoch."""
    base = dict(
        dataset="fashion_mnist",
        data_root=root,
        imbalance="none",
        model="cnn",
        initial_size=10,
        query_size=5,
        budget=15,
        train_preset="default",
        train_options={"epochs": 1, "batch_size": 16},
        device="cpu",
        progress=False,
    )
    return {"base": base, "axes": {"strategy": list(strategies)}}


def write_grid(path: Path, grid: dict) -> str:
    path.write_text(json.dumps(grid))
    return str(path)
