"""CIFAR-10 / CIFAR-100 from the official "python version" pickle batches.

The batches are pickled dicts (``b"data"``: ``uint8 [N, 3072]``, ``b"labels"`` or
``b"fine_labels"``: ``N`` ints, plus names that are not used). They are read with a
restricted unpickler that resolves only the globals a numpy array needs (see
:data:`CIFAR_PICKLE_GLOBALS`), so a tampered file cannot run code when it is loaded.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fedssl.datasets.base import (
    CorruptDataError,
    DatasetNotFoundError,
    ImageArrays,
    resize_images,
)

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

#: The only globals a CIFAR batch may ask the unpickler for: what pickling a numpy array
#: writes under numpy 1.x (``numpy.core``) and 2.x (``numpy._core``), at protocols 0-4
#: (``_reconstruct``) and 5 (``_frombuffer``), and ``_codecs.encode``, which Python 3 writes
#: for ``bytes`` at protocols 0-2. The official files (Python 2, numpy 1.x) need only the
#: first three. Anything else is refused with :class:`CorruptDataError`.
CIFAR_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})

# The bytes a pickle can start with: PROTO <2..5> for protocols 2-5, and the MARK / dict
# opcodes a dict starts with at protocols 0 and 1.
_PICKLE_PROTOCOLS = range(2, 6)
_PROTOCOL_0_1_STARTS = (b"(", b"}")
_PICKLE_STOP = b"."


def _layout(name: str) -> str:
    folder, train, test, _, _ = _SPECS[name]
    return f"<data_dir>/{folder}/{{{','.join(train + test)}}} (or those files directly in data_dir)"


def _expected(name: str) -> str:
    _, _, _, label_key, num_classes = _SPECS[name]
    return (
        f"expected a pickled dict with b'data' (uint8 [N, 3072]) and {label_key!r} (N ints in "
        f"[0, {num_classes})), the python version from https://www.cs.toronto.edu/~kriz/cifar.html"
    )


def find_cifar_dir(name: str, data_dir: str | Path) -> Path:
    """Return the folder holding the pickle batches of ``name`` ("cifar10" or "cifar100").

    ``data_dir`` may be the extracted folder itself or its parent. Each batch file is also
    checked cheaply, without unpickling it (:func:`check_pickle_file`): not empty, starts
    like a pickle and ends with its STOP opcode (a truncated file almost never does).

    Raises
    ------
    DatasetNotFoundError
        If ``data_dir`` is empty, missing, or lacks a batch file.
    CorruptDataError
        If a batch file fails the cheap check; the message names every such file.
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
            problems = [
                f"{cand / f}: {problem}"
                for f in train + test
                if (problem := check_pickle_file(cand / f)) is not None
            ]
            if problems:
                raise CorruptDataError(
                    f"dataset {name!r}: {len(problems)} of {len(train + test)} batch files are "
                    f"corrupt: {'; '.join(problems)}; {_expected(name)}"
                )
            return cand
    looked = ", ".join(str(c) for c in candidates)
    missing = [f for f in train + test if not (candidates[-1] / f).is_file()]
    raise DatasetNotFoundError(
        f"dataset {name!r}: no complete set of pickle batches for data_dir={str(data_dir)!r} "
        f"(looked in {looked}; missing e.g. {missing[:3]}); expected layout: {_layout(name)}"
    )


def check_pickle_file(path: Path) -> str | None:
    """What is wrong with the pickle file ``path`` at a glance (``None``: nothing seen).

    Reads its first two bytes and its last one, nothing else: an empty file, one that does
    not start like a pickle (protocol 0-5) or one that does not end with the STOP opcode.
    """
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with path.open("rb") as f:
        head = f.read(2)
        f.seek(size - 1)
        tail = f.read(1)
    proto_ok = head[:1] == b"\x80" and len(head) == 2 and head[1] in _PICKLE_PROTOCOLS
    if not (proto_ok or head[:1] in _PROTOCOL_0_1_STARTS):
        return f"does not start like a pickle (first bytes {head!r})"
    if tail != _PICKLE_STOP:
        return f"does not end with the pickle STOP opcode (truncated? {size} bytes)"
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`CIFAR_PICKLE_GLOBALS`; ``bytes`` for Python 2 strings."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR_PICKLE_GLOBALS:
            raise CorruptDataError(
                f"CIFAR batch {self._path}: refused to load the global {module}.{name} (a "
                "CIFAR batch holds only numpy arrays and plain Python values; allowed: "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in CIFAR_PICKLE_GLOBALS))}); "
                "is this the official file?"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> Any:
    with path.open("rb") as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except CorruptDataError:
            raise
        # What unpickling a truncated or garbled stream raises (numpy adds its own
        # ValueError / TypeError for malformed array state).
        except (
            EOFError,
            pickle.UnpicklingError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            OverflowError,
            MemoryError,
            UnicodeDecodeError,
        ) as err:
            raise CorruptDataError(
                f"CIFAR batch {path} is corrupt or truncated: cannot unpickle it "
                f"({type(err).__name__}: {err})"
            ) from err


def _entry(batch: dict, key: bytes) -> Any:
    """``batch[key]``, or its ``str`` twin for a batch re-pickled with text keys."""
    if key in batch:
        return batch[key]
    return batch.get(key.decode())


def _read_batch(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    _, _, _, label_key, num_classes = _SPECS[name]
    batch = _unpickle(path)

    def bad(what: str) -> CorruptDataError:
        return CorruptDataError(f"CIFAR batch {path}: {what}; {_expected(name)}")

    if not isinstance(batch, dict):
        raise bad(f"holds a {type(batch).__name__}, not a dict")
    data, labels = _entry(batch, b"data"), _entry(batch, label_key)
    missing = [k for k, v in ((b"data", data), (label_key, labels)) if v is None]
    if missing:
        raise bad(f"lacks the keys {missing} (has {sorted(batch, key=repr)})")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise bad(f"b'data' must be an array of shape [N, 3072]; got {shape}")
    if data.dtype != np.uint8:
        if data.dtype.kind not in "iu" or (data.size and (data.min() < 0 or data.max() > 255)):
            raise bad(f"b'data' must hold bytes (uint8); got dtype {data.dtype}")
        data = data.astype(np.uint8)
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise bad(f"{label_key!r} is not a sequence of ints ({err})") from err
    if label_array.shape != (data.shape[0],):
        raise bad(
            f"{label_key!r} must hold one label per row of b'data' ({data.shape[0]}); got shape "
            f"{label_array.shape}"
        )
    if label_array.size and (label_array.min() < 0 or label_array.max() >= num_classes):
        raise bad(
            f"{label_key!r} must lie in [0, {num_classes}); got range "
            f"[{label_array.min()}, {label_array.max()}]"
        )
    # Rows are 3072 bytes: the 1024 red, then green, then blue values of a 32x32 image.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, label_array


def load_cifar(name: str, split: str, *, data_dir: str | Path, image_size: int) -> ImageArrays:
    """Load ``split`` ("train"/"test") of ``name`` ("cifar10"/"cifar100") from pickles.

    Raises
    ------
    DatasetNotFoundError
        If a batch file is missing.
    CorruptDataError
        If a batch is truncated or garbled, asks for a global outside
        :data:`CIFAR_PICKLE_GLOBALS`, or lacks ``b"data"`` / the labels or has them in the
        wrong shape; the message names the file and what is wrong.
    """
    folder = find_cifar_dir(name, data_dir)
    _, train, test, _, num_classes = _SPECS[name]
    parts = [_read_batch(folder / f, name) for f in (train if split == "train" else test)]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    return ImageArrays(
        images=resize_images(images, image_size),
        labels=labels,
        num_classes=num_classes,
        name=f"{name}/{split}",
    )
