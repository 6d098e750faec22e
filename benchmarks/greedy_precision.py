"""Float32 against float64 greedy on realistic first-query inputs (the ablation's *ours* arm).

``--dump DIR`` rebuilds the first query's greedy inputs per seed from the ablation config (the CNN
on imbalanced FashionMNIST trained on 15 labels, FisherMask fraction 0.005, 2000 candidates,
float32 embeddings) and saves them: ``DIR/seed{s}.pt`` with the embeddings ``[N, C, k]``, F_U,
F_L and |L|. Without ``--dump`` it reads them and runs the greedy on the *same* embeddings three
ways: float64 products (the reference, fmlib's default), float32 products with the drift check
(``precision="float32"``) and float32 without it (the previous float32 greedy), and prints picks in
common with float64 and the largest relative error of the candidates' gains at each pick (gains of
the candidates within 50 % of the best, against float64 gains of the same state).

Usage: python benchmarks/greedy_precision.py --dump /tmp/fm_inputs [--seeds 0 1 2 3 4]
       python benchmarks/greedy_precision.py --inputs /tmp/fm_inputs [--picks 70]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import fmlib.strategies.fisher as fisher_strategies
from fmlib.datasets import initial_labeled
from fmlib.experiment import ExperimentConfig, load_data
from fmlib.fisher import greedy
from fmlib.models import build_model
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import FisherMask
from fmlib.train import fit

OPTIONS = {"fraction": 0.005, "scale": "fisher", "max_candidates": 2000}  # the ablation's ours arm


def dump(seed: int, out: Path) -> None:
    config = ExperimentConfig(seed=seed, strategy_options=OPTIONS)
    pool = load_data(config).pool
    initial = initial_labeled(
        pool.labels.numpy(), config.initial_size, config.initial_method, seed=seed
    )
    with seeded(round_seed(seed, 0, "init")):
        model = build_model("cnn", pool.num_classes, 1, 28)
    fit(model, pool, initial, config.training(), seed=round_seed(seed, 0, "train"))
    unlabeled = np.setdiff1d(np.arange(len(pool)), initial)
    captured = {}

    def capture(emb, n, **kwargs):
        captured.update(embeddings=emb.detach().clone(), n=n, **kwargs)
        return list(range(n))

    real = fisher_strategies.greedy_trace_select
    fisher_strategies.greedy_trace_select = capture
    try:
        FisherMask(**OPTIONS).select(
            model, pool, initial, unlabeled, 70, seed=round_seed(seed, 0, "select")
        )
    finally:
        fisher_strategies.greedy_trace_select = real
    captured.pop("progress", None)
    torch.save(captured, out / f"seed{seed}.pt")
    emb = captured["embeddings"]
    print(
        f"seed {seed}: embeddings {tuple(emb.shape)} {emb.dtype}, |L| {captured['n_labeled']}",
        flush=True,
    )


class _Recorder:
    """Wraps the greedy's ``_best``: records each call's scores; optionally forces the picks."""

    def __init__(self, forced=None):
        self.calls, self.forced, self.real = [], forced, greedy._best

    def __call__(self, values, ids, rtol, largest):
        pick = self.real(values, ids, rtol, largest)
        if self.forced is not None:
            pick = self.forced[len(self.calls)]
        self.calls.append(values.double().clone())
        return pick

    def __enter__(self):
        greedy._best = self
        return self

    def __exit__(self, *exc):
        greedy._best = self.real


def run(inputs, n, precision, refresh_rtol, forced=None):
    kwargs = {k: v for k, v in inputs.items() if k not in ("embeddings", "n")}
    emb, info = inputs["embeddings"], {}  # float32, as the strategy makes them
    with _Recorder(forced) as rec:
        start = time.perf_counter()
        picks = greedy.greedy_trace_select(
            emb, n, precision=precision, refresh_rtol=refresh_rtol, info=info, **kwargs
        )
        seconds = time.perf_counter() - start
    refreshed = set(info.get("refreshes", []))
    calls = iter(rec.calls)
    # at a refresh the pick is made twice: keep the second (the scores the pick used)
    gains = [
        next(calls) if step not in refreshed else (next(calls), next(calls))[1]
        for step in range(len(picks))
    ]
    return picks, gains, seconds, info


def compare(inputs, seed, picks):
    n = picks or inputs["n"]
    ref, _, t64, _ = run(inputs, n, "float64", 0.0)
    for label, rtol in (
        ("float32, drift-checked", greedy.REFRESH_RTOL),
        ("float32, unchecked", float("inf")),
    ):
        got, gains, t32, info = run(inputs, n, "float32", rtol)
        _, exact, _, _ = run(inputs, n, "float64", 0.0, forced=got)  # float64 gains on got's path
        worst, worst_top = [], []
        for g, e in zip(gains, exact):
            ok = torch.isfinite(e) & (e > 0)
            rel = ((g - e).abs() / e)[ok]
            top = (e >= 0.5 * e[ok].max())[ok]
            worst.append(float(rel.max()))
            worst_top.append(float(rel[top].max()))
        first = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), None)
        print(
            f"| {seed} | {label} | {len(set(got) & set(ref))} of {n} |"
            f" {first if first is not None else '–'} | {worst_top[-1]:.1e} (all {worst[-1]:.1e}) |"
            f" {max(worst_top):.1e} | {len(info.get('refreshes', []))} | {t32 / t64:.2f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dump", type=Path, default=None)
    parser.add_argument("--inputs", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--picks", type=int, default=None, help="default: the query's 70")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load"
        f" {os.getloadavg()[0]:.2f}"
    )
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            dump(seed, args.dump)
        return
    print(
        "| seed | greedy | picks in common with float64 | first differing pick | gain rel. error at"
        " the last pick, candidates within 50 % of the best | largest over picks | refreshes | time"
        " / float64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        compare(torch.load(args.inputs / f"seed{seed}.pt"), seed, args.picks)


if __name__ == "__main__":
    main()
