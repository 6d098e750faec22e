"""BAIT and FisherMask: BAIT's greedy on Fisher embeddings of the classifier head (BAIT) or of
the entries of the whole network that a Fisher mask keeps (FisherMask, the method this project
is about).

Both report a :class:`~fmlib.strategies.base.FisherReport` (the diagonal Fisher, the mask, the
picks' scores, the pool Fisher's trace) in ``strategy.report.fisher``; the run records turn it
into the sensitivity snapshots.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fmlib.fisher.embeddings import FISH_SAMPLES, SCALES, fisher_diagonal, fisher_subsample, gradient_embeddings, sample_scores
from fmlib.fisher.greedy import greedy_trace_select
from fmlib.fisher.masks import ParameterMask, check_mask_options, fisher_mask
from fmlib.strategies.base import FisherReport, Strategy, _batches, _candidates, register

PRECISIONS = ("float32", "float64")  # of the Fisher strategies' computations
MAX_LAMB = 1e6  # the ridge lamb*I: beyond it the Fisher is lost in float rounding and every batch scores alike


def head_gradient_embeddings(probs: torch.Tensor, h: torch.Tensor, *, include_bias: bool = False) -> torch.Tensor:
    """BAIT's Fisher embeddings of the head, in closed form: ``[N, C, k]``.

    Row ``c`` is ``sqrt(p_c) ∂ log p(c|x)/∂θ`` with ``θ`` the head weight ``[C, d]`` (row-major,
    ``k = C·d``), then the bias (``k = C·d + C``) when ``include_bias``. For a linear head,
    ``∂ log p_c/∂W = (e_c - p) ⊗ h`` and ``∂ log p_c/∂b = e_c - p``.
    """
    num, classes = probs.shape
    diff = torch.eye(classes, dtype=probs.dtype, device=probs.device) - probs[:, None, :]  # [N, C, C]
    diff = diff * probs.sqrt()[:, :, None]
    emb = (diff[..., None] * h[:, None, None, :]).reshape(num, classes, -1)  # [N, C, C·d]
    return torch.cat([emb, diff], -1) if include_bias else emb


def _head_names(model: nn.Module, include_bias: bool) -> list[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    params = [model.head.weight] + ([model.head.bias] if include_bias and model.head.bias is not None else [])
    return [by_id[id(p)] for p in params]


class _FisherStrategy(Strategy):
    """BAIT's pipeline (Ash et al. 2021) on the parameters a :class:`ParameterMask` selects.

    1. Diagonal Fisher on a seeded subsample of ``fisher_samples`` points of ``labeled ∪ unlabeled``,
       and the mask (subclasses).
    2. Embeddings ``V(x) [C, k]`` of the candidates and of the labeled points, ``batch_size`` at a time.
    3. ``F_U`` = mean over candidates of ``VᵀV``, ``F_L`` = mean over labeled, summed in float64
       (sums of thousands of rank-C terms lose digits in float32; the greedy works in float64 too).
    4. :func:`greedy_trace_select` with ``lamb`` and ``backward_steps``.

    Memory: the candidates' embeddings ``[N, C, k]`` and a few ``[k, k]``. ``progress``: tqdm bars.

    ``precision``: ``"float32"`` computes the Fisher diagonal, the embeddings and the greedy's
    candidate products in the model's float32; ``"float64"`` does all three on a float64 copy of
    the model, at about 1.7x the time on a CPU. Float32 rounding differs between thread counts,
    CPUs and library versions, and the greedy's argmax has near-ties: with every embedding entry
    moved by one float32 unit in the last place, 2 of 5 first queries of the imbalanced
    FashionMNIST CNN changed 6 and 11 of their 70 picks; in float64 none changed, even with the
    weights moved by 1e-6 (``benchmarks/selection_noise.py``, README "numerical noise").
    """

    defaults = {
        "lamb": 1.0,
        "backward_steps": 0,
        "fisher_samples": FISH_SAMPLES,  # 1024, FISH's and FisherMask's
        "batch_size": 256,
        "max_candidates": None,
        "precision": "float32",
        "progress": False,
    }

    def __init__(self, **options):
        super().__init__(**options)
        opts = self.options
        lamb = opts["lamb"]
        if isinstance(lamb, bool) or not isinstance(lamb, (int, float)) or not 0 < lamb <= MAX_LAMB:
            raise ValueError(f"lamb must be a finite number > 0, got {lamb!r}; at most {MAX_LAMB:g}")
        for key in ("backward_steps", "fisher_samples"):
            low = 0 if key == "backward_steps" else 1
            if isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < low:
                raise ValueError(f"{key} must be an int >= {low}, got {opts[key]!r}")
        if opts["precision"] not in PRECISIONS:
            raise ValueError(f"unknown precision {opts['precision']!r}; allowed values: {list(PRECISIONS)}")

    def _mask_and_diag(self, model, inputs, *, seed) -> tuple[ParameterMask, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def _embed(self, model, x, mask) -> torch.Tensor:
        """``[b, C, k]`` embeddings of a batch."""
        raise NotImplementedError

    def _embeddings(self, model, pool, indices, mask, device, *, keep: bool):
        """Embeddings (when ``keep``) and ``mean_x V(x)ᵀV(x)`` in float64."""
        kept, fisher = [], None
        batches = _batches(model, pool, indices, self.options["batch_size"], device)
        total = -(-len(indices) // self.options["batch_size"])
        for x in tqdm(batches, total=total, desc=f"{self.name} embeddings", leave=False,
                      disable=not self.options["progress"]):  # fmt: skip
            emb = self._embed(model, x, mask).detach()  # [b, C, k]
            flat = emb.reshape(-1, emb.shape[-1]).double()  # [b·C, k]
            fisher = flat.T @ flat if fisher is None else fisher.addmm_(flat.T, flat)
            if keep:
                kept.append(emb)
        return (torch.cat(kept) if keep else None), fisher / len(indices)

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        with self._timed("embed_time", device):
            if self.options["precision"] == "float64":
                model = copy.deepcopy(model).double()  # inputs follow the model's dtype (_batches)
            everyone = np.union1d(labeled, unlabeled)
            sample = everyone[fisher_subsample(len(everyone), self.options["fisher_samples"], seed)]
            inputs = next(_batches(model, pool, sample, len(sample), device))  # [S, C, H, W]
            mask, fisher_diag = self._mask_and_diag(model, inputs, seed=seed)
            emb, fisher_u = self._embeddings(model, pool, cand, mask, device, keep=True)  # [N, C, k], [k, k]
            fisher_l = None
            if len(labeled):
                _, fisher_l = self._embeddings(model, pool, labeled, mask, device, keep=False)
        with self._timed("select_time", device):
            picks = greedy_trace_select(
                emb,
                n,
                fisher=fisher_u,
                labeled_fisher=fisher_l,
                n_labeled=len(labeled),
                lamb=self.options["lamb"],
                backward_steps=self.options["backward_steps"],
                progress=self.options["progress"],
            )
        picks = np.asarray(picks, dtype=np.int64)
        self.report.fisher = FisherReport(
            fisher_diag={name: t.detach().cpu() for name, t in fisher_diag.items()},
            mask=mask,
            picked_scores=sample_scores(emb[torch.as_tensor(picks)]).double().cpu().numpy(),
            fisher_trace=float(fisher_u.diagonal().sum()),
        )
        return cand[picks]


@register
class BAIT(_FisherStrategy):
    """BAIT (Ash et al. 2021) on the head weight, with closed-form embeddings.

    The mask is the head weight (plus the bias with ``include_bias=True``; default ``False`` as in
    BAIT's code, whose embedding is the weight only). Rows are weighted by ``sqrt(p_c)`` so ``VᵀV`` is
    the Fisher of ``x``. ``backward_steps=0`` by default (the paper's setting); BAIT's original
    oversample-2x-then-prune is ``backward_steps=1``. ``report.fisher.fisher_diag`` is the head's diagonal
    Fisher on the ``fisher_samples`` subsample (closed form, no backward pass) and ``report.fisher.mask``
    a :class:`ParameterMask` over the same head parameters, all selected.
    """

    name = "bait"
    needs = ("embed", "head")
    defaults = {**_FisherStrategy.defaults, "include_bias": False}

    def _embed(self, model, x, mask):
        with torch.no_grad():
            h = model.embed(x)  # [b, d]
            return head_gradient_embeddings(model.head(h).softmax(-1), h, include_bias=self.options["include_bias"])

    def _mask_and_diag(self, model, inputs, *, seed):
        params = dict(model.named_parameters())
        names = _head_names(model, self.options["include_bias"])
        # Over the head only (not ParameterMask.full): the report's mask and fisher_diag cover the same names.
        mask = ParameterMask({name: torch.ones_like(params[name], dtype=torch.bool) for name in names})
        diag = sum(self._embed(model, x, None).square().sum((0, 1)) for x in inputs.split(self.options["batch_size"]))
        diag = diag / len(inputs)  # [k]
        sizes = [params[name].numel() for name in names]
        return mask, {name: d.view_as(params[name]) for name, d in zip(names, diag.split(sizes))}


@register
class FisherMask(_FisherStrategy):
    """FisherMask (Gul et al. 2024): BAIT on whole-network gradients restricted to a Fisher mask.

    The diagonal true Fisher on a seeded subsample of ``fisher_samples`` (1024) points of the pool,
    with test-time inputs, picks ``fraction`` (0.002) of all parameters by ``method`` (``"global"``,
    ``"per_layer"`` or ``"random"``), the head always included when ``include_head``. Embeddings are
    ``gradient_embeddings(scale=scale)`` (``"fisher"``: ``sqrt(p_c)`` rows as in BAIT; ``"none"``: as
    the authors' code). ``mask=`` injects a fixed :class:`ParameterMask` instead (the Fisher diagonal
    is still computed for the report). ``chunk_size``: samples per forward/backward in the Fisher
    engine (``None``: its default; the backward holds C times the activations); ``batch_size``:
    samples per embedding block.
    """

    name = "fishermask"
    defaults = {
        **_FisherStrategy.defaults,
        "fraction": 0.002,
        "method": "global",
        "include_head": True,
        "scale": "fisher",
        "mask": None,
        "chunk_size": None,
    }

    def __init__(self, **options):
        super().__init__(**options)
        opts = self.options
        check_mask_options(opts["fraction"], opts["method"])  # the one check of both, in masks
        if opts["scale"] not in SCALES:
            raise ValueError(f"unknown scale {opts['scale']!r}; allowed values: {list(SCALES)}")
        if opts["mask"] is not None and not isinstance(opts["mask"], ParameterMask):
            raise ValueError(f"mask must be None or a ParameterMask, got {type(opts['mask']).__name__}")

    def model_needs(self) -> tuple[str, ...]:
        """``head`` when the mask is chosen from the Fisher with ``include_head`` (the default)."""
        return ("head",) if self.options["mask"] is None and self.options["include_head"] else ()

    def _embed(self, model, x, mask):
        return gradient_embeddings(model, x, mask, scale=self.options["scale"], chunk_size=self.options["chunk_size"])

    def _mask_and_diag(self, model, inputs, *, seed):
        diag = fisher_diagonal(model, inputs, chunk_size=self.options["chunk_size"], progress=self.options["progress"])
        mask = self.options["mask"]
        if mask is None:
            opts = self.options
            mask = fisher_mask(
                diag, opts["fraction"], method=opts["method"], include_head=opts["include_head"], model=model, seed=seed
            )
        return mask, diag
