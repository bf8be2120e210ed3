"""Image datasets (offline embedded digits, CIFAR, Tiny ImageNet, folders, Hugging Face)
as in-memory arrays, and label-based partitioning across federated clients."""

from fedssl.datasets.base import DatasetNotFoundError, ImageArrays, default_cache_dir
from fedssl.datasets.loader import (
    DATASETS,
    check_dataset,
    clear_dataset_cache,
    load_image_dataset,
)
from fedssl.datasets.partitioning import (
    PARTITIONERS,
    class_histograms,
    paper_dirichlet_split,
    partition_indices,
    plot_class_histograms,
)

__all__ = [
    "DATASETS",
    "PARTITIONERS",
    "DatasetNotFoundError",
    "ImageArrays",
    "check_dataset",
    "class_histograms",
    "clear_dataset_cache",
    "default_cache_dir",
    "load_image_dataset",
    "paper_dirichlet_split",
    "partition_indices",
    "plot_class_histograms",
]
