"""Device check for a lent GPU (a few minutes): each phase on the device against the CPU.

Phases: FisherMask's Fisher diagonal and gradient embeddings of the CNN on FashionMNIST shapes
(random inputs), F_U as float32 blocks summed in float64, the Woodbury first inverse, and the
greedy (float64 products, and float32 products with the drift check). Prints seconds on the
device and on the CPU, the device's peak memory, and whether the device's picks equal the CPU's
float64 picks. ``--device cpu`` runs everything on the CPU only (a smoke check where there is no
GPU); ``--device cuda`` without CUDA says so and exits 0.

Usage: python benchmarks/gpu_check.py [--device cuda] [--num 2000] [--picks 70]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from fmlib.fisher import greedy, inverse
from fmlib.fisher.embeddings import fisher_diagonal, gradient_embeddings
from fmlib.fisher.masks import fisher_mask
from fmlib.models import build_model


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def phases(device, x, x_l, picks, fraction):
    """Every phase on ``device``; returns ``{phase: seconds}`` and the picks of each greedy."""
    torch.manual_seed(0)
    model = build_model("cnn", 4, 1, 28).to(device).eval()
    x, x_l = x.to(device), x_l.to(device)
    out = {}
    diag, out["fisher diagonal"] = timed(lambda: fisher_diagonal(model, x[:1024]), device)
    mask = fisher_mask(
        {k: v.cpu() for k, v in diag.items()},
        fraction,
        method="global",
        include_head=True,
        model=model,
        seed=0,
    )
    embed = lambda inputs: torch.cat(
        [gradient_embeddings(model, b, mask) for b in inputs.split(256)]
    )
    emb, out["embeddings"] = timed(lambda: embed(x), device)  # [N, C, k]
    emb_l = embed(x_l)
    k = emb.shape[-1]

    def fisher_sum():
        total = torch.zeros(k, k, dtype=torch.float64, device=device)
        for block in emb.split(256):
            flat = block.reshape(-1, k)
            total += (flat.T @ flat).double()
        return total / len(emb)

    fisher, out["F_U"] = timed(fisher_sum, device)
    root = emb_l.reshape(-1, k).double() / math.sqrt(len(x_l))
    weight = len(x_l) / (len(x_l) + picks)
    _, out["first inverse"] = timed(lambda: inverse.woodbury_inverse(root, 1.0, weight), device)
    kwargs = dict(
        fisher=fisher, labeled_fisher=root.T @ root, n_labeled=len(x_l), labeled_root=root
    )
    chosen = {}
    for precision in ("float64", "float32"):
        chosen[precision], out[f"greedy {precision}"] = timed(
            lambda p=precision: greedy.greedy_trace_select(emb, picks, precision=p, **kwargs),
            device,
        )
    return out, chosen, k


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num", type=int, default=2000, help="candidates")
    parser.add_argument("--picks", type=int, default=70)
    parser.add_argument("--fraction", type=float, default=0.005)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (use --device cpu for a CPU smoke run)")
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    gen = torch.Generator().manual_seed(0)
    x, x_l = (
        torch.randn(args.num, 1, 28, 28, generator=gen),
        torch.randn(155, 1, 28, 28, generator=gen),
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dev, dev_picks, k = phases(device, x, x_l, args.picks, args.fraction)
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    )
    cpu, cpu_picks, _ = (
        (dev, dev_picks, k)
        if device.type == "cpu"
        else phases(torch.device("cpu"), x, x_l, args.picks, args.fraction)
    )
    print(f"N={args.num}, C=4, k={k}, {args.picks} picks; peak device memory {peak:.2f} GiB")
    print("| phase | device s | CPU s | CPU / device |")
    print("|---|---|---|---|")
    for name in dev:
        print(f"| {name} | {dev[name]:.2f} | {cpu[name]:.2f} | {cpu[name] / dev[name]:.1f} |")
    for precision, picks in dev_picks.items():
        same = len(set(picks) & set(cpu_picks["float64"]))
        print(
            f"device greedy {precision}: {same} of {args.picks} picks in common with the CPU"
            f" float64 picks, identical order: {picks == cpu_picks['float64']}"
        )


if __name__ == "__main__":
    main()
