"""Fisher engine: the vectorised embeddings and diagonal against brute force and a torch.func
oracle.

Three levels, all in float64 with fixed seeds:
- the oracle: ``vmap(jacrev(functional_call))``, every per-sample, per-class gradient ``[N, C, P]``,
  written here and independent of :mod:`fmlib.fisher.embeddings` and :mod:`fmlib.fisher.func`;
- the library's brute-force references (``*_naive``), checked against the oracle;
- the fast paths, checked against both, for every layer type the models use: the hook engine
  (Linear, Conv2d, BatchNorm2d) and the torch.func engine (everything else), alone and mixed.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap
from torch.utils.data import DataLoader, TensorDataset

from fmlib.fisher import embeddings as fisher
from fmlib.fisher import func as fisher_func
from fmlib.fisher.embeddings import (
    SCALES,
    fisher_diagonal,
    fisher_diagonal_naive,
    fisher_subsample,
    fisher_trace,
    gradient_embeddings,
    gradient_embeddings_naive,
    sample_scores,
)
from fmlib.fisher.masks import ParameterMask, fisher_mask, head_names
from fmlib.models import build_model

RTOL, ATOL = 1e-6, 1e-12


# ----------------------------------------------------------------------------- problems


class TinyNet(nn.Module):
    """``features`` then a Linear ``head``, like fmlib's models."""

    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x):
        return self.head(self.features(x))


def _conv_bn():  # conv without bias -> BN -> strided conv with bias and a non-square kernel
    return TinyNet(
        nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1, bias=False),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.Conv2d(3, 4, (2, 3), stride=(2, 1)),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 3 * 5, 6),
            nn.Tanh(),
        ),
        nn.Linear(6, 4),
    )


# the engine's explicit-padding branch: padding="same" (asymmetric) and reflect / circular
def _padding():
    return TinyNet(
        nn.Sequential(
            nn.Conv2d(1, 2, (2, 3), padding="same", bias=False),
            nn.ReLU(),
            nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
            nn.ReLU(),
            nn.Conv2d(3, 2, 3, padding=2, dilation=2, padding_mode="circular"),
            nn.Flatten(),
        ),
        nn.Linear(2 * 6 * 6, 3),
    )


def _linear_seq():  # a Linear on [B, T, I]: the per-sample gradient sums over T positions
    return TinyNet(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Flatten()), nn.Linear(3 * 5, 3))


def _frozen_stem():  # frozen parameters are neither embedded nor in the Fisher
    model = _conv_bn()
    model.features[0].requires_grad_(False)
    model.features[1].requires_grad_(False)
    return model


# torch.func engine, mixed with hooks (the Linear layers)


def _conv1d_layernorm():  # Conv1d and LayerNorm (torch.func) beside Linear (hooks)
    return TinyNet(
        nn.Sequential(
            nn.Conv1d(3, 4, 3, padding=1),
            nn.LayerNorm(10),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Conv1d(4, 4, 3, stride=2, dilation=2, bias=False),
            nn.BatchNorm1d(4),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(4 * 3, 6),
            nn.ReLU(),
        ),
        nn.Linear(6, 3),
    )


# grouped (and grouped dilated) convs and GroupNorm, then a plain 1x1 conv
def _groupnorm_grouped_conv():
    return TinyNet(
        nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False),
            nn.GroupNorm(2, 4),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, dilation=2, groups=2),
            nn.ReLU(),
            nn.Conv2d(6, 3, 1),
            nn.Flatten(),
        ),
        nn.Linear(3 * 2 * 2, 3),
    )


# integer token ids [N, T]: Embedding (with a padding row), a Linear on [B, T, d], LayerNorm
def _embedding():
    return TinyNet(
        nn.Sequential(
            nn.Embedding(7, 4, padding_idx=0),
            nn.Linear(4, 5),
            nn.GELU(),
            nn.LayerNorm(5),
            nn.Flatten(),
        ),
        nn.Linear(5 * 5, 3),
    )


class _Reused(nn.Module):
    """Linear layers the hooks cannot see whole: one called twice, two with a tied weight, one
    called with a keyword argument, one whose output a forward hook changes."""

    def __init__(self):
        super().__init__()
        self.block, self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight
        self.kw, self.hooked, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 3)
        self.hooked.register_forward_hook(lambda module, args, out: 2 * out)

    def forward(self, x):
        h = torch.tanh(self.block(torch.tanh(self.block(x))))
        h = torch.tanh(self.b(torch.tanh(self.a(h))))
        return self.head(torch.tanh(self.hooked(torch.tanh(self.kw(input=h)))))


class _ScaledLinear(nn.Linear):
    """A Linear subclass with another forward: the hook engine's formula would be wrong."""

    def forward(self, x):
        return F.linear(x, 2 * self.weight, self.bias)


class _Custom(nn.Module):
    """Attention (its out_proj Linear is never called: its weight is used by the attention
    function), a subclassed Linear, a parameter of the model itself, and a Linear whose weight
    the parent also uses directly."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(4) + 0.5)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.proj, self.gate, self.head = _ScaledLinear(4, 4), nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):  # x [B, T, 4]
        h = self.attn(x, x, x, need_weights=False)[0]
        h = self.proj(h).mean(1) * self.scale
        return self.head(torch.tanh(self.gate(h)) + F.linear(h, self.gate.weight))


# name -> (builder, input shape, N). N is odd where chunking is tested so chunks do not divide it.
PROBLEMS = {
    "cnn": (lambda: build_model("cnn", 10, 1), (1, 28, 28), 3),
    "resnet18-w4": (lambda: build_model("resnet18", 10, 3, width=4), (3, 32, 32), 3),
    "tiny-conv-nobias-bn": (_conv_bn, (2, 7, 7), 7),
    "tiny-padding-modes": (_padding, (1, 6, 6), 7),
    "tiny-linear-on-sequence": (_linear_seq, (3, 4), 7),
    "tiny-frozen-stem": (_frozen_stem, (2, 7, 7), 7),
    "tiny-conv1d-layernorm": (_conv1d_layernorm, (3, 10), 7),
    "tiny-groupnorm-grouped-conv": (_groupnorm_grouped_conv, (4, 6, 6), 5),
    "tiny-embedding": (_embedding, (5,), 7),
    "tiny-reused-layers": (_Reused, (4,), 5),
    "tiny-custom-modules": (_Custom, (3, 4), 5),
}
TOKENS = {"tiny-embedding": 7}  # problems whose inputs are integer token ids < vocabulary size
# Parameters the torch.func engine takes under engine="auto" (the others stay on the hooks).
FUNC_ROUTE = {
    "cnn": [],
    "resnet18-w4": [],
    "tiny-conv-nobias-bn": [],
    "tiny-conv1d-layernorm": [
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.4.weight",
        "features.5.weight",
        "features.5.bias",
    ],
    "tiny-groupnorm-grouped-conv": [
        "features.0.weight",
        "features.1.weight",
        "features.1.bias",
        "features.3.weight",
        "features.3.bias",
    ],
    "tiny-embedding": ["features.0.weight", "features.3.weight", "features.3.bias"],
    "tiny-reused-layers": [
        "block.weight",
        "block.bias",
        "a.weight",
        "kw.weight",
        "kw.bias",
        "hooked.weight",
        "hooked.bias",
    ],
    "tiny-custom-modules": [
        "scale",
        "attn.in_proj_weight",
        "attn.in_proj_bias",
        "attn.out_proj.weight",
        "attn.out_proj.bias",
        "proj.weight",
        "proj.bias",
        "gate.weight",
    ],
}
TINY = [name for name in PROBLEMS if name.startswith("tiny")]
pytestmark = [  # one list: a second `pytestmark =` would silently replace the first
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
    pytest.mark.filterwarnings(
        "ignore:There is a performance drop because we have not yet implemented the batching"
    ),
]


def make_model(name: str, dtype=torch.float64) -> nn.Module:
    """The problem's model, seeded, with random BatchNorm statistics and affine parameters."""
    builder = PROBLEMS[name][0]
    torch.manual_seed(0)
    model = builder().to(dtype)
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        # not the identity at initialisation
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
            module.weight.data.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(module.bias.shape, generator=gen) * 0.3)
    return model.eval()


def make_inputs(name: str, dtype=torch.float64) -> torch.Tensor:
    _, shape, n = PROBLEMS[name]
    gen = torch.Generator().manual_seed(2)
    if name in TOKENS:
        return torch.randint(TOKENS[name], (n, *shape), generator=gen)
    return torch.randn(n, *shape, generator=gen, dtype=dtype)


def jacobian_oracle(model: nn.Module, x: torch.Tensor):
    """Every g_c(x_n) by ``vmap(jacrev)``: (J ``[N, C, P]`` in named_parameters order, p
    ``[N, C]``)."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad} | dict(
        model.named_buffers()
    )

    def log_probs(theta, xi):
        return functional_call(model, {**theta, **fixed}, (xi[None],))[0].log_softmax(0)  # [C]

    jac = vmap(jacrev(log_probs), in_dims=(None, 0))(params, x)  # name -> [N, C, *shape]
    with torch.no_grad():
        p = model(x).softmax(1)
    return torch.cat([jac[n].flatten(2) for n in params], dim=2), p


@functools.cache
def problem(name: str):
    """(model, x, J, p): built once per module; tests must not change the model."""
    model, x = make_model(name), make_inputs(name)
    return (model, x, *jacobian_oracle(model, x))


def flat(mask_or_diag, model) -> torch.Tensor:
    """Concatenate name -> tensor in the model's trainable-parameter order."""
    return torch.cat(
        [mask_or_diag[n].flatten() for n, p in model.named_parameters() if p.requires_grad]
    )


def expected_embeddings(J, p, mask, model, scale):
    v = J[:, :, flat(mask, model)]  # [N, C, k]
    return v * p.sqrt()[:, :, None] if scale == "fisher" else v


def expected_fisher(J, p) -> torch.Tensor:
    return (p[:, :, None] * J**2).sum(1).mean(0)  # [P]


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


# Masks as data: name -> builder(model, fisher_diag).
MASKS = {
    "global-1%": lambda m, d: fisher_mask(d, 0.01, model=m),
    "global-30%": lambda m, d: fisher_mask(d, 0.3, model=m),
    "global-5%-nohead": lambda m, d: fisher_mask(d, 0.05, include_head=False, model=m),
    "per_layer-10%": lambda m, d: fisher_mask(d, 0.1, method="per_layer", model=m),
    "random-10%": lambda m, d: fisher_mask(d, 0.1, method="random", model=m, seed=3),
    "full": lambda m, d: ParameterMask.full(m),
    "head-only": lambda m, d: ParameterMask.full(m, head_names(m)),
    "one-entry-per-tensor": lambda m, d: ParameterMask({n: _one_entry(v) for n, v in d.items()}),
}


def _one_entry(value: torch.Tensor) -> torch.Tensor:
    """A single entry two thirds into the tensor: the sparsest conv mask."""
    mask = torch.zeros(value.numel(), dtype=torch.bool)
    mask[2 * value.numel() // 3] = True
    return mask.view(value.shape)


@functools.cache
def mask_for(problem_name: str, mask_name: str) -> ParameterMask:
    model, x, J, p = problem(problem_name)
    diag = {
        n: v.view_as(q)
        for (n, q), v in zip(_trainable(model), expected_fisher(J, p).split(_sizes(model)))
    }
    return MASKS[mask_name](model, diag)


def _trainable(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _sizes(model):
    return [p.numel() for _, p in _trainable(model)]


# ------------------------------------------------------------ the oracle checks the naive reference


@pytest.mark.parametrize("name", PROBLEMS)
def test_naive_references_match_jacobian_oracle(name):
    model, x, J, p = problem(name)
    mask = mask_for(name, "random-10%")
    for scale in ("fisher", "none"):
        assert_close(
            gradient_embeddings_naive(model, x, mask, scale=scale),
            expected_embeddings(J, p, mask, model, scale),
        )
    assert_close(flat(fisher_diagonal_naive(model, x), model), expected_fisher(J, p))


# -------------------------------------------------------------------------- fast paths against both


@pytest.mark.parametrize("engine", ["auto", "func"])
@pytest.mark.parametrize("scale", ["fisher", "none"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_embeddings_match_naive(name, scale, engine):
    model, x, _, _ = problem(name)
    mask = mask_for(name, "global-30%")
    emb = gradient_embeddings(model, x, mask, scale=scale, engine=engine)
    assert_close(emb, gradient_embeddings_naive(model, x, mask, scale=scale))


@pytest.mark.parametrize("engine", ["auto", "func"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_fisher_diagonal_matches_naive(name, engine):
    model, x, _, _ = problem(name)
    got, ref = fisher_diagonal(model, x, engine=engine), fisher_diagonal_naive(model, x)
    assert list(got) == list(ref) == [n for n, _ in _trainable(model)]
    for n, param in _trainable(model):
        assert got[n].shape == param.shape
        assert_close(got[n], ref[n])


# The full mask of the 421k-parameter CNN (a [N, C, 421k] float64 comparison) is left to the ResNet
# and tiny nets.
MATRIX = [(name, mask) for name in PROBLEMS for mask in MASKS if (name, mask) != ("cnn", "full")]


@pytest.mark.parametrize("scale", ["fisher", "none"])
@pytest.mark.parametrize("name,mask_name", MATRIX, ids=[f"{n}-{m}" for n, m in MATRIX])
def test_embeddings_match_oracle(name, mask_name, scale):
    model, x, J, p = problem(name)
    mask = mask_for(name, mask_name)
    emb = gradient_embeddings(model, x, mask, scale=scale)
    assert emb.shape == (len(x), p.shape[1], mask.size) and emb.dtype == torch.float64
    assert_close(emb, expected_embeddings(J, p, mask, model, scale))


INPUT_FORMS = {
    "tensor": lambda x: x,
    "dataset": lambda x: TensorDataset(x),
    "dataset-with-labels": lambda x: TensorDataset(x, torch.zeros(len(x), dtype=torch.long)),
    "dataloader-batch3": lambda x: DataLoader(TensorDataset(x), batch_size=3),
    "dataloader-batch1": lambda x: DataLoader(TensorDataset(x), batch_size=1),
}
CHUNKS = {"default": None, "chunk1": 1, "chunk2": 2, "chunk3": 3, "chunk-N": 7, "chunk-over-N": 100}


@pytest.mark.parametrize("chunk", CHUNKS.values(), ids=CHUNKS.keys())
@pytest.mark.parametrize("form", INPUT_FORMS)
# hooks only; both engines, integer ids
@pytest.mark.parametrize("name", ["tiny-conv-nobias-bn", "tiny-embedding"])
def test_input_forms_and_chunks(name, form, chunk):
    model, x, J, p = problem(name)
    mask = mask_for(name, "global-30%")
    inputs = INPUT_FORMS[form](x)
    assert_close(
        gradient_embeddings(model, inputs, mask, chunk_size=chunk),
        expected_embeddings(J, p, mask, model, "fisher"),
    )
    assert_close(
        flat(fisher_diagonal(model, inputs, chunk_size=chunk), model), expected_fisher(J, p)
    )


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_chunk_size_bounds_every_forward(form):
    """chunk_size caps memory: a DataLoader's larger batches are split too (plus one traced sample
    per call)."""
    model, x, _, _ = problem("tiny-conv-nobias-bn")
    sizes = []
    handle = model.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    try:
        gradient_embeddings(
            model, INPUT_FORMS[form](x), mask_for("tiny-conv-nobias-bn", "full"), chunk_size=2
        )
        fisher_diagonal(model, INPUT_FORMS[form](x), chunk_size=2)
    finally:
        handle.remove()
    # + the one-sample forward of _route, per call
    assert max(sizes) <= 2 and sum(sizes) == 2 * len(x) + 2


@pytest.mark.parametrize("chunk", [1, 2], ids=["chunk1", "chunk2"])
@pytest.mark.parametrize("name", ["cnn", "resnet18-w4"])
def test_chunks_on_the_real_models(name, chunk):
    model, x, J, p = problem(name)
    mask = mask_for(name, "global-1%")
    inputs = DataLoader(TensorDataset(x), batch_size=3)
    assert_close(
        gradient_embeddings(model, inputs, mask, chunk_size=chunk),
        expected_embeddings(J, p, mask, model, "fisher"),
    )
    assert_close(flat(fisher_diagonal(model, x, chunk_size=chunk), model), expected_fisher(J, p))


SPLITS = [
    ("cnn", "global-30%", "auto", 2000),
    ("resnet18-w4", "full", "auto", 2000),
    ("tiny-conv1d-layernorm", "full", "auto", 1),
    ("cnn", "global-1%", "func", 2000),
]


@pytest.mark.parametrize(
    "name,mask_name,engine,block", SPLITS, ids=[f"{n}-{m}-{e}-{b}" for n, m, e, b in SPLITS]
)
def test_split_per_sample_blocks(name, mask_name, engine, block, monkeypatch):
    """A tiny BLOCK_ELEMENTS forces the per-sample gradient blocks to be split inside a chunk."""
    monkeypatch.setattr(fisher_func, "BLOCK_ELEMENTS", block)
    model, x, J, p = problem(name)
    mask = mask_for(name, mask_name)
    emb = gradient_embeddings(model, x, mask, engine=engine)
    assert_close(emb, expected_embeddings(J, p, mask, model, "fisher"))
    assert_close(flat(fisher_diagonal(model, x, engine=engine), model), expected_fisher(J, p))


# ----------------------------------------------------------------------------- the two engines


def test_layernorm_and_conv1d_model_is_exact():
    """Conv1d, LayerNorm (and BatchNorm1d, Dropout) beside Linear layers."""
    name = "tiny-conv1d-layernorm"
    model, x, J, p = problem(name)
    mask = ParameterMask.full(model)
    for scale in SCALES:
        ref = gradient_embeddings_naive(model, x, mask, scale=scale)
        assert_close(gradient_embeddings(model, x, mask, scale=scale), ref)
        assert_close(ref, expected_embeddings(J, p, mask, model, scale))
    got, ref = fisher_diagonal(model, x), fisher_diagonal_naive(model, x)
    assert list(got) == list(ref) and all(got[n].shape == ref[n].shape for n in ref)
    assert_close(flat(got, model), flat(ref, model))


@pytest.mark.parametrize("name", FUNC_ROUTE)
def test_route_keeps_hooks_where_they_apply(name):
    """Parameters go to torch.func only where the hook engine's formulas would not hold."""
    model, x, _, _ = problem(name)
    owners = fisher._owners(model)
    hooked, func, classes = fisher_func._route(model, owners, x, "auto")
    assert func == FUNC_ROUTE[name] and list(hooked) == [n for n in owners if n not in func]
    assert classes == model(x[:1]).shape[1]
    assert fisher_func._route(model, owners, x, "func")[:2] == ({}, list(owners))


@pytest.mark.parametrize("side", ["hooks", "func", "both"])
@pytest.mark.parametrize("name", ["tiny-conv1d-layernorm", "tiny-custom-modules", "tiny-embedding"])
def test_masks_on_one_engine_or_both(name, side, monkeypatch):
    """Masks on one engine's parameters run that engine alone; masks spanning both interleave in
    model order."""
    model, x, J, p = problem(name)
    names = [n for n, _ in _trainable(model)]
    chosen = {
        "hooks": [n for n in names if n not in FUNC_ROUTE[name]],
        "func": FUNC_ROUTE[name],
        "both": names[1::2],
    }[side]
    assert side != "both" or (
        set(chosen) & set(FUNC_ROUTE[name]) and set(chosen) - set(FUNC_ROUTE[name])
    )
    mask = ParameterMask.full(model, chosen)
    unused = {"hooks": "_func_embeddings", "func": "_per_class_output_grads"}.get(side)
    if unused:
        monkeypatch.setattr(fisher, unused, lambda *a, **k: pytest.fail(f"{unused} called"))
    for scale in SCALES:
        emb = gradient_embeddings(model, x, mask, scale=scale, chunk_size=3)
        assert_close(emb, expected_embeddings(J, p, mask, model, scale))


def test_model_without_head_or_embed():
    """The engine needs only logits: no `head`, no `embed` (a mask without the head)."""
    torch.manual_seed(0)
    model = (
        nn.Sequential(nn.Embedding(6, 3), nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, 4))
        .double()
        .eval()
    )
    x = torch.randint(6, (5, 4), generator=torch.Generator().manual_seed(3))
    diag = fisher_diagonal(model, x)
    ref = fisher_diagonal_naive(model, x)
    assert_close(flat(diag, model), flat(ref, model))
    mask = fisher_mask(diag, 0.3, include_head=False, model=model)
    assert_close(gradient_embeddings(model, x, mask), gradient_embeddings_naive(model, x, mask))


# ----------------------------------------------------------------------------- identities


GRAM = [
    (name, mask)
    for name in PROBLEMS
    for mask in ("global-30%", "per_layer-10%", "full")
    if (name, mask) != ("cnn", "full")
]


@pytest.mark.parametrize("name,mask_name", GRAM, ids=[f"{n}-{m}" for n, m in GRAM])
def test_gram_diagonal_is_masked_fisher_diagonal(name, mask_name):
    """1/N Σ_n diag(V(x_n)ᵀV(x_n)) = F_diag on the mask, and the trace is the mean sample score."""
    model, x, _, _ = problem(name)
    mask = mask_for(name, mask_name)
    emb, diag = gradient_embeddings(model, x, mask), fisher_diagonal(model, x)
    assert_close(emb.pow(2).sum((0, 1)) / len(x), flat(diag, model)[flat(mask, model)])
    assert fisher_trace(diag, mask) == pytest.approx(sample_scores(emb).mean().item(), rel=RTOL)
    assert fisher_trace(diag) == pytest.approx(flat(diag, model).sum().item(), rel=RTOL)


@pytest.mark.parametrize("name", TINY)
def test_fisher_diagonal_is_diagonal_of_dense_fisher(name):
    """F = 1/N Σ_n Σ_c p_c g_c g_cᵀ built densely from the oracle; the full-mask Gram is all of
    it."""
    model, x, J, p = problem(name)
    dense = torch.einsum("nc,ncp,ncq->pq", p, J, J) / len(x)  # [P, P]
    assert_close(flat(fisher_diagonal(model, x), model), dense.diagonal())
    emb = gradient_embeddings(model, x, ParameterMask.full(model))  # [N, C, P]
    assert_close(torch.einsum("ncp,ncq->pq", emb, emb) / len(x), dense)


def test_fisher_scale_is_sqrt_p_times_plain_gradients():
    model, x, _, p = problem("cnn")
    mask = mask_for("cnn", "global-1%")
    plain = gradient_embeddings(model, x, mask, scale="none")
    assert_close(gradient_embeddings(model, x, mask, scale="fisher"), plain * p.sqrt()[:, :, None])
    # E_c[∇ log p_c] = 0
    assert_close((p[:, :, None] * plain).sum(1), torch.zeros_like(plain[:, 0]))


def test_head_only_mask_reproduces_closed_form_bait():
    """The head weight's rows are √p_c (e_c − p) ⊗ h (BAIT's last-layer embedding)."""
    model, x, _, p = problem("cnn")
    with torch.no_grad():
        h = model.embed(x)  # [N, d]
    emb = gradient_embeddings(model, x, ParameterMask.full(model, ["head.weight"]))
    diff = (torch.eye(10, dtype=p.dtype) - p[:, None, :]) * p.sqrt()[:, :, None]  # [N, C, C]
    assert_close(emb, (diff[..., None] * h[:, None, None, :]).flatten(2))


# ---------------------------------------------------------------------- layout, dtype, side effects


def test_entries_follow_model_order_whatever_the_mask_order():
    model, x, J, p = problem("tiny-conv-nobias-bn")
    mask = mask_for("tiny-conv-nobias-bn", "global-30%")
    reversed_mask = ParameterMask({n: mask[n] for n in reversed(mask.names)})
    expected = expected_embeddings(J, p, mask, model, "fisher")
    assert_close(gradient_embeddings(model, x, reversed_mask), expected)
    assert_close(gradient_embeddings_naive(model, x, reversed_mask), expected)


@pytest.mark.parametrize("name", ["tiny-conv-nobias-bn", "tiny-conv1d-layernorm"])
def test_float32_model_gives_float32_close_to_float64(name):
    model64, x64, J, p = problem(name)
    model = make_model(name, torch.float32)
    mask = mask_for(name, "global-30%")
    emb = gradient_embeddings(model, x64.float(), mask)
    diag = fisher_diagonal(model, x64.float())
    assert emb.dtype == torch.float32 and all(v.dtype == torch.float32 for v in diag.values())
    torch.testing.assert_close(
        emb.double(), expected_embeddings(J, p, mask, model64, "fisher"), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("name", ["tiny-conv-nobias-bn", "tiny-conv1d-layernorm"])
def test_restores_train_mode_and_leaves_model_untouched(name):
    _, x, J, p = problem(name)
    model = make_model(name).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mask = mask_for(name, "full")
    emb, diag = gradient_embeddings(model, x, mask), fisher_diagonal(model, x)
    gradient_embeddings_naive(model, x[:2], mask), fisher_diagonal_naive(model, x[:2])
    assert all(m.training for m in model.modules())
    # BN statistics unchanged
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(q.grad is None for q in model.parameters())
    assert_close(emb, expected_embeddings(J, p, mask, model, "fisher"))  # computed in eval mode
    assert_close(flat(diag, model), expected_fisher(J, p))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_results_on_the_model_device():
    model, x, J, p = problem("tiny-conv-nobias-bn")
    model = make_model("tiny-conv-nobias-bn").cuda()
    mask = mask_for("tiny-conv-nobias-bn", "global-30%")
    # CPU inputs are moved
    emb, diag = (
        gradient_embeddings(model, x, mask),
        fisher_diagonal(model, x),
    )
    assert emb.device.type == "cuda" and all(v.device.type == "cuda" for v in diag.values())
    assert_close(emb.cpu(), expected_embeddings(J, p, mask, model, "fisher"))


# ----------------------------------------------------------------------------- bad input


class _Pair(nn.Linear):
    def __init__(self):
        super().__init__(3, 3)

    def forward(self, x):
        return super().forward(x), x


def _bad_calls():
    """(id, call, message pattern): every call must raise ValueError naming what is wrong."""
    model, x, _, _ = problem("tiny-conv-nobias-bn")
    mask = mask_for("tiny-conv-nobias-bn", "global-30%")
    other = ParameterMask.full(make_model("tiny-padding-modes"))
    empty = ParameterMask({n: torch.zeros_like(m) for n, m in mask.items()})
    x3 = torch.randn(4, 3)
    frozen = nn.Sequential(nn.Linear(3, 2)).requires_grad_(False)
    cases = [
        ("empty-tensor", lambda f: f(model, x[:0]), "inputs"),
        ("empty-dataset", lambda f: f(model, TensorDataset(x[:0])), "inputs"),
        ("chunk-zero", lambda f: f(model, x, chunk_size=0), "chunk_size"),
        ("chunk-float", lambda f: f(model, x, chunk_size=2.0), "chunk_size"),
        ("chunk-bool", lambda f: f(model, x, chunk_size=True), "chunk_size"),
        ("not-inputs", lambda f: f(model, [1, 2, 3]), "inputs must be"),
        (
            "bn-no-stats",
            lambda f: f(
                nn.Sequential(nn.BatchNorm2d(2, track_running_stats=False), nn.Flatten()),
                torch.randn(2, 2, 1, 1),
            ),
            "BatchNorm2d without running statistics",
        ),
        (
            "bn1d-no-stats",
            lambda f: f(
                nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2, track_running_stats=False)), x3
            ),
            "BatchNorm1d without running statistics",
        ),
        (
            "not-logits",
            lambda f: f(nn.Sequential(nn.Conv2d(1, 2, 1)), torch.randn(2, 1, 3, 3)),
            r"logits \[N, C\], got shape",
        ),
        ("tuple-output", lambda f: f(_Pair(), x3), r"logits \[N, C\], got a tuple"),
        ("engine", lambda f: f(model, x, engine="hooks"), r"engine 'hooks'.*\['auto', 'func'\]"),
        ("no-trainable", lambda f: f(frozen, x3), "no trainable parameters"),
    ]
    embed = lambda m, i, **kw: gradient_embeddings(
        m, i, mask if m is model else ParameterMask.full(m), **kw
    )
    calls = [
        (f"fisher_diagonal-{cid}", functools.partial(call, fisher_diagonal), pat)
        for cid, call, pat in cases
    ]
    calls += [
        (f"gradient_embeddings-{cid}", functools.partial(call, embed), pat)
        for cid, call, pat in cases
        if cid != "no-trainable"
    ]
    calls += [
        ("scale", lambda: gradient_embeddings(model, x, mask, scale="sqrt"), "scale"),
        ("naive-scale", lambda: gradient_embeddings_naive(model, x, mask, scale="sqrt"), "scale"),
        (
            "mask-of-another-model",
            lambda: gradient_embeddings(model, x, other),
            "mask does not match",
        ),
        (
            "naive-mask-of-another-model",
            lambda: gradient_embeddings_naive(model, x, other),
            "mask does not match",
        ),
        (
            "mask-not-a-mask",
            lambda: gradient_embeddings(model, x, dict(mask)),
            "mask must be a ParameterMask",
        ),
        ("empty-mask", lambda: gradient_embeddings(model, x, empty), "mask selects no entries"),
        ("naive-empty-inputs", lambda: fisher_diagonal_naive(model, x[:0]), "inputs"),
    ]
    return calls


BAD = _bad_calls()


@pytest.mark.parametrize("call,pattern", [(c, p) for _, c, p in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input_raises_value_error(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# ----------------------------------------------------------------------------- pool subsample


@pytest.mark.parametrize(
    "n_pool,size",
    [(10_000, 1024), (50, 1024), (1, 1), (7, 7)],
    ids=["large", "small-pool", "one", "exact"],
)
def test_fisher_subsample(n_pool, size):
    idx = fisher_subsample(n_pool, size, seed=4)
    assert idx.dtype.name == "int64" and len(idx) == min(n_pool, size)
    # sorted, distinct, in range
    assert (idx[1:] > idx[:-1]).all() and idx[0] >= 0 and idx[-1] < n_pool
    assert (fisher_subsample(n_pool, size, seed=4) == idx).all()


def test_fisher_subsample_seeds_differ_and_cover_the_pool():
    a, b = fisher_subsample(10_000, 1024, seed=0), fisher_subsample(10_000, 1024, seed=1)
    assert (a != b).any() and a[-1] > 9_000  # not the first items of a possibly class-sorted pool


@pytest.mark.parametrize(
    "n_pool,size,name",
    [(0, 5, "n_pool"), (5, 0, "size"), (-1, 5, "n_pool")],
    ids=["empty", "size0", "neg"],
)
def test_fisher_subsample_bad(n_pool, size, name):
    with pytest.raises(ValueError, match=name):
        fisher_subsample(n_pool, size)


@pytest.mark.parametrize("method", ["global", "per_layer", "random"])
@pytest.mark.parametrize("include_head", [True, False])
@pytest.mark.parametrize("fraction", [0.01, 0.3, 1.0])
def test_mask_size_is_the_size_of_the_mask_fisher_mask_builds(method, include_head, fraction):
    from fmlib.fisher.masks import mask_size
    from fmlib.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", 10, 1, 28)
    diag = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    mask = fisher_mask(diag, fraction, method=method, include_head=include_head, model=model)
    assert mask_size(model, fraction, method=method, include_head=include_head) == mask.size
