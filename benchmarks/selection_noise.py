"""How stable is FisherMask's first query under rounding-level noise?

Rerunning a committed FisherMask run on another machine of the same kind reproduced round 0 but
not the first query. Rounding differs between machines, thread counts and library versions in the
last bits of the Fisher diagonal (which decides the mask's top-k) and of the embeddings (which
decide the greedy's argmax). This script trains the round-0 model of the ablation's *ours* arm
(imbalanced FashionMNIST, 15 labels, the paper recipe) for each seed, makes FisherMask's first
query, then makes it again with every Fisher-diagonal and embedding entry multiplied by
(1 + eps·z), z ~ N(0, 1), eps one unit in the last place of the working precision (2^-24 for
float32, 2^-53 for float64): the picks two machines could make. Prints picks in common (of 70)
and mask entries in common, float32 and float64.

``--weights-eps 1e-6`` instead perturbs the trained model's weights (every entry times
(1 + eps·z)) and makes the query with clean arithmetic: a training that differed in its last bits
(another thread count, CPU or library version changes float32 rounding in every step of
training, which adds up to relative differences far above one ulp while the test accuracy can
stay the same to the image).

Usage: python benchmarks/selection_noise.py [--seeds 0 1 2 3 4] [--threads 1] [--weights-eps 1e-6]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from fmlib.datasets import initial_labeled
from fmlib.experiment import ExperimentConfig, load_data
from fmlib.fisher.embeddings import fisher_diagonal
from fmlib.fisher.masks import fisher_mask
from fmlib.models import build_model
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import FisherMask
from fmlib.train import fit

EPS = {"float32": 2.0**-24, "float64": 2.0**-53}


class Jittered(FisherMask):
    """FisherMask whose Fisher diagonal and embeddings carry relative noise ``eps`` (seeded)."""

    def __init__(self, eps: float, noise_seed: int, **options):
        super().__init__(**options)
        self.eps, self.generator = eps, torch.Generator().manual_seed(noise_seed)

    def _jitter(self, t: torch.Tensor) -> torch.Tensor:
        z = torch.randn(t.shape, generator=self.generator, dtype=torch.float64).to(
            t.device, t.dtype
        )
        return t * (1 + self.eps * z)

    def _embed(self, model, x, mask):
        return self._jitter(super()._embed(model, x, mask))

    def _mask_and_diag(self, model, inputs, *, seed):  # FisherMask's, with the diagonal jittered
        diag = fisher_diagonal(model, inputs, chunk_size=self.options["chunk_size"])
        diag = {k: self._jitter(v) for k, v in diag.items()}
        opts = self.options
        mask = fisher_mask(
            diag,
            opts["fraction"],
            method=opts["method"],
            include_head=opts["include_head"],
            model=model,
            seed=seed,
        )
        return mask, diag


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--weights-eps", type=float, default=None, help="perturb the weights instead (relative)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"fraction": 0.005, "scale": "fisher", "max_candidates": 2000}
    what = (
        f"weights x (1 + {args.weights_eps:g} z)"
        if args.weights_eps
        else "Fisher diagonal and embeddings x (1 + ulp z)"
    )
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); FisherMask {options}, first query of"
        f" 70 at 15 labels; perturbed: {what}"
    )
    print(
        "| seed | precision | picks in common (of 70) | first differing pick | mask entries in"
        " common | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        config = ExperimentConfig(seed=seed, **{"strategy_options": options})
        data = load_data(config)
        pool = data.pool
        initial = initial_labeled(
            pool.labels.numpy(), config.initial_size, config.initial_method, seed=seed
        )
        with seeded(round_seed(seed, 0, "init")):
            model = build_model("cnn", pool.num_classes, 1, 28)
        fit(model, pool, initial, config.training(), seed=round_seed(seed, 0, "train"))
        unlabeled = np.setdiff1d(np.arange(len(pool)), initial)
        select_seed = round_seed(seed, 0, "select")
        for precision, eps in EPS.items():
            start = time.perf_counter()
            clean = FisherMask(precision=precision, **options)
            picks = clean.select(model, pool, initial, unlabeled, 70, seed=select_seed)
            if args.weights_eps is None:
                noisy = Jittered(eps, seed, precision=precision, **options)
                other = noisy.select(model, pool, initial, unlabeled, 70, seed=select_seed)
            else:
                shaken = copy.deepcopy(model)
                generator = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    for p in shaken.parameters():
                        p.mul_(1 + args.weights_eps * torch.randn(p.shape, generator=generator))
                noisy = FisherMask(precision=precision, **options)
                other = noisy.select(shaken, pool, initial, unlabeled, 70, seed=select_seed)
            mask, other_mask = clean.report.fisher.mask, noisy.report.fisher.mask
            common_mask = sum(int((mask[k] & other_mask[k]).sum()) for k in mask)
            first = next((i for i, (a, b) in enumerate(zip(picks, other)) if a != b), None)
            print(
                f"| {seed} | {precision} | {len(set(picks) & set(other))} |"
                f" {first if first is not None else '–'} | {common_mask} of {mask.size} |"
                f" {time.perf_counter() - start:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
