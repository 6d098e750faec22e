"""A training loop written outside fmlib, as a user keeps their own: plain SGD on the labeled
positions, reached as ``"tests.user_trainer:sgd"`` from a config, the CLI and the grid
(test_trainer_hook)."""

import torch
import torch.nn.functional as F

CALLS = []  # (labeled positions, their labels) of every call in this process


def sgd(model, data, labeled, *, seed, device):
    """Fresh weights from ``seed``, then 25 full-batch SGD steps on ``data[labeled]``."""
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()
    model.to(device).train()
    idx = torch.as_tensor(labeled, dtype=torch.long)
    x, y = data.inputs(idx, device), data.labels[idx].to(device)
    CALLS.append((idx.tolist(), y.tolist()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(25):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return {"epochs": 25, "train_loss": float(loss.detach())}


def returns_nothing(model, data, labeled, *, seed, device):
    sgd(model, data, labeled, seed=seed, device=device)


class Flaky:
    """Raises in the round given, trains with :func:`sgd` otherwise."""

    def __init__(self, fail_round_call: int):
        self.calls, self.fail = 0, fail_round_call

    def __call__(self, model, data, labeled, *, seed, device):
        self.calls += 1
        if self.calls == self.fail:
            raise RuntimeError("out of memory (pretend)")
        return sgd(model, data, labeled, seed=seed, device=device)
