"""One-line mutants: plausible bugs planted one at a time in a copy of the checkout, each run
against the tests of its module; a mutant is caught when those tests fail.

Every row names the file, the exact text it replaces (it must occur once in that file), the
replacement and the test paths to run (``pytest -x -q``). The checkout's files (tracked, and
untracked ones git does not ignore) are copied once to a temporary folder; each mutant is applied
there, its tests run, and the file restored. Prints a table (caught / survived, seconds) and the
score. A row whose test path is not in the checkout stops the script before anything runs.

Usage::

    nice -n 10 python benchmarks/mutants.py              # every mutant of the first table
    nice -n 10 python benchmarks/mutants.py --set fresh    # the second table
    nice -n 10 python benchmarks/mutants.py --set holdout  # the third table
    nice -n 10 python benchmarks/mutants.py --set probe    # the probes (or --set all)
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
STRATEGIES = ["tests/strategies/test_base.py", "tests/doors/test_api.py"]
# the runner's fast tests (its notebook and submitit tests take minutes)
RUNNER = [
    "tests/grid/test_runner.py::test_inline_executor_runs_in_this_process_and_reports_failures",
    "tests/grid/test_runner.py::test_local_workers_take_the_visible_gpus_round_robin",
    "tests/grid/test_runner.py::test_no_gpus_leaves_the_environment_alone",
    "tests/grid/test_runner.py::test_a_grid_needs_one_worker_at_least",
    "tests/grid/test_runner.py::test_a_kernel_gets_its_threads_gpu_and_the_start_directory_then_the_"
    "environment_is_back",
    "tests/grid/test_runner.py::test_the_outcomes_and_the_summary_follow_the_grid_s_order",
]

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
        ["tests/test_session.py", "tests/test_loop.py"],
    ),
    (
        "loop-labels-not-reordered",
        "fmlib/loop.py",
        "labels = np.asarray(labels, dtype=np.int64).reshape(-1)[order]",
        "labels = np.asarray(labels, dtype=np.int64).reshape(-1)",
        ["tests/test_session.py", "tests/test_loop.py"],
    ),
    (
        "loop-trains-on-pool-labels",
        "fmlib/loop.py",
        "view.labels = self.known.clone()",
        "view.labels = pool.labels.clone()",
        ["tests/test_session.py", "tests/test_loop.py"],
    ),
    # build.py
    (
        "build-empty-class-passes",
        "fmlib/build.py",
        "enumerate(pool.class_counts()) if n == 0]",
        "enumerate(pool.class_counts()) if n < 0]",
        ["tests/doors/test_api.py", "tests/test_build.py"],
    ),
    (
        "build-label-range-off-by-one",
        "fmlib/build.py",
        "(labels < 0) | (labels >= part.num_classes)",
        "(labels < 0) | (labels > part.num_classes)",
        ["tests/doors/test_api.py", "tests/test_build.py"],
    ),
    (
        "build-init-ignores-seed",
        "fmlib/build.py",
        'round_seed(config.seed, 0, "init")',
        'round_seed(0, 0, "init")',
        ["tests/test_build.py", "tests/test_seeds.py"],
    ),
    # config.py and the bounds it checks
    (
        "config-authors-trains-others",
        "fmlib/config.py",
        'self.first_query == "authors" and self.strategy == "bait"',
        'self.first_query == "authors" and self.strategy != "bait"',
        ["tests/test_config.py", "tests/test_loop.py"],
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
        ["tests/test_data.py", "tests/test_build.py"],
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
        ["tests/grid/test_spec.py"],
    ),
    (
        "grid-duplicate-names-pass",
        "fmlib/grid/spec.py",
        "        if name in seen:\n",
        "        if name in runs:\n",
        ["tests/grid/test_spec.py", "tests/doors/test_grid_file.py"],
    ),
]


LOOP = ["tests/test_loop.py", "tests/test_session.py"]
BUILD = ["tests/test_build.py", "tests/doors/test_api.py"]

# A second set, chosen after the tests above were written and run once before any test was
# written for it (``--set fresh``).
FRESH = [
    (
        "fresh-base-duplicates-pass",
        "fmlib/strategies/base.py",
        "if len(np.unique(unlabeled)) != len(unlabeled):",
        "if len(np.unique(unlabeled)) > len(unlabeled):",
        STRATEGIES,
    ),
    (
        "fresh-base-select-seed-dropped",
        "fmlib/strategies/base.py",
        "unlabeled, int(n), seed=int(seed), device=device",
        "unlabeled, int(n), seed=0, device=device",
        STRATEGIES,
    ),
    (
        "fresh-train-shuffle-ignores-seed",
        "fmlib/train.py",
        "    generator = torch.Generator().manual_seed(seed)\n",
        "    generator = torch.Generator().manual_seed(0)\n",
        ["tests/test_train.py"],
    ),
    (
        "fresh-train-lr-zero-passes",
        "fmlib/train.py",
        "if not self.lr > 0:",
        "if not self.lr >= 0:",
        ["tests/test_train.py"],
    ),
    (
        "fresh-train-softmax-wrong-axis",
        "fmlib/train.py",
        "F.softmax(logits, dim=1)",
        "F.softmax(logits, dim=0)",
        ["tests/test_train.py"],
    ),
    (
        "fresh-loop-last-query-skipped",
        "fmlib/loop.py",
        "if r + 1 < len(self.schedule) and stop is None:",
        "if r + 2 < len(self.schedule) and stop is None:",
        LOOP,
    ),
    (
        "fresh-loop-label-range-off-by-one",
        "fmlib/loop.py",
        "if not 0 <= v < num_classes]",
        "if not 0 <= v <= num_classes]",
        LOOP,
    ),
    (
        "fresh-loop-train-seed-ignores-round",
        "fmlib/loop.py",
        'seed = round_seed(self.seed, r, "train")',
        'seed = round_seed(self.seed, 0, "train")',
        LOOP,
    ),
    (
        "fresh-build-pool-size-unchecked",
        "fmlib/build.py",
        "    config.check_pool(len(pool))\n",
        "",
        BUILD,
    ),
    (
        "fresh-build-test-labels-unchecked",
        "fmlib/build.py",
        'for part, name in ((data.pool, "pool"), (data.test, "test set")):',
        'for part, name in ((data.pool, "pool"),):',
        BUILD,
    ),
    (
        "fresh-bounds-one-round-short",
        "fmlib/bounds.py",
        "while (rounds is None or len(sizes) <= rounds)",
        "while (rounds is None or len(sizes) < rounds)",
        ["tests/test_bounds.py"],
    ),
    (
        "fresh-bounds-momentum-one-passes",
        "fmlib/bounds.py",
        "lambda v: is_real(v) and 0 <= v < 1),",
        "lambda v: is_real(v) and 0 <= v <= 1),",
        ["tests/test_bounds.py"],
    ),
    (
        "fresh-config-data-seed-dropped",
        "fmlib/config.py",
        "return self.seed if self.data_seed is None else self.data_seed",
        "return self.seed",
        ["tests/test_config.py", "tests/test_build.py"],
    ),
    (
        "fresh-records-threads-mixed-off-by-one",
        "fmlib/records/tables.py",
        '"threads_mixed": len(set(threads)) > 1,',
        '"threads_mixed": len(set(threads)) > 2,',
        ["tests/records/test_tables.py"],
    ),
    (
        "fresh-records-finished-first-round",
        "fmlib/records/tables.py",
        'bool(rounds["finished"].iloc[-1])',
        'bool(rounds["finished"].iloc[0])',
        ["tests/records/test_tables.py"],
    ),
    (
        "fresh-masks-fraction-zero-passes",
        "fmlib/fisher/masks.py",
        "        or not 0 < fraction <= 1\n",
        "        or not 0 <= fraction <= 1\n",
        ["tests/fisher/test_masks.py"],
    ),
    (
        "fresh-gram-diagonal-doubled",
        "fmlib/fisher/gram.py",
        "upper + torch.triu(self.total, diagonal=1).mT",
        "upper + torch.triu(self.total, diagonal=0).mT",
        ["tests/fisher/test_gram.py"],
    ),
    (
        "fresh-inverse-woodbury-ratio-flipped",
        "fmlib/fisher/inverse.py",
        "chol = cholesky(lamb / weight * eye + r @ r.T)",
        "chol = cholesky(weight / lamb * eye + r @ r.T)",
        ["tests/fisher/test_inverse.py"],
    ),
    (
        "fresh-data-classes-one-short",
        "fmlib/data.py",
        "count = int(self.labels.max()) + 1\n",
        "count = int(self.labels.max())\n",
        ["tests/test_data.py"],
    ),
    (
        "fresh-grid-axes-order-swapped",
        "fmlib/grid/spec.py",
        'CANONICAL_AXES = ("dataset", "imbalance", "strategy", "seed")',
        'CANONICAL_AXES = ("dataset", "strategy", "imbalance", "seed")',
        ["tests/grid/test_spec.py"],
    ),
]

# A held-out set, written from the package's sources alone, without reading the tests, and not
# run while it was chosen (``--set holdout``).
HOLDOUT = [
    (
        "holdout-base-nonfinite-rows-need-all",
        "fmlib/strategies/base.py",
        "bad |= ~torch.isfinite(v.reshape(len(v), -1)).all(1)",
        "bad |= ~torch.isfinite(v.reshape(len(v), -1)).any(1)",
        STRATEGIES,
    ),
    (
        "holdout-train-loss-not-weighted",
        "fmlib/train.py",
        "loss_sum += loss.item() * len(batch)",
        "loss_sum += loss.item()",
        ["tests/test_train.py"],
    ),
    (
        "holdout-loop-state-saves-pool-labels",
        "fmlib/loop.py",
        '"labels": self.known[torch.as_tensor(self.labeled)].clone(),',
        '"labels": self.data.pool.labels[torch.as_tensor(self.labeled)].clone(),',
        LOOP,
    ),
    (
        "holdout-loop-fractional-labels-pass",
        "fmlib/loop.py",
        'whole = labels.dtype.kind == "f" and np.all(labels == np.round(labels))',
        'whole = labels.dtype.kind == "f"',
        LOOP,
    ),
    (
        "holdout-build-logit-classes-unchecked",
        "fmlib/build.py",
        "logits.shape != (len(x), pool.num_classes)",
        "logits.shape[0] != len(x)",
        BUILD,
    ),
    (
        "holdout-bounds-budget-equal-pool-rejected",
        "fmlib/bounds.py",
        "    if final > pool_size:\n",
        "    if final >= pool_size:\n",
        ["tests/test_bounds.py"],
    ),
    (
        "holdout-config-device-not-neutral",
        "fmlib/config.py",
        '    "download",\n    "device",\n',
        '    "download",\n',
        ["tests/test_config.py", "tests/records/test_directory.py"],
    ),
    (
        "holdout-data-counts-drop-absent-classes",
        "fmlib/data.py",
        "return np.bincount(labels.numpy(), minlength=self.num_classes)",
        "return np.bincount(labels.numpy())",
        ["tests/test_data.py", "tests/test_build.py"],
    ),
    (
        "holdout-stopping-plateau-short-history",
        "fmlib/stopping.py",
        "if len(rows) <= self.patience:",
        "if len(rows) < self.patience:",
        ["tests/test_stopping.py"],
    ),
    (
        "holdout-checks-inf-is-real",
        "fmlib/checks.py",
        "isinstance(value, (float, np.floating))) and math.isfinite(value)",
        "isinstance(value, (float, np.floating)))",
        ["tests/test_checks.py"],
    ),
    (
        "holdout-records-final-balanced-is-accuracy",
        "fmlib/records/tables.py",
        '"final_balanced_accuracy": float(last["balanced_accuracy"])',
        '"final_balanced_accuracy": float(last["accuracy"])',
        ["tests/records/test_tables.py"],
    ),
    (
        "holdout-records-meta-without-config-passes",
        "fmlib/records/files.py",
        'if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):',
        "if not isinstance(meta, dict):",
        ["tests/records/test_files.py"],
    ),
    (
        "holdout-snapshots-labels-are-positions",
        "fmlib/records/snapshots.py",
        '"picked_label": np.asarray(labels, dtype=np.int64),',
        '"picked_label": np.asarray(picked, dtype=np.int64),',
        ["tests/records/test_snapshots.py"],
    ),
    (
        "holdout-masks-top-takes-smallest",
        "fmlib/fisher/masks.py",
        "torch.argsort(values, descending=True, stable=True)[:k]",
        "torch.argsort(values, descending=False, stable=True)[:k]",
        ["tests/fisher/test_masks.py"],
    ),
    (
        "holdout-gram-block-check-wrong-dim",
        "fmlib/fisher/gram.py",
        "if block.dim() != 2 or block.shape[1] != self.k:",
        "if block.dim() != 2 or block.shape[0] != self.k:",
        ["tests/fisher/test_gram.py"],
    ),
    (
        "holdout-inverse-factor-rows-not-sqrt",
        "fmlib/fisher/inverse.py",
        "torch.cat([self.y, math.sqrt(self.lamb) * rows])",
        "torch.cat([self.y, self.lamb * rows])",
        ["tests/fisher/test_inverse.py"],
    ),
    (
        "holdout-greedy-labeled-weight-swapped",
        "fmlib/fisher/greedy.py",
        "weight = n_labeled / (n_labeled + n)",
        "weight = n / (n_labeled + n)",
        ["tests/fisher/test_greedy.py"],
    ),
    (
        "holdout-greedy-ties-to-highest",
        "fmlib/fisher/greedy.py",
        "return int(candidates[torch.argmin(ids[candidates])])",
        "return int(candidates[torch.argmax(ids[candidates])])",
        ["tests/fisher/test_greedy.py"],
    ),
    (
        "holdout-grid-overrides-dropped",
        "fmlib/grid/spec.py",
        "        params = _merge(params, overrides or {})\n",
        "",
        ["tests/grid/test_spec.py"],
    ),
    (
        "holdout-runner-gpus-all-first",
        "fmlib/grid/runner.py",
        "devices[i % len(devices)]",
        "devices[0]",
        ["tests/grid/test_runner.py"],
    ),
]
# Probes of the modules' tests, written while their tests were strengthened (``--set probe``).
PROBE_FISHER: list = []
PROBE_RUN: list = []
PROBE_RECORDS = [
    # records/files.py
    (
        "probe-files-write-not-atomic",
        "fmlib/records/files.py",
        'fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")',
        "fd, tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), str(path)",
        ["tests/records/test_files.py"],
    ),
    (
        "probe-files-any-oserror-is-no-space",
        "fmlib/records/files.py",
        "if isinstance(err, OSError) and err.errno == errno.ENOSPC:",
        "if isinstance(err, OSError):",
        ["tests/records/test_files.py"],
    ),
    (
        "probe-files-damaged-json-escapes",
        "fmlib/records/files.py",
        "    except (ValueError, UnicodeDecodeError) as err:\n",
        "    except UnicodeDecodeError as err:\n",
        ["tests/records/test_files.py"],
    ),
    (
        "probe-files-umask-ignored",
        "fmlib/records/files.py",
        "os.fchmod(fd, 0o666 & ~_umask())",
        "os.fchmod(fd, 0o666)",
        ["tests/records/test_files.py"],
    ),
    # records/lock.py
    (
        "probe-lock-pid-zero-probed",
        "fmlib/records/lock.py",
        "if not isinstance(pid, int) or pid <= 0:",
        "if not isinstance(pid, int):",
        ["tests/records/test_lock.py"],
    ),
    (
        "probe-lock-link-to-a-file-followed",
        "fmlib/records/lock.py",
        "        if file.is_symlink():\n",
        "        if file.is_symlink() and not file.exists():\n",
        ["tests/records/test_lock.py"],
    ),
    (
        "probe-lock-non-object-record-kept",
        "fmlib/records/lock.py",
        "return holder if isinstance(holder, dict) else {}",
        "return holder",
        ["tests/records/test_lock.py"],
    ),
    # records/formats.py
    (
        "probe-formats-resume-threads-ignores-last-round",
        "fmlib/records/formats.py",
        'last = rounds[-1].get("torch_threads", used[-1]) if rounds else used[-1]',
        "last = used[-1]",
        ["tests/records/test_formats.py"],
    ),
    (
        "probe-formats-unknown-torch-refused",
        "fmlib/records/formats.py",
        "if used[-1] is None or used[-1] == version:",
        "if used[-1] == version:",
        ["tests/records/test_formats.py"],
    ),
    (
        "probe-formats-test-counts-of-the-pool",
        "fmlib/records/formats.py",
        '"test_counts": test.class_counts().tolist(),',
        '"test_counts": pool.class_counts().tolist(),',
        ["tests/records/test_formats.py"],
    ),
    (
        "probe-formats-query-label-and-index-swapped",
        "fmlib/records/formats.py",
        "(round, i, int(p), int(y), s)",
        "(round, i, int(y), int(p), s)",
        ["tests/records/test_formats.py"],
    ),
    # records/tables.py
    (
        "probe-tables-smoke-runs-loaded",
        "fmlib/records/tables.py",
        "if (r / CONFIG).is_file() and (include_smoke or not is_smoke(r))",
        "if (r / CONFIG).is_file()",
        ["tests/records/test_tables.py"],
    ),
    (
        "probe-tables-summary-drops-stopped",
        "fmlib/records/tables.py",
        '        summary["stopped"] = meta["stopped"]\n',
        "        pass\n",
        ["tests/records/test_tables.py"],
    ),
    (
        "probe-tables-a-run-matched-twice-loaded-twice",
        "fmlib/records/tables.py",
        "for r in dict.fromkeys(runs)",
        "for r in runs",
        ["tests/records/test_tables.py"],
    ),
    # records/snapshots.py
    (
        "probe-snapshots-min-is-the-max",
        "fmlib/records/snapshots.py",
        "diag[n].min().item() if len(diag[n])",
        "diag[n].max().item() if len(diag[n])",
        ["tests/records/test_snapshots.py"],
    ),
    (
        "probe-snapshots-root-parameters-dotted",
        "fmlib/records/snapshots.py",
        'f"{prefix}.{name}" if prefix else name',
        'f"{prefix}.{name}"',
        ["tests/records/test_snapshots.py"],
    ),
    # records/directory.py
    (
        "probe-directory-sensitivity-temporary-kept",
        "fmlib/records/directory.py",
        '[*self.path.glob(".*.tmp"), *(self.path / SENSITIVITY).glob(".*.tmp")]',
        '[*self.path.glob(".*.tmp")]',
        ["tests/records/test_directory.py"],
    ),
    (
        "probe-directory-extra-snapshot-kept",
        "fmlib/records/directory.py",
        "                file.unlink()\n                rebuilt.append",
        "                rebuilt.append",
        ["tests/records/test_directory.py"],
    ),
    (
        "probe-directory-lock-alone-is-partial",
        "fmlib/records/directory.py",
        "not [p for p in self.path.iterdir() if p.name != LOCK]",
        "not list(self.path.iterdir())",
        ["tests/records/test_directory.py"],
    ),
    (
        "probe-directory-unfinished-results-kept",
        "fmlib/records/directory.py",
        "if old is None or not records.finished:",
        "if old is None:",
        ["tests/records/test_directory.py"],
    ),
    (
        "probe-directory-checkpoint-format-unchecked",
        "fmlib/records/directory.py",
        '            or state.get("format") != FORMAT_VERSION\n',
        "",
        ["tests/records/test_directory.py"],
    ),
    (
        "probe-directory-defaults-ignored",
        "fmlib/records/directory.py",
        "old = {**{k: v for k, v in defaults.items() if k in new}, **old}",
        "old = dict(old)",
        ["tests/records/test_directory.py"],
    ),
    # grid/spec.py
    (
        "probe-spec-empty-label-kept",
        "fmlib/grid/spec.py",
        '.strip("_") or "_"',
        '.strip("_")',
        ["tests/grid/test_spec.py", "tests/doors/test_grid_file.py"],
    ),
    (
        "probe-spec-backslash-name-passes",
        "fmlib/grid/spec.py",
        ' or "\\\\" in name',
        "",
        ["tests/doors/test_grid_file.py", "tests/grid/test_spec.py"],
    ),
    (
        "probe-spec-empty-axis-passes",
        "fmlib/grid/spec.py",
        "if not isinstance(values, (list, tuple)) or not values:",
        "if not isinstance(values, (list, tuple)):",
        ["tests/grid/test_spec.py"],
    ),
    # grid/runner.py
    (
        "probe-runner-zero-workers-pass",
        "fmlib/grid/runner.py",
        "    if workers < 1:\n",
        "    if workers < 0:\n",
        RUNNER,
    ),
    (
        "probe-runner-kernel-env-not-restored",
        "fmlib/grid/runner.py",
        "                os.environ.pop(n, None)\n",
        "                pass\n",
        RUNNER,
    ),
    (
        "probe-runner-kernel-misses-the-start-directory",
        "fmlib/grid/runner.py",
        'os.pathsep.join([os.getcwd(), *filter(None, [old["PYTHONPATH"]])])',
        'os.pathsep.join([*filter(None, [old["PYTHONPATH"]])])',
        RUNNER,
    ),
    (
        "probe-runner-finished-run-not-verified",
        "fmlib/grid/runner.py",
        "outcomes[run.name] = _reopen_done(run, root)",
        'outcomes[run.name] = RunOutcome(run.name, "skipped")',
        [*RUNNER, "tests/doors/test_grid_file.py"],
    ),
    (
        "probe-runner-summary-out-of-grid-order",
        "fmlib/grid/runner.py",
        "ordered = [outcomes[r.name] for r in runs]",
        "ordered = list(outcomes.values())",
        RUNNER,
    ),
    # grid/cli.py
    (
        "probe-gridcli-timeout-unchecked",
        "fmlib/grid/cli.py",
        'for name in ("workers", "threads", "cpus", "gpus", "timeout"):',
        'for name in ("workers", "threads", "cpus", "gpus"):',
        ["tests/grid/test_cli.py"],
    ),
    (
        "probe-gridcli-zero-memory-passes",
        "fmlib/grid/cli.py",
        "if args.mem_gb is not None and not args.mem_gb > 0:",
        "if args.mem_gb is not None and args.mem_gb < 0:",
        ["tests/grid/test_cli.py"],
    ),
    (
        "probe-gridcli-signal-exit-status-1",
        "fmlib/grid/cli.py",
        "        return 128 + err.signum\n",
        "        return 1\n",
        ["tests/grid/test_cli.py"],
    ),
    (
        "probe-gridcli-empty-key-assigned",
        "fmlib/grid/cli.py",
        "if not sep or not key.strip():",
        "if not sep:",
        ["tests/grid/test_cli.py"],
    ),
    # cli.py
    (
        "probe-cli-zero-max-rounds-pass",
        "fmlib/cli.py",
        "if args.max_rounds is not None and args.max_rounds < 1:",
        "if args.max_rounds is not None and args.max_rounds < 0:",
        ["tests/test_cli.py"],
    ),
    (
        "probe-cli-locked-directory-traceback",
        "fmlib/cli.py",
        "except (ValueError, FileNotFoundError, RunDirectoryError) as err:",
        "except (ValueError, FileNotFoundError) as err:",
        ["tests/test_cli.py"],
    ),
    (
        "probe-cli-full-notebooks-folder-traceback",
        "fmlib/cli.py",
        "except (FileExistsError, FileNotFoundError) as err:",
        "except FileNotFoundError as err:",
        ["tests/test_cli.py"],
    ),
    (
        "probe-cli-target-one-refused",
        "fmlib/cli.py",
        "0 < args.target <= 1)",
        "0 < args.target < 1)",
        ["tests/test_cli.py"],
    ),
    # cli_run.py
    (
        "probe-clirun-unreadable-file-traceback",
        "fmlib/cli_run.py",
        '    except OSError as err:\n        raise UserError(f"cannot read config file {path}: '
        '{err.strerror or err}") from None\n',
        "",
        ["tests/test_cli_run.py"],
    ),
    (
        "probe-clirun-flag-device-dropped",
        "fmlib/cli_run.py",
        '("dataset", "imbalance", "model", "strategy", "seed", "device")',
        '("dataset", "imbalance", "model", "strategy", "seed")',
        ["tests/test_cli_run.py"],
    ),
    # records/__init__.py
    (
        "probe-records-export-left-out-of-all",
        "fmlib/records/__init__.py",
        '    "write_results",\n',
        "",
        ["tests/records/test_tables.py"],
    ),
    # written after their tests (confirmations, not first-run probes)
    (
        "probe-lock-second-holder-waits",
        "fmlib/records/lock.py",
        "filelock.lock_descriptor(fd, blocking=False)",
        "filelock.lock_descriptor(fd, blocking=True)",
        ["tests/records/test_lock.py"],
    ),
    (
        "probe-lock-record-not-truncated",
        "fmlib/records/lock.py",
        "    os.ftruncate(fd, 0)\n",
        "",
        ["tests/records/test_lock.py"],
    ),
    (
        "probe-files-ndarray-not-jsonable",
        "fmlib/records/files.py",
        "if isinstance(value, (np.ndarray, tuple)):",
        "if isinstance(value, tuple):",
        ["tests/records/test_files.py"],
    ),
    (
        "probe-files-dirty-inverted",
        "fmlib/records/files.py",
        '"dirty": bool(status.stdout.strip())',
        '"dirty": not status.stdout.strip()',
        ["tests/records/test_files.py"],
    ),
    (
        "probe-directory-fresh-snapshots-overwritten",
        "fmlib/records/directory.py",
        '        leftovers += [\n            f"{SENSITIVITY}/{p.name}"',
        '        leftovers = [\n            f"{SENSITIVITY}/{p.name}"',
        ["tests/records/test_directory.py"],
    ),
    (
        "probe-spec-scalar-label-not-json",
        "fmlib/grid/spec.py",
        'return slug(f"{axis}{json.dumps(value)}")',
        'return slug(f"{axis}{value}")',
        ["tests/grid/test_spec.py"],
    ),
    (
        "probe-runner-summary-skips-notebook-line",
        "fmlib/grid/runner.py",
        'f"  FAILED {o.name}: {o.error}"\n'
        '                + (f"\\n         notebook: {o.notebook}" if o.notebook else "")',
        'f"  FAILED {o.name}: {o.error}"',
        RUNNER
        + ["tests/grid/test_runner.py::test_the_summary_counts_the_outcomes_and_says_what_to_read"],
    ),
    (
        "probe-runner-smoke-summary-called-missing",
        "fmlib/grid/runner.py",
        'if results is not None and results.get("smoke"):',
        "if results is None:",
        ["tests/grid/test_runner.py::test_a_run_that_wrote_a_smoke_summary_is_not_done"],
    ),
]
PROBE = PROBE_FISHER + PROBE_RUN + PROBE_RECORDS

SETS = {
    "first": MUTANTS,
    "fresh": FRESH,
    "holdout": HOLDOUT,
    "probe": PROBE,
    "all": MUTANTS + FRESH + HOLDOUT + PROBE,
}


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
    last line pytest printed)``; verdict ``caught``, ``survived``, ``timed out`` (the tests ran
    past ``timeout``: a hang, scored as not caught) or ``error`` (the row is wrong: its text is not
    in the file once, or its tests were not collected)."""
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
        rc, output = None, f"timed out after {timeout:.0f} s"
    finally:
        path.write_text(text)
    seconds = time.perf_counter() - start
    lines = [line for line in output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    verdict = {0: "survived", 1: "caught", 2: "caught", None: "timed out"}.get(rc, "error")
    return verdict, seconds, last


def missing_tests(rows) -> list[str]:
    """``name: path`` for each test path of ``rows`` (its file, before any ``::``) that is not in
    the checkout."""
    return [
        f"{row[0]}: {test}"
        for row in rows
        for test in row[4]
        if not (ROOT / test.split("::")[0]).exists()
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        choices=sorted(SETS),
        default="first",
        help="which table: first (the default), fresh, holdout, probe, or all",
    )
    parser.add_argument("--only", action="append", help="run this mutant only (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant's tests")
    parser.add_argument("--tests", nargs="+", help="run these test paths for every mutant instead")
    args = parser.parse_args(argv)
    table = SETS["all"] if args.only else SETS[args.set]
    names = [row[0] for row in SETS["all"]]
    if len(set(names)) != len(names):
        raise SystemExit("two mutants share a name")
    if args.list:
        for name, file, *_ in table:
            print(f"{name:44s} {file}")
        return 0
    rows = table
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise SystemExit(f"unknown mutants {unknown}; --list shows them")
        rows = [row for row in table if row[0] in args.only]
    if args.tests:
        rows = [(*row[:4], args.tests) for row in rows]
    missing = missing_tests(rows)
    if missing:
        raise SystemExit(
            "test paths not in the checkout (nothing was run):\n  " + "\n  ".join(missing)
        )
    results = []
    with tempfile.TemporaryDirectory(prefix="fmlib-mutants-") as tmp:
        copy = Path(tmp)
        copy_checkout(copy)
        for row in rows:
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
