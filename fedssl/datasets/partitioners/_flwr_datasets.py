"""Running a flwr-datasets partitioner on an in-memory table of labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from flwr_datasets.partitioner import Partitioner


def run_flwr_partitioner(
    partitioner: Partitioner, labels: np.ndarray, num_partitions: int, seed: int
) -> list[np.ndarray]:
    """Split ``labels`` with ``partitioner`` (built for ``num_partitions`` partitions).

    The partitioner gets a ``datasets.Dataset`` with a ``label`` column, in an order shuffled
    with ``seed`` (IidPartitioner takes contiguous shards, so the rows are shuffled first, as
    ``FederatedDataset`` does), and an ``_idx`` column mapping its rows back to positions in
    ``labels``; the result is, per partition, the sorted ``int64`` positions.
    """
    # Deferred: datasets (like flwr-datasets) takes seconds to import.
    from datasets import Dataset

    perm = np.random.default_rng(seed).permutation(len(labels))
    partitioner.dataset = Dataset.from_dict({"label": labels[perm], "_idx": perm})
    return [
        np.sort(np.asarray(partitioner.load_partition(i)["_idx"], dtype=np.int64))
        for i in range(num_partitions)
    ]
