import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fmlib.data import DatasetData, ImageData, as_al_data, as_data, iter_batches
from fmlib.datasets import (
    imbalanced_counts,
    initial_labeled,
    load_dataset,
    make_imbalanced,
    prepare_data,
)
from tests.conftest import requires_fashion_mnist
from tests.fakes import (
    accept_fake_cifar10,
    fake_images,
    write_fake_cifar10,
    write_fake_fashion_mnist,
)
from tests.user_parts import ItemDataset, blobs


@requires_fashion_mnist
def test_real_fashion_mnist_from_debian_package():
    splits = load_dataset("fashion_mnist")
    assert splits.train.images.shape == (60000, 1, 28, 28) and splits.test.images.shape == (
        10000,
        1,
        28,
        28,
    )
    assert splits.train.images.dtype == torch.uint8 and splits.train.labels.dtype == torch.int64
    assert splits.classes[0] == "T-shirt/top" and len(splits.classes) == 10
    assert np.all(splits.train.class_counts() == 6000) and np.all(
        splits.test.class_counts() == 1000
    )


def test_fashion_mnist_from_root_takes_precedence(tmp_path):
    write_fake_fashion_mnist(tmp_path, n_train=50, n_test=20)
    splits = load_dataset("fashion_mnist", root=tmp_path)
    assert len(splits.train) == 50 and len(splits.test) == 20
    assert splits.train.shape == (1, 28, 28)


def test_fashion_mnist_in_torchvision_layout(tmp_path):
    write_fake_fashion_mnist(tmp_path / "FashionMNIST" / "raw", n_train=30, n_test=10)
    assert len(load_dataset("fashion_mnist", root=tmp_path).train) == 30


def test_missing_fashion_mnist_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr("fmlib.datasets.DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as err:
        load_dataset("fashion_mnist", root=tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.fixture
def no_network(monkeypatch):
    """torchvision's CIFAR-10 download records its calls instead of fetching."""
    calls = []
    monkeypatch.setattr(
        "torchvision.datasets.cifar.download_and_extract_archive",
        lambda *a, **k: calls.append((a, k)),
    )
    return calls


def test_cifar10_through_torchvision(tmp_path, monkeypatch):
    """The generated files go through torchvision's CIFAR10, md5 checks included (md5 list
    patched)."""
    write_fake_cifar10(tmp_path, per_batch=8, n_test=12, seed=3)
    accept_fake_cifar10(monkeypatch, tmp_path)
    splits = load_dataset("cifar10", root=tmp_path)
    assert splits.train.images.shape == (40, 3, 32, 32) and splits.test.images.shape == (
        12,
        3,
        32,
        32,
    )
    assert splits.train.images.dtype == torch.uint8 and splits.train.labels.dtype == torch.int64
    assert splits.classes[0] == "airplane" and len(splits.classes) == 10
    # pixel layout: channel planes, row-major, exactly as written; labels in file order
    labels = splits.test.labels.numpy()
    expected = fake_images(labels, (32, 32, 3), seed=3 + 5).transpose(0, 3, 1, 2)
    assert np.array_equal(splits.test.images.numpy(), expected)
    first = fake_images(splits.train.labels.numpy()[:8], (32, 32, 3), seed=3).transpose(0, 3, 1, 2)
    assert np.array_equal(splits.train.images.numpy()[:8], first)  # data_batch_1 first


def test_cifar10_files_failing_md5_are_named(tmp_path, monkeypatch):
    """Files that are not the release's (here: generated, md5 list not patched, or one changed) are
    refused."""
    write_fake_cifar10(tmp_path, per_batch=4, n_test=4)
    with pytest.raises(ValueError, match=r"fail torchvision's md5 check.*download=True") as err:
        load_dataset("cifar10", root=tmp_path)
    assert "data_batch_1" in str(err.value) and "batches.meta" in str(err.value)
    accept_fake_cifar10(monkeypatch, tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"\['data_batch_2'\] fail torchvision's md5 check"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_download_skipped_when_files_pass(tmp_path, monkeypatch, no_network):
    write_fake_cifar10(tmp_path, per_batch=4, n_test=4)
    accept_fake_cifar10(monkeypatch, tmp_path)
    assert len(load_dataset("cifar10", root=tmp_path, download=True).train) == 20
    assert no_network == []


def test_cifar10_download_goes_to_root_or_cache(tmp_path, monkeypatch, no_network):
    """download=True fetches the release archive into root, by default ~/.cache/fmlib."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="download=True"):  # the stub fetched nothing
        load_dataset("cifar10", download=True)
    with pytest.raises(FileNotFoundError):
        load_dataset("cifar10", root=tmp_path / "data", download=True)
    roots = [call[0][1] for call in no_network]
    assert roots == [str(tmp_path / "home" / ".cache" / "fmlib"), str(tmp_path / "data")]
    # the release's tarball
    assert all(call[1]["md5"] == "c58f30108f718f92721af3b95e74349a" for call in no_network)


def test_missing_cifar10_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as err:
        load_dataset("cifar10", root=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value) and "test_batch" in str(
        err.value
    )


def test_unknown_dataset():
    with pytest.raises(ValueError, match="fashion_mnist"):
        load_dataset("mnist")


def test_inputs_normalise_without_uint8_overflow():
    images = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    data = ImageData(images, torch.tensor([0, 1]), ["a", "b"], mean=(0.5,), std=(0.25,))
    assert torch.allclose(data.inputs(), torch.full((2, 1, 4, 4), 2.0))


def test_image_data_rejects_bad_shapes():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(3), ["a"])
    with pytest.raises(ValueError, match="labels"):
        ImageData(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(4), ["a"])


LABELS = np.repeat(np.arange(5), [100, 80, 120, 100, 90])


@pytest.mark.parametrize(
    "profile,ratio,minority,expected",
    [
        ("none", 1.0, None, [100, 80, 120, 100, 90]),
        ("step", 10.0, None, [10, 8, 120, 100, 90]),
        ("step", 4.0, [4], [100, 80, 120, 100, 22]),
        ("longtail", 16.0, None, [80, 40, 20, 10, 5]),
        ("longtail", 1.0, None, [80, 80, 80, 80, 80]),
    ],
    ids=["none", "step-first-half", "step-named", "longtail-16", "longtail-flat"],
)
def test_imbalance_counts_exact(profile, ratio, minority, expected):
    idx = make_imbalanced(LABELS, profile, ratio, seed=1, minority_classes=minority)
    assert np.bincount(LABELS[idx], minlength=5).tolist() == expected
    assert len(np.unique(idx)) == len(idx)
    assert np.array_equal(
        idx, make_imbalanced(LABELS, profile, ratio, seed=1, minority_classes=minority)
    )


def test_longtail_ratio_is_largest_over_smallest():
    counts = imbalanced_counts([1000] * 10, "longtail", 100.0)
    assert counts[0] == 1000 and counts[-1] == 10 and np.all(np.diff(counts) < 0)


def test_paper_preset_counts():
    labels = np.repeat(np.arange(10), 6000)
    idx = make_imbalanced(labels, "paper", seed=0)
    assert np.bincount(labels[idx], minlength=10).tolist() == [
        250,
        5000,
        250,
        250,
        0,
        0,
        0,
        0,
        0,
        0,
    ]


@requires_fashion_mnist
def test_paper_preset_on_real_fashion_mnist():
    data = prepare_data("fashion_mnist", imbalance="paper", seed=0)
    assert data.pool.class_counts().tolist() == [250, 5000, 250, 250]
    assert data.test.class_counts().tolist() == [1000] * 4
    assert data.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress"]


def test_prepare_data_caps_pool_and_test_stratified(tmp_path):
    write_fake_fashion_mnist(tmp_path, n_train=200, n_test=100)
    data = prepare_data("fashion_mnist", root=tmp_path, pool_size=50, test_size=30, seed=2)
    assert len(data.pool) == 50 and len(data.test) == 30
    assert (
        data.pool.class_counts().tolist() == [5] * 10
        and data.test.class_counts().tolist() == [3] * 10
    )
    again = prepare_data("fashion_mnist", root=tmp_path, pool_size=50, test_size=30, seed=2)
    assert torch.equal(data.pool.images, again.pool.images)


@pytest.mark.parametrize(
    "bad", [dict(profile="zipf"), dict(profile="step", ratio=0.5)], ids=["profile", "ratio"]
)
def test_imbalance_bad_input(bad):
    with pytest.raises(ValueError, match=next(iter(bad)) if "ratio" not in bad else "ratio"):
        make_imbalanced(LABELS, **{"ratio": 2.0, **bad})


@pytest.mark.parametrize("method", ["random", "balanced"])
def test_initial_labeled_seeded(method):
    a = initial_labeled(LABELS, 23, method, seed=5)
    assert len(a) == 23 and len(np.unique(a)) == 23
    assert np.array_equal(a, initial_labeled(LABELS, 23, method, seed=5))
    assert not np.array_equal(a, initial_labeled(LABELS, 23, method, seed=6))


def test_initial_balanced_per_class():
    counts = np.bincount(LABELS[initial_labeled(LABELS, 25, "balanced", seed=0)], minlength=5)
    assert counts.tolist() == [5] * 5
    skewed = np.repeat(np.arange(3), [2, 50, 50])
    counts = np.bincount(skewed[initial_labeled(skewed, 30, "balanced", seed=0)], minlength=3)
    assert counts[0] == 2 and counts.sum() == 30


@pytest.mark.parametrize(
    "size,method,match",
    [(0, "random", "initial size"), (501, "random", "pool size"), (5, "stratified", "balanced")],
)
def test_initial_labeled_bad_input(size, method, match):
    with pytest.raises(ValueError, match=match):
        initial_labeled(LABELS, size, method)


def test_iter_batches_accepts_every_input_form():
    x = torch.randn(10, 1, 4, 4)
    forms = [x, TensorDataset(x, torch.zeros(10)), DataLoader(TensorDataset(x), batch_size=3)]
    for form in forms:
        assert torch.equal(torch.cat(list(iter_batches(form, 4))), x)
    with pytest.raises(ValueError, match="inputs"):
        list(iter_batches([1, 2], 4))


def test_dataset_data_reads_a_tensor_dataset_and_a_plain_dataset_alike():
    base = blobs(30, 0)
    fast, slow = DatasetData(base), DatasetData(ItemDataset(base))
    idx = [3, 0, 17]
    assert torch.equal(fast.inputs(idx), base.tensors[0][idx]) and torch.equal(
        slow.inputs(idx), fast.inputs(idx)
    )
    assert torch.equal(fast.labels, slow.labels) and fast.num_classes == 3 and fast.shape == (20,)
    assert fast.class_counts().tolist() == [10, 10, 10] and fast.class_counts(
        [0, 1, 4]
    ).tolist() == [1, 2, 0]
    for sub in (slow.subset([5, 6]), fast.subset([5, 6])):
        assert torch.equal(sub.inputs(), base.tensors[0][[5, 6]]) and sub.labels.tolist() == [2, 0]
    # the fast path survives subsetting
    assert isinstance(fast.subset([5, 6]).dataset, TensorDataset)
    assert as_data(DataLoader(base, batch_size=4)).num_classes == 3


def test_pool_and_test_share_the_classes_and_bad_data_is_named():
    pool, test = blobs(30, 0), TensorDataset(torch.zeros(4, 20), torch.zeros(4, dtype=torch.long))
    data = as_al_data((pool, test))
    assert data.pool.num_classes == data.test.num_classes == 3
    with pytest.raises(ValueError, match="integer classes"):
        DatasetData(TensorDataset(torch.zeros(3, 2), torch.zeros(3)))
    with pytest.raises(ValueError, match="Dataset"):
        as_data([1, 2, 3])
    with pytest.raises(ValueError, match=r"\(pool, test\) pair"):
        as_al_data(pool)


def test_a_label_below_zero_is_refused():
    from fmlib.data import as_data

    with pytest.raises(ValueError, match=r"labels must be integer classes >= 0"):
        as_data(TensorDataset(torch.zeros(3, 2), torch.tensor([0, -1, 1])))


def _images(n=5, channels=2):
    """An :class:`ImageData` of ``n`` images whose pixels are their position, 2 classes."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, channels, 3, 4)
    return ImageData(
        images.contiguous(), torch.arange(n) % 2, ["a", "b"], (0.0, 0.5), (1.0, 0.5), "toy"
    )


def test_image_data_normalises_each_channel_and_keeps_its_fields_in_a_subset():
    data = _images()
    assert data.shape == (2, 3, 4) and data.labels.dtype == torch.int64 and data.num_classes == 2
    x = data.inputs([4, 1])
    assert x.shape == (2, 2, 3, 4)
    assert torch.allclose(x[0, 0], torch.full((3, 4), 4 / 255))
    assert torch.allclose(x[0, 1], torch.full((3, 4), (4 / 255 - 0.5) / 0.5))
    assert torch.allclose(x[1, 0], torch.full((3, 4), 1 / 255))
    assert data.inputs().shape == (5, 2, 3, 4)
    sub = data.subset([3, 4])
    assert sub.labels.tolist() == [1, 0] and torch.equal(sub.inputs(), data.inputs([3, 4]))
    assert (sub.classes, sub.mean, sub.std, sub.name) == (["a", "b"], (0.0, 0.5), (1.0, 0.5), "toy")
    assert data.subset([0], classes=["x", "y"]).classes == ["x", "y"]
    assert data.class_counts().tolist() == [3, 2] and data.class_counts([1, 3]).tolist() == [0, 2]


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ([(torch.zeros(2), 0)], "map-style torch Dataset"),
        (TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), "dataset is empty"),
        (TensorDataset(torch.zeros(3, 2)), "needs two tensors"),
        (TensorDataset(torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.long)), "integer classes"),
        (TensorDataset(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0])), "integer classes"),
        (TensorDataset(torch.zeros(2, 2), torch.tensor([0, -1])), "integer classes >= 0"),
    ],
)
def test_dataset_data_names_bad_datasets(dataset, message):
    with pytest.raises(ValueError, match=message):
        DatasetData(dataset)


def test_dataset_data_class_names():
    base = TensorDataset(torch.zeros(3, 2), torch.tensor([0, 2, 1]))
    assert DatasetData(base).classes == ["0", "1", "2"]
    assert DatasetData(base, ["a", "b", "c", "d"]).num_classes == 4
    with pytest.raises(ValueError, match="labels reach 2 but classes has 2 names"):
        DatasetData(base, ["a", "b"])
    assert DatasetData(DataLoader(base, batch_size=2)).dataset is base


def test_dataset_data_reads_dict_items_and_no_items():
    class Dicts(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"x": torch.full((2,), float(i)), "y": i % 2}

    data = DatasetData(Dicts(), label_key="y")
    assert data.labels.tolist() == [0, 1, 0] and data.num_classes == 2
    assert torch.equal(data.inputs([2])["x"], torch.full((1, 2), 2.0))
    assert list(data.inputs([0, 1]).keys()) == ["x"]  # the label is no input
    with pytest.raises(ValueError, match="without the label key 'label'"):
        DatasetData(Dicts())
    plain = DatasetData(ItemDataset(blobs(6, 0)))
    assert plain.inputs([]).shape == (0, 20) and plain.inputs().shape == (6, 20)
    assert plain.subset([4]).classes == plain.classes and plain.subset([4]).labels.tolist() == [1]


def test_as_al_data_gives_both_sets_the_same_classes():
    three = blobs(9, 0)
    two = TensorDataset(torch.zeros(4, 20), torch.tensor([0, 1, 1, 0]))
    data = as_al_data((two, three))  # the pool lacks class 2
    assert data.pool.classes == data.test.classes == ["0", "1", "2"]
    data = as_al_data((three, two))  # the test set lacks class 2
    assert data.test.classes == ["0", "1", "2"] and data.classes == data.pool.classes
    images = _images()  # 2 class names, which a pool of images keeps
    with pytest.raises(ValueError, match="the pool has 2 classes and the test set 3"):
        as_al_data((images, three))
    with pytest.raises(ValueError, match="the pool has 3 classes and the test set 2"):
        as_al_data((three, images))
    zeros = TensorDataset(torch.zeros(2, 2, 3, 4), torch.zeros(2, dtype=torch.long))
    assert as_al_data((images, zeros)).test.classes == ["a", "b"]
    pair = as_al_data([images, images])
    assert pair.pool is images and as_al_data(pair).test is images


def test_iter_batches_cuts_every_form_into_batch_size():
    from fmlib.data import num_inputs

    images = _images(5)
    sizes = [len(b) for b in iter_batches(images, 2)]
    assert sizes == [2, 2, 1]
    assert torch.equal(torch.cat(list(iter_batches(images, 2))), images.inputs())
    x = torch.randn(7, 3)
    assert [len(b) for b in iter_batches(x, 3)] == [3, 3, 1]
    assert [len(b) for b in iter_batches(TensorDataset(x), 4)] == [4, 3]
    assert [len(b) for b in iter_batches(DataLoader(TensorDataset(x), batch_size=5), 2)] == [5, 2]
    data = DatasetData(TensorDataset(x, torch.zeros(7, dtype=torch.long)))
    assert [len(b) for b in iter_batches(data, 6)] == [6, 1]
    assert num_inputs(x) == 7 and num_inputs(DataLoader(TensorDataset(x), batch_size=5)) == 7


def test_cache_dir_is_fmlibs_user_cache(monkeypatch, tmp_path):
    from fmlib.data import cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "fmlib"


def test_the_number_of_inputs_of_a_loader_is_its_samples_not_its_batches():
    from fmlib.data import num_inputs

    x = torch.randn(10, 3)
    assert num_inputs(DataLoader(TensorDataset(x), batch_size=3)) == 10
    assert num_inputs(x) == 10 and num_inputs(TensorDataset(x)) == 10
