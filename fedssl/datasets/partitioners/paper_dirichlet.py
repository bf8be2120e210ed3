"""``paper-dirichlet``: the Orchestra-style Dirichlet sampler, :func:`paper_dirichlet_split`."""

from __future__ import annotations

import numpy as np

from fedssl.datasets.partitioners.base import (
    as_labels,
    check_num_partitions,
)

__all__ = ["paper_dirichlet_split", "split"]


def paper_dirichlet_split(
    labels: np.ndarray, num_partitions: int, alpha: float, seed: int = 15
) -> list[np.ndarray]:
    """Orchestra-style Dirichlet split (alpha 0.1 = non-IID, 1e5 = IID in the paper).

    One ``Dirichlet(alpha * ones(num_partitions))`` draw per class gives a
    ``[classes x clients]`` matrix, transposed to ``[clients x classes]`` and normalised by its
    global sum; client ``c`` gets ``floor(dist[c, k] * len(labels))`` samples of class ``k``,
    taken as consecutive chunks (in client order) of that class's indices in dataset order.
    So each class contributes about ``len(labels) / num_classes`` samples: the rounding
    remainder, and the surplus of classes larger than that, stay unassigned, and chunks are
    truncated when a smaller class runs out.

    Parameters
    ----------
    labels : np.ndarray
        Integer class labels; classes are the sorted unique values.
    num_partitions : int
        Number of clients.
    alpha : float
        Dirichlet concentration (> 0).
    seed : int
        Seed of a private ``np.random.RandomState`` (the paper's ``np.random.seed(seed)``
        stream, without touching numpy's global state).

    Returns
    -------
    list[np.ndarray]
        Sorted ``int64`` indices per client.
    """
    labels = as_labels(labels)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0; got {alpha}")
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1; got {num_partitions}")
    classes = np.unique(labels)
    rng = np.random.RandomState(seed)
    dist = rng.dirichlet(alpha * np.ones(num_partitions), size=len(classes)).T
    dist = dist / dist.sum()
    counts = np.floor(dist * len(labels)).astype(np.int64)  # [clients x classes]
    parts: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
    for k, cls in enumerate(classes):
        class_idx = np.flatnonzero(labels == cls)
        bounds = np.concatenate([[0], np.cumsum(counts[:, k])])
        for client in range(num_partitions):
            parts[client].append(class_idx[bounds[client] : bounds[client + 1]])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def split(
    labels: np.ndarray,
    num_partitions: int,
    *,
    seed: int,
    groups: np.ndarray | None = None,
    alpha: float,
) -> list[np.ndarray]:
    """:func:`paper_dirichlet_split` seeded with ``seed`` (the paper used seed 15), with
    ``1 <= num_partitions <= len(labels)`` and ``alpha > 0``. ``groups`` is ignored."""
    labels = as_labels(labels)
    check_num_partitions(labels, num_partitions)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 for method 'paper-dirichlet'; got {alpha}")
    return paper_dirichlet_split(labels, num_partitions, alpha, seed=seed)
