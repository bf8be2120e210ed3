"""Running a registered partitioner by name, with its parameters taken from a run config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# The groups check is the catalogue's (validation runs it without numpy); re-exported here.
from fedssl.catalogue.datasets import check_partitioner
from fedssl.datasets.partitioners.base import PARTITIONER_REGISTRY

__all__ = ["check_partitioner", "partition_with", "partitioner_config_keys"]


def partitioner_params(name: str) -> dict[str, str]:
    """``{argument name: run-config key}`` of the parameters partitioner ``name`` takes.

    Raises
    ------
    ValueError
        Unknown ``name``; the message lists the valid ones.
    """
    return dict(PARTITIONER_REGISTRY.tags(name)["params"])


def partitioner_config_keys(name: str) -> tuple[str, ...]:
    """The run-config keys partitioner ``name`` reads, e.g. ``("dirichlet-alpha",)``.

    Raises
    ------
    ValueError
        Unknown ``name``; the message lists the valid ones.
    """
    return tuple(partitioner_params(name).values())


def partition_with(
    name: str,
    labels: np.ndarray,
    num_partitions: int,
    *,
    seed: int,
    groups: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    run_config: Mapping[str, Any],
) -> list[np.ndarray]:
    """Split ``labels`` with partitioner ``name``, its parameters read from ``run_config``.

    Parameters
    ----------
    name : str
        A registered partitioner (:data:`PARTITIONER_REGISTRY`).
    labels : np.ndarray
        1-D integer class labels.
    num_partitions : int
        Number of clients.
    seed : int
        Seed of all randomness.
    groups : np.ndarray, optional
        Group id per sample, for partitioners registered with ``needs_groups=True``.
    names : sequence of str, optional
        Name per sample (:attr:`VideoArrays.names`), passed only to partitioners registered
        with ``needs_names=True`` (``fedvssl-clients``); the others never see it.
    run_config : Mapping[str, Any]
        The flat kebab-case run config (``{"dirichlet-alpha": 1.0, ...}``); only the keys
        :func:`partitioner_config_keys` names are read.

    Returns
    -------
    list[np.ndarray]
        Sorted ``int64`` index arrays into ``labels``, one per partition.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones), a key it reads missing from
        ``run_config``, or arguments the partitioner rejects.
    """
    split = PARTITIONER_REGISTRY.get(name)
    params = {}
    for arg, key in partitioner_params(name).items():
        if key not in run_config:
            raise ValueError(f"partitioner {name!r} reads run-config key {key!r}, "
                             "which the run config lacks")
        params[arg] = run_config[key]
    if PARTITIONER_REGISTRY.tags(name).get("needs_names"):
        params["names"] = names
    return split(labels, num_partitions, seed=seed, groups=groups, **params)
