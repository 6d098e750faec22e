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
    nice -n 10 python benchmarks/mutants.py --set holdout2 # the fourth table
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

# A second held-out set, chosen from the library sources by someone who read none of the tests and
# did not run it while choosing (``--set holdout2``).
HOLDOUT2 = [
    # the max_candidates subset is the same for every seed
    (
        "holdout2-base-candidates-ignore-seed",
        "fmlib/strategies/base.py",
        "rng = np.random.default_rng([seed, _CANDIDATES])",
        "rng = np.random.default_rng(_CANDIDATES)",
        STRATEGIES,
    ),
    # predict_proba checks the inputs instead of the logits: NaN logits from finite inputs pass
    (
        "holdout2-train-predict-nan-logits-pass",
        "fmlib/train.py",
        "            bad = _nonfinite(logits)\n",
        "            bad = _nonfinite(x)\n",
        ["tests/test_train.py"],
    ),
    # every round's strategy gets round 0's selection seed
    (
        "holdout2-loop-select-seed-ignores-round",
        "fmlib/loop.py",
        'seed=round_seed(self.seed, r, "select"),',
        'seed=round_seed(self.seed, 0, "select"),',
        [*LOOP, "tests/test_seeds.py"],
    ),
    # the initial labeled set follows seed, not data_seed
    (
        "holdout2-build-initial-ignores-data-seed",
        "fmlib/build.py",
        "        config.initial_method,\n        seed=config.data_seed_or_seed(),",
        "        config.initial_method,\n        seed=config.seed,",
        [*BUILD, "tests/test_seeds.py"],
    ),
    # a config changed after it passed validate() passes again unchecked
    (
        "holdout2-config-revalidate-skipped",
        "fmlib/config.py",
        "if passed is not None and passed[0] == self.to_dict():",
        "if passed is not None:",
        ["tests/test_config.py", "tests/doors/test_config_file.py"],
    ),
    # the last step is not shrunk to the budget: a run whose budget fits the pool is refused
    (
        "holdout2-bounds-final-not-capped-by-budget",
        "fmlib/bounds.py",
        "    final = final if config.budget is None else min(final, config.budget)\n",
        "",
        ["tests/test_bounds.py", "tests/test_config.py"],
    ),
    # float labels in a Dataset are accepted (and truncated) instead of refused
    (
        "holdout2-data-float-labels-pass",
        "fmlib/data.py",
        "if y.ndim != 1 or y.is_floating_point() or y.is_complex() or",
        "if y.ndim != 1 or y.is_complex() or",
        ["tests/test_data.py", "tests/test_build.py"],
    ),
    # load_runs(include_smoke=True) still leaves smoke runs out
    (
        "holdout2-tables-include-smoke-ignored",
        "fmlib/records/tables.py",
        "if (r / CONFIG).is_file() and (include_smoke or not is_smoke(r))",
        "if (r / CONFIG).is_file() and not is_smoke(r)",
        ["tests/records/test_tables.py"],
    ),
    # record files keep mkstemp's 0600 instead of the user's umask
    (
        "holdout2-files-umask-not-applied",
        "fmlib/records/files.py",
        "        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 whatever the umask\n",
        "",
        ["tests/records/test_files.py"],
    ),
    # mask offsets lose their leading 0: snapshot_masks gives each parameter the next one's entries
    (
        "holdout2-snapshots-offsets-without-zero",
        "fmlib/records/snapshots.py",
        '"mask_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),',
        '"mask_offsets": np.cumsum(counts).astype(np.int64),',
        ["tests/records/test_snapshots.py"],
    ),
    # a clean release leaves the holder's record: the next holder warns about a stale lock
    (
        "holdout2-lock-release-keeps-record",
        "fmlib/records/lock.py",
        '            _write_holder(fd, b"")  # released cleanly: no stale record\n',
        "",
        ["tests/records/test_lock.py"],
    ),
    # a sensitivity/ that is a symbolic link is followed on open instead of refused
    (
        "holdout2-directory-links-followed",
        "fmlib/records/directory.py",
        "        self._refuse_links()\n",
        "",
        ["tests/records/test_directory.py"],
    ),
    # an inf in the Fisher diagonal is accepted (only NaN is refused)
    (
        "holdout2-masks-inf-fisher-passes",
        "fmlib/fisher/masks.py",
        "bad = [n for n, v in values.items() if not torch.isfinite(v).all()]",
        "bad = [n for n, v in values.items() if torch.isnan(v).any()]",
        ["tests/fisher/test_masks.py"],
    ),
    # the sum is read without masking its lower triangle: diagonal-block entries counted twice
    (
        "holdout2-gram-lower-triangle-doubled",
        "fmlib/fisher/gram.py",
        "        upper = torch.triu(self.total)\n",
        "        upper = self.total\n",
        ["tests/fisher/test_gram.py"],
    ),
    # an addition to M (sign > 0) joins the Woodbury factor as if it were a subtraction
    (
        "holdout2-inverse-add-sign-ignored",
        "fmlib/fisher/inverse.py",
        "if self.m is None and sign < 0 and len(self.y) + len(rows) < self.y.shape[1]:",
        "if self.m is None and len(self.y) + len(rows) < self.y.shape[1]:",
        ["tests/fisher/test_inverse.py"],
    ),
    # backward pruning removes the member whose removal raises the objective most
    (
        "holdout2-greedy-prunes-largest-raise",
        "fmlib/fisher/greedy.py",
        "j = _best(raises, ids, rtol, largest=False)",
        "j = _best(raises, ids, rtol, largest=True)",
        ["tests/fisher/test_greedy.py"],
    ),
    # a run named '.' or '..' (an axis value) points at the grid's output or its parent
    (
        "holdout2-spec-dot-names-pass",
        "fmlib/grid/spec.py",
        'if name in (".", "..") or "/" in name or',
        'if "/" in name or',
        ["tests/grid/test_spec.py", "tests/doors/test_grid_file.py"],
    ),
    # a resumed run gets the machine's default thread count, not the one its records say
    (
        "holdout2-runner-resume-threads-not-recorded",
        "fmlib/grid/runner.py",
        "per_run = {r.name: _recorded_threads(r.path(root)) or threads for r in todo}",
        "per_run = {r.name: threads or _recorded_threads(r.path(root)) for r in todo}",
        ["tests/grid/test_runner.py", "tests/grid/test_reruns.py"],
    ),
    # the stopped round is recorded one too late: a stopped run is not finished
    (
        "holdout2-session-stopped-round-off-by-one",
        "fmlib/session.py",
        'records.meta["stopped"] = {"round": result.round, **self.loop.stopped}',
        'records.meta["stopped"] = {"round": self.loop.round, **self.loop.stopped}',
        [*LOOP, "tests/test_stopping.py"],
    ),
    # fmlib run --smoke writes a results.json that does not say smoke: counted as a result
    (
        "holdout2-cli-smoke-results-unmarked",
        "fmlib/cli.py",
        "    write_results(output, records, smoke=bool(args.smoke))\n",
        "    write_results(output, records)\n",
        ["tests/test_cli.py", "tests/doors/test_cli.py"],
    ),
]
# Probes of the modules' tests, written while their tests were strengthened (``--set probe``).
MASKS = ["tests/fisher/test_masks.py"]
GRAM = ["tests/fisher/test_gram.py"]
INV = ["tests/fisher/test_inverse.py"]
GREEDY = ["tests/fisher/test_greedy.py"]
EMB = ["tests/fisher/test_embeddings.py"]
SFISH = ["tests/strategies/test_fisher.py"]
PROBE_FISHER = [
    # fisher/masks.py
    (
        "probe-masks-nan-passes",
        "fmlib/fisher/masks.py",
        "bad = [n for n, v in values.items() if not torch.isfinite(v).all()]",
        "bad = [n for n, v in values.items() if torch.isinf(v).any()]",
        MASKS,
    ),
    (
        "probe-masks-jaccard-empty-zero",
        "fmlib/fisher/masks.py",
        "return inter / union if union else 1.0",
        "return inter / union if union else 0.0",
        MASKS,
    ),
    (
        "probe-masks-size-head-not-counted",
        "fmlib/fisher/masks.py",
        "return kept + max(int(fraction * sum(sizes.values())) - kept, 0)",
        "return kept + max(int(fraction * sum(sizes.values())), 0)",
        MASKS,
    ),
    (
        "probe-masks-eq-shapes-only",
        "fmlib/fisher/masks.py",
        "return self.shapes() == other.shapes() and all(torch.equal(self[n], other[n])"
        " for n in self)",
        "return self.shapes() == other.shapes()",
        MASKS,
    ),
    (
        "probe-masks-fraction-above-one-passes",
        "fmlib/fisher/masks.py",
        "        or not 0 < fraction <= 1\n",
        "        or not 0 < fraction\n",
        MASKS,
    ),
    (
        "probe-masks-check-shapes-names-only",
        "fmlib/fisher/masks.py",
        "    if dict(got) == dict(expected):\n",
        "    if list(got) == list(expected):\n",
        MASKS,
    ),
    # fisher/gram.py
    (
        "probe-gram-result-times-divide",
        "fmlib/fisher/gram.py",
        "return (upper + torch.triu(self.total, diagonal=1).mT) / divide",
        "return (upper + torch.triu(self.total, diagonal=1).mT) * divide",
        GRAM,
    ),
    (
        "probe-gram-width-zero-passes",
        "fmlib/fisher/gram.py",
        "if int(width) < 1:",
        "if int(width) < 0:",
        GRAM,
    ),
    (
        "probe-gram-rows-counts-blocks",
        "fmlib/fisher/gram.py",
        "        self.rows += block.shape[0]\n        if self.buffer_rows is None:",
        "        self.rows += 1\n        if self.buffer_rows is None:",
        GRAM,
    ),
    # fisher/inverse.py
    (
        "probe-inverse-initial-weight-dropped",
        "fmlib/fisher/inverse.py",
        "return spd_inverse(precision + weight * labeled_fisher.to(device, torch.float64))",
        "return spd_inverse(precision + labeled_fisher.to(device, torch.float64))",
        INV,
    ),
    (
        "probe-inverse-cholesky-jitter-only-if-all-fail",
        "fmlib/fisher/inverse.py",
        "if not bool((info > 0).any()):",
        "if not bool((info > 0).all()):",
        INV,
    ),
    (
        "probe-inverse-jitter-never-clears",
        "fmlib/fisher/inverse.py",
        "        bad = bad[info > 0]\n",
        "        bad = bad[info >= 0]\n",
        INV,
    ),
    (
        "probe-inverse-factor-takes-additions",
        "fmlib/fisher/inverse.py",
        "if self.m is None and sign < 0 and len(self.y)",
        "if self.m is None and sign > 0 and len(self.y)",
        INV,
    ),
    # fisher/greedy.py
    (
        "probe-greedy-scale-not-sqrt",
        "fmlib/fisher/greedy.py",
        "scale = math.sqrt(n / (n_labeled + n))",
        "scale = n / (n_labeled + n)",
        GREEDY,
    ),
    (
        "probe-greedy-removal-ties-to-lowest",
        "fmlib/fisher/greedy.py",
        "ids = -torch.tensor(picked, device=device)",
        "ids = torch.tensor(picked, device=device)",
        GREEDY,
    ),
    (
        "probe-greedy-objective-batch-unweighted",
        "fmlib/fisher/greedy.py",
        "precision = precision + n / (n_labeled + n) * (v.T @ v)",
        "precision = precision + (v.T @ v)",
        GREEDY,
    ),
    (
        "probe-greedy-lamb-inf-passes",
        "fmlib/fisher/greedy.py",
        "not 0 < lamb < math.inf:",
        "not 0 < lamb:",
        GREEDY,
    ),
    (
        "probe-greedy-removal-scored-as-addition",
        "fmlib/fisher/greedy.py",
        "raises[alive] = _trace_ratio(eye - a[alive], b[alive])",
        "raises[alive] = _trace_ratio(eye + a[alive], b[alive])",
        GREEDY,
    ),
    # fisher/embeddings.py
    (
        "probe-embeddings-subsample-unsorted",
        "fmlib/fisher/embeddings.py",
        "np.sort(rng.choice(n_pool, size=min(size, n_pool), replace=False)).astype(np.int64)",
        "rng.choice(n_pool, size=min(size, n_pool), replace=False).astype(np.int64)",
        EMB,
    ),
    (
        "probe-embeddings-trace-mask-ignored",
        "fmlib/fisher/embeddings.py",
        "v.detach().cpu()[mask[name]].sum()",
        "v.detach().cpu().sum()",
        EMB,
    ),
    (
        "probe-embeddings-hooks-always-weighted",
        "fmlib/fisher/embeddings.py",
        'model, list(groups), x, weighted=scale == "fisher"',
        "model, list(groups), x, weighted=True",
        EMB,
    ),
    # strategies/base.py
    (
        "probe-base-labeled-pick-needs-all",
        "fmlib/strategies/base.py",
        "    if done.any():\n",
        "    if done.all():\n",
        STRATEGIES,
    ),
    (
        "probe-base-report-not-reset",
        "fmlib/strategies/base.py",
        "        self.report = SelectionReport()\n        if n == 0:",
        "        if n == 0:",
        STRATEGIES,
    ),
    (
        "probe-base-batch-size-zero-passes",
        "fmlib/strategies/base.py",
        "isinstance(batch_size, int) and batch_size >= 1",
        "isinstance(batch_size, int) and batch_size >= 0",
        STRATEGIES,
    ),
    # strategies/fisher.py
    (
        "probe-fisher-labeled-root-not-sqrt",
        "fmlib/strategies/fisher.py",
        "/ math.sqrt(len(labeled))  # [|L|·C, k]",
        "/ len(labeled)  # [|L|·C, k]",
        SFISH,
    ),
    (
        "probe-fisher-pool-mean-without-labeled",
        "fmlib/strategies/fisher.py",
        "fisher_u /= len(cand) + len(labeled) + len(rest)",
        "fisher_u /= len(cand) + len(rest)",
        SFISH,
    ),
    (
        "probe-fisher-lamb-unbounded",
        "fmlib/strategies/fisher.py",
        "or not 0 < lamb <= MAX_LAMB:",
        "or not 0 < lamb:",
        SFISH,
    ),
    (
        "probe-fisher-split-half-ignores-seed",
        "fmlib/strategies/fisher.py",
        "np.random.default_rng(seed).permutation(len(inputs))",
        "np.random.default_rng().permutation(len(inputs))",
        SFISH,
    ),
    # checks.py
    (
        "probe-checks-bool-is-real",
        "fmlib/checks.py",
        "return (is_int(value) or isinstance(value, (float, np.floating)))",
        "return isinstance(value, (int, float, np.floating))",
        ["tests/test_checks.py"],
    ),
    # stopping.py
    (
        "probe-stopping-budget-strict",
        "fmlib/stopping.py",
        'return int(rows[-1]["n_labeled"]) >= self.labels',
        'return int(rows[-1]["n_labeled"]) > self.labels',
        ["tests/test_stopping.py"],
    ),
    (
        "probe-stopping-plateau-delta-inclusive",
        "fmlib/stopping.py",
        "max(values[: -self.patience]) < self.min_delta",
        "max(values[: -self.patience]) <= self.min_delta",
        ["tests/test_stopping.py"],
    ),
    (
        "probe-stopping-bad-option-not-wrapped",
        "fmlib/stopping.py",
        "        except TypeError as err:\n",
        "        except ValueError as err:\n",
        ["tests/test_stopping.py"],
    ),
    # bounds.py
    (
        "probe-bounds-budget-below-initial-passes",
        "fmlib/bounds.py",
        'checks.append(("budget", config.budget, config.initial_size, True))',
        'checks.append(("budget", config.budget, 1, True))',
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-max-rounds-exclusive",
        "fmlib/bounds.py",
        "    if n > MAX_ROUNDS:\n",
        "    if n >= MAX_ROUNDS:\n",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-final-ignores-budget",
        "fmlib/bounds.py",
        "    final = final if config.budget is None else min(final, config.budget)\n",
        "",
        ["tests/test_bounds.py"],
    ),
    # a second batch, written after the first batch's run and before any test for it
    (
        "probe-masks-full-unknown-names-dropped",
        "fmlib/fisher/masks.py",
        "chosen = set(params if names is None else names)",
        "chosen = set(params if names is None else names) & set(params)",
        MASKS,
    ),
    (
        "probe-masks-frozen-head-counted",
        "fmlib/fisher/masks.py",
        "if id(p) in ids and p.requires_grad]",
        "if id(p) in ids]",
        MASKS,
    ),
    (
        "probe-masks-size-per-layer-head-twice",
        "fmlib/fisher/masks.py",
        "sum(int(fraction * size) for n, size in sizes.items() if n not in head)",
        "sum(int(fraction * size) for n, size in sizes.items())",
        MASKS,
    ),
    (
        "probe-gram-naive-rows-uncounted",
        "fmlib/fisher/gram.py",
        "        self.total += (block.mT @ block).double()\n        self.rows += block.shape[0]\n",
        "        self.total += (block.mT @ block).double()\n",
        GRAM,
    ),
    (
        "probe-inverse-jitter-absolute",
        "fmlib/fisher/inverse.py",
        "flat[bad] + jitter * size[bad] * eye",
        "flat[bad] + jitter * eye",
        INV,
    ),
    (
        "probe-greedy-ties-absolute-tolerance",
        "fmlib/fisher/greedy.py",
        "    tol = rtol * best.abs()\n",
        "    tol = rtol\n",
        GREEDY,
    ),
    (
        "probe-greedy-picked-not-excluded",
        "fmlib/fisher/greedy.py",
        "            gains = _trace_ratio(eye + a, b)  # [N]\n"
        "            gains[picked] = -math.inf\n",
        "            gains = _trace_ratio(eye + a, b)  # [N]\n",
        GREEDY,
    ),
    (
        "probe-greedy-refresh-at-first-pick",
        "fmlib/fisher/greedy.py",
        "if drift > refresh_rtol and step > 0:",
        "if drift > refresh_rtol:",
        GREEDY,
    ),
    (
        "probe-greedy-n-above-pool-passes",
        "fmlib/fisher/greedy.py",
        "if not is_int(n) or not 1 <= n <= num:",
        "if not is_int(n) or not 1 <= n:",
        GREEDY,
    ),
    (
        "probe-greedy-labeled-fisher-without-count-passes",
        "fmlib/fisher/greedy.py",
        "if (labeled_fisher is None) != (n_labeled == 0):",
        "if labeled_fisher is None and n_labeled > 0:",
        GREEDY,
    ),
    (
        "probe-embeddings-chunk-bool-passes",
        "fmlib/fisher/embeddings.py",
        "if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:",
        "if not isinstance(chunk, int) or chunk < 1:",
        EMB,
    ),
    (
        "probe-embeddings-func-always-weighted",
        "fmlib/fisher/embeddings.py",
        '_func_embeddings(model, func_indices, x, scale == "fisher", classes)',
        "_func_embeddings(model, func_indices, x, True, classes)",
        EMB,
    ),
    (
        "probe-base-float-picks-pass",
        "fmlib/strategies/base.py",
        "or not (np.issubdtype(array.dtype, np.integer) or array.size == 0)",
        "or not (np.issubdtype(array.dtype, np.number) or array.size == 0)",
        STRATEGIES,
    ),
    (
        "probe-base-negative-n-passes",
        "fmlib/strategies/base.py",
        "        if n < 0:\n",
        "        if n < -1:\n",
        STRATEGIES,
    ),
    (
        "probe-base-n-not-capped",
        "fmlib/strategies/base.py",
        "            n = len(unlabeled)\n",
        "",
        STRATEGIES,
    ),
    (
        "probe-base-max-candidates-zero-passes",
        "fmlib/strategies/base.py",
        "isinstance(max_candidates, int) and max_candidates >= 1",
        "isinstance(max_candidates, int) and max_candidates >= 0",
        STRATEGIES,
    ),
    (
        "probe-base-triplicates-only",
        "fmlib/strategies/base.py",
        "    if (counts > 1).any():\n",
        "    if (counts > 2).any():\n",
        STRATEGIES,
    ),
    (
        "probe-base-candidates-unsorted",
        "fmlib/strategies/base.py",
        "return np.sort(rng.choice(unlabeled, size=max(max_candidates, n), replace=False))",
        "return rng.choice(unlabeled, size=max(max_candidates, n), replace=False)",
        STRATEGIES,
    ),
    (
        "probe-fisher-memory-one-fisher",
        "fmlib/strategies/fisher.py",
        "    fixed = 2 * k * k * 8  # fisher_u and fisher_l, float64\n",
        "    fixed = k * k * 8  # fisher_u and fisher_l, float64\n",
        SFISH,
    ),
    (
        "probe-fisher-needs-head-with-fixed-mask",
        "fmlib/strategies/fisher.py",
        'if self.options["mask"] is None and self.options["include_head"] else ()',
        'if self.options["include_head"] else ()',
        SFISH,
    ),
    (
        "probe-fisher-trace-of-all-entries",
        "fmlib/strategies/fisher.py",
        "fisher_trace=float(fisher_u.diagonal().sum()),",
        "fisher_trace=float(fisher_u.sum()),",
        SFISH,
    ),
    (
        "probe-fisher-samples-zero-passes",
        "fmlib/strategies/fisher.py",
        'low = 0 if key == "backward_steps" else 1',
        "low = 0",
        SFISH,
    ),
    (
        "probe-fisher-float64-casts-the-callers-model",
        "fmlib/strategies/fisher.py",
        "model = copy.deepcopy(model).double()",
        "model = model.double()",
        SFISH,
    ),
    (
        "probe-fisher-sample-skips-labeled",
        "fmlib/strategies/fisher.py",
        "sample = self._fisher_sample(pool, np.union1d(labeled, unlabeled), seed)",
        "sample = self._fisher_sample(pool, np.asarray(unlabeled), seed)",
        SFISH,
    ),
    (
        "probe-checks-numpy-int-not-int",
        "fmlib/checks.py",
        "return isinstance(value, Integral) and not isinstance(value, bool)",
        "return isinstance(value, int) and not isinstance(value, bool)",
        ["tests/test_checks.py"],
    ),
    (
        "probe-stopping-target-zero-passes",
        "fmlib/stopping.py",
        "if not _real(accuracy) or not 0 < accuracy <= 1:",
        "if not _real(accuracy) or not 0 <= accuracy <= 1:",
        ["tests/test_stopping.py"],
    ),
    (
        "probe-stopping-plateau-window-one-longer",
        "fmlib/stopping.py",
        "return max(values[-self.patience :]) - max(values[: -self.patience])",
        "return max(values[-self.patience - 1 :]) - max(values[: -self.patience])",
        ["tests/test_stopping.py"],
    ),
    (
        "probe-stopping-target-metric-ignored",
        "fmlib/stopping.py",
        "return float(rows[-1][self.metric]) >= self.accuracy",
        'return float(rows[-1]["accuracy"]) >= self.accuracy',
        ["tests/test_stopping.py"],
    ),
    (
        "probe-stopping-patience-bool-passes",
        "fmlib/stopping.py",
        "if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:",
        "if not isinstance(patience, int) or patience < 1:",
        ["tests/test_stopping.py"],
    ),
    (
        "probe-bounds-rounds-zero-refused",
        "fmlib/bounds.py",
        '("rounds", config.rounds, 0, True),',
        '("rounds", config.rounds, 1, True),',
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-initial-equal-pool-refused",
        "fmlib/bounds.py",
        "    if initial > pool_size:\n",
        "    if initial >= pool_size:\n",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-lr-unbounded",
        "fmlib/bounds.py",
        "lambda v: is_real(v) and 0 < v <= 10),",
        "lambda v: is_real(v) and 0 < v),",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-bait-bias-always-counted",
        "fmlib/bounds.py",
        'head.bias.numel() if opts["include_bias"] and head.bias is not None else 0',
        "head.bias.numel() if head.bias is not None else 0",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-candidates-whole-pool",
        "fmlib/bounds.py",
        "n = max(pool - start, 1) if most is None else min(pool, most)",
        "n = pool if most is None else min(pool, most)",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-flags-unchecked",
        "fmlib/bounds.py",
        "flags = {f.name for f in fields(TrainConfig) if isinstance(f.default, bool)}",
        "flags = set()",
        ["tests/test_bounds.py"],
    ),
    # a third batch, written after the second batch's run and before any test for it
    (
        "probe-masks-npz-names-sorted",
        "fmlib/fisher/masks.py",
        "np.savez_compressed(path, names=np.array(self.names), **arrays)",
        "np.savez_compressed(path, names=np.array(sorted(self.names)), **arrays)",
        MASKS,
    ),
    (
        "probe-masks-per-layer-rounds",
        "fmlib/fisher/masks.py",
        "flat[n][_top(values[n], int(fraction * values[n].numel()))] = True",
        "flat[n][_top(values[n], round(fraction * values[n].numel()))] = True",
        MASKS,
    ),
    (
        "probe-gram-default-buffer-ignores-dtype",
        "fmlib/fisher/gram.py",
        "DEFAULT_BUFFER_BYTES // (self.k * block.element_size())",
        "DEFAULT_BUFFER_BYTES // self.k",
        GRAM,
    ),
    (
        "probe-greedy-float64-embeddings-in-float32",
        "fmlib/fisher/greedy.py",
        'float32 = precision == "float32" and embeddings.dtype != torch.float64',
        'float32 = precision == "float32"',
        GREEDY,
    ),
    (
        "probe-greedy-objective-labeled-unweighted",
        "fmlib/fisher/greedy.py",
        "precision = precision + n_labeled / (n_labeled + n) * labeled_fisher.to(device, f64)",
        "precision = precision + labeled_fisher.to(device, f64)",
        GREEDY,
    ),
    (
        "probe-base-integer-inputs-cast",
        "fmlib/strategies/base.py",
        "yield (x.to(dtype) if x.is_floating_point() else x)",
        "yield x.to(dtype)",
        STRATEGIES,
    ),
    (
        "probe-fisher-gram-over-batches",
        "fmlib/strategies/fisher.py",
        "fisher.result(divide=len(indices))",
        'fisher.result(divide=self.options["batch_size"])',
        SFISH,
    ),
    (
        "probe-stopping-specs-of-objects-as-dicts",
        "fmlib/stopping.py",
        'return [spec.to_dict() if hasattr(spec, "to_dict") else dict(spec) for spec in specs]',
        "return [dict(spec) for spec in specs]",
        ["tests/test_stopping.py"],
    ),
    (
        "probe-bounds-none-passes-required",
        "fmlib/bounds.py",
        "    if value is None and optional:\n",
        "    if value is None:\n",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-rounds-named-when-budget-binds",
        "fmlib/bounds.py",
        'f"rounds {rounds}" if rounds is not None and rounds <= by_budget else f"budget {budget}"',
        'f"rounds {rounds}" if rounds is not None else f"budget {budget}"',
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-fitting-fraction-doubled",
        "fmlib/bounds.py",
        "k_fit = int((math.sqrt(row * row + 64 * free) - row) // 32)",
        "k_fit = int((math.sqrt(row * row + 64 * free) - row) // 16)",
        ["tests/test_bounds.py"],
    ),
    (
        "probe-bounds-target-train-acc-none-refused",
        "fmlib/bounds.py",
        "lambda v: v is None or (is_real(v) and 0 < v <= 1),",
        "lambda v: is_real(v) and 0 < v <= 1,",
        ["tests/test_bounds.py"],
    ),
]
SESSION = ["tests/test_session.py", "tests/doors/test_api.py"]
DATASETS = ["tests/test_datasets.py", "tests/test_data.py"]  # test_data holds most datasets tests
PROBE_RUN: list = [
    # loop.py
    (
        "probe-loop-select-seed-ignores-round",
        "fmlib/loop.py",
        'seed=round_seed(self.seed, r, "select"),',
        'seed=round_seed(self.seed, 0, "select"),',
        LOOP,
    ),
    (
        "probe-loop-stop-unchecked-before-last-query",
        "fmlib/loop.py",
        "if self.stop is not None and r + 1 < len(self.schedule):",
        "if self.stop is not None and r + 2 < len(self.schedule):",
        LOOP,
    ),
    (
        "probe-loop-counts-over-whole-pool",
        "fmlib/loop.py",
        "np.bincount(self.known[torch.as_tensor(self.labeled)].numpy(), minlength=classes)",
        "np.bincount(self.known.numpy(), minlength=classes)",
        LOOP,
    ),
    (
        "probe-loop-hook-seconds-overridden",
        "fmlib/loop.py",
        'return {"seconds": time.perf_counter() - start, **stats}',
        'return {**stats, "seconds": time.perf_counter() - start}',
        LOOP,
    ),
    (
        "probe-loop-resume-drops-oracle-labels",
        "fmlib/loop.py",
        'self.known[torch.as_tensor(self.labeled)] = state["labels"].long()',
        "self.known[torch.as_tensor(self.labeled)] = self.data.pool.labels[self.labeled]",
        LOOP,
    ),
    (
        "probe-loop-pending-stop-dropped",
        "fmlib/loop.py",
        '"stop": query.stop,',
        '"stop": None,',
        LOOP,
    ),
    # train.py
    (
        "probe-train-shuffle-ignored",
        "fmlib/train.py",
        "order = torch.randperm(len(indices), generator=generator).to(device)",
        "order = torch.arange(len(indices)).to(device)",
        ["tests/test_train.py"],
    ),
    (
        "probe-train-sgd-momentum-dropped",
        "fmlib/train.py",
        "params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay",
        "params, lr=config.lr, weight_decay=config.weight_decay",
        ["tests/test_train.py"],
    ),
    (
        "probe-train-single-sample-set-skipped",
        "fmlib/train.py",
        "if len(batch) == 1 and len(order) > 1:",
        "if len(batch) == 1:",
        ["tests/test_train.py"],
    ),
    (
        "probe-train-clip-by-norm",
        "fmlib/train.py",
        "torch.nn.utils.clip_grad_value_(params, config.grad_clip_value)",
        "torch.nn.utils.clip_grad_norm_(params, config.grad_clip_value)",
        ["tests/test_train.py"],
    ),
    (
        "probe-train-target-one-rejected",
        "fmlib/train.py",
        "not 0 < self.target_train_acc <= 1",
        "not 0 < self.target_train_acc < 1",
        ["tests/test_train.py"],
    ),
    (
        "probe-train-nonfinite-sample-offset",
        "fmlib/train.py",
        "            seen += len(x)\n",
        "",
        ["tests/test_train.py"],
    ),
    # build.py
    (
        "probe-build-initial-ignores-data-seed",
        "fmlib/build.py",
        "        seed=config.data_seed_or_seed(),\n    )\n    factory_name",
        "        seed=config.seed,\n    )\n    factory_name",
        BUILD,
    ),
    (
        "probe-build-head-any-attribute",
        "fmlib/build.py",
        'if "head" in needs and not isinstance(getattr(model, "head", None), nn.Linear):',
        'if "head" in needs and getattr(model, "head", None) is None:',
        BUILD,
    ),
    (
        "probe-build-config-trainer-over-hook",
        "fmlib/build.py",
        "if train is None and config.trainer is not None:",
        "if config.trainer is not None:",
        BUILD,
    ),
    # data.py
    (
        "probe-data-images-not-scaled",
        "fmlib/data.py",
        "x = x.to(device).float().div_(255.0)",
        "x = x.to(device).float()",
        ["tests/test_data.py"],
    ),
    (
        "probe-data-image-subset-classes-dropped",
        "fmlib/data.py",
        "            list(classes or self.classes),\n",
        "            list(self.classes),\n",
        ["tests/test_data.py"],
    ),
    (
        "probe-data-num-inputs-loader-batches",
        "fmlib/data.py",
        "return len(inputs.dataset)",
        "return len(inputs)",
        ["tests/test_data.py"],
    ),
    # datasets.py
    (
        "probe-datasets-longtail-decay-over-c",
        "fmlib/datasets.py",
        "decay = ratio ** (-np.arange(num_classes) / max(num_classes - 1, 1))",
        "decay = ratio ** (-np.arange(num_classes) / num_classes)",
        DATASETS,
    ),
    (
        "probe-datasets-balanced-remainder-dropped",
        "fmlib/datasets.py",
        "per_class[rng.choice(len(classes), size=size % len(classes), replace=False)] += 1",
        "per_class[rng.choice(len(classes), size=0, replace=False)] += 1",
        DATASETS,
    ),
    (
        "probe-datasets-subset-seed-ignored",
        "fmlib/datasets.py",
        "rng = np.random.default_rng(seed + 1)",
        "rng = np.random.default_rng(1)",
        DATASETS,
    ),
    (
        "probe-datasets-initial-whole-pool-rejected",
        "fmlib/datasets.py",
        "if not 1 <= size <= len(labels):",
        "if not 1 <= size < len(labels):",
        DATASETS,
    ),
    # config.py
    (
        "probe-config-progress-not-neutral",
        "fmlib/config.py",
        '    "output_dir",\n    "progress",\n',
        '    "output_dir",\n',
        ["tests/test_config.py"],
    ),
    (
        "probe-config-data-seed-unchecked",
        "fmlib/config.py",
        '        check(integer, "data_seed", self.data_seed, 0, optional=True)\n',
        "",
        ["tests/test_config.py"],
    ),
    (
        "probe-config-smoke-rounds-kept",
        "fmlib/config.py",
        "rounds=min(config.rounds, rounds) if config.rounds is not None else rounds,",
        "rounds=config.rounds if config.rounds is not None else rounds,",
        ["tests/test_config.py"],
    ),
    (
        "probe-config-validate-skips-more-checks",
        "fmlib/config.py",
        "if all(before >= now for before, now in zip(passed[1], checks)):",
        "if all(before <= now for before, now in zip(passed[1], checks)):",
        ["tests/test_config.py"],
    ),
    # session.py
    (
        "probe-session-queries-round-off-by-one",
        "fmlib/session.py",
        "result.round + 1, result.picked, result.picked_labels, sources",
        "result.round, result.picked, result.picked_labels, sources",
        SESSION,
    ),
    (
        "probe-session-answers-of-another-round",
        "fmlib/session.py",
        'if isinstance(kept, dict) and kept.get("round") == self.loop.round:',
        "if isinstance(kept, dict):",
        SESSION,
    ),
    (
        "probe-session-undo-not-saved",
        "fmlib/session.py",
        "        self.answers.pop(int(position), None)\n"
        "        if self.run_dir is not None:\n"
        "            self._write_answers()\n",
        "        self.answers.pop(int(position), None)\n",
        SESSION,
    ),
    # labeling.py
    (
        "probe-labeling-class-zero-shown-unset",
        "fmlib/labeling.py",
        "choice.value = self.classes[known] if known is not None else UNSET",
        "choice.value = self.classes[known] if known else UNSET",
        ["tests/test_labeling.py"],
    ),
    (
        "probe-labeling-answer-with-overwrites",
        "fmlib/labeling.py",
        "        rest = query.remaining\n        if len(rest):\n",
        "        rest = query.positions\n        if len(rest):\n",
        ["tests/test_labeling.py"],
    ),
    # inputs.py
    (
        "probe-inputs-last-sample-empty",
        "fmlib/inputs.py",
        "index = slice(index, index + 1 or None)",
        "index = slice(index, index + 1)",
        ["tests/test_inputs.py"],
    ),
    (
        "probe-inputs-dtype-casts-token-ids",
        "fmlib/inputs.py",
        "{k: v.to(target) if v.is_floating_point() else v for k, v in self.values.items()}",
        "{k: v.to(target) for k, v in self.values.items()}",
        ["tests/test_inputs.py"],
    ),
]
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
    "holdout2": HOLDOUT2,
    "probe": PROBE,
    "all": MUTANTS + FRESH + HOLDOUT + HOLDOUT2 + PROBE,
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
        help="which table: first (the default), fresh, holdout, holdout2, probe, or all",
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
