"""Datasets, imbalanced pools and initial labeled sets.

Images are kept in memory as ``uint8`` tensors ``[N, C, H, W]`` (FashionMNIST is 47 MB,
CIFAR-10 150 MB) and turned into normalised ``float32`` batches on demand, which on a
CPU is much faster than a per-item ``DataLoader``.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

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
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class _Labeled:
    """What every data type shares: ``labels`` (int64 ``[N]``) and ``classes`` (names) give the
    length, the number of classes and class counts."""

    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self, indices=None) -> np.ndarray:
        """Samples per class ``int [num_classes]`` among ``indices`` (all when ``None``)."""
        labels = self.labels if indices is None else self.labels[torch.as_tensor(np.asarray(indices), dtype=torch.long)]
        return np.bincount(labels.numpy(), minlength=self.num_classes)


@dataclass
class ImageData(_Labeled):
    """A labelled image set held in memory.

    Attributes:
        images: ``uint8 [N, C, H, W]``.
        labels: ``int64 [N]``, values in ``0..len(classes)-1``.
        classes: class names.
        mean, std: per-channel normalisation applied by :meth:`inputs`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    name: str = ""

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape [{len(self.images)}], got {tuple(self.labels.shape)}")
        self.labels = self.labels.long()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])

    def inputs(self, indices=None, device=None) -> torch.Tensor:
        """Normalised ``float32 [n, C, H, W]`` for ``indices`` (all when ``None``)."""
        x = self.images if indices is None else self.images[torch.as_tensor(indices, dtype=torch.long)]
        x = x.to(device).float().div_(255.0)  # convert before scaling: uint8 arithmetic overflows
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def subset(self, indices, classes: list[str] | None = None) -> ImageData:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageData(self.images[idx], self.labels[idx], list(classes or self.classes), self.mean, self.std, self.name)


@dataclass
class Splits:
    """Train and test splits of one dataset."""

    train: ImageData
    test: ImageData
    classes: list[str] = field(default_factory=list)


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> Splits:
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
    ``~/.cache/fmlib``.
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
    except (EOFError, OSError, IndexError, ValueError) as err:  # truncated gzip, bad header, short data
        raise OSError(f"cannot read {path}: the file is damaged or truncated ({type(err).__name__}: {err}); "
                      "delete it and install or download it again") from err  # fmt: skip


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "FashionMNIST" / "raw" / stem,
                      folder / "FashionMNIST" / "raw" / f"{stem}.gz"):  # fmt: skip
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist(root, download: bool) -> Splits:
    folders = ([Path(root)] if root is not None else []) + [DEBIAN_FASHION_MNIST]
    for folder in folders:
        found = {split: [_find_idx(folder, s) for s in stems] for split, stems in _FASHION_FILES.items()}
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

        target = Path(root or Path.home() / ".cache" / "fmlib")
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

    target = Path(root) if root is not None else Path.home() / ".cache" / "fmlib"
    folder = target / CIFAR10.base_folder
    try:  # md5-checks every file; with download, first fetches cifar-10-python.tar.gz into target unless they pass
        splits = [CIFAR10(str(target), train=train, download=download and train) for train in (True, False)]
    except RuntimeError as err:
        checks = [(CIFAR10.meta["filename"], CIFAR10.meta["md5"]), *CIFAR10.train_list, *CIFAR10.test_list]
        missing = [name for name, _ in checks if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 not found: {folder} lacks {missing}. Pass download=True to fetch it through "
                "torchvision (needs internet), or copy the python-format batches (cifar-10-python.tar.gz, "
                "extracted) there."
            ) from err
        corrupt = [name for name, md5 in checks if not check_integrity(str(folder / name), md5)]
        if not corrupt:
            raise
        raise ValueError(
            f"CIFAR-10 in {folder}: {corrupt} fail torchvision's md5 check (corrupted, or not the original "
            "release). Delete them and pass download=True, or extract the original cifar-10-python.tar.gz there."
        ) from err
    classes = list(splits[0].classes)
    mean, std = _STATS["cifar10"]
    train, test = (
        ImageData(
            torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous(),  # torchvision's [N, H, W, 3] -> [N, 3, H, W]
            torch.as_tensor(split.targets, dtype=torch.int64),
            classes, mean, std, "cifar10",
        )
        for split in splits
    )  # fmt: skip
    return Splits(train, test, classes)


# ----------------------------------------------------------------------------- imbalance


PAPER_TRAIN_COUNTS = (250, 5000, 250, 250)  # classes 0-3; class 1 is the majority
PAPER_TEST_PER_CLASS = 1000


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
        raise ValueError(f"profile must be one of {list(IMBALANCE_PROFILES[:3])} here, got {profile!r}")
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    if profile == "none":
        return counts.copy()
    if profile == "step":
        minority = list(range(num_classes // 2)) if minority_classes is None else list(minority_classes)
        bad = [c for c in minority if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"minority_classes must be in 0..{num_classes - 1}, got {bad}")
        out = counts.copy()
        out[minority] = np.floor(counts[minority] / ratio).astype(np.int64)
        return out
    base = counts.min()  # longtail: class c keeps base * ratio^(-c/(C-1))
    decay = ratio ** (-np.arange(num_classes) / max(num_classes - 1, 1))
    return np.floor(base * decay + 1e-9).astype(np.int64)


def make_imbalanced(labels, profile: str, ratio: float = 1.0, seed: int = 0, minority_classes=None) -> np.ndarray:
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
            raise ValueError(f"profile 'paper' needs {PAPER_TRAIN_COUNTS} samples of classes 0-3; classes {short} have fewer")
    else:
        target = imbalanced_counts(available, profile, ratio, minority_classes)
    return _sample_per_class(labels, target, seed)


def _sample_per_class(labels: np.ndarray, target, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(labels == c), size=int(n), replace=False) for c, n in enumerate(target) if n]
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
        raise ValueError(f"unknown initial method {method!r}; allowed values: {list(INITIAL_METHODS)}")
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


class DatasetData(_Labeled):
    """Any torch ``Dataset`` of ``(x, y)`` items, seen through :class:`ImageData`'s interface
    (``inputs``, ``labels``, ``num_classes``, ``classes``, ``class_counts``, ``shape``, ``subset``).

    The labels are read once (a ``TensorDataset``'s directly, any other dataset item by item);
    inputs are read lazily, ``dataset[i][0]`` for the positions asked for, except for a
    ``TensorDataset``, whose input tensor is indexed directly. Inputs come back as given
    (no normalisation): the dataset's transforms are the user's.

    Args:
        dataset: a map-style ``Dataset`` whose items are ``(x, y, ...)`` with ``x`` a tensor
            (or array) and ``y`` an integer class in ``0..C-1``; a ``DataLoader``'s dataset is used.
        classes: class names; default ``["0", ..., "C-1"]`` with ``C = max(label) + 1``
            (pass them when a class may be absent, e.g. from a test set).
        name: recorded in the run's metadata.
    """

    def __init__(self, dataset, classes: list[str] | None = None, name: str = ""):
        if isinstance(dataset, DataLoader):
            dataset = dataset.dataset
        if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
            raise ValueError(f"data must be a map-style torch Dataset of (x, y) items, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("data: the dataset is empty")
        self.dataset, self.name = dataset, name or type(dataset).__name__
        tensors = getattr(dataset, "tensors", None) if isinstance(dataset, torch.utils.data.TensorDataset) else None
        if tensors is not None and len(tensors) < 2:
            raise ValueError("data: a TensorDataset needs two tensors (inputs, labels)")
        self._x = tensors[0] if tensors is not None else None
        try:
            y = tensors[1] if tensors is not None else torch.as_tensor([int(_item(dataset, i)[1]) for i in range(len(dataset))])
        except (TypeError, ValueError) as err:
            raise ValueError(f"data: the items must be (x, y) with an integer class y ({err})") from None
        if y.ndim != 1 or y.is_floating_point() or y.is_complex() or (len(y) and int(y.min()) < 0):
            raise ValueError(f"data: labels must be integer classes >= 0 [N], got {y.dtype} {tuple(y.shape)}")
        self.labels = y.long()
        count = int(self.labels.max()) + 1
        self.classes = [str(c) for c in range(count)] if classes is None else list(classes)
        if count > len(self.classes):
            raise ValueError(f"data: labels reach {count - 1} but classes has {len(self.classes)} names")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return tuple(self.inputs([0]).shape[1:])

    def inputs(self, indices=None, device=None) -> torch.Tensor:
        """Inputs ``[n, ...]`` for ``indices`` (all when ``None``), on ``device``, as the dataset gives
        them (integer token ids stay integers)."""
        idx = torch.arange(len(self)) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if self._x is not None:
            x = self._x[idx]
        else:
            x = torch.stack([torch.as_tensor(_item(self.dataset, int(i))[0]) for i in idx]) if len(idx) else None
            if x is None:
                x = torch.as_tensor(_item(self.dataset, 0)[0])[:0]
        return x.to(device)

    def subset(self, indices, classes: list[str] | None = None) -> DatasetData:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if self._x is not None:  # stays a TensorDataset: indexed directly
            part = torch.utils.data.TensorDataset(self._x[idx], self.labels[idx])
        else:
            part = torch.utils.data.Subset(self.dataset, idx.tolist())
        return DatasetData(part, list(classes or self.classes), self.name)


def _item(dataset, i: int):
    item = dataset[i]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ValueError(f"data: item {i} is a {type(item).__name__}, not an (x, y) pair")
    return item


def as_data(data, classes: list[str] | None = None) -> ImageData | DatasetData:
    """``data`` with the interface the loop, ``fit`` and the strategies use: an :class:`ImageData`
    or :class:`DatasetData` as it is, any other ``Dataset`` (or a ``DataLoader``'s) wrapped in
    :class:`DatasetData`."""
    if isinstance(data, (ImageData, DatasetData)):
        return data
    if isinstance(data, (Dataset, DataLoader)):
        return DatasetData(data, classes)
    raise ValueError(f"data must be an ImageData or a torch Dataset/DataLoader of (x, y) items, got {type(data).__name__}")


@dataclass
class ALData:
    """What an active-learning run works on: a pool (train) and a test set."""

    pool: ImageData | DatasetData
    test: ImageData | DatasetData

    @property
    def classes(self) -> list[str]:
        return self.pool.classes


def as_al_data(data) -> ALData:
    """An :class:`ALData` from an ``ALData`` or a ``(pool, test)`` pair of Datasets (or ImageData);
    both sets share the classes (``max(label) + 1`` over both, unless they carry names)."""
    if isinstance(data, ALData):
        pool, test = data.pool, data.test
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        pool, test = data
    else:
        raise ValueError(f"data must be an ALData or a (pool, test) pair of Datasets, got {type(data).__name__}")
    if isinstance(pool, ImageData) and isinstance(test, ImageData):
        return ALData(pool, test)
    pool, test = as_data(pool), as_data(test)
    count = max(pool.num_classes, test.num_classes)
    if isinstance(pool, DatasetData) and pool.num_classes < count:
        pool.classes = pool.classes + [str(c) for c in range(pool.num_classes, count)]
    if isinstance(test, DatasetData) and test.num_classes != pool.num_classes:
        test.classes = list(pool.classes) if test.num_classes <= pool.num_classes else test.classes
    if pool.num_classes != test.num_classes:
        raise ValueError(f"data: the pool has {pool.num_classes} classes and the test set {test.num_classes}")
    return ALData(pool, test)


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
            raise ValueError(f"imbalance 'paper' is the FashionMNIST/CIFAR-10 preset (classes 0-3 with "
                             f"{list(PAPER_TRAIN_COUNTS)}); with dataset factory {name!r} use 'none' (its data as "
                             "it is), 'step' or 'longtail'")  # fmt: skip
        made = _from_factory(name, options or {})
        try:
            splits = as_al_data(made)
        except ValueError as err:
            raise ValueError(f"dataset {name!r} must return a (pool, test) pair of Datasets or an ALData, got "
                             f"{type(made).__name__} ({err})") from None  # fmt: skip
        train, test, classes = splits.pool, splits.test, splits.classes
    else:
        if options:
            raise ValueError(f"dataset_options {dict(options)!r} are passed to a dataset factory "
                             f"('package.module:function'); built-in dataset {name!r} takes none")  # fmt: skip
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
            pool_idx = np.sort(_stratified(train.labels.numpy()[pool_idx], pool_size, rng, pool_idx))
    if test_size is not None:
        if test_size < 1:
            raise ValueError(f"test_size must be >= 1, got {test_size}")
        if test_size < len(test_idx):
            test_idx = np.sort(_stratified(test.labels.numpy()[test_idx], test_size, rng, test_idx))
    return ALData(_part(train, pool_idx, classes), _part(test, test_idx, classes))


def _from_factory(name: str, options: Mapping):
    """What the dataset factory ``name`` returns for ``options``; ``ValueError`` naming the field."""
    factory = resolve_callable(name, "dataset")
    try:
        return factory(**options)
    except TypeError as err:
        raise ValueError(f"dataset {name!r} cannot be called with dataset_options {dict(options)!r}: {err}") from None


def _part(data: ImageData | DatasetData, indices: np.ndarray, classes: list[str]):
    """``data.subset(indices, classes)``; ``data`` itself when that is all of it, in order, with its classes."""
    if len(indices) == len(data) and np.array_equal(indices, np.arange(len(data))) and list(classes) == data.classes:
        return data
    return data.subset(indices, classes)


def _stratified(labels: np.ndarray, size: int, rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """``size`` of ``ids`` keeping class proportions (largest remainders)."""
    counts = np.bincount(labels)
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: size - take.sum()]] += 1
    return np.concatenate([rng.choice(ids[labels == c], size=n, replace=False) for c, n in enumerate(take) if n])


# ----------------------------------------------------------------------------- batches


def iter_batches(inputs, batch_size: int, device=None) -> Iterator[torch.Tensor]:
    """Yield float input batches on ``device`` from any input form.

    ``inputs`` may be a float tensor ``[N, ...]``, an :class:`ImageData` (normalised
    on the fly) or :class:`DatasetData`, a ``Dataset`` whose items are ``x`` or ``(x, y, ...)``, or a
    ``DataLoader`` (its own batching is kept).
    """
    if isinstance(inputs, torch.Tensor):
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size].to(device)
    elif isinstance(inputs, (ImageData, DatasetData)):
        for start in range(0, len(inputs), batch_size):
            yield inputs.inputs(range(start, min(start + batch_size, len(inputs))), device)
    elif isinstance(inputs, (DataLoader, Dataset)):
        loader = inputs if isinstance(inputs, DataLoader) else DataLoader(inputs, batch_size=batch_size)
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield x.to(device)
    else:
        raise ValueError(f"inputs must be a Tensor, ImageData, Dataset or DataLoader, got {type(inputs).__name__}")


def num_inputs(inputs) -> int:
    """Number of samples in any input form accepted by :func:`iter_batches`."""
    if isinstance(inputs, DataLoader):
        return len(inputs.dataset)
    return len(inputs)
