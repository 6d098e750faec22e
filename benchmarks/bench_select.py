"""Benchmark greedy BAIT selection: incremental updates against per-step recomputation.

    .venv/bin/python benchmarks/bench_select.py           # speed, then memory (sizes below)
    .venv/bin/python benchmarks/bench_select.py --quick   # small sizes, seconds, no memory run
    .venv/bin/python benchmarks/bench_select.py --memory  # only N=20000, C=10, k=2000: peak RSS
    .venv/bin/python benchmarks/bench_select.py --busy    # 1 vs 2 threads beside a busy process

Busy mode (N=1500, C=10, k=500, 60 picks) spawns a process that spins on one core, then times
the incremental greedy at 1 and at 2 torch threads, interleaved, and the same at 2 threads with
the one-thread pick loop switched off (the greedy before it ran small picks on one thread).

Speed mode (N=3000, C=10, k=1000, 100 picks) times :func:`greedy_trace_select` over all picks
(median of ``--repeats`` runs) and the naive recomputation (:func:`greedy_trace_select_naive`,
O(N·C·k²) a pick) over ``--naive-picks`` picks, extrapolated per pick when that is fewer, and checks
both make the same picks. It then runs memory mode in a fresh subprocess (``--memory-picks`` picks;
the peak is reached in the setup and the first pick, the arrays do not grow with the picks). Memory
mode prints the peak resident set size of the whole process (ru_maxrss), which includes the float32
embeddings themselves. On a CPU shared with other jobs, busy-waiting OpenMP threads can slow small
ops down many times over (seen on a 2-core machine): compare runs with ``OMP_WAIT_POLICY=PASSIVE``
or ``--threads 1``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch

from fmlib.fisher.greedy import greedy_trace_select
from fmlib.fisher.greedy_naive import greedy_trace_select_naive

GIB = 2**30


def make_problem(num, classes, k, n_labeled, device, seed=0, chunk=1000):
    """Float32 embeddings with uneven per-sample scales, their pool Fisher and a labeled Fisher."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.empty(num, classes, k, dtype=torch.float32, device=device)  # [N, C, k]
    fisher = torch.zeros(k, k, dtype=torch.float64, device=device)
    for start in range(0, num, chunk):  # chunked: no second N x C x k array
        block = torch.randn(min(chunk, num - start), classes, k, generator=gen)
        block *= torch.rand(len(block), 1, 1, generator=gen) * 2 + 0.1
        v[start : start + len(block)] = block.to(device)
        flat = v[start : start + len(block)].reshape(-1, k)
        fisher += (flat.T @ flat).double()
    fisher /= num
    labeled = None
    if n_labeled:
        lab = torch.randn(n_labeled, classes, k, generator=gen).to(device).reshape(-1, k)
        labeled = (lab.T @ lab).double() / n_labeled
    return v, dict(fisher=fisher, labeled_fisher=labeled, n_labeled=n_labeled)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def speed(args, device):
    print(
        f"speed: N={args.num} C={args.classes} k={args.k} picks={args.picks} |L|={args.n_labeled}"
        f" on {device}"
    )
    v, kwargs = make_problem(args.num, args.classes, args.k, args.n_labeled, device)
    one, t_one = timed(lambda: greedy_trace_select(v, 1, **kwargs), device)
    runs = [
        timed(lambda: greedy_trace_select(v, args.picks, **kwargs), device)
        for _ in range(args.repeats)
    ]
    picks, t_fast = runs[0][0], statistics.median(t for _, t in runs)
    assert all(p == picks for p, _ in runs)
    per_pick = (t_fast - t_one) / max(args.picks - 1, 1)
    times = ", ".join(f"{t:.2f}" for _, t in runs)
    print(
        f"  incremental: {t_fast:8.2f} s for {args.picks} picks (median of {args.repeats}: {times})"
    )
    print(f"    setup + 1st pick {t_one:.2f} s, then {per_pick * 1e3:.1f} ms/pick")

    naive_n = min(args.naive_picks or args.picks, args.picks)
    # The candidate scaling sqrt(n/(|L|+n)) depends on n, so only with |L| = 0 are the first
    # picks of a 100-pick run those of a shorter run; otherwise compare equal-n runs.
    reference = (
        picks
        if args.n_labeled == 0 or naive_n == args.picks
        else greedy_trace_select(v, naive_n, **kwargs)
    )
    slow, t_slow = timed(lambda: greedy_trace_select_naive(v, naive_n, **kwargs), device)
    naive_per_pick = t_slow / naive_n
    same = slow == reference[:naive_n]
    print(f"  naive:       {t_slow:8.2f} s for {naive_n} picks ({naive_per_pick:.2f} s/pick)")
    if naive_n < args.picks:
        print(
            f"  naive over {args.picks} picks EXTRAPOLATED from {naive_n} measured:"
            f" {naive_per_pick * args.picks:.1f} s"
        )
    print(f"  same picks as naive over the first {naive_n}: {same}")
    if not same:
        first = next(i for i, (a, b) in enumerate(zip(slow, reference)) if a != b)
        print(
            f"    first difference at pick {first}: incremental {reference[first]}, naive"
            f" {slow[first]}"
        )
    ratio = naive_per_pick * args.picks / t_fast
    print(
        f"  speed-up (naive {args.picks} picks / incremental {args.picks} picks): {ratio:.1f}x "
        f"(goal >= 30x: {'met' if ratio >= 30 else 'MISSED'})"
    )
    print(f"  per pick after setup: {naive_per_pick / per_pick:.0f}x faster")
    print(f"  setup + 1st pick / one naive pick: {t_one / naive_per_pick:.2f}")


def busy(args, device):
    import os

    from fmlib.fisher import greedy

    num, k, picks = args.num, args.k, 60
    print(
        f"busy: N={num} C={args.classes} k={k} picks={picks} beside a spinning process; "
        f"load before {os.getloadavg()[0]:.2f}"
    )
    v, kwargs = make_problem(num, args.classes, k, args.n_labeled, device)
    spin = (
        "import os, time\nparent = os.getppid()\n"
        "while os.getppid() == parent:\n    sum(range(10**5))"
    )
    spinner = subprocess.Popen([sys.executable, "-c", spin])  # ends when this process ends
    try:
        time.sleep(1.0)
        rows = {"1 thread": [], "2 threads": [], "2 threads, one-thread loop off": []}
        threshold = greedy.SINGLE_THREAD_WORK
        for _ in range(args.repeats):
            for label in rows:
                torch.set_num_threads(1 if label == "1 thread" else 2)
                greedy.SINGLE_THREAD_WORK = 0.0 if label.endswith("off") else threshold
                rows[label].append(timed(lambda: greedy_trace_select(v, picks, **kwargs), device))
        greedy.SINGLE_THREAD_WORK = threshold
        load = os.getloadavg()[0]
    finally:
        spinner.kill()
    base = statistics.median(t for _, t in rows["1 thread"])
    assert all(p == rows["1 thread"][0][0] for runs in rows.values() for p, _ in runs)
    for label, runs in rows.items():
        t = statistics.median(t for _, t in runs)
        times = ", ".join(f"{t:.2f}" for _, t in runs)
        print(f"  {label:32s} {t:6.2f} s  ({t / base:.2f}x 1 thread; runs {times})")
    ratio = statistics.median(t for _, t in rows["2 threads"]) / base
    print(
        f"  2 threads / 1 thread: {ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'MISSED'});"
        f" same picks in every run; load during {load:.2f}"
    )


def memory(args, device):
    print(
        f"memory: N={args.num} C={args.classes} k={args.k} picks={args.picks} |L|={args.n_labeled}"
        f" on {device}"
    )
    v, kwargs = make_problem(args.num, args.classes, args.k, args.n_labeled, device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
    print(f"  embeddings: {v.numel() * v.element_size() / GIB:.2f} GiB float32")
    print(f"  peak RSS after building the problem: {rss_before / GIB:.2f} GiB")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    picks, t = timed(
        lambda: greedy_trace_select(v, args.picks, progress=args.progress, **kwargs), device
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"  selected {len(picks)} in {t:.1f} s; first picks {picks[:5]}")
    print(
        f"  peak RSS of the process: {rss / GIB:.2f} GiB (goal < 6 GiB:"
        f" {'met' if rss < 6 * GIB else 'MISSED'})"
    )
    if device.type == "cuda":
        print(f"  peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / GIB:.2f} GiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--num", type=int, default=None, help="candidates N (default 3000; 20000 with --memory)"
    )
    parser.add_argument("--classes", type=int, default=10, help="rows per embedding C")
    parser.add_argument(
        "--k", type=int, default=None, help="embedding width k (default 1000; 2000 with --memory)"
    )
    parser.add_argument("--picks", type=int, default=100, help="batch size n")
    parser.add_argument(
        "--naive-picks",
        type=int,
        default=10,
        help="picks the naive run makes, extrapolated to --picks (0: all)",
    )
    parser.add_argument(
        "--n-labeled", type=int, default=0, help="labeled-set size |L| (0: no labeled Fisher)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: N=600, k=200, 20 picks")
    parser.add_argument("--memory", action="store_true", help="peak-memory mode")
    parser.add_argument("--busy", action="store_true", help="1 vs 2 threads beside a busy process")
    parser.add_argument("--progress", action="store_true", help="progress bar in memory mode")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (0: torch's choice)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="incremental runs in speed mode (median)"
    )
    parser.add_argument(
        "--memory-picks", type=int, default=10, help="picks of the memory run after speed mode"
    )
    parser.add_argument("--no-memory", action="store_true", help="speed mode only")
    args = parser.parse_args()
    if args.quick:
        args.num, args.k, args.picks, args.naive_picks = (
            args.num or 600,
            args.k or 200,
            min(args.picks, 20),
            0,
        )
        args.no_memory = True
    if args.memory:
        args.num, args.k = args.num or 20000, args.k or 2000
    if args.busy:
        args.num, args.k = args.num or 1500, args.k or 500
    args.num, args.k = args.num or 3000, args.k or 1000
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.busy:
        busy(args, device)
        return
    if args.memory:
        memory(args, device)
        return
    speed(args, device)
    if not args.no_memory:  # a fresh process, so that its peak RSS is the memory run's own
        cmd = [
            sys.executable,
            __file__,
            "--memory",
            "--picks",
            str(args.memory_picks),
            "--threads",
            str(args.threads),
        ]
        print(f"\n$ {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd + ["--device", args.device], check=True)


if __name__ == "__main__":
    main()
