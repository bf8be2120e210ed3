"""Image datasets (offline embedded digits, CIFAR, Tiny ImageNet, folders, Hugging Face) and
audio datasets (embedded spoken digits, ESC-50, Speech Commands, UrbanSound8K, VGG-Sound,
EPIC-SOUNDS) as in-memory arrays, and partitioning across federated clients."""

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_loader import AUDIO_DATASETS, check_audio_dataset, load_audio_dataset
from fedssl.datasets.base import (
    CorruptDataError,
    DatasetNotFoundError,
    ImageArrays,
    default_cache_dir,
    skipped_files,
)
from fedssl.datasets.loader import (
    DATASETS,
    check_dataset,
    clear_dataset_cache,
    load_image_dataset,
)
from fedssl.datasets.partitioners import (
    PARTITIONER_REGISTRY,
    check_partitioner,
    group_split,
    partition_with,
    partitioner_config_keys,
)
from fedssl.datasets.partitioning import (
    PARTITIONERS,
    class_histograms,
    paper_dirichlet_split,
    partition_indices,
    plot_class_histograms,
)
from fedssl.datasets.registry import DATASET_REGISTRY

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
