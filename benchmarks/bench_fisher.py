"""Benchmark the Fisher engine: gradient embeddings and the diagonal Fisher.

    .venv/bin/python benchmarks/bench_fisher.py              # SmallCNN, then ResNet-18 (width 16)
    .venv/bin/python benchmarks/bench_fisher.py --quick      # fewer samples and repeats
    .venv/bin/python benchmarks/bench_fisher.py --device cuda
    .venv/bin/python benchmarks/bench_fisher.py --models cnn --engines-only  # func vs hooks, short
    .venv/bin/python benchmarks/bench_fisher.py --models trained-cnn --fraction 0.005 \\
        --threads 1 --round

Two kinds of model: ``cnn`` and ``resnet18`` at their random initialisation on random inputs,
where a Fisher mask sits almost all in the last layers (the head and the big Linear), so a
per-class backward can stop early; and ``trained-cnn``, the realistic case: the CNN trained with
the paper recipe on 300 balanced FashionMNIST labels (10 classes), real pool images, and its own
Fisher mask, whose entries sit in the convolutions as well as the head, so the backward must go
all the way down. ``--round`` also times one whole FisherMask round on the trained CNN (Fisher
diagonal on 1024 pool images, embeddings of 2000 candidates, greedy of 200 picks).

Embeddings (1% global mask + head, C = 10, rows √p_c g_c[mask]), in ms per sample, against
- original: FisherMask's code, one forward per batch of 64 then one ``autograd.grad`` per
  (sample, class) through the whole batch graph; timed on ``--original-samples`` samples and
  extrapolated (the forward is counted once per 64 samples);
- batch-1 loop: ``gradient_embeddings_naive`` (a forward per sample, C ``autograd.grad``);
- torch.func: ``vmap(jacrev(functional_call))``, every per-sample gradient, then indexed;
- lower bound: C plain batched forward + backward passes (parameter gradients summed over
  the batch), which any per-class method must at least match.
The library's two engines on the same ``--func-samples`` samples: ``engine="func"`` (torch.func,
``vmap`` over samples of ``functional_call`` + ``vjp``, the path of LayerNorm, Conv1d and other
layers) against the default hooks, for the embeddings and the diagonal (ratio func / hooks).
Diagonal Fisher against BackPACK's ``DiagGGNExact`` (GGN = true Fisher for softmax
cross-entropy; its loss is a batch mean, so it equals our 1/N average), when installed.
Every method runs once per round, in turn, for ``--repeats`` rounds after a warm-up, and the
median is reported (the CPU is shared: interleaving spreads changing load over all methods).
Agreement is the largest absolute difference over the largest absolute reference value.
On a CPU shared with other jobs, busy-waiting OpenMP threads can slow small ops down many
times over (seen on a 2-core machine): compare runs with ``OMP_WAIT_POLICY=PASSIVE`` or
``--threads 1``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch

from fmlib.fisher.embeddings import (
    DEFAULT_CHUNK_SIZE,
    fisher_diagonal,
    gradient_embeddings,
    gradient_embeddings_naive,
)
from fmlib.fisher.masks import fisher_mask
from fmlib.models import CifarResNet18, SmallCNN

BATCH = 64  # the original code's and the references' batch size


def interleaved_times(fns: dict, device, rounds: int) -> tuple[dict, dict]:
    """Run every fn once per round, in turn, after one warm-up each: (last results, median seconds).

    Interleaving spreads the shared machine's changing load over all methods alike.
    """
    results = {name: fn() for name, fn in fns.items()}
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[name] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return results, {name: statistics.median(t) for name, t in times.items()}


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference over the largest absolute reference value."""
    return float((a - ref).abs().max() / ref.abs().max())


def max_rel_diff(a: torch.Tensor, ref: torch.Tensor, floor: float = 1e-6) -> float:
    """Largest entrywise |a - ref| / |ref| over entries with |ref| above ``floor`` times its
    maximum."""
    keep = ref.abs() > floor * ref.abs().max()
    return float(((a - ref).abs()[keep] / ref.abs()[keep]).max())


def original_method(model, x, mask, samples: int) -> torch.Tensor:
    """FisherMask's code: forward a batch, then one autograd.grad per (sample, class) through it."""
    params = [p for p in model.parameters() if p.requires_grad]
    flat_mask = torch.cat([mask[n].flatten() for n in mask]).to(x.device)
    logp = model(x).log_softmax(1)  # [B, C]
    p = logp.detach().exp()
    rows = []
    for i in range(samples):
        for c in range(logp.shape[1]):
            grads = torch.autograd.grad(logp[i, c], params, retain_graph=True)
            rows.append(torch.cat([g.flatten() for g in grads])[flat_mask] * p[i, c].sqrt())
    return torch.stack(rows).view(samples, logp.shape[1], -1)


def lower_bound(model, x):
    """C plain batched forward + backward passes (the cost floor of per-class gradients)."""
    for batch in x.split(BATCH):
        for c in range(model.head.out_features):
            model.zero_grad(set_to_none=True)
            model(batch).log_softmax(1)[:, c].sum().backward()
    model.zero_grad(set_to_none=True)


def torch_func_embeddings(model, x, mask, chunk: int = 16) -> torch.Tensor:
    """All per-sample, per-class gradients with torch.func, then the masked entries."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    flat_mask = torch.cat([mask[n].flatten() for n in mask]).to(x.device)

    def logp(theta, xi):
        return torch.func.functional_call(model, (theta, buffers), (xi[None],))[0].log_softmax(0)

    jac = torch.func.vmap(torch.func.jacrev(logp), in_dims=(None, 0))
    out = []
    for batch in x.split(chunk):
        grads = jac(params, batch)  # name -> [b, C, *shape]
        p = model(batch).detach().softmax(1)  # [b, C]
        full = torch.cat([grads[n].flatten(2) for n in params], dim=2)  # [b, C, P]
        out.append(full[:, :, flat_mask] * p.sqrt()[:, :, None])
    return torch.cat(out)


def backpack_diagonal(model, x):
    """A function computing BackPACK's DiagGGNExact over batches of BATCH, averaged; None if not
    installed.

    The model is copied and extended once, outside the timed function.
    """
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact
    except ImportError:
        return None
    model = copy.deepcopy(model)
    # BackPACK wants a Sequential; the ResNet goes through its fx converter
    if isinstance(model, SmallCNN):
        model = extend(torch.nn.Sequential(*model.features, model.head))
    else:
        model = extend(model, use_converter=True)
    loss_fn = extend(torch.nn.CrossEntropyLoss())  # mean over the batch
    labels = torch.zeros(len(x), dtype=torch.long, device=x.device)  # the GGN ignores labels

    def compute():
        total = None
        for batch, y in zip(x.split(BATCH), labels.split(BATCH)):
            model.zero_grad(set_to_none=True)
            with backpack(DiagGGNExact()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss_fn(model(batch), y).backward()
            diag = [p.diag_ggn_exact * (len(batch) / len(x)) for p in model.parameters()]
            total = diag if total is None else [t + d for t, d in zip(total, diag)]
        return total

    return compute


def run(name, model, x, args, device):
    model = model.to(device).eval()
    x = x.to(device)
    n, classes = len(x), model.head.out_features
    numel = sum(p.numel() for p in model.parameters())
    mask = fisher_mask(fisher_diagonal(model, x), args.fraction, model=model)
    m, s = args.loop_samples, args.original_samples
    print(
        f"\n{name}: {numel:,} parameters, N={n}, C={classes}, k={mask.size} ({args.fraction:.2%}"
        f" global + head), chunk {args.chunk or DEFAULT_CHUNK_SIZE}, {device},"
        f" {torch.get_num_threads()} threads, median of {args.repeats} interleaved rounds"
    )
    if args.engines_only:
        return run_engines(model, x, mask, args, device)
    fns = {
        "ours": lambda: gradient_embeddings(model, x, mask, chunk_size=args.chunk),
        "lower": lambda: lower_bound(model, x),
        "loop": lambda: gradient_embeddings_naive(model, x[:m], mask),
        "forward": lambda: model(x[:BATCH]),
        "original": lambda: original_method(model, x[:BATCH], mask, s),
        "fisher": lambda: fisher_diagonal(model, x, chunk_size=args.chunk),
    }
    if args.torch_func:
        fns["torch.func"] = lambda: torch_func_embeddings(model, x[:m], mask)
    try:
        backpack_fn = backpack_diagonal(model, x)
    except Exception as err:  # BackPACK may not support every layer of a model
        backpack_fn, backpack_error = None, f"failed ({type(err).__name__}: {err})"
    else:
        backpack_error = "not installed (pip install backpack-for-pytorch): skipped"
    if backpack_fn is not None:
        fns["backpack"] = backpack_fn
    try:
        out, t = interleaved_times(fns, device, args.repeats)
    except Exception as err:  # e.g. BackPACK failing on a layer at run time
        if "backpack" not in fns:
            raise
        del fns["backpack"]
        backpack_error = f"failed ({type(err).__name__}: {err})"
        out, t = interleaved_times(fns, device, args.repeats)

    per = {
        "ours: gradient_embeddings": t["ours"] / n,
        "lower bound: C batched fwd+bwd": t["lower"] / n,
        f"batch-1 loop (naive, {m} samples)": t["loop"] / m,
        f"original method (extrapolated from {s})": (t["original"] - t["forward"]) / s
        + t["forward"] / BATCH,
    }
    if args.torch_func:
        per[f"torch.func vmap(jacrev), full then index ({m})"] = t["torch.func"] / m
    ours = per["ours: gradient_embeddings"]
    print(f"  {'gradient embeddings':46s} {'ms/sample':>10s} {'time / ours':>12s}")
    for label, sec in per.items():
        print(f"  {label:46s} {1e3 * sec:10.2f} {sec / ours:11.2f}x")
    goals = [
        ("ours / lower bound", ours / per["lower bound: C batched fwd+bwd"], "<=", 1.5),
        ("original / ours", per[f"original method (extrapolated from {s})"] / ours, ">=", 15),
        ("batch-1 loop / ours", per[f"batch-1 loop (naive, {m} samples)"] / ours, ">=", 2.5),
    ]
    emb = out["ours"]
    print(
        "  agreement (max abs diff / max abs): vs batch-1 loop"
        f" {rel_err(emb[:m], out['loop']):.1e}, vs original {rel_err(emb[:s], out['original']):.1e}"
    )
    if args.torch_func:
        print(f"  agreement: vs torch.func {rel_err(emb[:m], out['torch.func']):.1e}")

    print(f"  {'diagonal Fisher':46s} {'ms/sample':>10s} {'time / ours':>12s}")
    print(f"  {'ours: fisher_diagonal':46s} {1e3 * t['fisher'] / n:10.2f} {1:11.2f}x")
    if "backpack" in out:
        ref = torch.cat([b.flatten() for b in out["backpack"]])
        got = torch.cat([d.flatten() for d in out["fisher"].values()])
        print(
            f"  {'BackPACK DiagGGNExact':46s} {1e3 * t['backpack'] / n:10.2f}"
            f" {t['backpack'] / t['fisher']:11.2f}x"
        )
        print(
            f"  agreement with BackPACK: max abs diff / max abs {rel_err(got, ref):.1e}, max"
            f" entrywise relative diff {max_rel_diff(got, ref):.1e} (entries above 1e-6 of the max)"
        )
        goals.append(("BackPACK / ours (diagonal)", t["backpack"] / t["fisher"], ">=", 1.0))
    else:
        print(f"  BackPACK DiagGGNExact: {backpack_error}")
    run_engines(model, x, mask, args, device)
    print("  goals:")
    for label, value, op, target in goals:
        ok = value <= target if op == "<=" else value >= target
        print(f"    {label:28s} {value:8.2f}  (goal {op} {target})  {'met' if ok else 'MISSED'}")


def run_engines(model, x, mask, args, device):
    """torch.func (``engine="func"``) against the hooks (``"auto"``) on the same samples, both
    quantities."""
    f, chunk = min(args.func_samples, len(x)), args.chunk
    xf = x[:f]
    fns = {
        "emb-hooks": lambda: gradient_embeddings(model, xf, mask, chunk_size=chunk),
        "emb-func": lambda: gradient_embeddings(model, xf, mask, chunk_size=chunk, engine="func"),
        "diag-hooks": lambda: fisher_diagonal(model, xf, chunk_size=chunk),
        "diag-func": lambda: fisher_diagonal(model, xf, chunk_size=chunk, engine="func"),
    }
    out, t = interleaved_times(fns, device, args.repeats)
    print(
        f"  {'torch.func engine vs hooks (N=' + str(f) + ')':46s} {'hooks ms/s':>10s}"
        f" {'func ms/s':>10s} {'func/hooks':>11s}"
    )
    for label, key in (("gradient_embeddings", "emb"), ("fisher_diagonal", "diag")):
        hooks, func = t[f"{key}-hooks"], t[f"{key}-func"]
        print(f"  {label:46s} {1e3 * hooks / f:10.2f} {1e3 * func / f:10.2f} {func / hooks:10.2f}x")
    diag_hooks = torch.cat([v.flatten() for v in out["diag-hooks"].values()])
    diag_func = torch.cat([v.flatten() for v in out["diag-func"].values()])
    print(
        "  agreement func vs hooks (max abs diff / max abs): embeddings"
        f" {rel_err(out['emb-func'], out['emb-hooks']):.1e}, diagonal"
        f" {rel_err(diag_func, diag_hooks):.1e}"
    )
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--samples", type=int, default=256, help="N for ours, the lower bound and BackPACK"
    )
    parser.add_argument(
        "--loop-samples", type=int, default=32, help="samples for the batch-1 loop and torch.func"
    )
    parser.add_argument(
        "--original-samples", type=int, default=4, help="samples for the original method"
    )
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument(
        "--chunk", type=int, default=None, help="chunk_size (default: the library's)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved timing rounds (the median is reported)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument(
        "--torch-func", action="store_true", help="also time torch.func (memory hungry)"
    )
    parser.add_argument(
        "--func-samples", type=int, default=32, help="samples for torch.func vs hooks"
    )
    parser.add_argument(
        "--engines-only", action="store_true", help="only torch.func vs hooks (N = --func-samples)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="64 samples, 8 loop samples, 16 func samples, 2 repeats",
    )
    parser.add_argument(
        "--round", action="store_true", help="also time one FisherMask round on the trained CNN"
    )
    args = parser.parse_args()
    if args.quick:
        args.samples, args.loop_samples, args.original_samples, args.repeats = 64, 8, 2, 2
        args.func_samples = 16
    if args.engines_only:  # only the first func_samples are used: compute the mask on those too
        args.samples = args.func_samples
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    torch.manual_seed(0)
    for name in args.models.split(","):
        if name == "cnn":
            model, x = SmallCNN(), torch.randn(args.samples, 1, 28, 28)
        elif name == "resnet18":
            model, x = CifarResNet18(width=16), torch.randn(args.samples, 3, 32, 32)
        elif name == "trained-cnn":
            model, pool, labeled = trained_cnn()
            x = pool.inputs(torch.arange(args.samples) * (len(pool) // args.samples))
            run("SmallCNN trained on 300 FashionMNIST labels, its own mask", model, x, args, device)
            if args.round:
                time_round(model, pool, labeled, args.fraction, device)
            continue
        else:
            raise ValueError(f"unknown model {name!r}; allowed values: cnn, resnet18, trained-cnn")
        _warm_batchnorm(model, x)
        run(f"{type(model).__name__} at initialisation, random inputs", model, x, args, device)


def trained_cnn(labels: int = 300, seed: int = 0):
    """The CNN trained with the paper recipe on ``labels`` balanced FashionMNIST labels (pool of
    5000)."""
    import numpy as np

    from fmlib.datasets import initial_labeled, prepare_data
    from fmlib.train import fit, train_config

    data = prepare_data(
        "fashion_mnist", imbalance="none", pool_size=5000, test_size=1000, seed=seed
    )
    labeled = initial_labeled(data.pool.labels.numpy(), labels, "balanced", seed=seed)
    torch.manual_seed(seed)
    model = SmallCNN(10, 1, 28)
    fit(model, data.pool, labeled, train_config("paper"), seed=seed)
    return model.eval(), data.pool, np.asarray(labeled)


def time_round(
    model, pool, labeled, fraction: float, device, candidates: int = 2000, picks: int = 200
):
    """One FisherMask round, phase by phase, as the strategy runs it (1024 Fisher samples)."""
    import numpy as np

    from fmlib.strategies import get_strategy

    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    strategy = get_strategy("fishermask", fraction=fraction, max_candidates=candidates)
    start = time.perf_counter()
    fisher_diagonal(model.to(device), pool.inputs(torch.arange(1024) * (len(pool) // 1024), device))
    fisher = time.perf_counter() - start
    start = time.perf_counter()
    strategy.select(model, pool, labeled, unlabeled, picks, seed=0, device=device)
    total = time.perf_counter() - start
    embed = strategy.report.embed_time
    print(
        f"  one FisherMask round ({candidates} candidates, {picks} picks, fraction {fraction},"
        f" k={strategy.report.fisher.mask.size}): {total:.1f} s = Fisher diagonal ~{fisher:.1f} s +"
        f" embeddings ~{embed - fisher:.1f} s + greedy {total - embed:.1f} s"
    )


def _warm_batchnorm(model, x):
    """A few train-mode forwards so BatchNorm's running statistics are not the identity."""
    model.train()
    with torch.no_grad():
        for batch in x.split(BATCH):
            model(batch)
    model.eval()


if __name__ == "__main__":
    main()
