"""Dataset sources, each read from tiny files written in its real on-disk format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedssl.datasets import (
    DATASETS,
    DatasetNotFoundError,
    ImageArrays,
    check_dataset,
    clear_dataset_cache,
    default_cache_dir,
    load_image_dataset,
)
from fedssl.datasets.embedded import CACHE_FILENAME, _read_cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def _write_jpeg(path: Path, colour: tuple[int, int, int], size=(64, 64), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    (img.convert("L") if mode == "L" else img).save(path, format="JPEG", quality=95)


# ---------------------------------------------------------------- embedded-digits


@pytest.fixture(scope="module")
def embedded_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("embedded")
    load_image_dataset("embedded-digits", "train", cache_dir=str(cache))
    return cache


def test_embedded_shapes_labels_and_split(embedded_cache: Path) -> None:
    train = load_image_dataset("embedded-digits", "train", cache_dir=str(embedded_cache))
    test = load_image_dataset("embedded-digits", "test", cache_dir=str(embedded_cache))
    assert isinstance(train, ImageArrays)
    assert train.images.shape == (1437 * 4, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (360 * 3, 32, 32, 3)
    assert train.labels.dtype == np.int64 and train.num_classes == test.num_classes == 10
    assert set(np.unique(train.labels)) == set(range(10)) == set(np.unique(test.labels))
    # Composites are not blank and use colour, i.e. they blend a real photo.
    assert train.images.std() > 20
    assert np.abs(train.images[..., 0].astype(int) - train.images[..., 1]).mean() > 5
    # 4 composites per train digit and 3 per test digit.
    assert (np.bincount(train.labels) % 4 == 0).all() and (np.bincount(test.labels) % 3 == 0).all()
    # Returned arrays are shared by the process cache, hence read-only.
    with pytest.raises(ValueError):
        train.images[0, 0, 0, 0] = 1


def test_embedded_deterministic_and_cached(tmp_path: Path, embedded_cache: Path) -> None:
    other = tmp_path / "other"
    a = load_image_dataset("embedded-digits", "test", cache_dir=str(embedded_cache))
    b = load_image_dataset("embedded-digits", "test", cache_dir=str(other))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)

    # A second load reads the cached file instead of rebuilding: tamper with the cache and
    # the change shows up.
    cache_file = other / CACHE_FILENAME
    assert cache_file.is_file() and not list(other.glob("*.tmp"))
    with np.load(cache_file) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["test_labels"] = np.full_like(arrays["test_labels"], 7)
    np.savez(cache_file, **arrays)
    clear_dataset_cache()
    c = load_image_dataset("embedded-digits", "test", cache_dir=str(other))
    assert (c.labels == 7).all()

    # A corrupt or partial cache file is treated as absent (and then rebuilt).
    cache_file.write_bytes(b"not a zip")
    assert _read_cache(cache_file) is None


def test_embedded_resize_and_memoised(embedded_cache: Path) -> None:
    a = load_image_dataset("embedded-digits", "test", image_size=16, cache_dir=str(embedded_cache))
    assert a.images.shape == (1080, 16, 16, 3)
    again = load_image_dataset(
        "embedded-digits", "test", image_size=16, cache_dir=str(embedded_cache)
    )
    assert again is a


def test_default_cache_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDSSL_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("FEDSSL_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "fedssl"


# ---------------------------------------------------------------- CIFAR


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f)


def _write_cifar10(root: Path) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    rows = {}
    for i in range(1, 6):
        rows[f"data_batch_{i}"] = _cifar_rows(2, i)
        _dump(folder / f"data_batch_{i}", {b"data": rows[f"data_batch_{i}"], b"labels": [i, 9]})
    rows["test_batch"] = _cifar_rows(3, 0)
    _dump(folder / "test_batch", {b"data": rows["test_batch"], b"labels": [0, 1, 2]})
    return rows


def test_cifar10(tmp_path: Path) -> None:
    rows = _write_cifar10(tmp_path)
    train = load_image_dataset("cifar10", "train", data_dir=str(tmp_path))
    assert train.images.shape == (10, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]
    assert train.num_classes == 10
    # Row-major CHW: red plane first, so pixel (0, 1) red is byte 1, green byte 1024 + 1.
    first = rows["data_batch_1"][0]
    assert train.images[0, 0, 1].tolist() == [first[1], first[1025], first[2049]]
    # data_dir may also be the extracted folder itself.
    test = load_image_dataset(
        "cifar10", "test", data_dir=str(tmp_path / "cifar-10-batches-py"), image_size=8
    )
    assert test.images.shape == (3, 8, 8, 3) and test.labels.tolist() == [0, 1, 2]


def test_cifar100(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    train_rows = _cifar_rows(4, 1)
    _dump(
        folder / "train",
        {b"data": train_rows, b"fine_labels": [0, 99, 5, 42], b"coarse_labels": [0] * 4},
    )
    _dump(
        folder / "test",
        {b"data": _cifar_rows(2, 2), b"fine_labels": [3, 7], b"coarse_labels": [1, 1]},
    )
    train = load_image_dataset("cifar100", "train", data_dir=str(tmp_path))
    assert train.num_classes == 100 and train.labels.tolist() == [0, 99, 5, 42]
    np.testing.assert_array_equal(
        train.images[2], train_rows[2].reshape(3, 32, 32).transpose(1, 2, 0)
    )
    test = load_image_dataset("cifar100", "test", data_dir=str(folder))
    assert test.labels.tolist() == [3, 7] and test.images.shape == (2, 32, 32, 3)


def test_cifar_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py") as err:
        check_dataset("cifar10", data_dir=str(tmp_path / "nope"))
    assert "data_batch_1" in str(err.value) and str(tmp_path / "nope") in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="empty"):
        check_dataset("cifar100", data_dir="")
    # An incomplete folder (one batch missing) is rejected too.
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_image_dataset("cifar10", "train", data_dir=str(tmp_path))


# ---------------------------------------------------------------- Tiny ImageNet


def _write_tiny_imagenet(root: Path) -> None:
    base = root / "tiny-imagenet-200"
    wnids = ["n02", "n01"]  # deliberately unsorted: class index follows sorted order
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    colours = {"n01": (250, 0, 0), "n02": (0, 0, 250)}
    for wnid in wnids:
        for i in range(3):
            _write_jpeg(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", colours[wnid])
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    _write_jpeg(base / "val" / "images" / "val_0.JPEG", colours["n02"])
    _write_jpeg(base / "val" / "images" / "val_1.JPEG", (120, 120, 120), mode="L")
    (base / "val" / "val_annotations.txt").write_text(
        "val_1.JPEG\tn01\t0\t0\t10\t10\nval_0.JPEG\tn02\t1\t2\t30\t40\n"
    )


def test_tiny_imagenet(tmp_path: Path) -> None:
    _write_tiny_imagenet(tmp_path)
    check_dataset("tiny-imagenet", data_dir=str(tmp_path))
    train = load_image_dataset("tiny-imagenet", "train", data_dir=str(tmp_path), image_size=64)
    assert train.images.shape == (6, 64, 64, 3) and train.num_classes == 2
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.images[0, ..., 0].mean() > 200 and train.images[3, ..., 2].mean() > 200
    test = load_image_dataset(
        "tiny-imagenet", "test", data_dir=str(tmp_path / "tiny-imagenet-200"), image_size=32
    )
    assert test.images.shape == (2, 32, 32, 3)
    assert test.labels.tolist() == [1, 0]  # val_0 (n02), val_1 (n01), sorted by file name
    # The grayscale JPEG became 3 equal channels.
    assert np.ptp(test.images[1].astype(int), axis=-1).max() <= 1


def test_tiny_imagenet_missing(tmp_path: Path) -> None:
    _write_tiny_imagenet(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"val_annotations\.txt") as err:
        check_dataset("tiny-imagenet", data_dir=str(tmp_path))
    assert "wnids.txt" in str(err.value)  # the expected layout is spelled out
    with pytest.raises(DatasetNotFoundError, match="empty"):
        load_image_dataset("tiny-imagenet", "train")


# ---------------------------------------------------------------- image folder


def _write_tree(root: Path, counts: dict[str, int], size=(20, 12)) -> None:
    palette = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}
    for cls, n in counts.items():
        for i in range(n):
            path = root / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, palette[cls]).save(path)


def test_imagefolder_holdout(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"cat": 10, "dog": 5})
    check_dataset("imagefolder", data_dir=str(tmp_path))
    train = load_image_dataset("imagefolder", "train", data_dir=str(tmp_path), image_size=8)
    test = load_image_dataset("imagefolder", "test", data_dir=str(tmp_path), image_size=8)
    assert len(train) == 12 and len(test) == 3 and train.num_classes == 2
    assert np.bincount(test.labels, minlength=2).tolist() == [2, 1]  # stratified 20%
    assert train.images.shape == (12, 8, 8, 3)  # non-square 20x12 stretched to 8x8
    # Colours match the class folders (cat = red, dog = green).
    assert (train.images[train.labels == 0][..., 0] > 150).all()
    assert (test.images[test.labels == 1][..., 1] > 150).all()
    clear_dataset_cache()
    again = load_image_dataset("imagefolder", "test", data_dir=str(tmp_path), image_size=8)
    np.testing.assert_array_equal(again.images, test.images)


def test_imagefolder_explicit_splits(tmp_path: Path) -> None:
    _write_tree(tmp_path / "train", {"cat": 2, "dog": 2, "emu": 1})
    _write_tree(tmp_path / "val", {"emu": 2})  # val/ works like test/; missing classes ok
    train = load_image_dataset("imagefolder", "train", data_dir=str(tmp_path))
    test = load_image_dataset("imagefolder", "test", data_dir=str(tmp_path))
    assert train.labels.tolist() == [0, 0, 1, 1, 2] and train.num_classes == 3
    assert test.labels.tolist() == [2, 2] and test.images.shape == (2, 32, 32, 3)


def test_imagefolder_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        check_dataset("imagefolder", data_dir=str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="<class>/<image>"):
        check_dataset("imagefolder", data_dir=str(tmp_path / "empty"))


# ---------------------------------------------------------------- Hugging Face


def test_hf_imagefolder_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = tmp_path / "data"
    _write_tree(data / "train", {"cat": 3, "dog": 2}, size=(40, 40))
    _write_tree(data / "test", {"cat": 1, "dog": 1}, size=(40, 40))
    kwargs = {"hf_dataset": "imagefolder", "data_dir": str(data), "cache_dir": str(tmp_path)}
    check_dataset("hf", hf_dataset="imagefolder", data_dir=str(data))
    train = load_image_dataset("hf", "train", image_size=16, **kwargs)
    test = load_image_dataset("hf", "test", image_size=16, **kwargs)
    assert train.images.shape == (5, 16, 16, 3) and train.num_classes == 2
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1]
    assert sorted(test.labels.tolist()) == [0, 1]
    # Labels agree with the pixels: cat (0) is red, dog (1) is green.
    assert (train.images[train.labels == 0][..., 0] > 150).all()
    assert (train.images[train.labels == 1][..., 1] > 150).all()
    assert (tmp_path / "huggingface").is_dir()  # HF cache went under cache_dir


# ---------------------------------------------------------------- argument checks


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiny-imagenet") as err:
        load_image_dataset("mnist", "train")
    assert "'mnist'" in str(err.value)
    with pytest.raises(ValueError, match="imagefolder"):
        check_dataset("svhn")
    with pytest.raises(ValueError, match="split"):
        load_image_dataset("embedded-digits", "val", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="image_size"):
        load_image_dataset("embedded-digits", "train", image_size=0, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="hf_dataset"):
        check_dataset("hf")
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        check_dataset("hf", hf_dataset="imagefolder", data_dir=str(tmp_path / "absent"))
    check_dataset("embedded-digits")  # always available, nothing to check
    assert DATASETS[0] == "embedded-digits" and len(DATASETS) == 6


def test_image_arrays_validation_and_subset() -> None:
    images = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    arrays = ImageArrays(images, np.array([0, 1, 2, 1], dtype=np.int64), 3, "toy")
    sub = arrays.subset(np.array([3, 1]))
    assert len(sub) == 2 and sub.labels.tolist() == [1, 1] and sub.num_classes == 3
    np.testing.assert_array_equal(sub.images[0], images[3])
    masked = arrays.subset(arrays.labels == 1)
    assert masked.labels.tolist() == [1, 1] and np.array_equal(masked.images, images[[1, 3]])
    with pytest.raises(ValueError, match="labels must lie"):
        ImageArrays(images, np.array([0, 1, 2, 3], dtype=np.int64), 3, "toy")
    with pytest.raises(ValueError, match="uint8"):
        ImageArrays(images.astype(np.float32), arrays.labels, 3, "toy")
