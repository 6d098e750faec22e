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
    [(dict(name="vgg"), "allowed values"), (dict(name="cnn", width=2), "no options"),
     (dict(name="resnet18", depth=3), "width"), (dict(name="cnn", image_size=30), "divisible")],
    ids=["unknown", "cnn-option", "resnet-option", "cnn-size"],
)  # fmt: skip
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
