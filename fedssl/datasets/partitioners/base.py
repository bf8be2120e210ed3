"""The partitioner registry and the argument checks every partitioner shares.

A partitioner is a function ``split(labels, num_partitions, *, seed, groups, **params)``
returning, per partition, the sorted ``int64`` indices into ``labels``. It is declared in
:data:`PARTITIONER_REGISTRY` (by :mod:`fedssl.catalogue.datasets`) with these tags:

``params``
    ``{argument name: run-config key}``, the keyword arguments it takes beyond ``seed`` and
    ``groups`` and the flat kebab-case run-config keys they are read from
    (``{"alpha": "dirichlet-alpha"}``).
``needs_groups``
    Whether it needs a group id (speaker, recording) per sample.
``needs_names``
    Whether it needs a name per sample (``fedvssl-clients``): then it also takes
    ``names=``, which :func:`~fedssl.datasets.partitioners.partition_with` passes to it alone.
``check_files`` (optional)
    ``(cfg) -> list[str]``: what is wrong with the files it reads, checked before a run.

This module imports none of the partitioners, so each of them can import it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedssl.catalogue.datasets import PARTITIONER_REGISTRY

__all__ = ["PARTITIONER_REGISTRY", "PartitionFn", "as_labels", "check_num_partitions"]

PartitionFn = Callable[..., list[np.ndarray]]
"""``split(labels, num_partitions, *, seed, groups, **params) -> list[np.ndarray]``."""



def as_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` as a 1-D ``int64`` array (no copy when it already is one).

    Raises
    ------
    ValueError
        Not 1-D, or not integers.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array; got dtype {arr.dtype} and shape {arr.shape}"
        )
    return arr.astype(np.int64, copy=False)


def check_num_partitions(labels: np.ndarray, num_partitions: int) -> None:
    """Raise ``ValueError`` unless ``1 <= num_partitions <= len(labels)``."""
    if not 1 <= num_partitions <= len(labels):
        raise ValueError(
            f"num_partitions must be between 1 and the number of samples ({len(labels)}); "
            f"got {num_partitions}"
        )
