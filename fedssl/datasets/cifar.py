"""CIFAR-10 / CIFAR-100 from the official "python version" pickle batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fedssl.datasets.base import DatasetNotFoundError, ImageArrays, resize_images

# name -> (extracted folder name, train files, test files, label key, num_classes)
_SPECS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], bytes, int]] = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
        10,
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), b"fine_labels", 100),
}


def _layout(name: str) -> str:
    folder, train, test, _, _ = _SPECS[name]
    return f"<data_dir>/{folder}/{{{','.join(train + test)}}} (or those files directly in data_dir)"


def find_cifar_dir(name: str, data_dir: str | Path) -> Path:
    """Return the folder holding the pickle batches of ``name`` ("cifar10" or "cifar100").

    ``data_dir`` may be the extracted folder itself or its parent.

    Raises
    ------
    DatasetNotFoundError
        If ``data_dir`` is empty, missing, or lacks a batch file.
    """
    folder, train, test, _, _ = _SPECS[name]
    if not str(data_dir):
        raise DatasetNotFoundError(
            f"dataset {name!r} needs data_dir (got an empty string); expected layout: "
            f"{_layout(name)}. Download the python version from "
            "https://www.cs.toronto.edu/~kriz/cifar.html and extract it."
        )
    root = Path(data_dir).expanduser()
    candidates = [root, root / folder]
    for cand in candidates:
        if all((cand / f).is_file() for f in train + test):
            return cand
    looked = ", ".join(str(c) for c in candidates)
    missing = [f for f in train + test if not (candidates[-1] / f).is_file()]
    raise DatasetNotFoundError(
        f"dataset {name!r}: no complete set of pickle batches for data_dir={str(data_dir)!r} "
        f"(looked in {looked}; missing e.g. {missing[:3]}); expected layout: {_layout(name)}"
    )


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    # Rows are 3072 bytes: the 1024 red, then green, then blue values of a 32x32 image.
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data.transpose(0, 2, 3, 1), np.asarray(batch[label_key], dtype=np.int64)


def load_cifar(name: str, split: str, *, data_dir: str | Path, image_size: int) -> ImageArrays:
    """Load ``split`` ("train"/"test") of ``name`` ("cifar10"/"cifar100") from pickles."""
    folder = find_cifar_dir(name, data_dir)
    _, train, test, label_key, num_classes = _SPECS[name]
    parts = [_read_batch(folder / f, label_key) for f in (train if split == "train" else test)]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    return ImageArrays(
        images=resize_images(images, image_size),
        labels=labels,
        num_classes=num_classes,
        name=f"{name}/{split}",
    )
