"""The torch.func engine of :mod:`fmlib.fisher.embeddings`, and the routing of each parameter to it
or to the hook engine.

The parameters the hook engine cannot take (which ones: :mod:`fmlib.fisher.embeddings`) go through
torch.func. Per sample (``vmap``), ``functional_call`` of the whole model with those parameters
swapped in, ``vjp`` to the logits, and the same C rows pulled back: exact whatever the layer
computes, at the price of a second forward and the full per-sample gradients of those
parameters (masked entries are indexed after). The split is per parameter, decided by one
traced forward of one sample (:func:`_route`).

Both engines use the C rows of the log-softmax Jacobian (:func:`_log_softmax_rows`) and cut a
chunk into per-sample blocks under ``BLOCK_ELEMENTS`` (:func:`_by_samples`); those two live here,
so :mod:`fmlib.fisher.embeddings` imports this module and never the reverse.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.func import functional_call, vjp, vmap
from torch.overrides import TorchFunctionMode

from fmlib.inputs import one_sample, tree

# cap on one per-sample gradient block (64 MB in float32): splits a chunk further
BLOCK_ELEMENTS = 2**24
# the hook engine's layers (their own forward, groups=1)
_LAYERS = (
    nn.Linear,
    nn.Conv2d,
    nn.BatchNorm2d,
)


# ----------------------------------------------------------------------------- routing


def _hookable(module: nn.Module, attr: str) -> bool:
    """Whether the hook engine's formulas hold for ``module.<attr>``: the layer's own forward, no
    groups."""
    if attr not in ("weight", "bias") or not isinstance(module, _LAYERS):
        return False
    # a user's hook may change the input or output
    if module._forward_pre_hooks or module._forward_hooks:
        return False
    base = next(cls for cls in _LAYERS if isinstance(module, cls))
    if type(module).forward is not base.forward:  # a subclass computing something else
        return False
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and type(module)._conv_forward is nn.Conv2d._conv_forward
    return True


def _route(model, owners, x, engine: str):
    """Split the trainable parameters between the hook engine and torch.func by one forward of
    ``x[:1]``.

    A hook-engine layer keeps its parameters on the fast path only if, in that forward, it is
    called once with one positional tensor, and its parameters are used in no other
    module's forward (a tied weight is used by its second holder): the hooks then see every use.

    Returns:
        (name -> (layer, attr) for the hooks, names for torch.func, C), in model order.
    """
    params = dict(model.named_parameters())
    candidates = (
        {}
        if engine == "func"
        else {name: owner for name, owner in owners.items() if _hookable(*owner)}
    )
    trace = _Trace({id(params[name]): layer for name, (layer, _) in candidates.items()})
    handles = [
        h
        for layer in trace.calls
        for h in (
            layer.register_forward_pre_hook(trace.enter, with_kwargs=True),
            layer.register_forward_hook(trace.leave),
        )
    ]
    try:
        with torch.no_grad(), trace:
            z = model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        raise ValueError(f"the model must return logits [N, C], got {_describe(z)}")
    hooked = {
        name: owner
        for name, owner in candidates.items()
        if trace.calls[owner[0]] == 1
        and owner[0] not in trace.bad
        and id(params[name]) not in trace.outside
    }
    return hooked, [name for name in owners if name not in hooked], z.shape[1]


class _Trace(TorchFunctionMode):
    """Counts the calls of the candidate layers and finds their parameters used outside their own
    forward."""

    def __init__(self, owner_of: dict[int, nn.Module]):
        super().__init__()
        self.owner_of = owner_of  # id(parameter) -> its layer
        self.calls = dict.fromkeys(owner_of.values(), 0)
        self.running, self.bad, self.outside = [], set(), set()

    def enter(self, layer, args, kwargs):
        self.calls[layer] += 1
        if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor):
            self.bad.add(layer)
        self.running.append(layer)

    def leave(self, layer, args, output):
        self.running.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        current = self.running[-1] if self.running else None
        for t in _tensors((args, kwargs)):
            if id(t) in self.owner_of and self.owner_of[id(t)] is not current:
                self.outside.add(id(t))
        return func(*args, **kwargs)


def _tensors(obj):
    """The tensors in nested tuples, lists and dicts."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _describe(z) -> str:
    return f"shape {tuple(z.shape)}" if isinstance(z, torch.Tensor) else f"a {type(z).__name__}"


# ----------------------------------------------------------------------------- torch.func engine


def _func_embeddings(
    model, indices: dict, x, weighted: bool, classes: int
) -> dict[str, torch.Tensor]:
    """Per-sample, per-class gradients at the masked entries of the parameters in ``indices``: name
    -> ``[B, C, k_p]``.

    Per sample: a forward with those parameters swapped in (``functional_call``), its ``vjp`` to
    the logits ``[C]``, and the C rows of :func:`_log_softmax_rows` pulled back at once. A model
    torch.func cannot transform goes through :func:`_autograd_embeddings` (exact, slower).
    """
    try:
        return _vmap_embeddings(model, indices, x, weighted, classes)
    except RuntimeError as err:
        if not _untransformable(err):
            raise
        _warn_fallback(model, indices, err)
    return _autograd_embeddings(model, indices, x, weighted)


def _func_squared_sums(model, names: list[str], x) -> dict[str, torch.Tensor]:
    """``Σ_n Σ_c p_c g_c²`` over the chunk of the parameters in ``names``: name -> flat
    ``[numel]``."""
    try:
        return _vmap_squared_sums(model, names, x)
    except RuntimeError as err:
        if not _untransformable(err):
            raise
        _warn_fallback(model, names, err)
    sums = {name: 0 for name in names}
    for grads in _autograd_grads(model, names, x, weighted=True):
        for name, g in zip(names, grads):
            sums[name] = sums[name] + g.flatten(1).pow(2).sum(0)
    return sums


def _vmap_embeddings(
    model, indices: dict, x, weighted: bool, classes: int
) -> dict[str, torch.Tensor]:
    theta = _detached(model, indices)

    def one(xi):  # one sample -> [C, k_F]
        z, pull = vjp(lambda th: functional_call(model, th, (one_sample(xi),))[0], theta)  # z [C]
        _, rows = _log_softmax_rows(z[None], weighted)  # [C, 1, C]
        grads = vmap(pull)(rows[:, 0])[0]  # name -> [C, *shape]: the full gradients, then the mask
        return torch.cat([grads[name].flatten(1)[:, idx] for name, idx in indices.items()], dim=1)

    numel = sum(t.numel() for t in theta.values())
    # torch.func differentiates inside; no autograd graph of the other parameters
    with torch.no_grad():
        emb = _by_samples(lambda s: vmap(one)(tree(x[s])), len(x), classes * numel)  # [B, C, k_F]
    return dict(zip(indices, emb.split([len(idx) for idx in indices.values()], dim=-1)))


def _vmap_squared_sums(model, names: list[str], x) -> dict[str, torch.Tensor]:
    theta = _detached(model, names)

    def one(xi):  # one sample -> [P_F]
        z, pull = vjp(lambda th: functional_call(model, th, (one_sample(xi),))[0], theta)  # z [C]
        _, rows = _log_softmax_rows(z[None], weighted=True)  # [C, 1, C]
        total = 0
        # one class at a time: no [C, P_F] block, as in the hook engine
        for c in range(rows.shape[0]):
            grads = pull(rows[c, 0])[0]
            total = total + torch.cat([grads[name].flatten() for name in names]).pow(2)
        return total

    numel = sum(t.numel() for t in theta.values())
    with torch.no_grad():
        # [P_F]
        sums = _by_samples(lambda s: vmap(one)(tree(x[s])).sum(0), len(x), 2 * numel, reduce=True)
    return dict(zip(names, sums.split([t.numel() for t in theta.values()])))


# ----------------------------------------------------------------------------- autograd fallback

# What torch.func says when it cannot transform a model: an autograd.Function without
# setup_context (torch's own full backward hooks, as BackPACK's extend registers them), or
# data-dependent control flow / .item() under vmap.
_UNTRANSFORMABLE = ("setup_context", "functorch", "vmap", "data-dependent")


def _untransformable(err: RuntimeError) -> bool:
    return any(key in str(err) for key in _UNTRANSFORMABLE)


def _warn_fallback(model, names, err: RuntimeError) -> None:
    """One line naming the layers of ``names`` (those with backward hooks first) and torch's
    reason."""
    owners = {}
    for module_name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), (module_name or "<model>", module))
    params = dict(model.named_parameters())
    layers = dict(owners[id(params[name])] for name in names)
    hooked = {n: m for n, m in layers.items() if m._backward_hooks or m._backward_pre_hooks}
    shown = ", ".join(f"{n} ({type(m).__name__})" for n, m in (hooked or layers).items())
    reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
    why = "backward hooks: " if hooked else ""
    warnings.warn(
        f"torch.func cannot transform the model at {shown} ({why}{reason[:160]}); "
        "their per-sample gradients use plain autograd per sample (exact, slower)",
        stacklevel=4,
    )


def _autograd_grads(model, names: list[str], x, weighted: bool):
    """Per sample of ``x``, the gradients ``[C, *shape]`` of the C rows, one per name in ``names``.

    One forward and C ``autograd.grad`` calls per sample: no transform, so any autograd.Function
    and any hook run as in training.
    """
    params = dict(model.named_parameters())
    ps = [params[name] for name in names]
    for i in range(len(x)):
        # torch's note that a full backward hook fires without input grads
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Full backward hook is firing", UserWarning)
            z = model(x[i : i + 1])  # [1, C]
            _, rows = _log_softmax_rows(z, weighted)  # [C, 1, C]
            per_class = [
                torch.autograd.grad(
                    z, ps, rows[c], retain_graph=c < len(rows) - 1, allow_unused=True
                )
                for c in range(len(rows))
            ]
        yield [
            torch.stack([torch.zeros_like(p) if g[j] is None else g[j] for g in per_class])
            for j, p in enumerate(ps)
        ]


def _autograd_embeddings(model, indices: dict, x, weighted: bool) -> dict[str, torch.Tensor]:
    names = list(indices)
    # [C, k_F] each
    rows = [
        torch.cat([g.flatten(1)[:, indices[name]] for name, g in zip(names, grads)], dim=1)
        for grads in _autograd_grads(model, names, x, weighted)
    ]
    emb = torch.stack(rows).detach()  # [B, C, k_F]
    return dict(zip(names, emb.split([len(idx) for idx in indices.values()], dim=-1)))


def _detached(model, names) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {name: params[name].detach() for name in names}


# --------------------------------------------------------------------------- shared by both engines


def _log_softmax_rows(z, weighted: bool):
    """p ``[B, C]`` and the rows ∂ log p_c / ∂z ``[C, B, C]``, times √p_c when ``weighted``."""
    p = z.detach().softmax(dim=1)  # [B, C]
    rows = torch.eye(z.shape[1], dtype=p.dtype, device=p.device)[:, None, :] - p  # [C, B, C]
    if weighted:
        rows = rows * p.sqrt().T[:, :, None]
    return p, rows


def _by_samples(fn, num: int, per_sample: int, reduce: bool = False):
    """Apply ``fn`` to sample slices holding at most ``BLOCK_ELEMENTS`` elements; concatenate or
    sum."""
    step = max(1, BLOCK_ELEMENTS // max(per_sample, 1))
    parts = [fn(slice(s, s + step)) for s in range(0, num, step)]
    return sum(parts) if reduce else torch.cat(parts)
