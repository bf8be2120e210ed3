"""Any Hugging Face image-classification dataset through ``flwr_datasets.FederatedDataset``.

The whole split is loaded (partitioning is done later by :mod:`fedssl.datasets.partitioning`)
in its published order (``shuffle=False``). Extra arguments are forwarded explicitly to
``datasets.load_dataset`` (FederatedDataset passes its ``**load_dataset_kwargs`` on):

* ``data_dir`` -> ``load_dataset(data_dir=...)`` when non-empty; this also makes packaged
  builders work offline, e.g. ``hf_dataset="imagefolder"`` with a local folder tree;
* ``cache_dir`` -> ``load_dataset(cache_dir=<cache_dir>/huggingface)`` when given, else the
  Hugging Face default cache is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedssl.datasets.base import ImageArrays, stack_images, to_rgb_array

if TYPE_CHECKING:
    import datasets

# Preferred names when a dataset has several candidate columns (e.g. CIFAR-100 has the
# ClassLabel columns "fine_label" and "coarse_label").
LABEL_NAMES = ("label", "fine_label", "labels")
IMAGE_NAMES = ("image", "img")
TEST_SPLITS = ("test", "validation")


def _pick(candidates: list[str], preferred: tuple[str, ...]) -> str | None:
    for name in preferred:
        if name in candidates:
            return name
    return candidates[0] if candidates else None


def detect_columns(features: datasets.Features) -> tuple[str, str, int | None]:
    """Return ``(image_column, label_column, num_classes or None)`` for ``features``.

    The image column is a ``datasets.Image`` feature; the label column a ``ClassLabel``
    feature (its ``num_classes`` is returned) or else one named label/fine_label/labels.
    """
    import datasets  # deferred: importing datasets/flwr takes seconds

    image_cols = [k for k, f in features.items() if isinstance(f, datasets.Image)]
    class_cols = [k for k, f in features.items() if isinstance(f, datasets.ClassLabel)]
    image_col = _pick(image_cols, IMAGE_NAMES)
    label_col = _pick(class_cols, LABEL_NAMES)
    if label_col is None:
        label_col = _pick([k for k in LABEL_NAMES if k in features], LABEL_NAMES)
    if image_col is None or label_col is None:
        raise ValueError(
            "hf dataset needs an Image feature column and a ClassLabel (or label/fine_label/"
            f"labels) column; got features {dict(features)}"
        )
    feature = features[label_col]
    num_classes = feature.num_classes if isinstance(feature, datasets.ClassLabel) else None
    return image_col, label_col, num_classes


def load_hf(
    hf_dataset: str,
    split: str,
    *,
    image_size: int,
    data_dir: str = "",
    cache_dir: str | Path | None = None,
) -> ImageArrays:
    """Load ``split`` of the Hugging Face dataset ``hf_dataset`` (test falls back to validation).

    Parameters
    ----------
    hf_dataset : str
        Hub id (e.g. ``"uoft-cs/cifar10"``) or packaged builder (e.g. ``"imagefolder"``).
    split : str
        ``"train"`` or ``"test"`` (tries the ``test`` then the ``validation`` split).
    image_size : int
        Output side length.
    data_dir : str
        Forwarded to ``datasets.load_dataset(data_dir=...)`` when non-empty.
    cache_dir : str or Path, optional
        Hugging Face cache goes under ``<cache_dir>/huggingface`` when given.
    """
    from flwr_datasets import FederatedDataset  # deferred: slow import

    kwargs: dict[str, Any] = {}
    if data_dir:
        kwargs["data_dir"] = str(Path(data_dir).expanduser())
    if cache_dir is not None:
        kwargs["cache_dir"] = str(Path(cache_dir).expanduser() / "huggingface")
    fds = FederatedDataset(dataset=hf_dataset, partitioners={"train": 1}, shuffle=False, **kwargs)
    candidates = ("train",) if split == "train" else TEST_SPLITS
    errors = []
    ds = None
    for name in candidates:
        try:
            ds = fds.load_split(name)
            break
        except ValueError as err:  # FederatedDataset's "split not present" error
            errors.append(str(err))
    if ds is None:
        raise ValueError(
            f"hf dataset {hf_dataset!r} has none of the splits {list(candidates)} needed for "
            f"split={split!r}: {' | '.join(errors)}"
        )
    image_col, label_col, num_classes = detect_columns(ds.features)
    ds = ds.select_columns([image_col, label_col])
    labels = np.asarray(ds[label_col], dtype=np.int64)
    images = stack_images([to_rgb_array(row[image_col], image_size) for row in ds], image_size)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 1
    return ImageArrays(
        images=images, labels=labels, num_classes=num_classes, name=f"hf:{hf_dataset}/{split}"
    )
