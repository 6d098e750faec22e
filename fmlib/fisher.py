"""Per-sample, per-class gradients restricted to a parameter mask, and the diagonal Fisher.

For a model in eval mode with logits z(x), p = softmax(z) and trainable parameters θ:

    g_c(x) = ∂ log p(c|x) / ∂θ
    F_diag = 1/N Σ_n Σ_c p_c(x_n) g_c(x_n)²          true Fisher: exact expectation, no sampled labels
    V(x)   = rows √p_c(x) · g_c(x)[mask]    [C, k]    V(x)ᵀV(x) = Fisher of x on the mask

Entry order of k: parameters in ``model.named_parameters()`` order, row-major inside each.

Fast path. One forward per chunk with forward hooks on the Linear, Conv2d and BatchNorm2d
layers that own masked entries (their input and output), then ONE vmapped backward
(``is_grads_batched``) of the C rows w_c·(e_c − p) of the log-softmax Jacobian to those
outputs only: no parameter gradient is formed and the network runs forward once, not C times.
A per-sample parameter gradient is a contraction of the layer input A ``[B, J, L]`` (the
unfolded input for a conv, L positions) with the output gradient G ``[B, C, O, L]``; it is
computed only for masked entries: gathered products for Linear and sparse conv masks,
a matmul on the sub-block of masked rows x columns otherwise. BatchNorm in eval is an affine
map of x̂ = (x − mean)/√(var + ε). For the diagonal the Linear case factorises,
Σ_c p_c (g_c ⊗ a)² = (Σ_c p_c g_c²) ⊗ a², and conv/BN square-sum per-sample gradients;
it backprops the C rows one at a time instead (a sum needs no [B, C, ...] block, and torch's
batched backward of conv/BN/pooling loops over the rows and concatenates anyway).

Any other layer goes through the torch.func engine (:mod:`fmlib.fisher_func`): LayerNorm,
GroupNorm, Conv1d, Embedding, grouped convolutions, a custom module's own parameters, and
hook-engine layers that are subclassed with another forward, shared, tied, called other than
once, or whose parameters are used outside their own forward. The split is per parameter,
decided by one traced forward of one sample; ``engine="func"`` sends every parameter there.

The brute-force references ``*_naive`` (one sample at a time, C ``autograd.grad`` calls,
flatten and index) are the oracles of the tests and the baselines of the benchmark.
"""

from __future__ import annotations

from contextlib import contextmanager
from itertools import chain

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from fmlib.data import iter_batches, num_inputs
from fmlib.fisher_func import _by_samples, _func_embeddings, _func_squared_sums, _log_softmax_rows, _route
from fmlib.masks import ParameterMask

SCALES = ("fisher", "none")
ENGINES = ("auto", "func")  # auto: hooks where they apply, torch.func for the rest; func: torch.func for all
DEFAULT_CHUNK_SIZE = 64  # samples per forward; the backward holds C x as many activations
FISH_SAMPLES = 1024  # FISH's and FisherMask's number of pool samples for the diagonal Fisher


# ----------------------------------------------------------------------------- public API


def fisher_subsample(n_pool: int, size: int = FISH_SAMPLES, seed: int = 0) -> np.ndarray:
    """Sorted ``int64`` positions of a seeded uniform subsample of a pool (all when it is smaller).

    FisherMask's diagonal Fisher is taken on such a subsample (never the first items of a
    possibly class-sorted pool); feed it test-time (un-augmented) inputs.
    """
    if n_pool < 1 or size < 1:
        raise ValueError(f"n_pool and size must be >= 1, got n_pool={n_pool}, size={size}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pool, size=min(size, n_pool), replace=False)).astype(np.int64)


def fisher_diagonal(
    model: nn.Module, inputs, *, chunk_size: int | None = None, engine: str = "auto", progress: bool = False
) -> dict[str, torch.Tensor]:
    """Diagonal of the true Fisher, ``1/N Σ_n Σ_c p_c(x_n) g_c(x_n)²``, of every trainable parameter.

    Args:
        model: returns logits ``[N, C]``; samples independent in eval mode (no BatchNorm
            without running statistics). Any differentiable layers.
        inputs: Tensor ``[N, ...]`` (integer token ids too), ImageData, Dataset or DataLoader.
        chunk_size: samples per forward (default ``DEFAULT_CHUNK_SIZE``); bounds memory.
        engine: ``"auto"`` (hooks for Linear / Conv2d / BatchNorm2d, torch.func for the other
            parameters) or ``"func"`` (torch.func for all).
        progress: a tqdm bar over the chunks (``leave=False``: it goes when done).

    Returns:
        name -> tensor shaped like the parameter, on the model's device.
    """
    n, chunk = _check_inputs(inputs, chunk_size)
    _check_engine(engine)
    owners, params = _owners(model), dict(model.named_parameters())
    total = {name: torch.zeros_like(params[name]) for name in owners}
    with _eval_mode(model):
        batches = _chunks(inputs, chunk, _device(model))
        first = next(batches)
        hooked, func, _ = _route(model, owners, first, engine)
        groups = _by_layer((owner, name) for name, owner in hooked.items())
        for x in tqdm(chain([first], batches), total=-(-n // chunk), desc="fisher diagonal", leave=False,
                      disable=not progress):  # fmt: skip
            if func:
                for name, t in _func_squared_sums(model, func, x).items():
                    total[name] += t.view_as(total[name])
            operands = {}  # layer -> A, computed once per chunk (an unfold is as costly as the backward)
            for captured in _one_class_output_grads(model, list(groups), x, weighted=True):
                for layer, attrs in groups.items():
                    a, g = captured[layer]
                    if layer not in operands:
                        operands[layer] = _input_operand(layer, a)
                    A, G = operands[layer], _grad_operand(layer, g)  # G [B, 1, O, L]: one class
                    for attr, name in attrs:
                        total[name] += _squared_sum(layer, attr, A, G).view_as(total[name])
    return {name: t / n for name, t in total.items()}


def gradient_embeddings(
    model: nn.Module,
    inputs,
    mask: ParameterMask,
    *,
    scale: str = "fisher",
    chunk_size: int | None = None,
    engine: str = "auto",
) -> torch.Tensor:
    """Masked per-class gradients of the log-probabilities of every input.

    Args:
        model: as for :func:`fisher_diagonal`.
        inputs: Tensor ``[N, ...]``, ImageData, Dataset or DataLoader.
        mask: over the model's trainable parameters (``mask.check(model)``).
        scale: ``"fisher"`` (rows √p_c · g_c, so VᵀV is the sample's Fisher on the mask)
            or ``"none"`` (rows g_c, the original FisherMask code).
        chunk_size: samples per forward (default ``DEFAULT_CHUNK_SIZE``); bounds memory.
        engine: as for :func:`fisher_diagonal`.

    Returns:
        ``[N, C, k]`` on the model's device.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; allowed values: {list(SCALES)}")
    n, chunk = _check_inputs(inputs, chunk_size)
    _check_engine(engine)
    _check_mask(mask, model)
    owners, device, indices = _owners(model), _device(model), mask.indices()
    out, start = None, 0
    with _eval_mode(model):
        batches = _chunks(inputs, chunk, device)
        first = next(batches)
        hooked, func, classes = _route(model, owners, first, engine)
        plans = [(hooked[name], (name, _IndexPlan(hooked[name][0], indices[name].to(device))))
                 for name in hooked if len(indices[name])]  # fmt: skip
        groups = _by_layer(plans)
        func_indices = {name: indices[name].to(device) for name in func if len(indices[name])}
        for x in chain([first], batches):
            pieces = {}  # name -> [B, C, k_p]
            if groups:
                _, captured = _per_class_output_grads(model, list(groups), x, weighted=scale == "fisher")
                for layer, attrs in groups.items():
                    A, G = _operands(layer, *captured.pop(layer))
                    pieces |= {name: _masked_grads(layer, attr, plan, A, G) for attr, (name, plan) in attrs}
            if func_indices:
                pieces |= _func_embeddings(model, func_indices, x, scale == "fisher", classes)
            # Model order, not the mask's insertion order: entries follow named_parameters().
            emb = torch.cat([pieces[name] for name in owners if name in pieces], dim=-1)  # [B, C, k]
            if out is None:
                out = emb.new_empty(n, emb.shape[1], emb.shape[2])
            out[start : start + len(emb)] = emb
            start += len(emb)
    return out


def sample_scores(embeddings: torch.Tensor) -> torch.Tensor:
    """``‖V(x)‖_F²`` per sample, ``[N]``: the trace of the sample's Fisher on the mask (sensitivity)."""
    return embeddings.pow(2).sum(dim=(1, 2))


def fisher_trace(fisher_diag, mask: ParameterMask | None = None) -> float:
    """Trace of the Fisher (sum of its diagonal), over the masked entries when ``mask`` is given."""
    if mask is None:
        return float(sum(v.sum() for v in fisher_diag.values()))
    return float(sum(v.detach().cpu()[mask[name]].sum() for name, v in fisher_diag.items()))


# ----------------------------------------------------------------------------- brute-force oracles


def gradient_embeddings_naive(model: nn.Module, inputs, mask: ParameterMask, *, scale: str = "fisher") -> torch.Tensor:
    """:func:`gradient_embeddings` by brute force: per sample one forward and C ``autograd.grad``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; allowed values: {list(SCALES)}")
    _check_mask(mask, model)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    flat_mask = torch.cat([mask[name].flatten() for name in names]).to(_device(model))
    rows = []
    for grads, p in _naive_grads(model, inputs):
        v = torch.stack([torch.cat([g.flatten() for g in gc])[flat_mask] for gc in grads])  # [C, k]
        rows.append(v * p.sqrt()[:, None] if scale == "fisher" else v)
    return torch.stack(rows)


def fisher_diagonal_naive(model: nn.Module, inputs) -> dict[str, torch.Tensor]:
    """:func:`fisher_diagonal` by brute force: per sample one forward and C ``autograd.grad``."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    total, n = None, 0
    for grads, p in _naive_grads(model, inputs):
        term = [sum(pc * g[i] ** 2 for pc, g in zip(p, grads)) for i in range(len(names))]
        total = term if total is None else [t + s for t, s in zip(total, term)]
        n += 1
    return {name: t / n for name, t in zip(names, total)}


def _naive_grads(model, inputs):
    """Yield, per sample, (per class the list of parameter gradients, p ``[C]``)."""
    _check_inputs(inputs, 1)
    params = [p for p in model.parameters() if p.requires_grad]
    with _eval_mode(model):
        for x in iter_batches(inputs, 1, _device(model)):
            logp = model(x)[0].log_softmax(0)  # [C]
            grads = [torch.autograd.grad(logp[c], params, retain_graph=True) for c in range(len(logp))]
            yield grads, logp.detach().exp()


# ----------------------------------------------------------------------------- hook engine


def _per_class_output_grads(model, layers, x, weighted: bool):
    """Forward ``x`` once; backprop the C rows w_c·(e_c − p) of the log-softmax Jacobian in one vmapped pass.

    Returns:
        p ``[B, C]`` and, per layer, (its input ``[B, ...]``, gradient of its output ``[C, B, ...]``).
    """
    z, captured = _forward(model, layers, x)
    p, rows = _log_softmax_rows(z, weighted)
    outputs = [captured[layer][1] for layer in layers]
    grads = torch.autograd.grad(z, outputs, rows, is_grads_batched=True) if layers else []
    return p, {layer: (captured[layer][0], g) for layer, g in zip(layers, grads)}


def _one_class_output_grads(model, layers, x, weighted: bool):
    """As :func:`_per_class_output_grads`, but one class per backward pass: yields {layer: (input, ``[1, B, ...]``)}.

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
            raise ValueError(f"{type(module).__name__} layer is called twice in one forward (shared layers are "
                             "not supported)")  # fmt: skip
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
    """A ``[B, J, L]`` and G ``[B, C, O, L]``: per-sample weight grad G Aᵀ, bias Σ_l G, BN weight Σ_l G⊙A."""
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
    scale = torch.rsqrt(module.running_var + module.eps)  # BatchNorm2d in eval: per-channel affine of x̂
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
    """Per-sample, per-class gradient of ``module.<attr>`` at the plan's entries: ``[B, C, k_p]``."""
    B, C, _, L = G.shape
    idx, o, j, rows, cols = plan.idx, plan.o, plan.j, plan.rows, plan.cols
    if attr == "bias":
        return G[:, :, idx].sum(-1)
    if isinstance(module, nn.BatchNorm2d):
        return (G[:, :, idx] * A[:, None, idx]).sum(-1)
    if L == 1:  # Linear on [B, I]: outer products, gathered
        return G[:, :, o, 0] * A[:, None, j, 0]
    if len(idx) * L <= len(rows) * len(cols):  # gathered dot products are cheaper than the sub-block
        return _by_samples(lambda s: (G[s][:, :, o] * A[s][:, None, j]).sum(-1), B, C * len(idx) * L)
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


# ----------------------------------------------------------------------------- helpers


def _by_layer(items) -> dict:
    """``[((layer, attr), value), ...]`` -> {layer: [(attr, value), ...]}, first-seen order (= parameter order)."""
    groups = {}
    for (layer, attr), value in items:
        groups.setdefault(layer, []).append((attr, value))
    return groups


def _owners(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Trainable parameter name -> (the first layer that holds it, attribute name), in model order."""
    owner = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False):
            owner.setdefault(id(p), (module, attr))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
            raise ValueError(f"{type(module).__name__} without running statistics mixes samples in eval: per-sample "
                             "gradients are undefined (use track_running_stats=True, or GroupNorm / LayerNorm)")  # fmt: skip
    out = {name: owner[id(p)] for name, p in model.named_parameters() if p.requires_grad}
    if not out:
        raise ValueError("the model has no trainable parameters")
    return out


def _check_engine(engine) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed values: {list(ENGINES)}")


def _check_inputs(inputs, chunk_size):
    n = num_inputs(inputs)
    if n == 0:
        raise ValueError("inputs is empty: need at least one sample")
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return n, chunk


def _check_mask(mask, model) -> None:
    if not isinstance(mask, ParameterMask):
        raise ValueError(f"mask must be a ParameterMask, got {type(mask).__name__}")
    mask.check(model)
    if mask.size == 0:
        raise ValueError("mask selects no entries (size 0): the embeddings would be empty")


def _chunks(inputs, chunk: int, device):
    """Batches of at most ``chunk`` samples (a DataLoader's own batches are split further)."""
    for batch in iter_batches(inputs, chunk, device):
        yield from batch.split(chunk)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode and grad enabled inside; every module's previous mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
