"""The paper recipe's BatchNorm problem, measured: eval-mode test accuracy after
training on a few imbalanced FashionMNIST labels, with and without ``recompute_bn``.

With the paper recipe (train until 99 % training accuracy) a network on 15-155 labels stops after
2-6 epochs of 1-3 steps; its BatchNorm running statistics have barely left 0/1 and the
eval-mode network is near chance. ``recompute_bn`` (the default now) sets them to the labeled
set's statistics after training (``fmlib.train``). One training per cell: the first N of a seeded
random order of the imbalanced pool, seed 0.

Usage: python benchmarks/batchnorm_recipe.py [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from fmlib.build import load_data
from fmlib.config import ExperimentConfig
from fmlib.datasets import initial_labeled
from fmlib.models import build_model
from fmlib.train import evaluate, fit, train_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(ExperimentConfig())
    order = initial_labeled(data.pool.labels.numpy(), 575, "random", seed=0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); imbalanced FashionMNIST,"
        f" test of {len(data.test)}"
    )
    print(
        "| model | labels | epochs | accuracy, statistics as trained | accuracy, recomputed on the"
        " labels |"
    )
    print("|---|---|---|---|---|")
    for name in ("authors_resnet18", "cnn"):
        for n in (15, 85, 155, 575):
            accuracy = {}
            for recompute in (False, True):
                torch.manual_seed(0)
                model = build_model(name, data.pool.num_classes, 1, 28)
                stats = fit(
                    model,
                    data.pool,
                    order[:n],
                    train_config("paper", recompute_bn=recompute),
                    seed=1,
                )
                accuracy[recompute] = evaluate(model, data.test)["accuracy"]
            print(
                f"| {name} | {n} | {stats['epochs']} | {accuracy[False]:.3f} |"
                f" {accuracy[True]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
