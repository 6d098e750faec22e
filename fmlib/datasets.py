"""Built-in datasets, imbalanced pools and initial labeled sets: the pool and test set of a run
(:func:`prepare_data`), as the data types of :mod:`fmlib.data`.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fmlib.data import ALData, DatasetData, ImageData, as_al_data, cache_dir
from fmlib.named import is_named, resolve_callable

DATASETS = ("fashion_mnist", "cifar10")
IMBALANCE_PROFILES = ("none", "step", "longtail", "paper")
INITIAL_METHODS = ("random", "balanced")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Per-channel statistics of the training sets (test-time normalisation).
_STATS = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
_FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class Splits:
    """Train and test splits of one dataset."""

    train: ImageData
    test: ImageData
    classes: list[str] = field(default_factory=list)


def load_dataset(
    name: str, root: str | os.PathLike | None = None, download: bool = False
) -> Splits:
    """Load a dataset's train and test splits as uint8 images and int64 labels.

    Args:
        name: ``"fashion_mnist"`` or ``"cifar10"``.
        root: folder to look in first (and to download into).
        download: fetch through torchvision when not found (needs internet).

    FashionMNIST is looked for in ``root`` (IDX files, gzipped or not, directly or in
    torchvision's ``FashionMNIST/raw``), then in ``/usr/share/datasets/fashion-mnist``
    (Debian package ``dataset-fashion-mnist``), then downloaded. CIFAR-10 is read by
    ``torchvision.datasets.CIFAR10`` from ``root/cifar-10-batches-py`` (the python format),
    whose files must pass torchvision's md5 checks. Downloads go to ``root``, by default
    :func:`fmlib.data.cache_dir` (``$XDG_CACHE_HOME/fmlib``, ``~/.cache/fmlib``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed values: {list(DATASETS)}")
    if name == "fashion_mnist":
        return _load_fashion_mnist(root, download)
    return _load_cifar10(root, download)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (
        EOFError,
        OSError,
        IndexError,
        ValueError,
    ) as err:  # truncated gzip, bad header, short data
        raise OSError(
            f"cannot read {path}: the file is damaged or truncated ({type(err).__name__}: {err}); "
            "delete it and install or download it again"
        ) from err


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (
        folder / stem,
        folder / f"{stem}.gz",
        folder / "FashionMNIST" / "raw" / stem,
        folder / "FashionMNIST" / "raw" / f"{stem}.gz",
    ):
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist(root, download: bool) -> Splits:
    folders = ([Path(root)] if root is not None else []) + [DEBIAN_FASHION_MNIST]
    for folder in folders:
        found = {
            split: [_find_idx(folder, s) for s in stems] for split, stems in _FASHION_FILES.items()
        }
        if all(p is not None for paths in found.values() for p in paths):
            break
    else:
        if not download:
            looked = ", ".join(str(f) for f in folders)
            raise FileNotFoundError(
                f"FashionMNIST not found (looked in: {looked}). Install it with "
                "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass download=True "
                "with a root folder to fetch it through torchvision."
            )
        from torchvision.datasets import FashionMNIST

        target = Path(root or cache_dir())
        for train in (True, False):
            FashionMNIST(str(target), train=train, download=True)
        return _load_fashion_mnist(target, download=False)
    mean, std = _STATS["fashion_mnist"]
    out = {}
    for split, (img_path, lbl_path) in found.items():
        images = torch.from_numpy(_read_idx(img_path).copy()).unsqueeze(1)
        labels = torch.from_numpy(_read_idx(lbl_path).astype(np.int64))
        out[split] = ImageData(images, labels, list(_FASHION_CLASSES), mean, std, "fashion_mnist")
    return Splits(out["train"], out["test"], list(_FASHION_CLASSES))


def _load_cifar10(root, download: bool) -> Splits:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    target = Path(root) if root is not None else cache_dir()
    folder = target / CIFAR10.base_folder
    # md5-checks every file; with download, first fetches cifar-10-python.tar.gz into target unless
    # they pass
    try:
        splits = [
            CIFAR10(str(target), train=train, download=download and train)
            for train in (True, False)
        ]
    except RuntimeError as err:
        checks = [
            (CIFAR10.meta["filename"], CIFAR10.meta["md5"]),
            *CIFAR10.train_list,
            *CIFAR10.test_list,
        ]
        missing = [name for name, _ in checks if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 not found: {folder} lacks {missing}. Pass download=True to fetch it"
                " through torchvision (needs internet), or copy the python-format batches"
                " (cifar-10-python.tar.gz, extracted) there."
            ) from err
        corrupt = [name for name, md5 in checks if not check_integrity(str(folder / name), md5)]
        if not corrupt:
            raise
        raise ValueError(
            f"CIFAR-10 in {folder}: {corrupt} fail torchvision's md5 check (corrupted, or not the"
            " original release). Delete them and pass download=True, or extract the original"
            " cifar-10-python.tar.gz there."
        ) from err
    classes = list(splits[0].classes)
    mean, std = _STATS["cifar10"]
    train, test = (
        ImageData(
            torch.from_numpy(split.data)
            .permute(0, 3, 1, 2)
            .contiguous(),  # torchvision's [N, H, W, 3] -> [N, 3, H, W]
            torch.as_tensor(split.targets, dtype=torch.int64),
            classes,
            mean,
            std,
            "cifar10",
        )
        for split in splits
    )
    return Splits(train, test, classes)


# ----------------------------------------------------------------------------- imbalance


PAPER_TRAIN_COUNTS = (250, 5000, 250, 250)  # classes 0-3; class 1 is the majority
PAPER_TEST_PER_CLASS = 1000


TRAIN_PER_CLASS = {"fashion_mnist": 6000, "cifar10": 5000}  # training images per class (10)


def pool_shape(
    name, imbalance: str, ratio: float = 1.0, minority_classes=None, pool_size: int | None = None
) -> tuple[int, int] | None:
    """``(pool size, classes)`` of a built-in dataset's pool, known before it is loaded (the
    bounds of a config's checks); ``None`` for a dataset factory or values that do not build."""
    if not isinstance(name, str) or name not in TRAIN_PER_CLASS:
        return None
    if imbalance == "paper":
        counts = np.asarray(PAPER_TRAIN_COUNTS)
    else:
        try:
            counts = imbalanced_counts(
                [TRAIN_PER_CLASS[name]] * 10, imbalance, ratio, minority_classes
            )
        except (TypeError, ValueError):
            return None
    size = int(counts.sum())
    if isinstance(pool_size, int) and not isinstance(pool_size, bool) and pool_size >= 1:
        size = min(size, pool_size)  # a bad pool_size is the size checks' to name
    return size, len(counts)


def imbalanced_counts(counts, profile: str, ratio: float, minority_classes=None) -> np.ndarray:
    """Target number of samples per class for an imbalance profile.

    Args:
        counts: available samples per class, ``[C]``.
        profile: ``"none"``, ``"step"`` or ``"longtail"`` (see :func:`make_imbalanced`).
        ratio: largest / smallest class size, ``>= 1``.
        minority_classes: classes shrunk by ``"step"`` (default: the first half).
    """
    counts = np.asarray(counts, dtype=np.int64)
    num_classes = len(counts)
    if profile not in IMBALANCE_PROFILES or profile == "paper":
        raise ValueError(
            f"profile must be one of {list(IMBALANCE_PROFILES[:3])} here, got {profile!r}"
        )
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    if profile == "none":
        return counts.copy()
    if profile == "step":
        minority = (
            list(range(num_classes // 2)) if minority_classes is None else list(minority_classes)
        )
        bad = [c for c in minority if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"minority_classes must be in 0..{num_classes - 1}, got {bad}")
        out = counts.copy()
        out[minority] = np.floor(counts[minority] / ratio).astype(np.int64)
        return out
    base = counts.min()  # longtail: class c keeps base * ratio^(-c/(C-1))
    decay = ratio ** (-np.arange(num_classes) / max(num_classes - 1, 1))
    return np.floor(base * decay + 1e-9).astype(np.int64)


def make_imbalanced(
    labels, profile: str, ratio: float = 1.0, seed: int = 0, minority_classes=None
) -> np.ndarray:
    """Indices of an imbalanced subset of ``labels``.

    Args:
        labels: ``int [N]`` class labels.
        profile: ``"none"`` (everything), ``"step"`` (``minority_classes`` keep
            ``floor(n_c / ratio)`` samples), ``"longtail"`` (class ``c`` keeps
            ``floor(n_min * ratio^(-c/(C-1)))``: exponential decay, largest/smallest = ratio),
            ``"paper"`` (classes 0-3 with 250/5000/250/250 samples; ``ratio`` unused).
        ratio: imbalance ratio, ``>= 1``.
        seed: which samples of each class are kept.

    Returns:
        Sorted ``int64`` indices into ``labels``.
    """
    labels = np.asarray(labels)
    if profile not in IMBALANCE_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed values: {list(IMBALANCE_PROFILES)}")
    num_classes = int(labels.max()) + 1
    available = np.bincount(labels, minlength=num_classes)
    if profile == "paper":
        target = np.zeros(num_classes, dtype=np.int64)
        target[: len(PAPER_TRAIN_COUNTS)] = PAPER_TRAIN_COUNTS
        short = [c for c in range(num_classes) if target[c] > available[c]]
        if short:
            raise ValueError(
                f"profile 'paper' needs {PAPER_TRAIN_COUNTS} samples of classes 0-3; classes"
                f" {short} have fewer"
            )
    else:
        target = imbalanced_counts(available, profile, ratio, minority_classes)
    return _sample_per_class(labels, target, seed)


def _sample_per_class(labels: np.ndarray, target, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero(labels == c), size=int(n), replace=False)
        for c, n in enumerate(target)
        if n
    ]
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, dtype=np.int64)


def paper_test_indices(labels, seed: int = 0) -> np.ndarray:
    """The paper's balanced test set: 1000 per class of classes 0-3."""
    labels = np.asarray(labels)
    target = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    target[: len(PAPER_TRAIN_COUNTS)] = PAPER_TEST_PER_CLASS
    return _sample_per_class(labels, target, seed)


def initial_labeled(labels, size: int, method: str = "random", seed: int = 0) -> np.ndarray:
    """Seeded initial labeled set: positions into ``labels``.

    Args:
        labels: ``int [N]`` pool labels.
        size: how many to label, ``1 <= size <= N``.
        method: ``"random"`` (uniform over the pool) or ``"balanced"`` (``size // C``
            per class, the remainder to random classes; classes too small give their
            all and the rest is drawn uniformly).
    """
    labels = np.asarray(labels)
    if method not in INITIAL_METHODS:
        raise ValueError(
            f"unknown initial method {method!r}; allowed values: {list(INITIAL_METHODS)}"
        )
    if not 1 <= size <= len(labels):
        raise ValueError(f"initial size must be in 1..{len(labels)} (the pool size), got {size}")
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(len(labels), size=size, replace=False)).astype(np.int64)
    classes = np.unique(labels)
    per_class = np.full(len(classes), size // len(classes))
    per_class[rng.choice(len(classes), size=size % len(classes), replace=False)] += 1
    chosen = []
    for c, n in zip(classes, per_class):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.choice(members, size=min(n, len(members)), replace=False))
    chosen = np.concatenate(chosen)
    missing = size - len(chosen)
    if missing:
        rest = np.setdiff1d(np.arange(len(labels)), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=missing, replace=False)])
    return np.sort(chosen).astype(np.int64)


# ------------------------------------------------------------------------ a run's pool and test set


def prepare_data(
    name: str,
    *,
    root=None,
    download: bool = False,
    imbalance: str = "none",
    ratio: float = 1.0,
    minority_classes=None,
    pool_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    options: Mapping | None = None,
) -> ALData:
    """Load a dataset and build the pool and test set of an AL run.

    ``name`` is a built-in dataset (:data:`DATASETS`) or ``"package.module:function"``, a dataset
    factory of your own called as ``function(**options)`` that returns a ``(pool, test)`` pair of
    torch Datasets of ``(x, y)`` items (or an :class:`ALData`); its data is then shaped like a
    built-in one's. ``imbalance="paper"`` keeps classes 0-3 (250/5000/250/250 in the pool) and a
    balanced test set of 1000 per class (built-in datasets only). Otherwise the pool is the
    imbalanced subset of the training set, capped at ``pool_size`` (a stratified random subset),
    and the test set a random subset of ``test_size`` (all when ``None``).
    """
    if is_named(name):
        if imbalance == "paper":
            raise ValueError(
                "imbalance 'paper' is the FashionMNIST/CIFAR-10 preset (classes 0-3 with"
                f" {list(PAPER_TRAIN_COUNTS)}); with dataset factory {name!r} use 'none' (its data"
                " as it is), 'step' or 'longtail'"
            )
        made = _from_factory(name, options or {})
        try:
            splits = as_al_data(made)
        except ValueError as err:
            raise ValueError(
                f"dataset {name!r} must return a (pool, test) pair of Datasets or an ALData, got "
                f"{type(made).__name__} ({err})"
            ) from None
        train, test, classes = splits.pool, splits.test, splits.classes
    else:
        if options:
            raise ValueError(
                f"dataset_options {dict(options)!r} are passed to a dataset factory "
                f"('package.module:function'); built-in dataset {name!r} takes none"
            )
        splits = load_dataset(name, root=root, download=download)
        train, test, classes = splits.train, splits.test, splits.classes
    pool_idx = make_imbalanced(train.labels.numpy(), imbalance, ratio, seed, minority_classes)
    if imbalance == "paper":
        classes = classes[: len(PAPER_TRAIN_COUNTS)]
        test_idx = paper_test_indices(test.labels.numpy(), seed)
    else:
        test_idx = np.arange(len(test))
    rng = np.random.default_rng(seed + 1)
    if pool_size is not None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        if pool_size < len(pool_idx):
            pool_idx = np.sort(
                _stratified(train.labels.numpy()[pool_idx], pool_size, rng, pool_idx)
            )
    if test_size is not None:
        if test_size < 1:
            raise ValueError(f"test_size must be >= 1, got {test_size}")
        if test_size < len(test_idx):
            test_idx = np.sort(_stratified(test.labels.numpy()[test_idx], test_size, rng, test_idx))
    return ALData(_part(train, pool_idx, classes), _part(test, test_idx, classes))


def _from_factory(name: str, options: Mapping):
    """What the dataset factory ``name`` returns for ``options``; ``ValueError`` naming the
    field."""
    factory = resolve_callable(name, "dataset")
    try:
        return factory(**options)
    except TypeError as err:
        raise ValueError(
            f"dataset {name!r} cannot be called with dataset_options {dict(options)!r}: {err}"
        ) from None
    except Exception as err:  # noqa: BLE001 - whatever the user's factory raises, before anything is written
        raise ValueError(
            f"dataset {name!r} fails with dataset_options {dict(options)!r}: "
            f"{type(err).__name__}: {err}"
        ) from None


def _part(data: ImageData | DatasetData, indices: np.ndarray, classes: list[str]):
    """``data.subset(indices, classes)``; ``data`` itself when that is all of it, in order, with its
    classes."""
    if (
        len(indices) == len(data)
        and np.array_equal(indices, np.arange(len(data)))
        and list(classes) == data.classes
    ):
        return data
    return data.subset(indices, classes)


def _stratified(
    labels: np.ndarray, size: int, rng: np.random.Generator, ids: np.ndarray
) -> np.ndarray:
    """``size`` of ``ids`` keeping class proportions (largest remainders)."""
    counts = np.bincount(labels)
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: size - take.sum()]] += 1
    return np.concatenate(
        [rng.choice(ids[labels == c], size=n, replace=False) for c, n in enumerate(take) if n]
    )
