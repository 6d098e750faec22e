"""The primer's toy problem and its teaching figures (``notebooks/fisher_primer.ipynb``).

The toy problem: Gaussian blobs in 2-D and a small tanh MLP (:class:`ToyMLP`, with the ``head``
that :mod:`fmlib.fisher.masks` and BAIT expect), trained full-batch in well under a second. Every
``draw_*`` is a function of its parameters that returns a new figure, so the notebook shows it
statically (a rendered notebook on GitHub keeps it) and :mod:`fmlib.primer.widgets` redraws it live
when a slider moves.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmlib.fisher.embeddings import fisher_diagonal, gradient_embeddings, sample_scores
from fmlib.fisher.greedy import greedy_trace_select, trace_objective
from fmlib.fisher.masks import ParameterMask, fisher_mask, head_names
from fmlib.primer.labels import label_points

# ----------------------------------------------------------------------------- toy problem


def default_figures_dir() -> Path:
    """Where the primer writes its figures and record unless told: ``$XDG_CACHE_HOME/fmlib/primer``
    (``~/.cache/fmlib/primer``). Outside any checkout, so running the primer leaves ``git status``
    clean, and the same for an installed fmlib; each run overwrites the last."""
    from fmlib.data import cache_dir

    return cache_dir() / "primer"


def rounded(value: float) -> str:
    """``value`` with 3 significant digits for titles: a log slider's 10**-0.3 reads 0.501, not
    0.501187."""
    return f"{value:.3g}"


class ToyMLP(nn.Module):
    """2-D inputs -> two tanh layers -> linear ``head`` over C classes."""

    def __init__(self, num_classes: int = 3, hidden: int = 16, in_features: int = 2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def toy_data(
    n: int = 300, num_classes: int = 3, *, spread: float = 0.9, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points ``[n, 2]`` from ``num_classes`` Gaussian blobs on a circle of radius 2, and
    their labels ``[n]``."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    angle = 2 * torch.pi * y / num_classes
    centres = torch.stack([2 * torch.cos(angle), 2 * torch.sin(angle)], dim=1)
    return centres + spread * torch.randn(n, 2, generator=gen), y


def train_toy(
    x, y, *, hidden: int = 16, steps: int = 300, lr: float = 0.03, seed: int = 0
) -> ToyMLP:
    """A :class:`ToyMLP` fitted full-batch with Adam on points ``x`` ``[N, d]`` and labels ``y``
    ``[N]``, returned in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyMLP(int(y.max()) + 1, hidden, x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _grid(x: torch.Tensor, steps: int, margin: float = 1.0):
    lo, hi = x.min(0).values - margin, x.max(0).values + margin
    g0, g1 = torch.meshgrid(
        torch.linspace(lo[0], hi[0], steps), torch.linspace(lo[1], hi[1], steps), indexing="xy"
    )
    return g0, g1, torch.stack([g0.reshape(-1), g1.reshape(-1)], dim=1)  # [steps², 2]


FISHER_SCALE = (1e-3, 1e4)  # the Fisher maps' fixed colour range (log): untrained to trained


def _scatter(ax, x, y, **kw):
    return ax.scatter(
        x[:, 0],
        x[:, 1],
        c=np.asarray(y),
        cmap="tab10",
        vmin=0,
        vmax=9,
        s=kw.pop("s", 12),
        edgecolors="white",
        linewidths=0.3,
        **kw,
    )


def class_legend(ax, num_classes: int, **kwargs):
    """A legend of the class colours of :func:`_scatter` (tab10, class ``c`` in colour ``c``)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [], [], ls="", marker="o", ms=5, color=plt.get_cmap("tab10")(c % 10), label=f"class {c}"
        )
        for c in range(num_classes)
    ]
    kwargs = {"fontsize": 7, "loc": "upper right", "framealpha": 0.8, **kwargs}
    return ax.legend(handles=handles, **kwargs)


def concentration(values: torch.Tensor, top: float = 0.1) -> float:
    """The share of ``values.sum()`` that the largest ``top`` share of the values hold."""
    values = values.reshape(-1).double()
    n = max(1, int(top * values.numel()))
    total = float(values.sum())
    return float(values.sort(descending=True).values[:n].sum()) / total if total > 0 else 0.0


# ------------------------------------------------------------------------- 1. Fisher information


def draw_fisher_map(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 60,
    scale: tuple[float, float] = FISHER_SCALE,
):
    """Left: p(predicted class) over the input plane. Middle: the trace of each input's Fisher,
    ``tr F(x) = Σ_c p_c ‖∇θ log p_c(x)‖²``, over all parameters; right: over the head alone
    (BAIT's embedding). Both on one fixed log colour ``scale`` (values outside it are clipped), so
    maps of models trained for longer compare: the titles give the largest value and how much of
    the plane's total the brightest tenth holds."""
    from matplotlib.colors import LogNorm

    g0, g1, grid = _grid(x, steps)
    with torch.no_grad():
        conf = model(grid).softmax(-1).max(-1).values.reshape(g0.shape)
    traces = {
        "all parameters": ParameterMask.full(model),
        "head only (BAIT)": ParameterMask.full(model, head_names(model)),
    }
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), constrained_layout=True)
    chance = 1 / model(grid[:1]).shape[-1]  # 1/C: no class preferred
    mesh = axes[0].pcolormesh(
        g0.numpy(), g1.numpy(), conf.numpy(), cmap="Greys", vmin=chance, vmax=1, shading="gouraud"
    )
    fig.colorbar(mesh, ax=axes[0], shrink=0.85, label="max_c p(c|x)")
    axes[0].set_title("confidence")
    norm = LogNorm(*scale, clip=True)
    for ax, (what, mask) in zip(axes[1:], traces.items()):
        trace = sample_scores(gradient_embeddings(model, grid, mask)).reshape(g0.shape).detach()
        mesh = ax.pcolormesh(
            g0.numpy(),
            g1.numpy(),
            trace.clamp(*scale).numpy(),
            norm=norm,
            cmap="magma",
            shading="gouraud",
        )
        ax.set_title(
            f"tr F(x), {what}: max {float(trace.max()):.3g},\n"
            f"brightest 10 % of the plane hold {concentration(trace):.0%}"
        )
    fig.colorbar(mesh, ax=list(axes[1:]), shrink=0.85, label="tr F(x) (fixed log scale)")
    for ax in axes:
        _scatter(ax, x, y)
        ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    class_legend(axes[0], int(y.max()) + 1)
    return fig


def layer_table(fisher_diag, mask: ParameterMask | None = None):
    """Per parameter tensor: entries, Fisher sum and mean, and (with a mask) its entries in the
    mask and their share of the tensor."""
    import pandas as pd

    rows = []
    for name, values in fisher_diag.items():
        row = {
            "parameter": name,
            "entries": values.numel(),
            "fisher_sum": float(values.sum()),
            "fisher_mean": float(values.mean()),
        }
        if mask is not None:
            row["in_mask"] = int(mask[name].sum())
            row["share_of_tensor"] = row["in_mask"] / values.numel()
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 2. the mask


def mask_rule(fisher_diag, fraction: float, *, model: nn.Module | None = None) -> str:
    """The ``"global"`` mask's size as :func:`fmlib.fisher.masks.fisher_mask` computes it, in
    words: ``k = max(⌊fraction·P⌋, H)``, the whole head (H entries) and the top
    ``⌊fraction·P⌋ − H`` of the other entries."""
    numel = sum(v.numel() for v in fisher_diag.values())
    head = sum(fisher_diag[n].numel() for n in head_names(model, list(fisher_diag)))
    budget = int(fraction * numel)
    rest = max(budget - head, 0)
    return (
        f"k = max(⌊{rounded(fraction)}·{numel}⌋, head {head}) = {head + rest}: "
        f"head + top {rest} of {numel - head} others"
    )


def draw_mask(
    fisher_diag,
    fraction: float = 0.1,
    *,
    model: nn.Module | None = None,
    method: str = "global",
    include_head: bool = True,
):
    """Left: every parameter entry's Fisher value, sorted, coloured by tensor when in the mask
    (grey outside), and the cut-off: the smallest value kept outside the head. Right: the share
    of each tensor inside the mask at this ``fraction``."""
    from matplotlib.lines import Line2D

    mask = fisher_mask(fisher_diag, fraction, method=method, include_head=include_head, model=model)
    names = list(fisher_diag)
    head = set(head_names(model, names)) if include_head else set()
    values = torch.cat([fisher_diag[n].detach().reshape(-1).double() for n in names]).numpy()
    owner = np.concatenate([np.full(fisher_diag[n].numel(), i) for i, n in enumerate(names)])
    chosen = torch.cat([mask[n].reshape(-1) for n in names]).numpy()
    in_head = np.isin(owner, [i for i, n in enumerate(names) if n in head])
    order = np.argsort(-values, kind="stable")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    palette = plt.get_cmap("tab10")
    colors = palette(owner[order] % 10)
    colors[~chosen[order]] = (0.75, 0.75, 0.75, 0.5)  # outside the mask: grey
    left.scatter(np.arange(len(values)), np.maximum(values[order], 1e-12), c=colors, s=5)
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=palette(i % 10), label=n)
        for i, n in enumerate(names)
        if mask[n].any()
    ]
    handles.append(
        Line2D([], [], ls="", marker="o", ms=4, color=(0.75, 0.75, 0.75), label="outside")
    )
    kept = values[chosen & ~in_head]
    if method == "global" and len(kept):
        cut = float(kept.min())
        handles.append(
            left.axhline(
                cut,
                color="black",
                ls="--",
                lw=0.8,
                label=f"cut-off F_i = {cut:.2g} (outside the head)",
            )
        )
    left.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.85)
    rule = mask_rule(fisher_diag, fraction, model=model) if method == "global" and head else ""
    left.set(
        yscale="log",
        xlabel="entry (sorted by Fisher value)",
        ylabel="diagonal Fisher F_i",
        title=f"{mask.size} of {mask.numel} entries in the mask (fraction {rounded(fraction)})"
        + (f"\n{rule}" if rule else ""),
    )
    share = [mask[n].float().mean().item() for n in names]
    right.barh(names, share, color=palette(np.arange(len(names)) % 10))
    right.invert_yaxis()
    right.set(
        xlim=(0, 1),
        xlabel="share of the tensor in the mask",
        title=f"method={method!r}, include_head={include_head}",
    )
    return fig


def draw_mask_vs_fraction(
    fisher_diag, *, model: nn.Module | None = None, fractions=None, method: str = "global"
):
    """Share of each tensor inside the mask as the fraction grows (log axis): the head is in from
    the start (``include_head``), then the entries with the most Fisher information fill in."""
    fractions = np.geomspace(1e-3, 1, 25) if fractions is None else np.asarray(fractions)
    names = list(fisher_diag)
    masks = [fisher_mask(fisher_diag, float(f), method=method, model=model) for f in fractions]
    shares = np.array([[m[n].float().mean().item() for n in names] for m in masks])  # [F, P]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for i, name in enumerate(names):
        ax.plot(
            fractions, shares[:, i], marker=".", label=name, color=plt.get_cmap("tab10")(i % 10)
        )
    ax.set(
        xscale="log",
        xlabel="mask fraction (of all entries)",
        ylabel="share of the tensor in the mask",
        title=f"mask composition against the fraction ({method})",
    )
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ----------------------------------------------------------------------- 3. BAIT on a toy problem


def bait_objective(embeddings: torch.Tensor, picked, fisher: torch.Tensor, lamb: float) -> float:
    """``tr((λI + Σ_{j in picked} V_jᵀV_j)⁻¹ F_U)``: what BAIT's greedy lowers pick by pick (no
    labeled set)."""
    return trace_objective(
        embeddings[torch.as_tensor(list(picked), dtype=torch.long)], fisher, lamb=lamb
    )


def bait_picks(
    model: nn.Module,
    pool: torch.Tensor,
    batch_size: int,
    lamb: float,
    *,
    mask: ParameterMask | None = None,
):
    """BAIT's greedy on ``pool``: embeddings ``[N, C, k]``, ``F_U`` ``[k, k]`` and the picks.

    The embeddings are the gradients on ``mask``: the head by default (BAIT), or FisherMask's
    mask (:func:`fishermask_picks`)."""
    mask = ParameterMask.full(model, head_names(model)) if mask is None else mask
    emb = gradient_embeddings(model, pool, mask).double()  # [N, C, k]
    flat = emb.reshape(-1, emb.shape[-1])
    fisher = flat.T @ flat / len(pool)
    return emb, fisher, greedy_trace_select(emb, batch_size, fisher=fisher, lamb=lamb)


def fishermask_picks(
    model: nn.Module, pool: torch.Tensor, batch_size: int, lamb: float, fraction: float
):
    """FisherMask on ``pool``: the mask of ``fraction`` from the pool's diagonal Fisher, then
    BAIT's greedy on the masked gradients. Returns the mask and :func:`bait_picks`' triple."""
    mask = fisher_mask(fisher_diagonal(model, pool), fraction, model=model)
    return (mask, *bait_picks(model, pool, batch_size, lamb, mask=mask))


def draw_bait(
    model: nn.Module,
    pool: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 10,
    lamb: float = 1.0,
    fraction: float = 0.25,
    random_draws: int = 20,
    seed: int = 0,
):
    """Left: the pool, coloured by class and sized by its Fisher trace on the head, BAIT's
    ``batch_size`` picks numbered in pick order. Middle: the same for FisherMask (the greedy on
    the mask of ``fraction``), sized by the trace on the mask. Right: each greedy's objective as
    the batch grows, over the median of random batches' (in its own embedding)."""
    mask, *fm = fishermask_picks(model, pool, batch_size, lamb, fraction)
    runs = {
        "BAIT (head)": bait_picks(model, pool, batch_size, lamb),
        f"FisherMask (mask of {mask.size})": fm,
    }
    gen = np.random.default_rng(seed)
    draws = [gen.permutation(len(pool))[:batch_size] for _ in range(random_draws)]
    sizes = np.arange(1, batch_size + 1)
    fig, axes = plt.subplots(
        1, 3, figsize=(16, 4.8), constrained_layout=True, gridspec_kw={"width_ratios": [1, 1, 0.9]}
    )
    right = axes[2]
    for ax, (what, (emb, fisher, picks)), color in zip(axes, runs.items(), ("C0", "C1")):
        curves = np.array(  # [1 + random_draws, batch_size]: the objective of each order's first m
            [
                [bait_objective(emb, order[:m], fisher, lamb) for m in sizes]
                for order in (picks, *draws)
            ]
        )
        greedy, randoms = curves[0], curves[1:]
        median = np.median(randoms, axis=0)
        right.plot(sizes, greedy / median, marker="o", color=color, label=f"{what} greedy")
        low, high = np.quantile(randoms, [0.1, 0.9], axis=0) / median
        right.fill_between(sizes, low, high, color=color, alpha=0.12)
        score = sample_scores(emb).numpy()
        _scatter(ax, pool, labels, s=8 + 120 * score / max(score.max(), 1e-12), alpha=0.6)
        p = pool[torch.as_tensor(picks)].numpy()
        ax.scatter(p[:, 0], p[:, 1], s=140, facecolors="none", edgecolors="black", linewidths=1.5)
        ax.set(
            title=f"{what.split(' (')[0]} picks {batch_size} (λ={rounded(lamb)}); "
            f"size = tr F(x) on the {'head' if 'BAIT' in what else 'mask'}",
            aspect="equal",
            xlabel="$x_1$",
            ylabel="$x_2$",
        )
    class_legend(axes[0], int(labels.max()) + 1, loc="lower left")
    right.axhline(
        1, color="grey", lw=0.8, label=f"random batches (median; 10-90 % of {random_draws})"
    )
    right.set(
        xlabel="batch size",
        ylabel="objective / random batches' median",
        ylim=(0, None),
        title="tr((λI + Σ VᵀV)⁻¹ F_U), lower is better",
    )
    right.legend(fontsize=8)
    for ax, (_, (_, _, picks)) in zip(axes, runs.items()):  # last: placed in the final layout
        label_points(ax, pool[torch.as_tensor(picks)].numpy(), ring_size=140)
    return fig
