"""Audio data access shared by the audio tasks: splits, partitions, evaluation subsets.

Loaded splits and partition indices are cached per process (Ray reuses its workers).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fedssl.datasets import class_histograms, partition_indices
from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_loader import load_audio_dataset

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["audio_eval_split", "audio_partition", "audio_partition_histograms", "audio_split"]


def audio_split(cfg: RunConfig, name: str) -> AudioArrays:
    """The ``train`` or ``test`` split of the run's audio dataset (memoised per process)."""
    return load_audio_dataset(cfg.dataset, name, data_dir=cfg.data_dir)


@functools.lru_cache(maxsize=16)
def _partitions(dataset: str, data_dir: str, num_partitions: int, method: str, alpha: float,
                k: int, seed: int) -> list[np.ndarray]:
    train = load_audio_dataset(dataset, "train", data_dir=data_dir)
    return partition_indices(train.labels, num_partitions, method=method, alpha=alpha,
                             classes_per_partition=k, seed=seed, groups=train.groups)


def _indices(cfg: RunConfig, num_partitions: int) -> list[np.ndarray]:
    return _partitions(cfg.dataset, cfg.data_dir, num_partitions, cfg.partitioner,
                       cfg.dirichlet_alpha, cfg.classes_per_client, cfg.seed)


def audio_partition(cfg: RunConfig, partition_id: int, num_partitions: int) -> AudioArrays:
    """One client's share of the train split."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id={partition_id} outside 0..{num_partitions - 1}")
    return audio_split(cfg, "train").subset(_indices(cfg, num_partitions)[partition_id])


def audio_partition_histograms(cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
    """Clips per class (columns) in each partition (rows)."""
    train = audio_split(cfg, "train")
    return class_histograms(train.labels, _indices(cfg, num_partitions), train.num_classes)


def audio_eval_split(cfg: RunConfig, name: str) -> AudioArrays:
    """A split for central evaluation, capped at ``eval-max-samples`` (seeded, sorted)."""
    data = audio_split(cfg, name)
    if cfg.eval_max_samples and len(data) > cfg.eval_max_samples:
        rng = np.random.default_rng(cfg.seed)
        data = data.subset(np.sort(rng.choice(len(data), cfg.eval_max_samples, replace=False)))
    return data
