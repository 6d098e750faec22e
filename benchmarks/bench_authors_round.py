"""One FisherMask query at the authors' scale, phase by phase, against floors and the previous code.

Their ResNet-18 (``build_model("authors_resnet18")``) on the imbalanced FashionMNIST pool (5750
images, 4 classes), |L| = 155 labels, the whole rest as candidates, mask fraction 0.01
(k ≈ 7000), 70 picks; ``--quick``: 600 candidates, fraction 0.002, 20 picks. Untrained weights
(timing does not depend on them). Each phase is timed in the current code and in the previous
one, beside its floor measured in the same run:

- embeddings (``gradient_embeddings``): floor = C batched forward + backward passes of the
  whole network over the same inputs;
- F_U = mean VᵀV: previous = full float64 blocks, current = the upper triangle of float32 blocks
  summed in float64 (:class:`fmlib.fisher.gram.GramSum`); floor = one triangle, N·C·k(k+1)/2
  multiply-adds at this machine's float32 GEMM rate;
- first inverse (λI + w·F_L)⁻¹: previous = dense Cholesky inverse, current = its Woodbury factor
  y (M = (I - yᵀy)/λ, an r x r Cholesky on the r = |L|·C labeled rows; the forward picks never
  form the dense M); floor = r²·k multiply-adds at the float64 GEMM rate;
- greedy (float64 products, the default): previous = a dense M (first pass and every pick) and
  float32 candidates converted at every pick; current = M through the Woodbury factor, to which
  each pick appends C rows, and a float64 copy of the candidates (made when it fits, as FisherMask
  does; its time counted here); floor = the first pass's multiply-adds at the float64 GEMM rate,
  N·C·k² (B's product with F) + 2·N·C·k·r (V M through the factor), plus per pick the larger of
  N·C·k·2C multiply-adds and reading the float64 candidates and F once (at the read rate measured in
  the same run). The picks of the previous and current code are compared.
- greedy with float32 products (``precision="float32"``, drift-checked) on the float32
  embeddings, no float64 copy: its time, its floor (the same counts at the float32 GEMM rate,
  float32 candidate bytes; its refreshes, each a first pass again, not counted), its refreshes
  and its picks against the float64 greedy's; the whole query is printed with either greedy.

F_U is also timed with every batch's rows multiplied at once (GramSum's buffer off), beside the
buffered GramSum FisherMask uses. "previous" runs today's library with the previous options, so
code both share (the per-pick candidate product) is as fast in both.

Usage: python benchmarks/bench_authors_round.py [--quick] [--threads 1]
       in two runs: ... --greedy float64 --no-fu-variant --picks P.json, then
       ... --greedy float32 --picks P.json (the float32 table's previous greedy is the first run's)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from fmlib.experiment import ExperimentConfig, load_data
from fmlib.fisher import gram, greedy, inverse
from fmlib.fisher.embeddings import fisher_diagonal, gradient_embeddings
from fmlib.fisher.masks import fisher_mask
from fmlib.models import build_model


def clock(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def read_rate(numel):
    """Bytes per second of reading a float64 tensor of ``numel`` entries once (best of 3)."""
    a = torch.ones(numel, dtype=torch.float64)
    best = min(clock(lambda: a.sum())[1] for _ in range(3))
    return numel * 8 / best


def gemm_rate(dtype, k, rows=2048):
    """Multiply-adds per second of a ``[rows, k]ᵀ[rows, k]`` product (best of 3)."""
    a = torch.randn(rows, k, dtype=dtype)
    best = min(clock(lambda: a.T @ a)[1] for _ in range(3))
    return rows * k * k / best


def fisher_sum(emb, batch, dtype):
    total = None
    for start in range(0, len(emb), batch):
        flat = emb[start : start + batch].reshape(-1, emb.shape[-1]).to(dtype)  # [b·C, k]
        block = (flat.T @ flat).double()
        total = block if total is None else total.add_(block)
    return total / len(emb)


def upper_fisher_sum(emb, batch, buffer_rows=None):
    total = gram.GramSum(emb.shape[-1], buffer_rows=buffer_rows)
    for start in range(0, len(emb), batch):
        total.add(emb[start : start + batch].reshape(-1, emb.shape[-1]))  # [b·C, k] float32
    return total.result(divide=len(emb))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--greedy",
        choices=("both", "float64", "float32"),
        default="both",
        help="which greedy tables to run (split a run in two on a machine paused for it)",
    )
    parser.add_argument(
        "--picks",
        help="JSON file: --greedy float64 writes the float64 picks and the previous greedy's time"
        " there, --greedy float32 reads them (the float32 row's comparison and previous column)",
    )
    parser.add_argument(
        "--no-fu-variant", action="store_true", help="skip F_U with GramSum's buffer off"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_cand, fraction, picks = (600, 0.002, 20) if args.quick else (None, 0.01, 70)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load"
        f" {os.getloadavg()[0]:.2f} (shared machine: ratios within this run are what counts)"
    )
    pool = load_data(ExperimentConfig(seed=0, model="authors_resnet18")).pool
    rng = np.random.default_rng(0)
    labeled = np.sort(rng.choice(len(pool), 155, replace=False))
    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    cand = unlabeled if n_cand is None else np.sort(rng.choice(unlabeled, n_cand, replace=False))
    torch.manual_seed(0)
    model = build_model("authors_resnet18", pool.num_classes, 1, 28).eval()
    cpu = torch.device("cpu")
    sample = pool.inputs(np.sort(rng.choice(len(pool), 1024, replace=False)), cpu)
    diag = fisher_diagonal(model, sample)
    mask = fisher_mask(diag, fraction, method="global", include_head=True, model=model, seed=0)
    x = pool.inputs(cand, cpu)
    x_l = pool.inputs(labeled, cpu)
    classes = pool.num_classes
    rows = {}

    def embed(inputs):
        return torch.cat(
            [gradient_embeddings(model, b, mask, scale="none") for b in inputs.split(args.batch)]
        )

    emb, t_emb = clock(lambda: embed(x))  # [N, C, k] float32
    emb_l = embed(x_l)
    num, _, k = emb.shape

    def floor_passes():
        for b in x.split(args.batch):
            logp = torch.log_softmax(model(b), -1)
            for c in range(classes):
                model.zero_grad()
                logp[:, c].sum().backward(retain_graph=c < classes - 1)

    _, t_emb_floor = clock(floor_passes)
    rows["embeddings"] = (t_emb, t_emb, t_emb_floor)
    print(f"N={num} candidates, C={classes}, k={k}, |L|={len(labeled)}, {picks} picks")

    rate32, rate64 = gemm_rate(torch.float32, k), gemm_rate(torch.float64, k)
    bandwidth = read_rate(num * classes * k)
    print(f"read rate of the [N, C, k] float64 candidates: {bandwidth / 1e9:.1f} GB/s")
    print(
        f"GEMM rate [2048, k]ᵀ[2048, k]: float32 {rate32 / 1e9:.1f}, float64 {rate64 / 1e9:.1f} G"
        " multiply-adds/s"
    )
    f_old, t_f_old = clock(lambda: fisher_sum(emb, args.batch, torch.float64))
    f_new, t_f_new = clock(lambda: upper_fisher_sum(emb, args.batch))
    rows["F_U"] = (t_f_old, t_f_new, num * classes * k * (k + 1) / 2 / rate32)
    rel = float((f_new - f_old).norm() / f_old.norm())
    print(f"F_U float32 upper blocks vs float64: relative Frobenius difference {rel:.1e}")
    if not args.no_fu_variant:
        f_each, t_f_each = clock(lambda: upper_fisher_sum(emb, args.batch, buffer_rows=1))
        rel = float((f_each - f_old).norm() / f_old.norm())
        print(
            f"F_U, GramSum buffering {gram.DEFAULT_BUFFER_BYTES // (4 * k)} rows: {t_f_new:.2f}"
            f" s; every {args.batch * classes}-row batch multiplied at once: {t_f_each:.2f} s"
            f" (relative Frobenius difference to float64 {rel:.1e})"
        )
        del f_each

    n_l = len(labeled)
    root = emb_l.reshape(-1, k).double() / math.sqrt(n_l)  # [|L|·C, k]
    fisher_l = root.T @ root
    weight = n_l / (n_l + picks)
    m_old, t_i_old = clock(lambda: inverse.initial_inverse(k, 1.0, fisher_l, weight, cpu))
    y, t_i_new = clock(lambda: inverse.woodbury_factor(root, 1.0, weight))
    m_new = inverse.from_factor(y, 1.0)
    rows["first inverse"] = (t_i_old, t_i_new, root.shape[0] ** 2 * k / rate64)
    print(
        "first inverse: Woodbury vs dense, max abs difference"
        f" {float((m_new - m_old).abs().max()):.1e}"
    )

    common = dict(fisher=f_old, labeled_fisher=fisher_l, n_labeled=n_l)
    rates = {"float32": rate32, "float64": rate64, "read": bandwidth}
    tables = []
    if args.greedy != "float32":
        p_new, previous = float64_greedy(
            args, emb, root, picks, common, rows, rates, t_i_old, t_i_new
        )
        tables.append(("greedy with float64 products (the default)", rows))
    else:
        with open(args.picks) as fh:
            saved = json.load(fh)
        p_new, previous = saved["picks"], saved["previous_greedy_s"]
        print(f"float64 picks and the previous greedy's time ({previous:.2f} s) from {args.picks}")
    if args.greedy != "float64":
        rows32 = dict(rows)
        rows32["greedy"] = (
            previous,
            *float32_greedy(emb, root, picks, common, rates, t_i_new, p_new),
        )
        tables.append(("greedy with float32 products, drift-checked", rows32))
    for title, table in tables:
        print(f"{title}:")
        print_table(table)
    print(f"load {os.getloadavg()[0]:.2f}")


def float64_greedy(args, emb, root, picks, common, rows, rates, t_i_old, t_i_new):
    """The previous and current float64 greedies: their row, and their picks compared."""
    num, classes, k = emb.shape
    rate64, bandwidth = rates["float64"], rates["read"]
    p_old, t_g_old = clock(lambda: greedy.greedy_trace_select(emb, picks, **common))
    p_new, t_g_new = clock(
        lambda: greedy.greedy_trace_select(emb.double(), picks, labeled_root=root, **common)
    )
    # the first inverse is inside both greedy times: count it once, under its own row
    r = root.shape[0]
    # a pick reads every candidate row and F once: memory-bound on a CPU, so its floor is the
    # larger of its multiply-adds at the GEMM rate and its bytes at the read rate
    per_pick = max(
        num * classes * k * 2 * classes / rate64, (num * classes * k + k * k) * 8 / bandwidth
    )
    first = num * classes * k * (k + 2 * r) / rate64
    rows["greedy"] = (t_g_old - t_i_old, t_g_new - t_i_new, first + picks * per_pick)
    print(f"greedy: same picks as the previous code (float64): {p_old == p_new}")
    if args.picks:
        with open(args.picks, "w") as fh:
            json.dump({"picks": p_new, "previous_greedy_s": t_g_old - t_i_old}, fh)
    return p_new, t_g_old - t_i_old


def float32_greedy(emb, root, picks, common, rates, t_i_new, p_new):
    """The drift-checked float32 greedy on the float32 embeddings, its picks against ``p_new``
    (the float64 greedy's): returns its time and its floor."""
    num, classes, k = emb.shape
    rate32, bandwidth, r = rates["float32"], rates["read"], root.shape[0]
    info = {}
    p_32, t_g_32 = clock(
        lambda: greedy.greedy_trace_select(
            emb, picks, labeled_root=root, precision="float32", info=info, **common
        )
    )
    per_pick_32 = max(
        num * classes * k * 2 * classes / rate32, (num * classes * k * 4 + k * k * 8) / bandwidth
    )
    floor_32 = num * classes * k * (k + 2 * r) / rate32 + picks * per_pick_32
    same = sum(a == b for a, b in zip(p_32, p_new))
    differ = next((i for i, (a, b) in enumerate(zip(p_32, p_new)) if a != b), None)
    print(
        f"greedy float32 (drift-checked): {t_g_32 - t_i_new:.2f} s, floor {floor_32:.2f} s"
        f" (float32 rate and bytes; refreshes not counted), {len(info['refreshes'])} refreshes"
        f" at picks {info['refreshes']}; picks equal to the float64 greedy's, position by"
        f" position: {same} of {picks}; set in common {len(set(p_32) & set(p_new))};"
        f" first differing pick: {'none' if differ is None else differ}"
    )
    return t_g_32 - t_i_new, floor_32


def print_table(rows):
    """The phases' table, the whole query and the goals."""
    print("| phase | previous s | current s | floor s | current / floor | previous / current |")
    print("|---|---|---|---|---|---|")
    total = [0.0, 0.0, 0.0]
    for name, (old, new, floor) in rows.items():
        total = [a + b for a, b in zip(total, (old, new, floor))]
        print(
            f"| {name} | {old:.2f} | {new:.2f} | {floor:.2f} | {new / floor:.2f} |"
            f" {old / new:.2f} |"
        )
    old, new, floor = total
    print(
        f"| whole query | {old:.2f} | {new:.2f} | {floor:.2f} | {new / floor:.2f} |"
        f" {old / new:.2f} |"
    )
    print(
        f"goals: current / floors <= 1.5: {'met' if new / floor <= 1.5 else 'MISSED'}; previous /"
        f" current >= 3: {'met' if old / new >= 3 else 'MISSED'}; previous / floors"
        f" {old / floor:.2f}"
    )


if __name__ == "__main__":
    main()
