"""Common in-memory image container, errors and pixel helpers shared by all sources."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image


# eq=False: field-wise == / hash on numpy arrays is ambiguous; compare by identity instead.
@dataclass(frozen=True, eq=False)
class ImageArrays:
    """A labelled image set held in memory.

    Attributes
    ----------
    images : np.ndarray
        ``uint8`` array of shape ``[N, H, W, 3]``; all images share one size.
    labels : np.ndarray
        ``int64`` array of shape ``[N]`` with values in ``[0, num_classes)``.
    num_classes : int
        Number of classes of the dataset (not only those present in this set).
    name : str
        Human-readable dataset name, e.g. ``"cifar10/train"``.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"images must be a uint8 array of shape [N, H, W, 3]; got dtype "
                f"{self.images.dtype} and shape {self.images.shape}"
            )
        check_labels(self.labels, self.images.shape[0], self.num_classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray) -> ImageArrays:
        """Return the images at ``indices`` (a copy), keeping ``num_classes`` and ``name``.

        ``indices`` are integer positions or a boolean mask of length ``len(self)``.
        """
        idx = np.asarray(indices)
        # A boolean mask cast to int64 would silently select rows 0 and 1.
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64, copy=False)
        return ImageArrays(
            images=self.images[idx],
            labels=self.labels[idx],
            num_classes=self.num_classes,
            name=self.name,
        )


def check_labels(labels: np.ndarray, count: int, num_classes: int) -> None:
    """Raise ValueError unless ``labels`` is ``int64 [count]`` with values in
    ``[0, num_classes)`` (the invariant of every in-memory dataset container)."""
    if labels.dtype != np.int64 or labels.shape != (count,):
        raise ValueError(
            f"labels must be an int64 array of shape [{count}]; got dtype "
            f"{labels.dtype} and shape {labels.shape}"
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got range [{labels.min()}, {labels.max()}]"
        )


class DatasetNotFoundError(FileNotFoundError):
    """Dataset files are missing; the message says what, where, and the expected layout."""


class CorruptDataError(ValueError):
    """A dataset file exists but its content is unusable (empty, truncated, not the expected
    format, wrong keys or shapes, or a pickle asking for a global it may not load).

    The message names the file and what is wrong with it. A ``ValueError``, so that callers
    which treat bad data as a bad value (the config check before Ray starts) report it too.
    ``path`` and ``reason``, when given, are the file and what is wrong with it, for callers
    that collect several (the audio loaders skip such files and list them).
    """

    def __init__(self, message: str, *, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset's name and expected on-disk layout, and the checks that quote them.

    Every :class:`DatasetNotFoundError` raised here names the dataset, says what was wrong
    and where, and ends with ``expected layout: <layout>``. The audio and video sources
    subclass it with what they read (tables, split lists). ``root_key`` is what the folder
    is called in the message for an empty one (the argument or run-config key).
    """

    name: str
    layout: str
    root_key: str = "root"

    def not_found(self, what: str) -> DatasetNotFoundError:
        """``DatasetNotFoundError("dataset '<name>': <what>; expected layout: <layout>")``."""
        return DatasetNotFoundError(f"dataset {self.name!r}: {what}; expected layout: "
                                    f"{self.layout}")

    def root_dir(self, root: str | Path) -> Path:
        """``root`` as a path to an existing folder (``~`` expanded)."""
        if not str(root):
            raise DatasetNotFoundError(f"dataset {self.name!r} needs {self.root_key}, the "
                                       f"dataset's folder (got an empty string); expected "
                                       f"layout: {self.layout}")
        path = Path(root).expanduser()
        if not path.is_dir():
            raise self.not_found(f"{self.root_key}={str(root)!r} is not a directory (looked "
                                 f"at {path.resolve()})")
        return path

    def require_dir(self, path: Path) -> Path:
        """``path``, which must be an existing folder."""
        if not path.is_dir():
            raise self.not_found(f"folder {path} is missing")
        return path

    def require_file(self, path: Path) -> Path:
        """``path``, which must be an existing file."""
        if not path.is_file():
            raise self.not_found(f"file {path} is missing")
        return path


#: How many bad files a warning or error names (all are counted).
BAD_FILES_NAMED = 10

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def describe_bad_files(problems: Mapping[str, str], limit: int | None = None) -> str:
    """``"<file> (<reason>); ..."`` for the first ``limit`` files (default
    :data:`BAD_FILES_NAMED`), then ``"; and N more"``."""
    limit = BAD_FILES_NAMED if limit is None else limit
    named = [f"{path} ({reason})" for path, reason in list(problems.items())[:limit]]
    more = len(problems) - len(named)
    return "; ".join(named) + (f"; and {more} more" if more > 0 else "")


def skip_corrupt(
    paths: Iterable[_Item],
    load: Callable[[_Item], _Result],
    *,
    what: str,
    where: str | Path,
    stacklevel: int = 2,
) -> tuple[list[tuple[_Item, _Result]], dict[str, str]]:
    """Call ``load(path)`` on every path, skipping those that raise :class:`CorruptDataError`.

    Returns the ``(path, result)`` pairs that loaded, in order, and the bad files with their
    reasons (``{str(path): reason}``). The bad files are named (up to
    :data:`BAD_FILES_NAMED`) and counted in ONE ``UserWarning``. ``what`` names the files
    (``"video files"``) and ``where`` the place they were found, for the messages.

    Raises
    ------
    DatasetNotFoundError
        ``paths`` is empty (the message says where it looked).
    CorruptDataError
        No file loads; the message says where it looked and names the bad files.
    """
    items = list(paths)
    if not items:
        raise DatasetNotFoundError(f"no {what} found in {where}")
    kept: list[tuple[_Item, _Result]] = []
    bad: dict[str, str] = {}
    for item in items:
        try:
            kept.append((item, load(item)))
        except CorruptDataError as err:
            bad[str(item)] = err.reason or str(err)
    if bad and not kept:
        raise CorruptDataError(
            f"none of the {len(items)} {what} in {where} can be decoded: "
            f"{describe_bad_files(bad)}",
            path=str(where), reason=f"all {len(items)} {what} are unusable",
        )
    if bad:
        warnings.warn(
            f"{where}: skipped {len(bad)} of {len(items)} {what} that cannot be decoded: "
            f"{describe_bad_files(bad)}",
            stacklevel=stacklevel,
        )
    return kept, bad


def skipped_files(*splits: object) -> list[str]:
    """The files the loaders skipped as undecodable in any of ``splits``, sorted, each once.

    Reads :attr:`AudioArrays.skipped <fedssl.datasets.audio_base.AudioArrays.skipped>`; a split
    without it (images, which fail rather than skip) adds nothing. For a run summary:
    ``skipped_files(train, test)``.
    """
    return sorted({f for split in splits for f in getattr(split, "skipped", ())})


def default_cache_dir() -> Path:
    """Return ``$FEDSSL_CACHE_DIR`` if set, else ``~/.cache/fedssl``."""
    env = os.environ.get("FEDSSL_CACHE_DIR", "")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fedssl"


def to_rgb_array(image: Image.Image, size: int) -> np.ndarray:
    """Convert a PIL image to ``uint8 [size, size, 3]`` RGB, resizing only when needed.

    Resizing uses bilinear filtering, which Pillow antialiases when downscaling. The aspect
    ratio is not preserved: every image is stretched to a square.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a ``uint8 [N, H, W, 3]`` batch to ``[N, size, size, 3]`` (no-op if already so)."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((images.shape[0], size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = to_rgb_array(Image.fromarray(img), size)
    return out


def load_image_file(path: str | Path, size: int) -> np.ndarray:
    """Decode an image file to ``uint8 [size, size, 3]`` RGB (grayscale/RGBA converted)."""
    with Image.open(path) as img:
        return to_rgb_array(img, size)


def stack_images(arrays: list[np.ndarray], size: int) -> np.ndarray:
    """Stack per-image arrays into ``[N, size, size, 3]``; an empty list gives ``N = 0``."""
    if not arrays:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(arrays).astype(np.uint8, copy=False)
