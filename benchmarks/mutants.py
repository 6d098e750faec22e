"""One-line mutants: plausible bugs planted one at a time in a copy of the checkout, each run
against the tests of its module; a mutant is caught when those tests fail.

Every row names the file, the exact text it replaces (it must occur once in that file), the
replacement and the test paths to run (``pytest -x -q``). The checkout's files (tracked, and
untracked ones git does not ignore) are copied once to a temporary folder; each mutant is applied
there, its tests run, and the file restored. Prints a table (caught / survived, seconds) and the
score.

Usage::

    nice -n 10 python benchmarks/mutants.py              # every mutant
    nice -n 10 python benchmarks/mutants.py --only loop-labels-not-reordered
    nice -n 10 python benchmarks/mutants.py --only NAME --tests tests/test_x.py::test_y
    python benchmarks/mutants.py --list
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ["tests/test_strategies.py", "tests/doors/test_api.py"]

# name, file, original text (once in the file), replacement, test paths
MUTANTS = [
    # strategies/base.py
    (
        "base-fewer-picks-pass",
        "fmlib/strategies/base.py",
        "    if len(array) != n:",
        "    if len(array) > n:",
        STRATEGIES,
    ),
    (
        "base-pick-range-off-by-one",
        "fmlib/strategies/base.py",
        "if pool_size is not None and ((array < 0) | (array >= pool_size)).any():",
        "if pool_size is not None and ((array < 0) | (array > pool_size)).any():",
        STRATEGIES,
    ),
    (
        "base-candidates-fewer-than-n",
        "fmlib/strategies/base.py",
        "size=max(max_candidates, n), replace=False",
        "size=max_candidates, replace=False",
        STRATEGIES,
    ),
    (
        "base-random-ignores-seed",
        "fmlib/strategies/base.py",
        "np.random.default_rng(seed).choice(unlabeled",
        "np.random.default_rng().choice(unlabeled",
        STRATEGIES,
    ),
    # train.py
    (
        "train-accuracy-over-last-batch",
        "fmlib/train.py",
        '"train_accuracy": correct / len(order),',
        '"train_accuracy": correct / len(batch),',
        ["tests/test_train.py"],
    ),
    (
        "train-target-strict",
        "fmlib/train.py",
        'and stats["train_accuracy"] >= config.target_train_acc',
        'and stats["train_accuracy"] > config.target_train_acc',
        ["tests/test_train.py"],
    ),
    (
        "train-reinit-ignores-seed",
        "fmlib/train.py",
        "        torch.manual_seed(seed)\n",
        "        torch.manual_seed(0)\n",
        ["tests/test_train.py"],
    ),
    (
        "train-fit-leaves-train-mode",
        "fmlib/train.py",
        '    model.eval()\n    stats["seconds"]',
        '    stats["seconds"]',
        ["tests/test_train.py"],
    ),
    (
        "train-batchnorm-momentum-kept",
        "fmlib/train.py",
        "                m.momentum = None\n",
        "                m.momentum = 0.1\n",
        ["tests/test_train.py"],
    ),
    (
        "train-balanced-accuracy-nan",
        "fmlib/train.py",
        '"balanced_accuracy": float(np.nanmean(per_class)),',
        '"balanced_accuracy": float(np.mean(per_class)),',
        ["tests/test_train.py"],
    ),
    # loop.py
    (
        "loop-query-one-too-many",
        "fmlib/loop.py",
        "n = self.schedule[r + 1] - self.schedule[r]",
        "n = self.schedule[r + 1] - self.schedule[r] + 1",
        ["tests/test_session.py"],
    ),
    (
        "loop-labels-not-reordered",
        "fmlib/loop.py",
        "labels = np.asarray(labels, dtype=np.int64).reshape(-1)[order]",
        "labels = np.asarray(labels, dtype=np.int64).reshape(-1)",
        ["tests/test_session.py"],
    ),
    (
        "loop-trains-on-pool-labels",
        "fmlib/loop.py",
        "view.labels = self.known.clone()",
        "view.labels = pool.labels.clone()",
        ["tests/test_session.py"],
    ),
    # build.py
    (
        "build-empty-class-passes",
        "fmlib/build.py",
        "enumerate(pool.class_counts()) if n == 0]",
        "enumerate(pool.class_counts()) if n < 0]",
        ["tests/doors/test_api.py", "tests/test_byo.py"],
    ),
    (
        "build-label-range-off-by-one",
        "fmlib/build.py",
        "(labels < 0) | (labels >= part.num_classes)",
        "(labels < 0) | (labels > part.num_classes)",
        ["tests/doors/test_api.py", "tests/test_byo.py"],
    ),
    (
        "build-init-ignores-seed",
        "fmlib/build.py",
        'round_seed(config.seed, 0, "init")',
        'round_seed(0, 0, "init")',
        ["tests/test_seeds_guard.py"],
    ),
    # config.py and the bounds it checks
    (
        "config-authors-trains-others",
        "fmlib/config.py",
        'self.first_query == "authors" and self.strategy == "bait"',
        'self.first_query == "authors" and self.strategy != "bait"',
        ["tests/test_protocol.py"],
    ),
    (
        "config-preset-over-options",
        "fmlib/config.py",
        "{**TRAIN_PRESETS[preset].to_dict(), **options}",
        "{**options, **TRAIN_PRESETS[preset].to_dict()}",
        ["tests/records/test_directory.py"],
    ),
    (
        "bounds-rounds-floor",
        "fmlib/bounds.py",
        "max(0, -(-(budget - initial_size) // query_size))",
        "max(0, (budget - initial_size) // query_size)",
        ["tests/doors/test_api.py"],
    ),
    # records
    (
        "records-temp-file-kept",
        "fmlib/records/files.py",
        "        Path(tmp).unlink(missing_ok=True)\n",
        "",
        ["tests/records/test_files.py"],
    ),
    (
        "records-stopped-round-off-by-one",
        "fmlib/records/tables.py",
        'n_rounds == stopped.get("round", -2) + 1',
        'n_rounds == stopped.get("round", -2)',
        ["tests/records/test_tables.py", "tests/test_stopping.py"],
    ),
    (
        "records-area-right-riemann",
        "fmlib/records/tables.py",
        "np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))",
        "np.sum(y[1:] * np.diff(x))",
        ["tests/records/test_tables.py"],
    ),
    # fisher/masks.py
    (
        "masks-head-not-counted",
        "fmlib/fisher/masks.py",
        "budget = max(int(fraction * total) - sum(values[n].numel() for n in head), 0)",
        "budget = max(int(fraction * total), 0)",
        ["tests/fisher/test_masks.py"],
    ),
    (
        "masks-random-ignores-seed",
        "fmlib/fisher/masks.py",
        "gen = torch.Generator().manual_seed(seed)",
        "gen = torch.Generator().manual_seed(0)",
        ["tests/fisher/test_masks.py"],
    ),
    # data.py, checks.py
    (
        "data-label-minus-one-passes",
        "fmlib/data.py",
        "(len(y) and int(y.min()) < 0)",
        "(len(y) and int(y.min()) < -1)",
        ["tests/test_data.py", "tests/test_byo.py"],
    ),
    (
        "checks-bool-is-an-int",
        "fmlib/checks.py",
        "return isinstance(value, Integral) and not isinstance(value, bool)",
        "return isinstance(value, Integral)",
        ["tests/test_checks.py"],
    ),
    # grid
    (
        "grid-options-replaced",
        "fmlib/grid/spec.py",
        "out[key] = {**out[key], **value}",
        "out[key] = dict(value)",
        ["tests/test_grid.py"],
    ),
    (
        "grid-duplicate-names-pass",
        "fmlib/grid/spec.py",
        "        if name in seen:\n",
        "        if name in runs:\n",
        ["tests/test_grid.py", "tests/doors/test_grid_file.py"],
    ),
]


def copy_checkout(target: Path) -> None:
    """The checkout's tracked files and the untracked ones git does not ignore, into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_mutant(copy: Path, row, timeout: float) -> tuple[str, float, str]:
    """Apply one mutant in ``copy``, run its tests, restore the file: ``(verdict, seconds, the
    last line pytest printed)``; verdict ``caught``, ``survived`` or ``error`` (the row is wrong:
    its text is not in the file once, or its tests were not collected)."""
    name, file, original, replacement, tests = row
    path = copy / file
    text = path.read_text()
    if text.count(original) != 1:
        return "error", 0.0, f"the original text occurs {text.count(original)} times in {file}"
    path.write_text(text.replace(original, replacement))
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        rc, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        rc, output = -1, f"timed out after {timeout:.0f} s"
    finally:
        path.write_text(text)
    seconds = time.perf_counter() - start
    lines = [line for line in output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    verdict = {0: "survived", 1: "caught", 2: "caught"}.get(rc, "error")
    return verdict, seconds, last


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run this mutant only (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant's tests")
    parser.add_argument("--tests", nargs="+", help="run these test paths for every mutant instead")
    args = parser.parse_args(argv)
    names = [row[0] for row in MUTANTS]
    if len(set(names)) != len(names):
        raise SystemExit("two mutants share a name")
    if args.list:
        for name, file, *_ in MUTANTS:
            print(f"{name:36s} {file}")
        return 0
    rows = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise SystemExit(f"unknown mutants {unknown}; --list shows them")
        rows = [row for row in MUTANTS if row[0] in args.only]
    results = []
    with tempfile.TemporaryDirectory(prefix="fmlib-mutants-") as tmp:
        copy = Path(tmp)
        copy_checkout(copy)
        for row in rows:
            row = (*row[:4], args.tests) if args.tests else row
            verdict, seconds, last = run_mutant(copy, row, args.timeout)
            results.append((row[0], row[1], verdict, seconds, last))
            print(f"{verdict:8s} {seconds:6.1f} s  {row[0]}  ({last})", flush=True)
    print("\n| mutant | file | verdict | seconds |\n|---|---|---|---|")
    for name, file, verdict, seconds, _ in results:
        print(f"| {name} | {file} | {verdict} | {seconds:.0f} |")
    caught = sum(v == "caught" for _, _, v, _, _ in results)
    errors = sum(v == "error" for _, _, v, _, _ in results)
    print(
        f"\nscore: {caught}/{len(results)} caught ({100 * caught / max(len(results), 1):.0f} %)"
        + (f", {errors} rows in error" if errors else "")
    )
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
