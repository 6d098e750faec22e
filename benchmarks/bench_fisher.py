"""Benchmark the Fisher engine: gradient embeddings and the diagonal Fisher.

    .venv/bin/python benchmarks/bench_fisher.py                  # SmallCNN, then ResNet-18 (width 16)
    .venv/bin/python benchmarks/bench_fisher.py --quick          # fewer samples and repeats
    .venv/bin/python benchmarks/bench_fisher.py --device cuda

Embeddings (1% global mask + head, C = 10, rows √p_c g_c[mask]), in ms per sample, against
- original: FisherMask's code, one forward per batch of 64 then one ``autograd.grad`` per
  (sample, class) through the whole batch graph; timed on ``--original-samples`` samples and
  extrapolated (the forward is counted once per 64 samples);
- batch-1 loop: ``gradient_embeddings_naive`` (a forward per sample, C ``autograd.grad``);
- torch.func: ``vmap(jacrev(functional_call))``, every per-sample gradient, then indexed;
- lower bound: C plain batched forward + backward passes (parameter gradients summed over
  the batch), which any per-class method must at least match.
Diagonal Fisher against BackPACK's ``DiagGGNExact`` (GGN = true Fisher for softmax
cross-entropy; its loss is a batch mean, so it equals our 1/N average), when installed.
Each time is the minimum over ``--repeats`` runs (the CPU is shared); agreement is the
largest absolute difference over the largest absolute reference value.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from fmlib.fisher import fisher_diagonal, gradient_embeddings, gradient_embeddings_naive
from fmlib.masks import fisher_mask
from fmlib.models import CifarResNet18, SmallCNN

BATCH = 64  # the original code's and the references' batch size


def best_time(fn, device, repeats: int):
    """(result of the last run, minimum seconds over ``repeats`` runs after one warm-up)."""
    out, times = fn(), []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, min(times)


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


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
    """BackPACK's DiagGGNExact over batches of BATCH, averaged over all samples, or None."""
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact
    except ImportError:
        return None
    model = copy.deepcopy(model)
    if isinstance(model, SmallCNN):  # BackPACK wants a Sequential; the ResNet goes through its fx converter
        model = extend(torch.nn.Sequential(*model.features, model.head))
    else:
        model = extend(model, use_converter=True)
    loss_fn = extend(torch.nn.CrossEntropyLoss())  # mean over the batch
    total = None
    for batch in x.split(BATCH):
        logits = model(batch)
        labels = torch.zeros(len(batch), dtype=torch.long, device=x.device)  # the GGN ignores labels
        with backpack(DiagGGNExact()):
            loss_fn(logits, labels).backward()
        diag = [p.diag_ggn_exact * (len(batch) / len(x)) for p in model.parameters()]
        total = diag if total is None else [t + d for t, d in zip(total, diag)]
    return total


def run(name, model, x, args, device):
    model = model.to(device).eval()
    x = x.to(device)
    n, classes = len(x), model.head.out_features
    numel = sum(p.numel() for p in model.parameters())
    diag = fisher_diagonal(model, x)
    mask = fisher_mask(diag, args.fraction, model=model)
    print(f"\n{name}: {numel:,} parameters, N={n}, C={classes}, k={mask.size} "
          f"({args.fraction:.0%} global + head), chunk {args.chunk}, {device}, {torch.get_num_threads()} threads")  # fmt: skip
    rows = {}

    ours, t = best_time(lambda: gradient_embeddings(model, x, mask, chunk_size=args.chunk), device, args.repeats)
    rows["ours: gradient_embeddings"] = t / n
    _, t = best_time(lambda: lower_bound(model, x), device, args.repeats)
    rows["lower bound: C batched fwd+bwd"] = t / n
    m = args.loop_samples
    naive, t = best_time(lambda: gradient_embeddings_naive(model, x[:m], mask), device, 1)
    rows["batch-1 loop (naive)"] = t / m
    s = args.original_samples
    _, t_fwd = best_time(lambda: model(x[:BATCH]), device, args.repeats)
    orig, t = best_time(lambda: original_method(model, x[:BATCH], mask, s), device, 1)
    rows[f"original method (extrapolated from {s})"] = (t - t_fwd) / s + t_fwd / BATCH
    if args.torch_func:
        tf, t = best_time(lambda: torch_func_embeddings(model, x[:m], mask), device, 1)
        rows["torch.func vmap(jacrev), full then index"] = t / m

    print(f"  {'gradient embeddings':44s} {'ms/sample':>10s} {'ours faster by':>15s}")
    for label, sec in rows.items():
        print(f"  {label:44s} {1e3 * sec:10.2f} {sec / rows['ours: gradient_embeddings']:14.1f}x")
    bound = rows["ours: gradient_embeddings"] / rows["lower bound: C batched fwd+bwd"]
    print(f"  ours / lower bound = {bound:.2f} (goal <= 1.5)")
    print(f"  agreement: vs batch-1 loop {rel_err(ours[:m], naive):.1e}, vs original {rel_err(ours[:s], orig):.1e}")
    if args.torch_func:
        print(f"  agreement: vs torch.func {rel_err(ours[:m], tf):.1e}")

    diag, t_ours = best_time(lambda: fisher_diagonal(model, x, chunk_size=args.chunk), device, args.repeats)
    print(f"  {'fisher_diagonal (ours)':44s} {1e3 * t_ours / n:10.2f}")
    try:
        bp, t_bp = best_time(lambda: backpack_diagonal(model, x), device, args.repeats)
    except Exception as err:  # BackPACK may not support every layer of a model
        print(f"  BackPACK DiagGGNExact: failed ({type(err).__name__}: {err})")
        return
    if bp is None:
        print("  BackPACK not installed (pip install backpack-for-pytorch): skipped")
        return
    ref, got = torch.cat([b.flatten() for b in bp]), torch.cat([d.flatten() for d in diag.values()])
    print(f"  {'BackPACK DiagGGNExact':44s} {1e3 * t_bp / n:10.2f} {t_bp / t_ours:14.1f}x")
    print(f"  agreement with BackPACK: {rel_err(got, ref):.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=256, help="N for ours, the lower bound and BackPACK")
    parser.add_argument("--loop-samples", type=int, default=32, help="samples for the batch-1 loop and torch.func")
    parser.add_argument("--original-samples", type=int, default=4, help="samples for the original method")
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--chunk", type=int, default=None, help="chunk_size (default: the library's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument("--torch-func", action="store_true", help="also time torch.func (memory hungry)")
    parser.add_argument("--quick", action="store_true", help="64 samples, 8 loop samples, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.loop_samples, args.original_samples, args.repeats = 64, 8, 2, 2
    device = torch.device(args.device)
    torch.manual_seed(0)
    for name in args.models.split(","):
        if name == "cnn":
            model, x = SmallCNN(), torch.randn(args.samples, 1, 28, 28)
        elif name == "resnet18":
            model, x = CifarResNet18(width=16), torch.randn(args.samples, 3, 32, 32)
        else:
            raise ValueError(f"unknown model {name!r}; allowed values: cnn, resnet18")
        _warm_batchnorm(model, x)
        run(f"{type(model).__name__}", model, x, args, device)


def _warm_batchnorm(model, x):
    """A few train-mode forwards so BatchNorm's running statistics are not the identity."""
    model.train()
    with torch.no_grad():
        for batch in x.split(BATCH):
            model(batch)
    model.eval()


if __name__ == "__main__":
    main()
