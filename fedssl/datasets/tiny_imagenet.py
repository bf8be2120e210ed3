"""Tiny ImageNet (``tiny-imagenet-200``): 200 classes of 64x64 JPEGs.

Split ``"test"`` is the official validation set (the official test set has no labels).
Class index = position of the wnid in the sorted contents of ``wnids.txt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedssl.datasets.base import DatasetNotFoundError, ImageArrays, load_image_file, stack_images

FOLDER = "tiny-imagenet-200"
LAYOUT = (
    f"<data_dir>/{FOLDER}/ (or data_dir itself) containing wnids.txt, "
    "train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt "
    "(tab-separated: file, wnid, x, y, w, h)"
)


def _missing_parts(root: Path) -> list[str]:
    needed = [root / "wnids.txt", root / "train", root / "val" / "images"]
    needed.append(root / "val" / "val_annotations.txt")
    missing = [str(p.relative_to(root)) for p in needed if not p.exists()]
    if not missing:
        for wnid in _read_wnids(root):
            if not (root / "train" / wnid / "images").is_dir():
                missing.append(f"train/{wnid}/images")
    return missing


def _read_wnids(root: Path) -> list[str]:
    wnids = sorted({line.strip() for line in (root / "wnids.txt").read_text().splitlines()})
    return [w for w in wnids if w]


def find_tiny_imagenet_dir(data_dir: str | Path) -> Path:
    """Return the ``tiny-imagenet-200`` folder; ``data_dir`` may be it or its parent.

    Raises
    ------
    DatasetNotFoundError
        If ``data_dir`` is empty or missing, or the layout is incomplete.
    """
    if not str(data_dir):
        raise DatasetNotFoundError(
            "dataset 'tiny-imagenet' needs data_dir (got an empty string); expected layout: "
            f"{LAYOUT}. Download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it."
        )
    root = Path(data_dir).expanduser()
    candidates = [root, root / FOLDER]
    reports = []
    for cand in candidates:
        missing = _missing_parts(cand)
        if not missing:
            return cand
        reports.append(f"{cand} (missing {', '.join(missing[:3])})")
    raise DatasetNotFoundError(
        f"dataset 'tiny-imagenet' not found for data_dir={str(data_dir)!r}; looked in "
        f"{'; '.join(reports)}. Expected layout: {LAYOUT}"
    )


def load_tiny_imagenet(split: str, *, data_dir: str | Path, image_size: int) -> ImageArrays:
    """Load ``split`` ("train" or "test" = official val) of Tiny ImageNet."""
    root = find_tiny_imagenet_dir(data_dir)
    wnids = _read_wnids(root)
    index = {w: i for i, w in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if split == "train":
        for wnid in wnids:
            for path in sorted((root / "train" / wnid / "images").glob("*.JPEG")):
                files.append(path)
                labels.append(index[wnid])
    else:
        rows = []
        ann = root / "val" / "val_annotations.txt"
        for lineno, line in enumerate(ann.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise ValueError(
                    f"{ann}:{lineno}: expected 'file<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h' with a "
                    f"wnid listed in wnids.txt; got {line!r}"
                )
            rows.append((fields[0], index[fields[1]]))
        for fname, label in sorted(rows):  # sorted by file name for a stable order
            files.append(root / "val" / "images" / fname)
            labels.append(label)
    images = stack_images([load_image_file(f, image_size) for f in files], image_size)
    return ImageArrays(
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        num_classes=len(wnids),
        name=f"tiny-imagenet/{split}",
    )
