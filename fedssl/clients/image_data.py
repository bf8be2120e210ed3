"""Image data access shared by the image tasks: splits, partitions, evaluation subsets.

Loaded splits and partition indices are cached per process (Ray reuses its workers), keyed by
what determines them, so every round after the first finds them in memory.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fedssl.datasets import ImageArrays, class_histograms, load_image_dataset, partition_indices

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = [
    "data_key",
    "eval_split",
    "partition",
    "partition_class_histograms",
    "partition_indices_of",
    "split",
]


def data_key(cfg: RunConfig) -> tuple:
    """What determines the loaded arrays (hashable, for the caches)."""
    return (cfg.dataset, cfg.data_dir, cfg.hf_dataset, cfg.image_size)


def split(key: tuple, name: str) -> ImageArrays:
    """The ``train`` or ``test`` split (load_image_dataset caches loaded datasets per process)."""
    dataset, data_dir, hf_dataset, image_size = key
    return load_image_dataset(
        dataset, name, data_dir=data_dir, hf_dataset=hf_dataset, image_size=image_size
    )


@functools.lru_cache(maxsize=16)
def _partitions(
    key: tuple, num_partitions: int, method: str, alpha: float, k: int, seed: int
) -> list[np.ndarray]:
    return partition_indices(
        split(key, "train").labels,
        num_partitions,
        method=method,
        alpha=alpha,
        classes_per_partition=k,
        seed=seed,
    )


def partition_indices_of(cfg: RunConfig, num_partitions: int) -> list[np.ndarray]:
    """Train-split indices of every partition under the run's partitioner."""
    return _partitions(data_key(cfg), num_partitions, cfg.partitioner, cfg.dirichlet_alpha,
                       cfg.classes_per_client, cfg.seed)


def partition(cfg: RunConfig, partition_id: int, num_partitions: int) -> ImageArrays:
    """One client's share of the train split."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id={partition_id} outside 0..{num_partitions - 1}")
    return split(data_key(cfg), "train").subset(
        partition_indices_of(cfg, num_partitions)[partition_id])


def partition_class_histograms(cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
    """Samples per class (columns) in each partition (rows)."""
    train = split(data_key(cfg), "train")
    return class_histograms(train.labels, partition_indices_of(cfg, num_partitions),
                            train.num_classes)


def eval_split(cfg: RunConfig, name: str) -> ImageArrays:
    """A split for central evaluation, capped at ``eval-max-samples`` (seeded, sorted)."""
    data = split(data_key(cfg), name)
    if cfg.eval_max_samples and len(data) > cfg.eval_max_samples:
        rng = np.random.default_rng(cfg.seed)
        data = data.subset(np.sort(rng.choice(len(data), cfg.eval_max_samples, replace=False)))
    return data
