"""Single entry point that dispatches a dataset name to its source module."""

from __future__ import annotations

import functools

from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError, ImageArrays
from fedssl.datasets.checks import DATASETS, check_image_dataset
from fedssl.datasets.cifar import load_cifar
from fedssl.datasets.embedded import load_embedded_digits
from fedssl.datasets.huggingface import load_hf
from fedssl.datasets.imagefolder import load_imagefolder
from fedssl.datasets.tiny_imagenet import load_tiny_imagenet

SPLITS: tuple[str, ...] = ("train", "test")
# Small: one Tiny-ImageNet train split alone is about 1.2 GB.
_CACHE_SIZE = 4


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"dataset name must be one of {DATASETS}; got {name!r}")


# The cheap layout check (torch-free, what the dataset registry runs before a run starts).
check_dataset = check_image_dataset


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_cached(
    name: str, split: str, data_dir: str, hf_dataset: str, image_size: int, cache_dir: str | None
) -> ImageArrays:
    check_dataset(name, data_dir=data_dir, hf_dataset=hf_dataset)
    if name == "embedded-digits":
        arrays = load_embedded_digits(split, image_size=image_size, cache_dir=cache_dir)
    elif name in ("cifar10", "cifar100"):
        arrays = load_cifar(name, split, data_dir=data_dir, image_size=image_size)
    elif name == "tiny-imagenet":
        arrays = load_tiny_imagenet(split, data_dir=data_dir, image_size=image_size)
    elif name == "imagefolder":
        arrays = load_imagefolder(split, data_dir=data_dir, image_size=image_size)
    else:
        arrays = load_hf(
            hf_dataset, split, image_size=image_size, data_dir=data_dir, cache_dir=cache_dir
        )
    # The cached object is shared by every caller in the process: freeze it so an in-place
    # edit by one caller cannot corrupt another's data (copy before modifying).
    arrays.images.setflags(write=False)
    arrays.labels.setflags(write=False)
    return arrays


def load_image_dataset(
    name: str,
    split: str,
    *,
    data_dir: str = "",
    hf_dataset: str = "",
    image_size: int = 32,
    cache_dir: str | None = None,
) -> ImageArrays:
    """Load one split of a dataset as ``uint8 [N, S, S, 3]`` images and ``int64`` labels.

    Results are memoised per process (keyed by all arguments) and returned read-only;
    ``ImageArrays.subset`` returns writable copies.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    split : str
        ``"train"`` or ``"test"`` (the validation set where a dataset has no labelled test).
    data_dir : str
        Dataset location on disk (not used by ``embedded-digits``; optional for ``hf``,
        where it is forwarded to ``datasets.load_dataset``).
    hf_dataset : str
        Hugging Face dataset id, required for ``name == "hf"``.
    image_size : int
        Side ``S`` of the output; images of another size are resized (PIL bilinear,
        antialiased when downscaling; non-square images are stretched).
    cache_dir : str, optional
        Cache for ``embedded-digits`` (and the Hugging Face cache for ``hf``); defaults to
        :func:`default_cache_dir`.

    Raises
    ------
    ValueError
        Unknown ``name``/``split``, bad ``image_size``, missing ``hf_dataset``.
    DatasetNotFoundError
        The files are not where ``data_dir`` says.
    CorruptDataError
        A CIFAR batch is truncated, garbled, wrong-keyed or asks the unpickler for a global
        it may not load (the message names the file and the fault).
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int; got {image_size!r}")
    return _load_cached(
        name,
        split,
        str(data_dir),
        str(hf_dataset),
        image_size,
        None if cache_dir is None else str(cache_dir),
    )


def clear_dataset_cache() -> None:
    """Drop the in-process memoised datasets (e.g. after the files on disk changed)."""
    _load_cached.cache_clear()


__all__ = [
    "DATASETS",
    "CorruptDataError",
    "DatasetNotFoundError",
    "check_dataset",
    "clear_dataset_cache",
    "load_image_dataset",
]
