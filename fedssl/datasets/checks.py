"""The image datasets' cheap layout checks: what :data:`~fedssl.catalogue.DATASET_REGISTRY`
runs before a run starts.

File names and sizes only (the CIFAR batches are also glanced at: not empty, pickle start and
end bytes); nothing is decoded, and nothing here imports torch, torchvision or scikit-learn,
so a wrong ``data-dir`` is answered in a fraction of a second. The image-folder tree is walked
the way ``torchvision.datasets.ImageFolder`` walks it (class folders, image extensions), so a
tree this check accepts is one the loader can read.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedssl.datasets.base import DatasetNotFoundError
from fedssl.datasets.cifar import find_cifar_dir
from fedssl.datasets.tiny_imagenet import find_tiny_imagenet_dir

__all__ = [
    "DATASETS",
    "IMAGEFOLDER_LAYOUT",
    "check_image_dataset",
    "check_imagefolder",
    "split_roots",
]

DATASETS: tuple[str, ...] = (
    "embedded-digits",
    "cifar10",
    "cifar100",
    "tiny-imagenet",
    "imagefolder",
    "hf",
)
IMAGEFOLDER_LAYOUT = (
    "<data_dir>/<class>/<image> (then 20% is held out for test), or "
    "<data_dir>/train/<class>/<image> plus <data_dir>/test/<class>/<image> "
    "(or val/ instead of test/)"
)
# torchvision.datasets.folder.IMG_EXTENSIONS: the files ImageFolder reads.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif",
                                     ".tiff", ".webp")


def check_image_dataset(name: str, *, data_dir: str = "", hf_dataset: str = "") -> None:
    """Cheaply verify that image dataset ``name`` can be loaded.

    ``embedded-digits`` is always available. For ``hf`` only the arguments (and a given
    ``data_dir``) can be checked offline; the dataset itself is fetched on load.

    Raises
    ------
    ValueError
        Unknown ``name``, or ``name == "hf"`` with an empty ``hf_dataset``.
    DatasetNotFoundError
        ``data_dir`` is empty, missing or lacks the expected layout (the message says which
        paths were examined and what layout is expected).
    CorruptDataError
        A CIFAR batch file is empty or truncated or not a pickle (all such files named).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset name must be one of {DATASETS}; got {name!r}")
    if name in ("cifar10", "cifar100"):
        find_cifar_dir(name, data_dir)
    elif name == "tiny-imagenet":
        find_tiny_imagenet_dir(data_dir)
    elif name == "imagefolder":
        check_imagefolder(data_dir)
    elif name == "hf":
        if not hf_dataset:
            raise ValueError(
                "dataset 'hf' needs hf_dataset, a Hugging Face dataset id such as "
                "'uoft-cs/cifar10' (or a packaged builder like 'imagefolder' with data_dir); "
                "got ''"
            )
        if data_dir and not Path(data_dir).expanduser().is_dir():
            raise DatasetNotFoundError(
                f"dataset 'hf' ({hf_dataset!r}): data_dir={data_dir!r} is not a directory "
                f"(looked at {Path(data_dir).expanduser().resolve()}); it is forwarded to "
                "datasets.load_dataset(data_dir=...), e.g. a <split>/<class>/<image> tree "
                "for 'imagefolder'"
            )


def split_roots(data_dir: str | Path) -> tuple[Path, Path | None]:
    """Return ``(train_root, test_root)`` of an image-folder tree; ``test_root`` is None when
    no explicit split exists.

    Raises
    ------
    DatasetNotFoundError
        If ``data_dir`` is empty or missing.
    """
    if not str(data_dir):
        raise DatasetNotFoundError(
            "dataset 'imagefolder' needs data_dir (got an empty string); expected layout: "
            f"{IMAGEFOLDER_LAYOUT}"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"dataset 'imagefolder': data_dir={str(data_dir)!r} is not a directory "
            f"(looked at {root.resolve()}); expected layout: {IMAGEFOLDER_LAYOUT}"
        )
    test = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test is not None:
        return root / "train", test
    return root, None


def check_imagefolder(data_dir: str | Path) -> None:
    """Walk the tree (file names only, no decoding); raise DatasetNotFoundError if unusable:
    no class folder, or (in the train tree) a class folder without an image file."""
    train_root, test_root = split_roots(data_dir)
    _check_tree(train_root, allow_empty=False)
    if test_root is not None:
        _check_tree(test_root, allow_empty=True)


def _check_tree(root: Path, *, allow_empty: bool) -> None:
    # ImageFolder's find_classes and make_dataset, without torchvision.
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        _no_images(root, f"Couldn't find any class folder in {root}.")
    if allow_empty:
        return
    empty = [c for c in classes if not _has_image(root / c)]
    if empty:
        _no_images(root, f"Found no valid file for the classes {', '.join(empty)}. "
                         f"Supported extensions are: {', '.join(IMAGE_EXTENSIONS)}")


def _has_image(folder: Path) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return True
    return False


def _no_images(root: Path, reason: str) -> None:
    raise DatasetNotFoundError(f"dataset 'imagefolder': no usable images under {root} "
                               f"({reason}); expected layout: {IMAGEFOLDER_LAYOUT}")
