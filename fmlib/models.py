"""Models: a small CNN for 28x28 grayscale and a small-image ResNet-18 (32x32 RGB or 28x28
grayscale).

Every model returns logits from ``forward``, exposes ``embed(x)`` (penultimate
features, ``[N, d]``) and ``head`` (the final ``nn.Linear``), so strategies can use
features and last-layer gradients without knowing the architecture.

No layer works in place (``nn.ReLU(inplace=False)``): the Fisher engine reads each
layer's input and the gradient of its output, and an in-place op would overwrite them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

MODELS = ("cnn", "resnet18", "authors_resnet18")
# The FisherMask authors' network (their resnet.py): width 16, classifier without bias.
AUTHORS_RESNET18 = {"width": 16, "head_bias": False}


class SmallCNN(nn.Module):
    """Two conv blocks and an MLP head, ~421k parameters for 28x28x1 and 10 classes.

    conv(32)-BN-ReLU-pool, conv(64)-BN-ReLU-pool, fc(128)-ReLU, head.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (image_size // 4) ** 2, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, 128]``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for small images (32x32, 28x28): 3x3 stem, no max-pool, torchvision ``BasicBlock``
    blocks.

    ``width=16`` gives the paper's small variant (widths 16-128, ~0.7M parameters);
    ``width=64`` is the usual CIFAR ResNet-18 (~11M). ``head_bias=False`` drops the classifier's
    bias as the FisherMask authors' ``resnet.py`` does (``build_model("authors_resnet18")``).
    On 28x28 inputs the stages give 28-14-7-4 pixels and the global average pool sees 4x4, as
    the authors' fixed ``avg_pool2d(out, 4)`` does.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, width: int = 16, head_bias: bool = True
    ):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        if not isinstance(head_bias, bool):
            raise ValueError(f"head_bias must be true or false, got {head_bias!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        layers, planes_in = [], width
        for i, blocks in enumerate((2, 2, 2, 2)):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            for b in range(blocks):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or planes_in != planes:
                    down = nn.Sequential(
                        nn.Conv2d(planes_in, planes, 1, stride=s, bias=False),
                        nn.BatchNorm2d(planes),
                    )
                block = BasicBlock(planes_in, planes, stride=s, downsample=down)
                block.relu = nn.ReLU()  # torchvision's is in place; see module docstring
                layers.append(block)
                planes_in = planes
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(planes_in, num_classes, bias=head_bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, 8 * width]``."""
        return self.pool(self.layers(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def build_model(
    name: str, num_classes: int, in_channels: int, image_size: int = 28, **options
) -> nn.Module:
    """Build a model by name.

    Args:
        name: ``"cnn"`` (28x28 grayscale), ``"resnet18"`` (32x32 RGB or 28x28 grayscale) or
            ``"authors_resnet18"`` (the FisherMask authors' network: ``resnet18`` with width 16
            and no classifier bias; 0.70M parameters for 1 channel and 10 classes).
        num_classes: number of output classes C.
        in_channels: image channels.
        image_size: side of the square input images (``cnn`` only).
        **options: ``width`` and ``head_bias`` for ``resnet18``; none for the others.

    Returns:
        The model, freshly initialised from the current torch RNG state.
    """
    if name == "cnn":
        if options:
            raise ValueError(f"model 'cnn' takes no options, got {sorted(options)}")
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 for model 'cnn', got {image_size}")
        return SmallCNN(num_classes, in_channels, image_size)
    if name == "resnet18":
        unknown = set(options) - {"width", "head_bias"}
        if unknown:
            raise ValueError(
                f"unknown options {sorted(unknown)} for model 'resnet18'; allowed: ['head_bias',"
                " 'width']"
            )
        return CifarResNet18(num_classes, in_channels, **options)
    if name == "authors_resnet18":
        if options:
            raise ValueError(
                f"model 'authors_resnet18' takes no options, got {sorted(options)}; "
                "use 'resnet18' with width/head_bias to vary it"
            )
        return CifarResNet18(num_classes, in_channels, **AUTHORS_RESNET18)
    raise ValueError(f"unknown model {name!r}; allowed values: {list(MODELS)}")


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def trial_model(
    name: str, options: Mapping, num_classes: int, channels: int, side: int
) -> nn.Module:
    """Build model ``name`` and run it on a dummy batch of ``side`` x ``side`` images, so that an
    option that builds but cannot run fails here; ``ValueError`` names ``model_options``."""
    try:
        model = build_model(name, num_classes, channels, side, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model_options: {err}") from None
    try:
        with torch.no_grad(), eval_mode(model):
            logits = model(torch.zeros(2, channels, side, side))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"model_options {dict(options)!r}: model {name!r} fails on a batch of {side}x{side}"
            f" images: {err}"
        ) from None
    if logits.ndim != 2 or len(logits) != 2:
        raise ValueError(
            f"model_options {dict(options)!r}: model {name!r} fails on a batch of {side}x{side}"
            f" images: the model must return logits [N, C], got shape {tuple(logits.shape)}"
        )
    return model


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside; every submodule's own train/eval mode restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
