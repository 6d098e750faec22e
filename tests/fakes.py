"""Small datasets written in the exact on-disk formats the real loaders read.

Images carry a class-dependent bright patch over noise, so models can learn them.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np


def fake_images(labels: np.ndarray, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """``uint8`` images ``[N, *shape]`` (``shape`` = ``(H, W)`` or ``(H, W, C)``) with a patch per
    class."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 96, size=(len(labels), *shape), dtype=np.uint8)
    h, w = shape[:2]
    for i, c in enumerate(labels):
        row, col = divmod(int(c), 4)
        r0, c0 = (row * h) // 3, (col * w) // 4
        images[i, r0 : r0 + h // 3, c0 : c0 + w // 4] = 255
    return images


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_fashion_mnist(root, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Gzipped IDX files named as in the Debian package and the original release."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", fake_images(labels, (28, 28), seed + n))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def write_fake_cifar10(root, per_batch: int = 20, n_test: int = 30, seed: int = 0) -> Path:
    """CIFAR-10's python format: ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``.

    Like the original: pickled dicts (Python 2 str keys, which ``pickle.load(encoding="latin1")``
    reads as str), ``data`` as ``uint8 [N, 3072]`` (R, G, B planes of 32x32, row-major), ``labels``
    as a list of ints. The md5 sums differ from the release's: see ``accept_fake_cifar10``.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]
    for k, (name, n) in enumerate(names):
        labels = rng.integers(0, 10, size=n)
        hwc = fake_images(labels, (32, 32, 3), seed + k)
        data = hwc.transpose(0, 3, 1, 2).reshape(n, 3072)
        batch = {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": data,
            "filenames": [""] * n,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {"label_names": CIFAR_CLASSES, "num_vis": 3072, "num_cases_per_batch": 10000},
            f,
            protocol=2,
        )
    return Path(root)


def accept_fake_cifar10(monkeypatch, root) -> None:
    """Point torchvision's CIFAR-10 md5 list at the files under ``root`` (for this test only).

    The real loader, md5 checks included, then reads the generated files.
    """
    from torchvision.datasets import CIFAR10

    folder = Path(root) / CIFAR10.base_folder
    md5 = lambda name: hashlib.md5((folder / name).read_bytes()).hexdigest()  # noqa: E731
    monkeypatch.setattr(
        CIFAR10, "train_list", [[name, md5(name)] for name, _ in CIFAR10.train_list]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [[name, md5(name)] for name, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])})


# a small run: 6 initial labels, 6 a round, 18 in all, on the CPU, quiet
SMALL_RUN = dict(
    initial_size=6,
    query_size=6,
    budget=18,
    strategy="entropy",
    train_preset="default",
    device="cpu",
    progress=False,
)
# on tests.user_parts' blobs (3 well separated classes, 90 pool, 45 test): seconds on a CPU
BLOBS_RUN = dict(
    dataset="tests.user_parts:blob_data",
    imbalance="none",
    model="tests.user_parts:mlp",
    **SMALL_RUN,
)


def small_run(**changes) -> dict:
    """The fields of a small run config for data and a model passed to the run
    (:data:`SMALL_RUN` with ``changes``)."""
    return {**SMALL_RUN, **changes}


def blobs_run(tmp_path=None, **changes) -> dict:
    """The fields of a small run config on blobs (:data:`BLOBS_RUN` with ``changes``), writing to
    ``tmp_path`` when one is given."""
    output = {"output_dir": str(tmp_path)} if tmp_path else {}
    return {**BLOBS_RUN, **output, **changes}


# the user's parts by name: tests.user_parts' blobs and MLP, tests.user_strategy's LowestMaxProb
USER = "tests.user_strategy:LowestMaxProb"
DATA, MODEL = "tests.user_parts:blob_data", "tests.user_parts:mlp"
NAMED = dict(dataset=DATA, imbalance="none", model=MODEL, strategy=USER)


def user_config(**changes):
    """An :class:`~fmlib.config.ExperimentConfig` of 6 labels a round up to 18, 20 epochs of lr
    1e-2, for data and a model passed to the run (``changes`` on top)."""
    from fmlib.config import ExperimentConfig

    values = dict(
        initial_size=6,
        query_size=6,
        budget=18,
        strategy="entropy",
        train_preset="default",
        train_options={"epochs": 20, "lr": 1e-2, "batch_size": 8},
        device="cpu",
        progress=False,
    )
    return ExperimentConfig(**{**values, **changes})


def user_run(**changes) -> dict:
    """The fields of a two-round run of :data:`NAMED` (the user's parts by name), 5 epochs a
    round."""
    return {
        **NAMED,
        "initial_size": 6,
        "query_size": 6,
        "budget": 12,
        "train_preset": "default",
        "train_options": {"epochs": 5, "batch_size": 8},
        "device": "cpu",
        "progress": False,
        **changes,
    }


def image_data(n: int, seed: int, classes: int = 4):
    """An :class:`~fmlib.data.ImageData` of ``n`` 28x28 :func:`fake_images`, class ``i %
    classes``."""
    import torch

    from fmlib.data import ImageData

    labels = np.arange(n) % classes
    images = torch.from_numpy(fake_images(labels, (28, 28), seed)).unsqueeze(1)
    return ImageData(
        images, torch.from_numpy(labels), [str(c) for c in range(classes)], (0.3,), (0.3,)
    )


def same_snapshot(a, b) -> bool:
    """Whether two snapshots (dicts of arrays) hold the same keys and arrays; NaN equals NaN in
    float arrays (``split_jaccard`` is NaN unless measured)."""
    return set(a) == set(b) and all(
        np.array_equal(a[k], b[k], equal_nan=np.asarray(b[k]).dtype.kind == "f") for k in b
    )
