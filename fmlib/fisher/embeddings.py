"""Per-sample, per-class gradients restricted to a parameter mask, and the diagonal Fisher.

For a model in eval mode with logits z(x), p = softmax(z) and trainable parameters θ::

    g_c(x) = ∂ log p(c|x) / ∂θ
    F_diag = 1/N Σ_n Σ_c p_c(x_n) g_c(x_n)²        true Fisher: exact expectation, no sampled labels
    V(x)   = rows √p_c(x) · g_c(x)[mask]  [C, k]    V(x)ᵀV(x) = Fisher of x on the mask

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

The hook engine lives in :mod:`fmlib.fisher.hooks`. Any other layer goes through the torch.func
engine (:mod:`fmlib.fisher.func`): LayerNorm,
GroupNorm, Conv1d, Embedding, grouped convolutions, a custom module's own parameters, and
hook-engine layers that are subclassed with another forward, shared, tied, called other than
once, or whose parameters are used outside their own forward. The split is per parameter,
decided by one traced forward of one sample; ``engine="func"`` sends every parameter there.
A model torch.func cannot transform (an ``autograd.Function`` without ``setup_context``, as
torch's full backward hooks that BackPACK's ``extend`` registers) falls back for those
parameters to plain autograd per sample: exact, slower, with a one-line warning.

The brute-force references ``*_naive`` (one sample at a time, C ``autograd.grad`` calls,
flatten and index) are the oracles of the tests and the baselines of the benchmark.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch
from torch import nn

from fmlib.data import iter_batches, num_inputs
from fmlib.fisher.func import _func_embeddings, _func_squared_sums, _route
from fmlib.fisher.hooks import (
    _grad_operand,
    _IndexPlan,
    _input_operand,
    _masked_grads,
    _one_class_output_grads,
    _operands,
    _per_class_output_grads,
    _squared_sum,
)
from fmlib.fisher.masks import ParameterMask
from fmlib.models import eval_mode
from fmlib.progress import progress_bar

SCALES = ("fisher", "none")
# auto: hooks where they apply, torch.func for the rest; func: torch.func for all
ENGINES = (
    "auto",
    "func",
)
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
    model: nn.Module,
    inputs,
    *,
    chunk_size: int | None = None,
    engine: str = "auto",
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Diagonal of the true Fisher, ``1/N Σ_n Σ_c p_c(x_n) g_c(x_n)²``, of every trainable
    parameter.

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
    with eval_mode(model), torch.enable_grad():
        batches = _chunks(inputs, chunk, _device(model))
        first = next(batches)
        hooked, func, _ = _route(model, owners, first, engine)
        groups = _by_layer((owner, name) for name, owner in hooked.items())
        for x in progress_bar(
            chain([first], batches),
            total=-(-n // chunk),
            desc="fisher diagonal",
            leave=False,
            disable=not progress,
        ):
            if func:
                for name, t in _func_squared_sums(model, func, x).items():
                    total[name] += t.view_as(total[name])
            # layer -> A, computed once per chunk (an unfold is as costly as the backward)
            operands = {}
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
    with eval_mode(model), torch.enable_grad():
        batches = _chunks(inputs, chunk, device)
        first = next(batches)
        hooked, func, classes = _route(model, owners, first, engine)
        plans = [
            (hooked[name], (name, _IndexPlan(hooked[name][0], indices[name].to(device))))
            for name in hooked
            if len(indices[name])
        ]
        groups = _by_layer(plans)
        func_indices = {name: indices[name].to(device) for name in func if len(indices[name])}
        for x in chain([first], batches):
            pieces = {}  # name -> [B, C, k_p]
            if groups:
                _, captured = _per_class_output_grads(
                    model, list(groups), x, weighted=scale == "fisher"
                )
                for layer, attrs in groups.items():
                    A, G = _operands(layer, *captured.pop(layer))
                    pieces |= {
                        name: _masked_grads(layer, attr, plan, A, G) for attr, (name, plan) in attrs
                    }
            if func_indices:
                pieces |= _func_embeddings(model, func_indices, x, scale == "fisher", classes)
            # Model order, not the mask's insertion order: entries follow named_parameters().
            # [B, C, k]
            emb = torch.cat([pieces[name] for name in owners if name in pieces], dim=-1)
            if out is None:
                out = emb.new_empty(n, emb.shape[1], emb.shape[2])
            out[start : start + len(emb)] = emb
            start += len(emb)
    return out


def sample_scores(embeddings: torch.Tensor) -> torch.Tensor:
    """``‖V(x)‖_F²`` per sample, ``[N]``: the trace of the sample's Fisher on the mask
    (sensitivity)."""
    return embeddings.pow(2).sum(dim=(1, 2))


def fisher_trace(fisher_diag, mask: ParameterMask | None = None) -> float:
    """Trace of the Fisher (sum of its diagonal), over the masked entries when ``mask`` is given."""
    if mask is None:
        return float(sum(v.sum() for v in fisher_diag.values()))
    return float(sum(v.detach().cpu()[mask[name]].sum() for name, v in fisher_diag.items()))


# ----------------------------------------------------------------------------- brute-force oracles


def gradient_embeddings_naive(
    model: nn.Module, inputs, mask: ParameterMask, *, scale: str = "fisher"
) -> torch.Tensor:
    """:func:`gradient_embeddings` by brute force: per sample one forward and C
    ``autograd.grad``."""
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
    with eval_mode(model), torch.enable_grad():
        for x in iter_batches(inputs, 1, _device(model)):
            logp = model(x)[0].log_softmax(0)  # [C]
            grads = [
                torch.autograd.grad(logp[c], params, retain_graph=True) for c in range(len(logp))
            ]
            yield grads, logp.detach().exp()


# ----------------------------------------------------------------------------- helpers


def _by_layer(items) -> dict:
    """``[((layer, attr), value), ...]`` -> {layer: [(attr, value), ...]}, first-seen order (=
    parameter order)."""
    groups = {}
    for (layer, attr), value in items:
        groups.setdefault(layer, []).append((attr, value))
    return groups


def _owners(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Trainable parameter name -> (the first layer that holds it, attribute name), in model
    order."""
    owner = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False):
            owner.setdefault(id(p), (module, attr))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
            raise ValueError(
                f"{type(module).__name__} without running statistics mixes samples in eval:"
                " per-sample gradients are undefined (use track_running_stats=True, or GroupNorm /"
                " LayerNorm)"
            )
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
