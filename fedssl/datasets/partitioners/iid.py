"""``iid``: flwr-datasets' IidPartitioner on a seeded shuffle of the samples."""

from __future__ import annotations

import numpy as np

from fedssl.datasets.partitioners._flwr_datasets import run_flwr_partitioner
from fedssl.datasets.partitioners.base import (
    as_labels,
    check_num_partitions,
)


def split(
    labels: np.ndarray, num_partitions: int, *, seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Near-equal random partitions: IidPartitioner's contiguous shards of the samples
    shuffled with ``seed``. ``groups`` is ignored."""
    # Deferred: flwr-datasets takes seconds to import.
    from flwr_datasets.partitioner import IidPartitioner

    labels = as_labels(labels)
    check_num_partitions(labels, num_partitions)
    return run_flwr_partitioner(
        IidPartitioner(num_partitions=num_partitions), labels, num_partitions, seed
    )
