"""Partitioners of a dataset across federated clients, one module each, in a tagged registry.

Each module defines a ``split(labels, num_partitions, *, seed, groups, **params)``; its line in
:mod:`fedssl.catalogue.datasets` declares it in :data:`PARTITIONER_REGISTRY` (see :mod:`.base`
for the tags). The order of those lines is the order of ``PARTITIONERS`` and of error
messages.
"""

from fedssl.datasets.partitioners import (
    dirichlet,
    fedvssl_clients,
    group,
    iid,
    paper_dirichlet,
    shard,
)
from fedssl.datasets.partitioners.api import (
    check_partitioner,
    partition_with,
    partitioner_config_keys,
    partitioner_params,
)
from fedssl.datasets.partitioners.base import PARTITIONER_REGISTRY, PartitionFn
from fedssl.datasets.partitioners.group import group_split
from fedssl.datasets.partitioners.paper_dirichlet import paper_dirichlet_split

__all__ = [
    "PARTITIONER_REGISTRY",
    "PartitionFn",
    "check_partitioner",
    "dirichlet",
    "fedvssl_clients",
    "group",
    "group_split",
    "iid",
    "paper_dirichlet",
    "paper_dirichlet_split",
    "partition_with",
    "partitioner_config_keys",
    "partitioner_params",
    "shard",
]
