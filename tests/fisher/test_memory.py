"""The memory check before FisherMask and BAIT compute their ``[N, C, k]`` candidate embeddings."""

from __future__ import annotations

import pytest
import torch

from fmlib.strategies import fisher as fs


def test_embeddings_that_do_not_fit_fail_naming_max_candidates_and_what_fits(monkeypatch):
    monkeypatch.setattr(fs, "available_memory", lambda device: 10 * 2**30)  # 10 GiB
    with pytest.raises(
        MemoryError, match=r"\[50000, 10, 9000\].*18\.0 GiB.*10\.0 GiB.*max_candidates=26226 "
    ):
        fs.check_embedding_memory(50_000, 10, 9_000, torch.float32, "cpu")
    with pytest.raises(
        MemoryError, match=r"\[90000, 90000\] float64 Fisher.*120\.7 GiB.*smaller fraction"
    ):
        fs.check_embedding_memory(50_000, 10, 90_000, torch.float32, "cpu")
    fs.check_embedding_memory(100, 10, 1000, torch.float32, "cpu")  # fits: nothing raised


def test_unknown_available_memory_checks_nothing(monkeypatch):
    monkeypatch.setattr(fs, "available_memory", lambda device: None)
    fs.check_embedding_memory(10**7, 10, 10**6, torch.float64, "cpu")


def test_available_memory_is_a_positive_count_or_none():
    free = fs.available_memory("cpu")
    assert free is None or free > 0


def test_the_float64_greedy_gets_a_float64_copy_only_when_it_fits(monkeypatch):
    emb = torch.randn(10, 3, 8)  # 240 numbers: a float64 copy is 1920 bytes
    monkeypatch.setattr(fs, "available_memory", lambda device: 2 * 1920)
    assert fs._float64_if_it_fits(emb, "float64", "cpu").dtype == torch.float64
    assert fs._float64_if_it_fits(emb, "float32", "cpu") is emb
    monkeypatch.setattr(fs, "available_memory", lambda device: 2 * 1920 - 1)
    assert fs._float64_if_it_fits(emb, "float64", "cpu") is emb
    monkeypatch.setattr(fs, "available_memory", lambda device: None)
    assert fs._float64_if_it_fits(emb, "float64", "cpu") is emb


def test_the_float64_copy_gives_the_picks_of_the_float32_embeddings():
    from fmlib.fisher import greedy_trace_select

    gen = torch.Generator().manual_seed(2)
    emb = torch.randn(80, 4, 30, generator=gen) * torch.rand(80, 1, 1, generator=gen)
    root = torch.randn(8, 30, generator=gen) / 2
    kwargs = dict(
        fisher=torch.einsum("nck,ncl->kl", emb.double(), emb.double()) / 80,
        labeled_fisher=root.T.double() @ root.double(),
        labeled_root=root,
        n_labeled=2,
    )
    assert greedy_trace_select(emb, 15, **kwargs) == greedy_trace_select(emb.double(), 15, **kwargs)
