"""``shard``: flwr-datasets' PathologicalPartitioner, a fixed number of classes per client."""

from __future__ import annotations

import numpy as np

from fedssl.datasets.partitioners._flwr_datasets import run_flwr_partitioner
from fedssl.datasets.partitioners.base import (
    as_labels,
    check_num_partitions,
)


def split(
    labels: np.ndarray,
    num_partitions: int,
    *,
    seed: int,
    groups: np.ndarray | None = None,
    classes_per_partition: int,
) -> list[np.ndarray]:
    """Each client gets ``classes_per_partition`` classes, ``1 <= k <= number of distinct
    labels``: flwr-datasets' PathologicalPartitioner (after Li et al., 2021, arXiv:2102.02079).

    Classes are assigned "deterministically": client ``i`` gets classes ``i, i+1, ...``
    (mod the number of classes), so every class is used about equally often; which samples of
    a class go where depends on ``seed``. Classes no client is assigned are dropped with a
    flwr warning. ``groups`` is ignored.
    """
    # Deferred: flwr-datasets takes seconds to import.
    from flwr_datasets.partitioner import PathologicalPartitioner

    labels = as_labels(labels)
    check_num_partitions(labels, num_partitions)
    num_classes = len(np.unique(labels))
    if not 1 <= classes_per_partition <= num_classes:
        raise ValueError(
            f"classes_per_partition must be between 1 and the number of distinct labels "
            f"({num_classes}); got {classes_per_partition}"
        )
    partitioner = PathologicalPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        num_classes_per_partition=classes_per_partition,
        class_assignment_mode="deterministic",
        shuffle=False,
        seed=seed,
    )
    return run_flwr_partitioner(partitioner, labels, num_partitions, seed)
