"""Teaching plots for the notebooks, each a function of its parameters, and live ipywidgets
wrappers around them (``interactive_*``).

The toy problem: Gaussian blobs in 2-D and a small tanh MLP (:class:`ToyMLP`, with the ``head``
that :mod:`fmlib.masks` and BAIT expect), trained full-batch in well under a second. Every
``draw_*`` returns a new figure, so a notebook can show it statically (a rendered notebook on
GitHub keeps it) and the ``interactive_*`` wrapper redraws it when a slider moves.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmlib.fisher import gradient_embeddings, sample_scores
from fmlib.masks import ParameterMask, fisher_mask, head_names
from fmlib.select import greedy_trace_select, trace_objective

# ----------------------------------------------------------------------------- toy problem


class ToyMLP(nn.Module):
    """2-D inputs -> two tanh layers -> linear ``head`` over C classes."""

    def __init__(self, num_classes: int = 3, hidden: int = 16, in_features: int = 2):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def toy_data(n: int = 300, num_classes: int = 3, *, spread: float = 0.9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points ``[n, 2]`` from ``num_classes`` Gaussian blobs on a circle of radius 2, labels ``[n]``."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    angle = 2 * torch.pi * y / num_classes
    centres = torch.stack([2 * torch.cos(angle), 2 * torch.sin(angle)], dim=1)
    return centres + spread * torch.randn(n, 2, generator=gen), y


def train_toy(x: torch.Tensor, y: torch.Tensor, *, hidden: int = 16, steps: int = 300, lr: float = 0.03, seed: int = 0) -> ToyMLP:
    """A :class:`ToyMLP` fitted full-batch with Adam, returned in eval mode."""
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
    g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], steps), torch.linspace(lo[1], hi[1], steps), indexing="xy")
    return g0, g1, torch.stack([g0.reshape(-1), g1.reshape(-1)], dim=1)  # [steps², 2]


def _scatter(ax, x, y, **kw):
    return ax.scatter(x[:, 0], x[:, 1], c=np.asarray(y), cmap="tab10", vmin=0, vmax=9, s=kw.pop("s", 12),
                      edgecolors="white", linewidths=0.3, **kw)  # fmt: skip


# ----------------------------------------------------------------------------- 1. Fisher information


def draw_fisher_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 60):
    """Left: p(predicted class) over the input plane. Right: the trace of each input's Fisher,
    ``tr F(x) = Σ_c p_c ‖∇θ log p_c(x)‖²``: large where the model is unsure, near the boundaries."""
    g0, g1, grid = _grid(x, steps)
    with torch.no_grad():
        conf = model(grid).softmax(-1).max(-1).values.reshape(g0.shape)
    trace = sample_scores(gradient_embeddings(model, grid, ParameterMask.full(model))).reshape(g0.shape)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    for ax, values, title, cmap in ((axes[0], conf, "confidence max_c p(c|x)", "Greys"),
                                    (axes[1], trace, "Fisher trace tr F(x)", "magma")):  # fmt: skip
        mesh = ax.contourf(g0, g1, values.detach().numpy(), levels=20, cmap=cmap)
        _scatter(ax, x, y)
        fig.colorbar(mesh, ax=ax)
        ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    return fig


def layer_table(fisher_diag, mask: ParameterMask | None = None):
    """Per parameter tensor: entries, Fisher sum and mean, and (with a mask) entries and share in it."""
    import pandas as pd

    rows = []
    for name, values in fisher_diag.items():
        row = {"parameter": name, "entries": values.numel(), "fisher_sum": float(values.sum()),
               "fisher_mean": float(values.mean())}  # fmt: skip
        if mask is not None:
            row["in_mask"] = int(mask[name].sum())
            row["share_of_tensor"] = row["in_mask"] / values.numel()
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 2. the mask


def draw_mask(fisher_diag, fraction: float = 0.1, *, model: nn.Module | None = None, method: str = "global",
              include_head: bool = True):  # fmt: skip
    """Left: every parameter entry's Fisher value, sorted, coloured by tensor, the masked ones
    above the cut. Right: the share of each tensor inside the mask at this ``fraction``."""
    mask = fisher_mask(fisher_diag, fraction, method=method, include_head=include_head, model=model)
    names = list(fisher_diag)
    values = torch.cat([fisher_diag[n].detach().reshape(-1).double() for n in names]).numpy()
    owner = np.concatenate([np.full(fisher_diag[n].numel(), i) for i, n in enumerate(names)])
    chosen = torch.cat([mask[n].reshape(-1) for n in names]).numpy()
    order = np.argsort(-values, kind="stable")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    colors = plt.get_cmap("tab10")(owner[order] % 10)
    colors[~chosen[order], 3] = 0.15  # entries outside the mask fade out
    left.scatter(np.arange(len(values)), np.maximum(values[order], 1e-12), c=colors, s=4)
    left.set(yscale="log", xlabel="entry (sorted by Fisher value)", ylabel="diagonal Fisher F_i",
             title=f"{mask.size} of {mask.numel} entries in the mask (fraction {fraction:g})")  # fmt: skip
    share = [mask[n].float().mean().item() for n in names]
    right.barh(names, share, color=plt.get_cmap("tab10")(np.arange(len(names)) % 10))
    right.invert_yaxis()
    right.set(xlim=(0, 1), xlabel="share of the tensor in the mask", title=f"method={method!r}, include_head={include_head}")
    return fig


def draw_mask_vs_fraction(fisher_diag, *, model: nn.Module | None = None, fractions=None, method: str = "global"):
    """Share of each tensor inside the mask as the fraction grows (log axis): the head is in from
    the start (``include_head``), then the entries with the most Fisher information fill in."""
    fractions = np.geomspace(1e-3, 1, 25) if fractions is None else np.asarray(fractions)
    names = list(fisher_diag)
    shares = np.array([[fisher_mask(fisher_diag, float(f), method=method, model=model)[n].float().mean().item()
                        for n in names] for f in fractions])  # fmt: skip  # [F, P]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for i, name in enumerate(names):
        ax.plot(fractions, shares[:, i], marker=".", label=name, color=plt.get_cmap("tab10")(i % 10))
    ax.set(xscale="log", xlabel="mask fraction (of all entries)", ylabel="share of the tensor in the mask",
           title=f"mask composition against the fraction ({method})")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ----------------------------------------------------------------------------- 3. BAIT on a toy problem


def bait_objective(embeddings: torch.Tensor, picked, fisher: torch.Tensor, lamb: float) -> float:
    """``tr((λI + Σ_{j in picked} V_jᵀV_j)⁻¹ F_U)``: what BAIT's greedy lowers pick by pick (no labeled set)."""
    return trace_objective(embeddings[torch.as_tensor(list(picked), dtype=torch.long)], fisher, lamb=lamb)


def bait_picks(model: nn.Module, pool: torch.Tensor, batch_size: int, lamb: float):
    """BAIT on the head of ``model``: embeddings ``[N, C, k]``, ``F_U`` ``[k, k]`` and the greedy picks."""
    mask = ParameterMask.full(model, head_names(model))
    emb = gradient_embeddings(model, pool, mask).double()  # [N, C, k]
    flat = emb.reshape(-1, emb.shape[-1])
    fisher = flat.T @ flat / len(pool)
    return emb, fisher, greedy_trace_select(emb, batch_size, fisher=fisher, lamb=lamb)


def draw_bait(model: nn.Module, pool: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 10, lamb: float = 1.0,
              random_draws: int = 20, seed: int = 0):  # fmt: skip
    """Left: the pool, coloured by class and sized by its Fisher trace, BAIT's ``batch_size`` picks
    numbered in pick order. Right: the objective as the batch grows, greedy against random batches."""
    emb, fisher, picks = bait_picks(model, pool, batch_size, lamb)
    gen = np.random.default_rng(seed)
    sizes = np.arange(1, batch_size + 1)
    greedy = [bait_objective(emb, picks[:m], fisher, lamb) for m in sizes]
    randoms = np.array([[bait_objective(emb, draw[:m], fisher, lamb) for m in sizes]
                        for draw in (gen.permutation(len(pool))[:batch_size] for _ in range(random_draws))])  # fmt: skip
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    score = sample_scores(emb).numpy()
    _scatter(left, pool, labels, s=8 + 120 * score / max(score.max(), 1e-12), alpha=0.6)
    p = pool[torch.as_tensor(picks)].numpy()
    left.scatter(p[:, 0], p[:, 1], s=140, facecolors="none", edgecolors="black", linewidths=1.5)
    for rank, (px, py) in enumerate(p, start=1):
        left.annotate(str(rank), (px, py), ha="center", va="center", fontsize=7, fontweight="bold")
    left.set(title=f"BAIT picks {batch_size} (λ={lamb:g}); size = tr F(x)", aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    right.plot(sizes, greedy, marker="o", label="BAIT greedy")
    mean, std = randoms.mean(0), randoms.std(0)
    right.plot(sizes, mean, color="grey", label=f"random batches (mean ± std of {random_draws})")
    right.fill_between(sizes, mean - std, mean + std, color="grey", alpha=0.25)
    right.set(xlabel="batch size", ylabel="tr((λI + Σ VᵀV)⁻¹ F_U)", yscale="log", title="BAIT's objective (lower is better)")
    right.legend()
    return fig


# ----------------------------------------------------------------------------- live widgets


def _live(draw, **fixed):
    """A callback for ``ipywidgets.interactive`` that shows ``draw(**fixed, **sliders)`` and closes it."""
    from IPython.display import display

    def update(**sliders):
        fig = draw(**fixed, **sliders)
        display(fig)
        plt.close(fig)

    return update


def interactive_mask(fisher_diag, *, model: nn.Module | None = None, fraction: float = 0.1):
    """:func:`draw_mask` with a log slider for the fraction and a menu for the method."""
    import ipywidgets as w

    slider = w.FloatLogSlider(value=fraction, base=10, min=-3, max=0, step=0.1, description="fraction",
                              continuous_update=False)  # fmt: skip
    method = w.Dropdown(options=["global", "per_layer", "random"], value="global", description="method")
    return w.interactive(_live(draw_mask, fisher_diag=fisher_diag, model=model), fraction=slider, method=method)


def interactive_bait(model: nn.Module, pool: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 10, lamb: float = 1.0):
    """:func:`draw_bait` with sliders for λ (log) and the batch size."""
    import ipywidgets as w

    lamb_slider = w.FloatLogSlider(value=lamb, base=10, min=-3, max=2, step=0.25, description="λ", continuous_update=False)
    size = w.IntSlider(value=batch_size, min=1, max=40, description="batch size", continuous_update=False)
    return w.interactive(_live(draw_bait, model=model, pool=pool, labels=labels), batch_size=size, lamb=lamb_slider)


def interactive_fisher_map(x: torch.Tensor, y: torch.Tensor, *, steps: int = 300):
    """:func:`draw_fisher_map` of a model trained for a chosen number of steps (Fisher moves as the model learns)."""
    import ipywidgets as w

    def draw(train_steps: int):
        return draw_fisher_map(train_toy(x, y, steps=train_steps), x, y)

    slider = w.IntSlider(value=steps, min=0, max=1000, step=50, description="train steps", continuous_update=False)
    return w.interactive(_live(draw), train_steps=slider)


# ----------------------------------------------------------------------------- images


def draw_images(images, labels, classes, *, titles=None, ncols: int = 8, size: float = 1.4):
    """A grid of images (``uint8 [n, C, H, W]``) titled with their class name (and ``titles``)."""
    images = np.asarray(images)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 1.25 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        title = classes[int(labels[i])]
        ax.set_title(title if titles is None else f"{title}\n{titles[i]}", fontsize=7)
    fig.tight_layout()
    return fig
