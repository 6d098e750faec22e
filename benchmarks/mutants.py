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
PROBE_FISHER: list = []
PROBE_RUN: list = []
PROBE_RECORDS: list = []
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
