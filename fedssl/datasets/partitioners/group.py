"""``group``: each client gets whole groups (speakers, recordings), :func:`group_split`."""

from __future__ import annotations

import numpy as np

from fedssl.datasets.partitioners.base import (
    as_labels,
    check_num_partitions,
)

__all__ = ["group_split", "split"]


def group_split(groups: np.ndarray, num_partitions: int, seed: int = 0) -> list[np.ndarray]:
    """Give each partition whole groups: the distinct group ids, shuffled with ``seed``, are
    dealt into ``num_partitions`` near-equal runs (``np.array_split``).

    This is the natural non-IID split of audio: a client is one or a few speakers, so
    clients differ in voice and recording conditions rather than only in label mix.

    Raises
    ------
    ValueError
        Fewer distinct groups than partitions.
    """
    groups = as_labels(groups)
    ids = np.unique(groups)
    if not 1 <= num_partitions <= len(ids):
        raise ValueError(
            f"the group partitioner needs 1 <= num_partitions <= the number of groups "
            f"({len(ids)}); got {num_partitions}"
        )
    shuffled = np.random.default_rng(seed).permutation(ids)
    return [np.flatnonzero(np.isin(groups, part)).astype(np.int64)
            for part in np.array_split(shuffled, num_partitions)]


def split(
    labels: np.ndarray, num_partitions: int, *, seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """:func:`group_split` over ``groups``, one group id per sample of ``labels`` (whose
    values are otherwise unused)."""
    labels = as_labels(labels)
    check_num_partitions(labels, num_partitions)
    if groups is None or len(groups) != len(labels):
        raise ValueError("the group partitioner needs a group id per sample (speakers or "
                         "recordings); this dataset has none: use another partitioner")
    return group_split(groups, num_partitions, seed=seed)
