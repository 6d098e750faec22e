"""BAIT and FisherMask: BAIT's greedy on Fisher embeddings of the classifier head (BAIT) or of
the entries of the whole network that a Fisher mask keeps (FisherMask, the method this project
is about).

Both report a :class:`~fmlib.strategies.base.FisherReport` (the diagonal Fisher, the mask, the
picks' scores, the pool Fisher's trace) in ``strategy.report.fisher``; the run records turn it
into the sensitivity snapshots.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import torch
from torch import nn

from fmlib.fisher.embeddings import (
    FISH_SAMPLES,
    SCALES,
    fisher_diagonal,
    fisher_subsample,
    gradient_embeddings,
    sample_scores,
)
from fmlib.fisher.gram import GramSum
from fmlib.fisher.greedy import greedy_trace_select
from fmlib.fisher.masks import ParameterMask, check_mask_options, fisher_mask
from fmlib.progress import progress_bar
from fmlib.strategies.base import FisherReport, Strategy, _batches, _candidates, register

PRECISIONS = ("float32", "float64")  # of the Fisher strategies' computations
FISHER_POOLS = ("candidates", "pool")  # what F_U averages over
# which points of labeled ∪ unlabeled the diagonal Fisher is taken on: a seeded uniform subsample,
# or the first ones of the pool sorted by class (the FisherMask authors' code, which reads the
# first 1024 items of its class-sorted pool; on the 4-class imbalanced pool only classes 0 and 1)
FISHER_SAMPLES = ("random", "class_sorted")
# the ridge lamb*I: beyond it the Fisher is lost in float rounding and every batch scores alike
MAX_LAMB = 1e6


def head_gradient_embeddings(
    probs: torch.Tensor, h: torch.Tensor, *, include_bias: bool = False
) -> torch.Tensor:
    """BAIT's Fisher embeddings of the head, in closed form: ``[N, C, k]``.

    Row ``c`` is ``sqrt(p_c) ∂ log p(c|x)/∂θ`` with ``θ`` the head weight ``[C, d]`` (row-major,
    ``k = C·d``), then the bias (``k = C·d + C``) when ``include_bias``. For a linear head,
    ``∂ log p_c/∂W = (e_c - p) ⊗ h`` and ``∂ log p_c/∂b = e_c - p``.
    """
    num, classes = probs.shape
    # [N, C, C]
    diff = torch.eye(classes, dtype=probs.dtype, device=probs.device) - probs[:, None, :]
    diff = diff * probs.sqrt()[:, :, None]
    emb = (diff[..., None] * h[:, None, None, :]).reshape(num, classes, -1)  # [N, C, C·d]
    return torch.cat([emb, diff], -1) if include_bias else emb


def _head_names(model: nn.Module, include_bias: bool) -> list[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    params = [model.head.weight] + (
        [model.head.bias] if include_bias and model.head.bias is not None else []
    )
    return [by_id[id(p)] for p in params]


def available_memory(device) -> int | None:
    """Bytes free on ``device`` (``torch.cuda.mem_get_info`` for a GPU; available physical pages
    from ``os.sysconf`` on Linux for the CPU), ``None`` where it cannot be known."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # not on Linux / not exposed
        return None


def _float64_if_it_fits(emb: torch.Tensor, precision: str, device) -> torch.Tensor:
    """The float64 greedy reads the candidates once a pick: give it a float64 copy when that fits
    in half the free memory, so no pick converts ``[N, C, k]`` float32 again (same values)."""
    if precision != "float64" or emb.dtype == torch.float64:
        return emb
    free = available_memory(device)
    if free is None or 2 * emb.numel() * 8 > free:
        return emb
    return emb.double()


def check_embedding_memory(n: int, classes: int, k: int, dtype, device) -> None:
    """``MemoryError`` before computing ``[n, C, k]`` embeddings (and the two ``[k, k]`` float64
    Fishers) that do not fit in what ``device`` has free, naming the ``max_candidates`` that
    would."""
    free = available_memory(device)
    if free is None:
        return
    item = torch.empty((), dtype=dtype).element_size()
    fixed = 2 * k * k * 8  # fisher_u and fisher_l, float64
    need = n * classes * k * item + fixed
    if need <= free:
        return
    fits = max(0, (free - fixed) // max(classes * k * item, 1))
    gib = 2**30
    if fits == 0:
        raise MemoryError(
            f"the [{k}, {k}] float64 Fisher matrices of a mask of {k} entries alone need "
            f"{fixed / gib:.1f} GiB and {device} has {free / gib:.1f} GiB free: choose a smaller "
            "fraction (FisherMask) so the mask has fewer entries"
        )
    raise MemoryError(
        f"the candidate embeddings [{n}, {classes}, {k}] ({dtype}) and the Fisher matrices need "
        f"{need / gib:.1f} GiB and {device} has {free / gib:.1f} GiB free: set "
        f"max_candidates={fits} or fewer in strategy_options (or a smaller fraction for "
        "FisherMask, a smaller batch_size does not shrink them)"
    )


class _FisherStrategy(Strategy):
    """BAIT's pipeline (Ash et al. 2021) on the parameters a :class:`ParameterMask` selects.

    1. Diagonal Fisher on ``fisher_samples`` points of ``labeled ∪ unlabeled`` (``fisher_sample``:
       a seeded uniform subsample, or the first of the pool sorted by class as the authors' code),
       and the mask (subclasses).
    2. Embeddings ``V(x) [C, k]`` of the candidates and of the labeled points, ``batch_size`` at a
       time.
    3. ``F_U`` = mean of ``VᵀV`` over the candidates (``fisher_pool="candidates"``) or over the
       whole pool, labeled and unlabeled (``"pool"``, as the original BAIT and FisherMask code);
       ``F_L`` = mean over labeled. Each block's ``VᵀV`` in the embeddings' precision, the sum over
       blocks in float64 (a sum of thousands of rank-C terms loses digits in float32).
    4. :func:`greedy_trace_select` with ``lamb``, ``backward_steps`` and ``greedy_precision``
       (``"float64"``: the candidate products in float64, so float32 embeddings give the picks
       their float64 copies give; ``"float32"``: float32 products with a drift check). The
       labeled embeddings are passed as the root of ``F_L``: the first inverse by Woodbury.

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
        "greedy_precision": "float64",  # of the greedy's candidate products
        "fisher_pool": "candidates",  # F_U over the candidates, or the whole "pool"
        "fisher_sample": "random",  # or "class_sorted" (FISHER_SAMPLES)
        "progress": False,
    }

    def __init__(self, **options):
        super().__init__(**options)
        opts = self.options
        lamb = opts["lamb"]
        if isinstance(lamb, bool) or not isinstance(lamb, (int, float)) or not 0 < lamb <= MAX_LAMB:
            raise ValueError(
                f"lamb must be a finite number > 0, got {lamb!r}; at most {MAX_LAMB:g}"
            )
        for key in ("backward_steps", "fisher_samples"):
            low = 0 if key == "backward_steps" else 1
            if isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < low:
                raise ValueError(f"{key} must be an int >= {low}, got {opts[key]!r}")
        choices = {
            "precision": PRECISIONS,
            "greedy_precision": PRECISIONS,
            "fisher_pool": FISHER_POOLS,
            "fisher_sample": FISHER_SAMPLES,
        }
        for key, allowed in choices.items():
            if opts[key] not in allowed:
                raise ValueError(f"unknown {key} {opts[key]!r}; allowed values: {list(allowed)}")

    def _fisher_sample(self, pool, everyone: np.ndarray, seed: int) -> np.ndarray:
        """Sorted positions of the points the diagonal Fisher is taken on (``fisher_sample``)."""
        size = self.options["fisher_samples"]
        if self.options["fisher_sample"] == "class_sorted":
            labels = pool.labels[torch.as_tensor(everyone, dtype=torch.long)].numpy()
            return np.sort(everyone[np.argsort(labels, kind="stable")[:size]])
        return everyone[fisher_subsample(len(everyone), size, seed)]

    def _mask_and_diag(
        self, model, inputs, *, seed
    ) -> tuple[ParameterMask, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def _embed(self, model, x, mask) -> torch.Tensor:
        """``[b, C, k]`` embeddings of a batch."""
        raise NotImplementedError

    def _embeddings(self, model, pool, indices, mask, device, *, keep: bool):
        """Embeddings (when ``keep``) and ``mean_x V(x)ᵀV(x)`` in float64, ``[k, k]``."""
        kept, fisher = [], None
        batches = _batches(model, pool, indices, self.options["batch_size"], device)
        total = -(-len(indices) // self.options["batch_size"])
        for x in progress_bar(
            batches,
            total=total,
            desc=f"{self.name} embeddings",
            leave=False,
            disable=not self.options["progress"],
        ):
            emb = self._embed(model, x, mask).detach()  # [b, C, k]
            if fisher is None:
                fisher = GramSum(emb.shape[-1], emb.device)
            fisher.add(emb.reshape(-1, emb.shape[-1]))  # b·C rows, in the embeddings' precision
            if keep:
                kept.append(emb)
        return (torch.cat(kept) if keep else None), fisher.result(divide=len(indices))

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        self._split_jaccard = float("nan")  # set by FisherMask's split_half
        with self._timed("embed_time", device):
            if self.options["precision"] == "float64":
                model = copy.deepcopy(model).double()  # inputs follow the model's dtype (_batches)
            sample = self._fisher_sample(pool, np.union1d(labeled, unlabeled), seed)
            inputs = next(_batches(model, pool, sample, len(sample), device))  # [S, C, H, W]
            mask, fisher_diag = self._mask_and_diag(model, inputs, seed=seed)
            dtype = next(model.parameters()).dtype
            with torch.no_grad():
                classes = model(inputs[:1]).shape[1]
            # before [N, C, k] is made
            check_embedding_memory(len(cand), classes, mask.size, dtype, device)
            # [N, C, k], [k, k]
            emb, fisher_u = self._embeddings(model, pool, cand, mask, device, keep=True)
            fisher_l, root_l = None, None
            if len(labeled):
                emb_l, fisher_l = self._embeddings(model, pool, labeled, mask, device, keep=True)
                root_l = emb_l.reshape(-1, emb_l.shape[-1]) / math.sqrt(len(labeled))  # [|L|·C, k]
            if self.options["fisher_pool"] == "pool":
                fisher_u = fisher_u * len(cand)
                if len(labeled):
                    fisher_u += fisher_l * len(labeled)
                rest = np.setdiff1d(unlabeled, cand)
                if len(rest):
                    _, fisher_rest = self._embeddings(model, pool, rest, mask, device, keep=False)
                    fisher_u += fisher_rest * len(rest)
                fisher_u /= len(cand) + len(labeled) + len(rest)
        with self._timed("select_time", device):
            picks = greedy_trace_select(
                _float64_if_it_fits(emb, self.options["greedy_precision"], device),
                n,
                fisher=fisher_u,
                labeled_fisher=fisher_l,
                labeled_root=root_l,
                n_labeled=len(labeled),
                lamb=self.options["lamb"],
                backward_steps=self.options["backward_steps"],
                progress=self.options["progress"],
                precision=self.options["greedy_precision"],
            )
        picks = np.asarray(picks, dtype=np.int64)
        self.report.fisher = FisherReport(
            fisher_diag={name: t.detach().cpu() for name, t in fisher_diag.items()},
            mask=mask,
            picked_scores=sample_scores(emb[torch.as_tensor(picks)]).double().cpu().numpy(),
            fisher_trace=float(fisher_u.diagonal().sum()),
            split_jaccard=self._split_jaccard,
        )
        return cand[picks]


@register
class BAIT(_FisherStrategy):
    """BAIT (Ash et al. 2021) on the head weight, with closed-form embeddings.

    The mask is the head weight (plus the bias with ``include_bias=True``; default ``False`` as in
    BAIT's code, whose embedding is the weight only). Rows are weighted by ``sqrt(p_c)`` so ``VᵀV``
    is the Fisher of ``x``. ``backward_steps=0`` by default (the paper's setting); BAIT's original
    oversample-2x-then-prune is ``backward_steps=1``. ``report.fisher.fisher_diag`` is the head's
    diagonal Fisher on the ``fisher_samples`` subsample (closed form, no backward pass) and
    ``report.fisher.mask`` a :class:`ParameterMask` over the same head parameters, all selected.
    """

    name = "bait"
    needs = ("embed", "head")
    defaults = {**_FisherStrategy.defaults, "include_bias": False}

    def _embed(self, model, x, mask):
        with torch.no_grad():
            h = model.embed(x)  # [b, d]
            return head_gradient_embeddings(
                model.head(h).softmax(-1), h, include_bias=self.options["include_bias"]
            )

    def _mask_and_diag(self, model, inputs, *, seed):
        params = dict(model.named_parameters())
        names = _head_names(model, self.options["include_bias"])
        # Over the head only (not ParameterMask.full): the report's mask and fisher_diag cover the
        # same names.
        mask = ParameterMask(
            {name: torch.ones_like(params[name], dtype=torch.bool) for name in names}
        )
        diag = sum(
            self._embed(model, x, None).square().sum((0, 1))
            for x in inputs.split(self.options["batch_size"])
        )
        diag = diag / len(inputs)  # [k]
        sizes = [params[name].numel() for name in names]
        return mask, {name: d.view_as(params[name]) for name, d in zip(names, diag.split(sizes))}


@register
class FisherMask(_FisherStrategy):
    """FisherMask (Gul et al. 2024): BAIT on whole-network gradients restricted to a Fisher mask.

    The diagonal true Fisher on a seeded subsample of ``fisher_samples`` (1024) points of the pool,
    with test-time inputs, picks ``fraction`` (0.002) of all parameters by ``method`` (``"global"``,
    ``"per_layer"`` or ``"random"``), the head always included when ``include_head``. Embeddings are
    ``gradient_embeddings(scale=scale)`` (``"fisher"``: ``sqrt(p_c)`` rows as in BAIT; ``"none"``:
    as the authors' code). ``mask=`` injects a fixed :class:`ParameterMask` instead (the Fisher
    diagonal is still computed for the report). ``chunk_size``: samples per forward/backward in the
    Fisher engine (``None``: its default; the backward holds C times the activations);
    ``batch_size``: samples per embedding block. ``split_half=True`` also picks a mask by the same
    rule from each of two disjoint, seeded random halves of the Fisher sample and reports their
    Jaccard as ``report.fisher.split_jaccard`` (recorded in the sensitivity snapshots): how much
    the mask moves from Fisher-sampling noise alone, at half the sample size. It costs one more
    Fisher pass over the sample and changes neither the mask nor the picks.
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
        "split_half": False,
    }

    def __init__(self, **options):
        super().__init__(**options)
        opts = self.options
        check_mask_options(opts["fraction"], opts["method"])  # the one check of both, in masks
        if opts["scale"] not in SCALES:
            raise ValueError(f"unknown scale {opts['scale']!r}; allowed values: {list(SCALES)}")
        if opts["mask"] is not None and not isinstance(opts["mask"], ParameterMask):
            raise ValueError(
                f"mask must be None or a ParameterMask, got {type(opts['mask']).__name__}"
            )
        if not isinstance(opts["split_half"], bool):
            raise ValueError(f"split_half must be True or False, got {opts['split_half']!r}")
        if opts["split_half"] and opts["mask"] is not None:
            raise ValueError("split_half needs the mask chosen from the Fisher (mask=None)")

    def model_needs(self) -> tuple[str, ...]:
        """``head`` when the mask is chosen from the Fisher with ``include_head`` (the default)."""
        return ("head",) if self.options["mask"] is None and self.options["include_head"] else ()

    def _embed(self, model, x, mask):
        return gradient_embeddings(
            model, x, mask, scale=self.options["scale"], chunk_size=self.options["chunk_size"]
        )

    def _mask_and_diag(self, model, inputs, *, seed):
        diag = fisher_diagonal(
            model, inputs, chunk_size=self.options["chunk_size"], progress=self.options["progress"]
        )
        mask = self.options["mask"]
        if mask is None:
            mask = self._rule(model, diag, seed)
            if self.options["split_half"]:
                self._split_jaccard = self._split_half_jaccard(model, inputs, seed)
        return mask, diag

    def _rule(self, model, diag, seed) -> ParameterMask:
        """The mask ``fraction``, ``method`` and ``include_head`` pick from a Fisher diagonal."""
        opts = self.options
        return fisher_mask(
            diag,
            opts["fraction"],
            method=opts["method"],
            include_head=opts["include_head"],
            model=model,
            seed=seed,
        )

    def _split_half_jaccard(self, model, inputs, seed) -> float:
        """Jaccard of the masks of two disjoint seeded random halves of the Fisher sample."""
        if len(inputs) < 2:
            raise ValueError(f"split_half needs a Fisher sample of >= 2 points, got {len(inputs)}")
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(inputs)))
        halves = order[: len(inputs) // 2], order[len(inputs) // 2 :]
        masks = [
            self._rule(
                model,
                fisher_diagonal(model, inputs[half], chunk_size=self.options["chunk_size"]),
                seed,
            )
            for half in halves
        ]
        return masks[0].jaccard(masks[1])
