"""Shared fixtures: every test is seeded; oracle tests opt into float64."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch thread: for tests of small tensors, where a second OpenMP thread on a shared
    2-core machine only adds waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory) -> str:
    """A small fake FashionMNIST (IDX files as the real loader reads them), one per test module."""
    from tests.fakes import write_fake_fashion_mnist

    return str(write_fake_fashion_mnist(tmp_path_factory.mktemp("fashion"), n_train=200, n_test=60))


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after a test that changes it; yields the count before."""
    threads = torch.get_num_threads()
    yield threads
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    """Run the test with float64 as torch's default dtype (oracle comparisons)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def fashion_mnist_available() -> bool:
    from fmlib.datasets import DEBIAN_FASHION_MNIST

    return (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file()


requires_fashion_mnist = pytest.mark.skipif(
    not fashion_mnist_available(),
    reason="FashionMNIST not installed (apt-get install dataset-fashion-mnist)",
)
