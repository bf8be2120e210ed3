"""One modality's data as the tasks see it: splits, client partitions, evaluation subsets.

Loaded splits and partition indices are cached per process (Ray reuses its workers), keyed by
what determines them, so every round after the first finds them in memory. A modality gives
a :class:`PartitionedData` its key (which run-config values fix the loaded arrays) and its
loader; the image tasks share ``fedssl.clients.image_data.IMAGE_DATA``, the audio task
``fedssl.clients.audio_data.AUDIO_DATA``, and a video task will add one more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from fedssl.datasets import class_histograms
from fedssl.datasets.partitioners import partition_with, partitioner_config_keys

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["LabelledArrays", "PartitionedData"]


class LabelledArrays(Protocol):
    """What a loaded split offers (``ImageArrays``, ``AudioArrays``)."""

    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int: ...

    def subset(self, indices: np.ndarray) -> Any: ...


class PartitionedData:
    """Splits and partitions of one modality's datasets, memoised per process.

    Parameters
    ----------
    key
        The hashable values of a run config that determine the loaded arrays
        (e.g. dataset, data-dir, image-size).
    load
        ``load(key, split)``: the ``"train"`` or ``"test"`` split for that key (the dataset
        loaders memoise their arrays themselves).
    """

    def __init__(self, key: Callable[[RunConfig], Hashable],
                 load: Callable[[Any, str], LabelledArrays]) -> None:
        self.key, self.load = key, load
        self._indices = functools.lru_cache(maxsize=16)(self._compute_indices)

    def split(self, cfg: RunConfig, name: str) -> Any:
        """The ``train`` or ``test`` split of the run's dataset."""
        return self.load(self.key(cfg), name)

    def _compute_indices(self, key: Hashable, num_partitions: int, partitioner: str,
                         params: tuple[tuple[str, Any], ...], seed: int) -> list[np.ndarray]:
        train = self.load(key, "train")
        return partition_with(partitioner, train.labels, num_partitions, seed=seed,
                              groups=getattr(train, "groups", None),
                              names=getattr(train, "names", None) or None,
                              run_config=dict(params))

    def partition_indices(self, cfg: RunConfig, num_partitions: int) -> list[np.ndarray]:
        """Train-split indices of every partition under the run's partitioner (which reads
        the run-config keys it declares)."""
        run_config = cfg.to_run_config()
        params = tuple((k, run_config[k]) for k in partitioner_config_keys(cfg.partitioner))
        return self._indices(self.key(cfg), num_partitions, cfg.partitioner, params, cfg.seed)

    def partition(self, cfg: RunConfig, partition_id: int, num_partitions: int) -> Any:
        """One client's share of the train split."""
        if not 0 <= partition_id < num_partitions:
            raise ValueError(f"partition-id={partition_id} outside 0..{num_partitions - 1}")
        return self.split(cfg, "train").subset(
            self.partition_indices(cfg, num_partitions)[partition_id])

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        """Samples per class (columns) in each partition (rows)."""
        train = self.split(cfg, "train")
        return class_histograms(train.labels, self.partition_indices(cfg, num_partitions),
                                train.num_classes)

    def eval_split(self, cfg: RunConfig, name: str) -> Any:
        """A split for central evaluation, capped at ``eval-max-samples`` (seeded, sorted)."""
        data = self.split(cfg, name)
        if cfg.eval_max_samples and len(data) > cfg.eval_max_samples:
            rng = np.random.default_rng(cfg.seed)
            data = data.subset(
                np.sort(rng.choice(len(data), cfg.eval_max_samples, replace=False)))
        return data

    def selection_split(self, cfg: RunConfig) -> tuple[Any, Any]:
        """The train eval split (:meth:`eval_split`) as ``(rest, held_out)``, for choosing a
        round (``fedssl select-best``) without the test split, which the final report uses.

        ``held_out`` is a seeded quarter: of the groups (speakers, recordings) when the data
        has at least four, so no group is on both sides, else of the samples. The two are
        disjoint and together the whole train eval split. Only the ``train`` split is loaded.

        The clients trained on all of the train split, so ``held_out`` is not unseen by the
        model; what this guarantees is that selection never looks at the test split, so the
        reported test score is not picked on.
        """
        train = self.eval_split(cfg, "train")
        rng = np.random.default_rng(cfg.seed)
        groups = getattr(train, "groups", None)
        if groups is not None and len(np.unique(groups)) >= 4:
            ids = rng.permutation(np.unique(groups))
            held_out = np.isin(groups, ids[: len(ids) // 4])
        else:
            held_out = np.zeros(len(train), dtype=bool)
            held_out[rng.permutation(len(train))[: len(train) // 4]] = True
        return train.subset(np.flatnonzero(~held_out)), train.subset(np.flatnonzero(held_out))
