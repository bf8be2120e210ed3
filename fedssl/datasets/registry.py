"""The dataset registry: every name a run's ``dataset`` can take, with its tags.

Each entry is the dataset's cheap layout check ``(*, data_dir, hf_dataset) -> None`` (file
names, sizes and at most headers; nothing decoded), raising
:class:`~fedssl.datasets.base.DatasetNotFoundError` with the paths examined and the layout
expected, :class:`~fedssl.datasets.base.CorruptDataError` (a ``ValueError``) naming the files
that cannot be used when the dataset cannot load without them, or ``ValueError`` for bad
arguments. Bad files the loader will skip (audio) are named in one warning instead. Tags:

``modality``
    ``"image"`` or ``"audio"``: which tasks can train on it.
``local_files``
    ``True`` when it is read from ``data-dir`` (or fetched), ``False`` for embedded data.
``groups``
    ``True`` when its samples may carry a group id (speaker, recording) for the ``group``
    partitioner.

The loaders register their datasets in :mod:`fedssl.datasets.loader` (images) and
:mod:`fedssl.datasets.audio_loader` (audio).
"""

from __future__ import annotations

from collections.abc import Callable

from fedssl.common.registry import Registry

__all__ = ["DATASET_REGISTRY", "DatasetCheck"]

DatasetCheck = Callable[..., None]

DATASET_REGISTRY: Registry[DatasetCheck] = Registry("dataset")
