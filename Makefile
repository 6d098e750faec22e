# fmlib: `make help` lists the targets. Every target installs what it needs first and
# is idempotent: a second run reuses the Debian dataset, the venv and the installed packages.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fmlib-installed
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_DIR ?= runs/quickstart
GRID ?= balanced
DOCS_OUT ?= build/docs

.PHONY: help setup data browser experiment results ablation ablation-figures cifar10 test test-fast docs bench lint
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

data: ## install FashionMNIST (Debian package dataset-fashion-mnist) if missing
	@if [ ! -f $(FASHION) ]; then \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	fi

browser: ## install Debian's chromium and chromium-driver (the browser test drives them) if missing
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[notebooks,test,grid,docs,hf,tensorboard,bench]"
	@touch $(STAMP)

setup: data $(STAMP) ## data + virtual environment with fmlib and the pins of constraints.txt

# The notebook's printed lines (config, one per round with its accuracy, results) come to this terminal
# as they are printed: --stdout-file - forwards the kernel's stdout; the cell bar would garble them.
experiment: setup ## run a FisherMask AL experiment on FashionMNIST through papermill, one line per round (~9 min on 2 CPU cores)
	@mkdir -p $(RUN_DIR)
	$(PY) -m papermill notebooks/active_learning.ipynb $(RUN_DIR)/active_learning.ipynb -p output_dir $(RUN_DIR) \
		--no-progress-bar --stdout-file -
	@echo "results: $(RUN_DIR) (rounds.csv, figures); executed notebook: $(RUN_DIR)/active_learning.ipynb"

results: setup ## a FashionMNIST grid (default grids/balanced.json, GRID=name for another; resumable), then results/ and figures/
	$(PY) -m fmlib.grid grids/$(GRID).json --executor inline --output runs/$(GRID)
	$(PY) -c "from fmlib.records import export_runs; print(len(export_runs('runs/$(GRID)', 'results/$(GRID)')), 'runs exported')"
	$(PY) -m papermill notebooks/compare.ipynb runs/compare-$(GRID).ipynb -p runs_glob "results/$(GRID)/*" -p figures_dir figures/$(GRID)
	@run=$$(ls -d results/$(GRID)/*fishermask-seed0 2>/dev/null | head -n 1); if [ -n "$$run" ]; then \
		$(PY) -m papermill notebooks/sensitivity.ipynb runs/sensitivity-$(GRID).ipynb -p run_dir $$run \
			-p by parameter -p figures_dir figures/$(GRID)/sensitivity-$$(basename $$run); fi

ablation: setup ## the claim study's ablation (grids/ablation, resumable, 1 thread a run; days on 2 CPU cores for every arm), records into results/ablation, figures/ablation
	grids/ablation/run.sh $(PY) --workers 2 --threads 1
	$(MAKE) ablation-figures

ablation-figures: setup ## export the finished ablation runs to results/ablation and draw figures/ablation (notebooks/ablation.ipynb)
	$(PY) -c "from pathlib import Path; from fmlib.records import export_runs; \
	print(sum(len(export_runs(p, Path('results/ablation') / p.name)) for p in sorted(Path('runs/ablation').glob('*'))), 'runs exported')"
	$(PY) -m papermill notebooks/ablation.ipynb runs/ablation.ipynb -p runs_root results/ablation -p figures_dir figures/ablation

cifar10: setup ## CIFAR-10 at paper scale on a GPU machine: fetch CIFAR-10 once, then grids/cifar10_gpu.json (resumable)
	$(PY) -c "from fmlib.datasets import load_dataset; load_dataset('cifar10', download=True)"
	$(MAKE) results GRID=cifar10_gpu

test: setup browser docs ## the whole test suite: unit, notebook (nbval, papermill), browser (JupyterLab + chromium) and docs site tests
	FMLIB_SMOKE=1 FMLIB_DOCS_HTML=$(DOCS_OUT)/html $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider

# The tutorials (notebooks/, copied by docs/conf.py) run in smoke mode; intersphinx is off (its inventories are online).
# -E: every page read again, every tutorial executed again, so a change in fmlib that breaks a tutorial fails here.
docs: setup ## build the docs site into build/docs/html, warnings as errors, every tutorial executed
	FMLIB_DOCS_OFFLINE=1 $(PY) -m sphinx -b html -E -W --keep-going -q -d $(DOCS_OUT)/doctrees docs $(DOCS_OUT)/html
	@echo "docs: $(DOCS_OUT)/html/index.html"

test-fast: setup ## unit tests without the slow ones
	$(PY) -m pytest tests -m "not slow"

bench: setup ## speed benchmarks (ratios against naive implementations)
	$(PY) benchmarks/bench_fisher.py
	$(PY) benchmarks/bench_select.py

lint: setup ## ruff lint and format check
	$(PY) -m ruff check fmlib tests benchmarks
	$(PY) -m ruff format --check fmlib tests benchmarks
