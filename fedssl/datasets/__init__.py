"""Image datasets (offline embedded digits, CIFAR, Tiny ImageNet, folders, Hugging Face) and
audio datasets (embedded spoken digits, ESC-50, Speech Commands, UrbanSound8K, VGG-Sound,
EPIC-SOUNDS) as in-memory arrays, and partitioning across federated clients.

The names below load on first use (PEP 562): importing this package, or a light module of it
such as :mod:`fedssl.datasets.checks` (the layout checks validation runs), does not load the
dataset sources (PIL, scikit-learn, pandas, soundfile).
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES: dict[str, str] = {
    "AudioArrays": "fedssl.datasets.audio_base",
    "AUDIO_DATASETS": "fedssl.datasets.audio_loader",
    "check_audio_dataset": "fedssl.datasets.audio_loader",
    "load_audio_dataset": "fedssl.datasets.audio_loader",
    "CorruptDataError": "fedssl.datasets.base",
    "DatasetNotFoundError": "fedssl.datasets.base",
    "ImageArrays": "fedssl.datasets.base",
    "default_cache_dir": "fedssl.datasets.base",
    "skipped_files": "fedssl.datasets.base",
    "DATASETS": "fedssl.datasets.loader",
    "check_dataset": "fedssl.datasets.loader",
    "clear_dataset_cache": "fedssl.datasets.loader",
    "load_image_dataset": "fedssl.datasets.loader",
    "PARTITIONER_REGISTRY": "fedssl.datasets.partitioners",
    "check_partitioner": "fedssl.datasets.partitioners",
    "group_split": "fedssl.datasets.partitioners",
    "partition_with": "fedssl.datasets.partitioners",
    "partitioner_config_keys": "fedssl.datasets.partitioners",
    "PARTITIONERS": "fedssl.datasets.partitioning",
    "class_histograms": "fedssl.datasets.partitioning",
    "paper_dirichlet_split": "fedssl.datasets.partitioning",
    "partition_indices": "fedssl.datasets.partitioning",
    "plot_class_histograms": "fedssl.datasets.partitioning",
    "DATASET_REGISTRY": "fedssl.datasets.registry",
}

__all__ = [
    "AUDIO_DATASETS",
    "DATASETS",
    "DATASET_REGISTRY",
    "PARTITIONERS",
    "PARTITIONER_REGISTRY",
    "AudioArrays",
    "CorruptDataError",
    "DatasetNotFoundError",
    "ImageArrays",
    "check_audio_dataset",
    "check_dataset",
    "check_partitioner",
    "class_histograms",
    "clear_dataset_cache",
    "default_cache_dir",
    "group_split",
    "load_audio_dataset",
    "load_image_dataset",
    "paper_dirichlet_split",
    "partition_indices",
    "partition_with",
    "partitioner_config_keys",
    "plot_class_histograms",
    "skipped_files",
]


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
