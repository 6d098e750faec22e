"""Dict inputs and Hugging Face datasets: a tiny text classifier (Embedding + mean pooling + Linear
head) on token ids from a ``datasets.Dataset`` (built in memory); both Fisher engines exact
against the naive oracle on dict batches; FisherMask, BAIT, BADGE and entropy end to end; dict
items and (dict, y) items of a plain torch Dataset alike."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from fmlib.data import DatasetData, as_al_data
from fmlib.experiment import run_experiment
from fmlib.fisher import ParameterMask, fisher_diagonal, gradient_embeddings
from fmlib.fisher.embeddings import fisher_diagonal_naive, gradient_embeddings_naive
from fmlib.inputs import DictBatch
from fmlib.strategies import STRATEGIES, get_strategy
from tests.fakes import small_run

datasets = pytest.importorskip("datasets")
from fmlib.hf import KeywordModel, from_hf  # noqa: E402

VOCAB, LENGTH, CLASSES = 40, 6, 3


def token_rows(n: int, seed: int) -> dict:
    """Class c draws most tokens from its own band of ids; rows padded with 0 and masked."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    ids, mask = [], []
    for c in labels:
        length = int(rng.integers(3, LENGTH + 1))
        own = rng.integers(1 + 13 * c, 14 + 13 * c, size=length)
        noise = rng.integers(1, VOCAB, size=length)
        row = np.where(rng.random(length) < 0.8, own, noise)
        ids.append([int(t) for t in row] + [0] * (LENGTH - length))
        mask.append([1] * length + [0] * (LENGTH - length))
    return {"input_ids": ids, "attention_mask": mask, "label": labels.tolist(), "text": ["..."] * n}


def hf_split(n: int, seed: int):
    features = datasets.Features(
        {
            "input_ids": datasets.Sequence(datasets.Value("int64")),
            "attention_mask": datasets.Sequence(datasets.Value("int64")),
            "label": datasets.ClassLabel(names=["a", "b", "c"]),
            "text": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(token_rows(n, seed), features=features)


class TinyText(nn.Module):
    """Token embedding, mean over the unmasked tokens, a hidden layer and a linear head."""

    def __init__(self, num_classes: int, vocab: int = VOCAB, dim: int = 8):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.body = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.head = nn.Linear(dim, num_classes)

    def embed(self, batch):
        e = self.tokens(batch["input_ids"])  # [B, T, d]
        m = batch["attention_mask"].unsqueeze(-1).to(e.dtype)  # [B, T, 1]
        return self.body((e * m).sum(1) / m.sum(1).clamp(min=1))

    def forward(self, batch):
        return self.head(self.embed(batch))


class KeywordText(nn.Module):
    """The same model with a Hugging Face style forward: keyword arguments in, ``.logits`` out."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.inner = TinyText(num_classes)
        self.head = self.inner.head

    def embed(self, input_ids, attention_mask):
        return self.inner.embed({"input_ids": input_ids, "attention_mask": attention_mask})

    def forward(self, input_ids, attention_mask):
        class Out:
            logits = self.inner({"input_ids": input_ids, "attention_mask": attention_mask})

        return Out()


def data():
    return from_hf(hf_split(60, 0), columns=["input_ids", "attention_mask"]), from_hf(
        hf_split(30, 1), columns=["input_ids", "attention_mask"]
    )


def test_from_hf_gives_dict_batches_with_the_label_column_and_class_names():
    pool, _ = data()
    assert pool.classes == ["a", "b", "c"] and pool.labels.tolist()[:4] == [0, 1, 2, 0]
    batch = pool.inputs([0, 1, 2])
    assert isinstance(batch, DictBatch) and list(batch.keys()) == ["input_ids", "attention_mask"]
    assert batch["input_ids"].shape == (3, LENGTH) and batch["input_ids"].dtype == torch.int64
    assert batch[1:]["attention_mask"].shape == (2, LENGTH) and len(batch.split(2)) == 2
    with pytest.raises(ValueError, match="no label column 'y'"):
        from_hf(hf_split(6, 0), label="y")
    with pytest.raises(ValueError, match=r"columns \['words'\] not in"):
        from_hf(hf_split(6, 0), columns=["words"])


@pytest.mark.parametrize("engine", ["auto", "func"])
def test_both_engines_are_exact_against_the_naive_oracle_on_dict_batches(float64, engine):
    pool, _ = data()
    x = pool.inputs(range(12))
    model = TinyText(CLASSES).double().eval()
    mask = ParameterMask({n: torch.rand_like(p) < 0.4 for n, p in model.named_parameters()})
    fast = gradient_embeddings(model, x, mask, engine=engine, chunk_size=5)
    assert fast.shape == (12, CLASSES, mask.size)
    torch.testing.assert_close(
        fast, gradient_embeddings_naive(model, x, mask), rtol=1e-10, atol=1e-12
    )
    diag, naive = (
        fisher_diagonal(model, x, engine=engine, chunk_size=5),
        fisher_diagonal_naive(model, x),
    )
    for name in naive:
        torch.testing.assert_close(diag[name], naive[name], rtol=1e-10, atol=1e-12)
    assert diag["tokens.weight"].abs().sum() > 0  # the embedding table gets its Fisher too


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("fishermask", {"fisher_samples": 30, "fraction": 0.05}),
        ("bait", {"fisher_samples": 30}),
        ("badge", {}),
        ("entropy", {}),
    ],
    ids=["fishermask", "bait", "badge", "entropy"],
)
def test_every_strategy_runs_end_to_end_on_a_datasets_dataset(
    one_thread, tmp_path, strategy, options
):
    config = small_run(
        budget=24,
        strategy=strategy,
        strategy_options=options,
        train_options={"epochs": 30, "lr": 3e-2, "batch_size": 16},
        output_dir=str(tmp_path),
    )
    records = run_experiment(config, data=data(), model=TinyText)
    rows = records.rounds_frame()
    assert rows["n_labeled"].tolist() == [6, 12, 18, 24] and rows["accuracy"].iloc[-1] > 0.6
    picked = records.queries_frame().query("round > 0")["pool_index"]
    assert picked.is_unique and len(picked) == 18
    if strategy in ("fishermask", "bait"):
        assert len(records.snapshots) == 3


def test_a_keyword_model_runs_through_the_adapter(one_thread):
    records = run_experiment(
        small_run(budget=12, strategy="badge"),
        data=data(),
        model=lambda c: KeywordModel(KeywordText(c)),
    )
    assert len(records.rounds) == 2


class TextItems(Dataset):
    """A plain torch Dataset of token rows: dict items with a label key, or (dict, y) pairs."""

    def __init__(self, n: int, seed: int, pairs: bool):
        self.rows, self.pairs = token_rows(n, seed), pairs

    def __len__(self):
        return len(self.rows["label"])

    def __getitem__(self, i):
        x = {
            "input_ids": torch.tensor(self.rows["input_ids"][i]),
            "attention_mask": torch.tensor(self.rows["attention_mask"][i]),
        }
        return (x, self.rows["label"][i]) if self.pairs else {**x, "label": self.rows["label"][i]}


def test_dict_items_and_dict_pairs_run_alike(one_thread):
    runs = []
    for pairs in (True, False):
        config = small_run(
            strategy="fishermask", strategy_options={"fisher_samples": 30, "fraction": 0.05}
        )
        runs.append(
            run_experiment(
                config, data=(TextItems(60, 0, pairs), TextItems(30, 1, pairs)), model=TinyText
            )
        )
    drop = ["train_time", "eval_time", "select_time", "embed_time"]
    assert (
        runs[0].rounds_frame().drop(columns=drop).equals(runs[1].rounds_frame().drop(columns=drop))
    )
    assert runs[0].queries == runs[1].queries


def test_a_dict_batch_the_model_rejects_is_named_with_its_keys():
    class ReadsIds(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.head = nn.Linear(LENGTH, c)

        def forward(self, batch):
            return self.head(batch["ids"].float())

    with pytest.raises(
        ValueError,
        match=r"a dict batch with keys \['input_ids', 'attention_mask'\].*KeyError: 'ids'",
    ):
        run_experiment(
            small_run(budget=12),
            data=data(),
            model=ReadsIds,
        )
    with pytest.raises(ValueError, match="item 0 is a dict without the label key 'label_id'"):
        DatasetData(TextItems(6, 0, pairs=False), label_key="label_id")


def test_bad_dict_items_are_named():
    class Ragged(TextItems):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return {"input_ids": x["input_ids"][: 3 + i % 2]}, y

    with pytest.raises(ValueError, match="must have one shape in every item"):
        as_al_data((Ragged(6, 0, True), Ragged(6, 1, True))).pool.inputs([0, 1])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_selects_from_dict_batches(one_thread, name):
    pool, _ = data()
    model = TinyText(CLASSES).eval()
    options = {"fisher_samples": 30} if "fisher_samples" in STRATEGIES[name].defaults else {}
    labeled, unlabeled = np.arange(6), np.arange(6, 60)
    picks = get_strategy(name, **options).select(
        model, pool, labeled, unlabeled, 5, seed=0, device="cpu"
    )
    assert len(set(picks.tolist())) == 5 and set(picks.tolist()) <= set(unlabeled.tolist())


@pytest.mark.parametrize("name", ["bait", "fishermask"])
def test_nan_in_a_dict_batch_pool_is_refused_with_the_samples(one_thread, name):
    from fmlib.train import NonFiniteError

    rows = token_rows(60, 0)
    rows["attention_mask"] = [[float(v) for v in row] for row in rows["attention_mask"]]
    rows["attention_mask"][17][0] = float("nan")
    features = datasets.Features(
        {
            "input_ids": datasets.Sequence(datasets.Value("int64")),
            "attention_mask": datasets.Sequence(datasets.Value("float32")),
            "label": datasets.ClassLabel(names=["a", "b", "c"]),
            "text": datasets.Value("string"),
        }
    )
    pool = from_hf(
        datasets.Dataset.from_dict(rows, features=features), columns=["input_ids", "attention_mask"]
    )
    strategy = get_strategy(name, fisher_samples=30)
    with pytest.raises(NonFiniteError, match=r"NaN or inf: samples \[17\]"):
        strategy.select(
            TinyText(CLASSES).eval(), pool, np.arange(6), np.arange(6, 60), 5, seed=0, device="cpu"
        )
