"""Any ``root/<class>/<image>`` tree, discovered with ``torchvision.datasets.ImageFolder``.

Splits: if ``root/train`` and ``root/test`` (or ``root/val``) exist they are the two splits,
and class indices come from the sorted class folders of ``root/train``. Otherwise the whole
tree is the dataset and a deterministic, stratified 20 % hold-out (seed 0) is the
``"test"`` split, the rest ``"train"``; if a class is too small to stratify, the hold-out is
drawn without stratification (with a warning).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import train_test_split

from fedssl.datasets.base import DatasetNotFoundError, ImageArrays, load_image_file, stack_images

# The layout check is torch-free and lives with the other checks (fedssl.datasets.checks).
from fedssl.datasets.checks import IMAGEFOLDER_LAYOUT, split_roots

if TYPE_CHECKING:
    from torchvision.datasets import ImageFolder

HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0
LAYOUT = IMAGEFOLDER_LAYOUT


def _discover(root: Path, allow_empty: bool = False) -> ImageFolder:
    # Imported here: torchvision (and torch) take seconds to import and most runs never
    # need this source.
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(root), allow_empty=allow_empty)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(
            f"dataset 'imagefolder': no usable images under {root} ({err}); expected "
            f"layout: {LAYOUT}"
        ) from err


def load_imagefolder(split: str, *, data_dir: str | Path, image_size: int) -> ImageArrays:
    """Load ``split`` ("train"/"test") of an image-folder tree; see the module docstring."""
    train_root, test_root = split_roots(data_dir)
    train_tree = _discover(train_root)
    classes = train_tree.classes
    if test_root is None:
        samples = train_tree.samples
        labels = np.asarray(train_tree.targets, dtype=np.int64)
        idx = np.arange(len(samples))
        try:
            train_idx, test_idx = train_test_split(
                idx, test_size=HOLDOUT_FRACTION, random_state=HOLDOUT_SEED, stratify=labels
            )
        except ValueError as err:
            warnings.warn(
                f"imagefolder {train_root}: stratified 20% hold-out impossible ({err}); "
                "using an unstratified hold-out instead",
                stacklevel=2,
            )
            train_idx, test_idx = train_test_split(
                idx, test_size=HOLDOUT_FRACTION, random_state=HOLDOUT_SEED
            )
        chosen = np.sort(train_idx if split == "train" else test_idx)
        files = [samples[i][0] for i in chosen]
        targets = labels[chosen]
    elif split == "train":
        files = [path for path, _ in train_tree.samples]
        targets = np.asarray(train_tree.targets, dtype=np.int64)
    else:
        test_tree = _discover(test_root, allow_empty=True)
        unknown = sorted(set(test_tree.classes) - set(classes))
        if unknown:
            raise ValueError(
                f"imagefolder {test_root}: classes {unknown[:5]} are not in {train_root} "
                f"(train classes: {classes[:10]}{'...' if len(classes) > 10 else ''})"
            )
        index = {c: i for i, c in enumerate(classes)}
        files = [path for path, _ in test_tree.samples]
        targets = np.asarray(
            [index[test_tree.classes[t]] for t in test_tree.targets], dtype=np.int64
        )
    images = stack_images([load_image_file(f, image_size) for f in files], image_size)
    return ImageArrays(
        images=images,
        labels=targets.astype(np.int64),
        num_classes=len(classes),
        name=f"imagefolder:{Path(data_dir).name}/{split}",
    )
