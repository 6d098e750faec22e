"""The hook engine of :mod:`fmlib.fisher.embeddings`: per-sample, per-class gradients of Linear,
Conv2d and BatchNorm2d parameters from one forward with hooks on the layers' inputs and outputs and
one batched backward of the log-softmax rows to those outputs (see :mod:`fmlib.fisher.embeddings`
for the maths), formed only for the masked entries (embeddings) or squared and summed (the
diagonal)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fmlib.fisher.func import _by_samples, _log_softmax_rows


def _per_class_output_grads(model, layers, x, weighted: bool):
    """Forward ``x`` once; backprop the C rows w_c·(e_c − p) of the log-softmax Jacobian in one
    vmapped pass.

    Returns:
        p ``[B, C]`` and, per layer, (its input ``[B, ...]``, gradient of its output
        ``[C, B, ...]``).
    """
    z, captured = _forward(model, layers, x)
    p, rows = _log_softmax_rows(z, weighted)
    outputs = [captured[layer][1] for layer in layers]
    grads = torch.autograd.grad(z, outputs, rows, is_grads_batched=True) if layers else []
    return p, {layer: (captured[layer][0], g) for layer, g in zip(layers, grads)}


def _one_class_output_grads(model, layers, x, weighted: bool):
    """As :func:`_per_class_output_grads`, but one class per backward pass: yields {layer: (input,
    ``[1, B, ...]``)}.

    The diagonal only needs a sum over classes, so it takes the classes one at a time: torch's
    batching rules of conv, BatchNorm and max-pool backward loop over the C rows and concatenate
    (a copy of every activation gradient), and C separate passes skip that and hold 1/C the memory.
    """
    if not layers:  # every parameter goes through torch.func
        return
    z, captured = _forward(model, layers, x)
    _, rows = _log_softmax_rows(z, weighted)
    outputs = [captured[layer][1] for layer in layers]
    for c in range(len(rows)):
        grads = torch.autograd.grad(z, outputs, rows[c], retain_graph=c < len(rows) - 1)
        yield {layer: (captured[layer][0], g[None]) for layer, g in zip(layers, grads)}


def _forward(model, layers, x):
    """Logits ``[B, C]`` and, per layer, (its input detached, its output in the graph)."""
    captured = {}

    def hook(module, args, output):
        if module in captured:
            raise ValueError(
                f"{type(module).__name__} layer is called twice in one forward (shared layers are "
                "not supported)"
            )
        captured[module] = (args[0].detach(), output)

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        z = model(x)  # [B, C]
    finally:
        for handle in handles:
            handle.remove()
    if z.ndim != 2:
        raise ValueError(f"the model must return logits [N, C], got shape {tuple(z.shape)}")
    return z, captured


def _operands(module, a, g):
    """A ``[B, J, L]`` and G ``[B, C, O, L]``: per-sample weight grad G Aᵀ, bias Σ_l G, BN weight
    Σ_l G⊙A."""
    return _input_operand(module, a), _grad_operand(module, g)


def _input_operand(module, a):
    """A ``[B, J, L]``: the layer input (unfolded for a conv, x̂ for BatchNorm)."""
    if isinstance(module, nn.Linear):
        return a.reshape(len(a), -1, a.shape[-1]).transpose(1, 2)
    if isinstance(module, nn.Conv2d):
        padding = module.padding
        if isinstance(padding, str) or module.padding_mode != "zeros":
            mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
            a, padding = F.pad(a, module._reversed_padding_repeated_twice, mode=mode), 0
        return F.unfold(a, module.kernel_size, module.dilation, padding, module.stride)
    # BatchNorm2d in eval: per-channel affine of x̂
    scale = torch.rsqrt(module.running_var + module.eps)
    x_hat = (a - module.running_mean[:, None, None]) * scale[:, None, None]
    return x_hat.flatten(2)


def _grad_operand(module, g):
    """G ``[B, C, O, L]`` from the gradient of the layer output ``[C, B, ...]``."""
    g = g.transpose(0, 1)  # [B, C, ...]
    if isinstance(module, nn.Linear):
        return g.reshape(*g.shape[:2], -1, g.shape[-1]).transpose(2, 3)
    return g.flatten(3)


class _IndexPlan:
    """Masked flat indices of one parameter, split into output rows o and input columns j."""

    def __init__(self, module, idx):
        self.idx = idx  # [k_p]
        cols = module.weight[0].numel()  # J: in_features, or in_channels * kh * kw
        self.o, self.j = idx // cols, idx % cols
        self.rows, o_pos = torch.unique(self.o, return_inverse=True)
        self.cols, j_pos = torch.unique(self.j, return_inverse=True)
        self.pos = o_pos * len(self.cols) + j_pos  # entry positions in the [O', J'] sub-block


def _masked_grads(module, attr, plan, A, G) -> torch.Tensor:
    """Per-sample, per-class gradient of ``module.<attr>`` at the plan's entries: ``[B, C,
    k_p]``."""
    B, C, _, L = G.shape
    idx, o, j, rows, cols = plan.idx, plan.o, plan.j, plan.rows, plan.cols
    if attr == "bias":
        return G[:, :, idx].sum(-1)
    if isinstance(module, nn.BatchNorm2d):
        return (G[:, :, idx] * A[:, None, idx]).sum(-1)
    if L == 1:  # Linear on [B, I]: outer products, gathered
        return G[:, :, o, 0] * A[:, None, j, 0]
    # gathered dot products are cheaper than the sub-block
    if len(idx) * L <= len(rows) * len(cols):
        return _by_samples(
            lambda s: (G[s][:, :, o] * A[s][:, None, j]).sum(-1), B, C * len(idx) * L
        )
    G_sub, A_sub = G[:, :, rows], A[:, cols]  # [B, C, O', L], [B, J', L]

    def block(s):  # per-sample sub-block of the weight gradient, then the masked entries
        sub = G_sub[s].reshape(-1, C * len(rows), L) @ A_sub[s].transpose(1, 2)  # [b, C O', J']
        return sub.view(-1, C, len(rows) * len(cols))[:, :, plan.pos]

    return _by_samples(block, B, C * len(rows) * len(cols))


def _squared_sum(module, attr, A, G) -> torch.Tensor:
    """Σ_n Σ_c (∂/∂ module.<attr>)² of rows already weighted by √p_c: flat ``[numel]``."""
    B, C, n_out, L = G.shape
    if attr == "bias":
        return G.sum(-1).pow(2).sum((0, 1))
    if isinstance(module, nn.BatchNorm2d):
        return (G * A[:, None]).sum(-1).pow(2).sum((0, 1))
    if L == 1:  # Linear on [B, I]: Σ_c (g_c ⊗ a)² = (Σ_c g_c²) ⊗ a²
        return (G[..., 0].pow(2).sum(1).T @ A[..., 0].pow(2)).flatten()

    def block(s):
        per_sample = G[s].reshape(-1, C * n_out, L) @ A[s].transpose(1, 2)  # [b, C O, J]
        return per_sample.pow(2).sum(0).view(C, -1).sum(0)

    return _by_samples(block, B, C * n_out * A.shape[1], reduce=True)
