"""``dirichlet``: flwr-datasets' DirichletPartitioner over the labels."""

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
    alpha: float,
) -> list[np.ndarray]:
    """Per class, a ``Dirichlet(alpha)`` draw gives each client's share of it: flwr-datasets'
    DirichletPartitioner (after Yurochkin et al., 2019, arXiv:1905.12022); ``alpha > 0``,
    small = skewed.

    Unlike flwr's default, ``min_partition_size=0``: partitions may be empty for
    small ``alpha``, since resampling until every client has data would silently change the
    requested heterogeneity (and fails outright for small alpha / many clients). No
    self-balancing; the rows are shuffled with ``seed`` beforehand. ``groups`` is ignored.
    """
    # Deferred: flwr-datasets takes seconds to import.
    from flwr_datasets.partitioner import DirichletPartitioner

    labels = as_labels(labels)
    check_num_partitions(labels, num_partitions)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 for method 'dirichlet'; got {alpha}")
    partitioner = DirichletPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        alpha=alpha,
        min_partition_size=0,
        self_balancing=False,
        shuffle=False,
        seed=seed,
    )
    return run_flwr_partitioner(partitioner, labels, num_partitions, seed)
