import pytest
import torch
from torch import nn

from fmlib.models import build_model


@pytest.mark.parametrize(
    "name,shape,options,params",
    [
        ("cnn", (1, 28, 28), {}, 421_834),
        ("resnet18", (3, 32, 32), {}, 701_466),
        ("resnet18", (3, 32, 32), {"width": 8}, None),
    ],
    ids=["cnn", "resnet18-paper", "resnet18-w8"],
)
def test_models_expose_logits_embed_and_head(name, shape, options, params):
    model = build_model(
        name, num_classes=10, in_channels=shape[0], image_size=shape[1], **options
    ).eval()
    x = torch.randn(3, *shape)
    features = model.embed(x)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 10
    assert features.shape == (3, model.head.in_features)
    assert torch.allclose(model(x), model.head(features))
    if params is not None:
        assert sum(p.numel() for p in model.parameters()) == params


def test_no_inplace_relu():
    for name, ch in (("cnn", 1), ("resnet18", 3)):
        relus = [m for m in build_model(name, 10, ch).modules() if isinstance(m, nn.ReLU)]
        assert relus and not any(m.inplace for m in relus)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(name="vgg"), "allowed values"),
        (dict(name="cnn", width=2), "no options"),
        (dict(name="resnet18", depth=3), "width"),
        (dict(name="cnn", image_size=30), "divisible"),
    ],
    ids=["unknown", "cnn-option", "resnet-option", "cnn-size"],
)
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(num_classes=10, in_channels=1, **kwargs)


def test_public_surface_is_lazy_and_complete():
    import subprocess
    import sys

    import fmlib

    for name in fmlib.__all__:
        assert getattr(fmlib, name) is not None
    code = "import sys, fmlib, fmlib.grid.spec; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


@pytest.mark.parametrize(
    "channels, classes, theirs",
    [(1, 4, 700_400), (1, 10, 701_168), (3, 10, 701_456)],
    ids=["fmnist-imbalanced", "fmnist-10", "cifar10"],
)
def test_authors_resnet18_has_their_parameter_count(channels, classes, theirs):
    # Counts of their resnet.py ResNet18(num_classes) with conv1 set to `channels` inputs.
    model = build_model("authors_resnet18", classes, channels, 28)
    assert sum(p.numel() for p in model.parameters()) == theirs
    assert model.head.bias is None and model.head.in_features == 128
    assert model(torch.zeros(2, channels, 28, 28)).shape == (2, classes)
    assert model(torch.zeros(2, channels, 32, 32)).shape == (2, classes)


def test_authors_resnet18_equals_resnet18_width16_without_head_bias():
    torch.manual_seed(1)
    theirs = build_model("authors_resnet18", 4, 1)
    torch.manual_seed(1)
    ours = build_model("resnet18", 4, 1, width=16, head_bias=False)
    assert all(
        torch.equal(a, b) for a, b in zip(theirs.state_dict().values(), ours.state_dict().values())
    )


@pytest.mark.parametrize(
    "options, match", [({"width": 8}, "no options"), ({"depth": 3}, "no options")]
)
def test_authors_resnet18_takes_no_options(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("authors_resnet18", 4, 1, **options)


@pytest.mark.parametrize(
    "options, match", [({"width": 0}, "width"), ({"head_bias": "no"}, "head_bias")]
)
def test_resnet18_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("resnet18", 4, 1, **options)
