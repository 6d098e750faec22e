"""Training on the labeled set, prediction and evaluation.

The paper's recipe is the ``"paper"`` preset: weights re-initialised every round, Adam
lr 1e-3 without weight decay, train until 99 % training accuracy (we cap the epochs;
their code had no cap), every gradient entry clamped to +-0.1.

BatchNorm after a few steps. On a few dozen labels the paper's stopping rule ends training
after 2-6 epochs of 1-3 steps each; BatchNorm's running statistics (momentum 0.1) have then
moved only a few percent from their initial 0/1 towards the data, and an eval-mode network is at
chance (a ResNet-18 on 15-155 imbalanced FashionMNIST labels: 0.25 test accuracy with 4 classes).
The training accuracy the stopping rule reads is measured in train mode (batch statistics) and
never sees it. So every preset ends training with ``recompute_bn``: one pass over the labeled set,
without gradients, that sets each BatchNorm layer's running mean and variance to the exact
statistics of the labeled set (a cumulative average, ``momentum=None``), the usual "precise BN"
step. The authors never reset BatchNorm between rounds, which hides the problem from round 2 on.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmlib.data import DatasetData, ImageData, as_data, iter_batches
from fmlib.models import eval_mode
from fmlib.progress import progress_bar

OPTIMIZERS = ("adam", "sgd")


class NonFiniteError(ValueError):
    """NaN or inf in the inputs, logits or loss of training or prediction; the message names the
    samples (the loop adds the round)."""


def _nonfinite(values: torch.Tensor) -> list[int]:
    """Rows of ``values`` ``[N, ...]`` holding NaN or inf."""
    if not values.is_floating_point():
        return []
    return torch.nonzero(~torch.isfinite(values.reshape(len(values), -1)).all(1)).flatten().tolist()


@dataclass
class TrainConfig:
    """Training hyperparameters (one round of AL)."""

    epochs: int = 30  # maximum epochs; with target_train_acc it is the cap
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # "adam" | "sgd"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 coefficient
    batch_size: int = 64  # samples per step
    augment: bool = False  # random crop (pad 4) + horizontal flip, for CIFAR-like data
    target_train_acc: float | None = (
        None  # stop after the first epoch at or above this training accuracy
    )
    grad_clip_value: float | None = None  # clamp every gradient entry to +-value
    reinit: bool = True  # re-initialise weights (and BatchNorm statistics) before training
    reinit_batchnorm: bool = True  # with reinit; False: Conv/Linear only, as the authors' code
    recompute_bn: bool = (
        True  # after training, set BatchNorm running statistics to the labeled set's (module doc)
    )

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.target_train_acc is not None and not 0 < self.target_train_acc <= 1:
            raise ValueError(
                f"target_train_acc must be in (0, 1] or None, got {self.target_train_acc}"
            )
        if self.grad_clip_value is not None and not self.grad_clip_value > 0:
            raise ValueError(f"grad_clip_value must be > 0 or None, got {self.grad_clip_value}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a plain dict; unknown keys raise ``ValueError`` listing the valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = set(values) - valid
        if unknown:
            raise ValueError(
                f"unknown training options {sorted(unknown)}; allowed: {sorted(valid)}"
            )
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


TRAIN_PRESETS = {
    "default": TrainConfig(),
    "paper": TrainConfig(
        epochs=100, lr=1e-3, optimizer="adam", target_train_acc=0.99, grad_clip_value=0.1
    ),
}


def train_config(preset: str = "default", **overrides) -> TrainConfig:
    """A named preset (``"default"`` or ``"paper"``) with ``overrides`` applied."""
    if preset not in TRAIN_PRESETS:
        raise ValueError(
            f"unknown training preset {preset!r}; allowed values: {list(TRAIN_PRESETS)}"
        )
    return TrainConfig.from_dict({**TRAIN_PRESETS[preset].to_dict(), **overrides})


_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def reset_parameters(model: nn.Module, seed: int, *, batchnorm: bool = True) -> None:
    """Re-initialise every layer (BatchNorm running statistics included) from ``seed``.

    ``batchnorm=False`` leaves normalisation layers (their affine weights and running statistics)
    as they are, so they carry over from the previous round as in the FisherMask authors' code;
    the other layers get the same initial weights either way (a normalisation layer's reset draws
    no random numbers).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if not batchnorm and isinstance(module, _NORM_LAYERS):
                continue
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel zero padding and random horizontal flip, per sample."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=generator).tolist()
    dy = torch.randint(0, 9, (n,), generator=generator).tolist()
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), out.flip(-1), out)


def fit(
    model: nn.Module,
    data: ImageData | DatasetData,
    indices,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    device=None,
    progress: bool = False,
) -> dict:
    """Train ``model`` on ``data[indices]``.

    Args:
        model: the network; trained in place.
        data: the dataset holding the labeled samples: an :class:`ImageData`, or any torch
            ``Dataset`` (or ``DataLoader``) of ``(x, y)`` items (:func:`fmlib.data.as_data`).
        indices: positions of the labeled samples in ``data``.
        config: hyperparameters (default :class:`TrainConfig`).
        seed: fixes re-initialisation, shuffling and augmentation.
        device: where to train (default: the model's device).
        progress: show a tqdm bar over epochs.

    Returns:
        ``{"epochs", "train_accuracy", "train_loss", "seconds"}`` of the last epoch.
    """
    config = config or TrainConfig()
    data = as_data(data)
    indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    if len(indices) == 0:
        raise ValueError("indices must not be empty: nothing to train on")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if config.reinit:
        reset_parameters(model, seed, batchnorm=config.reinit_batchnorm)
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    inputs = data.inputs(indices, device)  # [n, ...], small: the labeled set
    labels = data.labels[indices].to(device)
    bad = _nonfinite(inputs)
    if bad:
        raise NonFiniteError(
            f"training inputs hold NaN or inf: labeled samples {indices[bad].tolist()[:5]} "
            f"({len(bad)} in all)"
        )
    start, stats = time.perf_counter(), {}
    model.train()
    # A manual bar: an iterated one left by ``break`` counts an epoch short, and tqdm.notebook
    # marks a bar closed before its total as failed (red); a failed fit leaves it so.
    bar = progress_bar(
        total=config.epochs, desc="train", unit="epoch", leave=False, disable=not progress
    )
    for epoch in range(config.epochs):
        order = torch.randperm(len(indices), generator=generator).to(device)
        correct, loss_sum = 0, 0.0
        for begin in range(0, len(order), config.batch_size):
            batch = order[begin : begin + config.batch_size]
            if len(batch) == 1 and len(order) > 1:
                continue  # BatchNorm cannot train on a single sample; it is seen next epoch
            x = _augment(inputs[batch], generator) if config.augment else inputs[batch]
            logits = model(x)
            loss = F.cross_entropy(logits, labels[batch])
            if not torch.isfinite(loss):
                rows = _nonfinite(logits.detach()) or list(range(len(batch)))
                raise NonFiniteError(
                    f"the training loss is {loss.item()} in epoch {epoch + 1}: NaN or inf logits "
                    f"for labeled samples {indices[batch.cpu()[rows]].tolist()[:5]} (lower lr, or "
                    "check the model)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip_value is not None:
                torch.nn.utils.clip_grad_value_(params, config.grad_clip_value)
            optimizer.step()
            correct += (logits.argmax(1) == labels[batch]).sum().item()
            loss_sum += loss.item() * len(batch)
        stats = {
            "epochs": epoch + 1,
            "train_accuracy": correct / len(order),
            "train_loss": loss_sum / len(order),
        }
        bar.set_postfix(acc=f"{stats['train_accuracy']:.3f}", refresh=False)
        bar.update(1)
        if (
            config.target_train_acc is not None
            and stats["train_accuracy"] >= config.target_train_acc
        ):
            bar.total = bar.n  # stopped early: the bar ends full at the epochs run
            break
    bar.close()
    if config.recompute_bn:
        recompute_batchnorm(model, inputs)
    model.eval()
    stats["seconds"] = time.perf_counter() - start
    return stats


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 512) -> bool:
    """Set every BatchNorm layer's running mean and variance to the statistics of ``inputs``.

    One no-grad pass in ``batch_size`` blocks with only the BatchNorm layers in train mode and
    ``momentum=None`` (cumulative average over the blocks; exact for a single block). Weights and
    biases are untouched; each layer's momentum and the model's modes are restored. A block of one
    sample is skipped when others exist (its variance is undefined).

    Args:
        inputs: ``[n, ...]`` the samples (on the model's device), e.g. the labeled set.

    Returns:
        Whether statistics were recomputed (``False``: no BatchNorm layer, or fewer than 2 samples).
    """
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms or len(inputs) < 2:
        return False
    momenta = [m.momentum for m in norms]
    try:
        with eval_mode(model):
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            blocks = list(inputs.split(batch_size))
            if len(blocks) > 1 and len(blocks[-1]) == 1:
                blocks.pop()
            for x in blocks:
                model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return True


@torch.no_grad()
def predict_proba(model: nn.Module, inputs, *, batch_size: int = 512, device=None) -> torch.Tensor:
    """Softmax probabilities ``[N, C]`` (on the CPU), model in eval mode.

    ``inputs``: a float tensor, an :class:`ImageData`, a Dataset or a DataLoader.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    with eval_mode(model):
        out, seen = [], 0
        for x in iter_batches(inputs, batch_size, device):
            logits = model(x)
            bad = _nonfinite(logits)
            if bad:
                raise NonFiniteError(
                    f"the model gives NaN or inf logits for samples {[seen + i for i in bad][:5]} "
                    f"of the {'finite' if not _nonfinite(x) else 'non-finite'} inputs it scored"
                )
            out.append(F.softmax(logits, dim=1).cpu())
            seen += len(x)
    return torch.cat(out) if out else torch.zeros(0, 0)


def evaluate(model: nn.Module, data, *, batch_size: int = 512, device=None) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall) and per-class accuracy on ``data`` (an
    :class:`ImageData` or any ``Dataset``/``DataLoader`` of ``(x, y)`` items)."""
    data = as_data(data)
    pred = predict_proba(model, data, batch_size=batch_size, device=device).argmax(1).numpy()
    labels = data.labels.numpy()
    per_class = [
        float((pred[labels == c] == c).mean()) if (labels == c).any() else float("nan")
        for c in range(data.num_classes)
    ]
    return {
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": float(np.nanmean(per_class)),
        "per_class_accuracy": per_class,
    }
