"""Label-based partitioning of a dataset across federated clients, and its diagnostics.

The partitioners live one module each in :mod:`fedssl.datasets.partitioners`, registered in
its ``PARTITIONER_REGISTRY``: ``iid``, ``dirichlet`` and ``shard`` run the flwr-datasets
partitioners on an in-memory ``datasets.Dataset`` of the labels; ``paper-dirichlet`` is the
Orchestra-style sampler :func:`paper_dirichlet_split`; ``group`` gives each client whole groups
(speakers, recordings) with :func:`group_split`. Every method returns, per partition, the sorted
``int64`` indices into ``labels``; equal arguments give equal results.

:func:`partition_indices` takes the parameters as Python arguments,
:func:`~fedssl.datasets.partitioners.partition_with` from a run config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedssl.datasets.partitioners import (
    PARTITIONER_REGISTRY,
    group_split,
    paper_dirichlet_split,
    partitioner_params,
)
from fedssl.datasets.partitioners.base import as_labels

__all__ = [
    "PARTITIONERS",
    "class_histograms",
    "group_split",
    "paper_dirichlet_split",
    "partition_indices",
    "plot_class_histograms",
]

PARTITIONERS: tuple[str, ...] = PARTITIONER_REGISTRY.names()


def partition_indices(
    labels: np.ndarray,
    num_partitions: int,
    *,
    method: str,
    alpha: float = 0.1,
    classes_per_partition: int = 2,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Split sample indices across ``num_partitions`` clients.

    Parameters
    ----------
    labels : np.ndarray
        1-D integer class labels of the dataset to split.
    num_partitions : int
        Number of clients, ``1 <= num_partitions <= len(labels)``.
    method : str
        One of :data:`PARTITIONERS`: ``"iid"`` (flwr IidPartitioner on a seeded shuffle),
        ``"dirichlet"`` (flwr DirichletPartitioner; partitions may be empty for small alpha),
        ``"shard"`` (flwr PathologicalPartitioner, ``classes_per_partition`` classes each;
        classes no client is assigned are dropped with a flwr warning) or
        ``"paper-dirichlet"`` (:func:`paper_dirichlet_split`, seeded with ``seed``; the
        paper used seed 15) or ``"group"`` (:func:`group_split` over ``groups``).
    alpha : float
        Dirichlet concentration for the two Dirichlet methods (> 0).
    classes_per_partition : int
        Classes per client for ``"shard"``, ``1 <= k <= number of distinct labels``.
    seed : int
        Seed of all randomness.
    groups : np.ndarray, optional
        Group id per sample (e.g. speaker), required by ``"group"`` (:func:`group_split`).

    Returns
    -------
    list[np.ndarray]
        Sorted, disjoint ``int64`` index arrays, one per partition.
    """
    labels = as_labels(labels)
    if method not in PARTITIONER_REGISTRY:
        raise ValueError(f"method must be one of {PARTITIONERS}; got {method!r}")
    given = {"alpha": alpha, "classes_per_partition": classes_per_partition}
    params = {}
    for arg, key in partitioner_params(method).items():
        if arg not in given:
            raise ValueError(f"partitioner {method!r} takes {arg!r}, which partition_indices "
                             f"has no argument for; use partition_with (run-config key {key!r})")
        params[arg] = given[arg]
    split = PARTITIONER_REGISTRY[method]
    return split(labels, num_partitions, seed=seed, groups=groups, **params)


def class_histograms(
    labels: np.ndarray, partitions: list[np.ndarray], num_classes: int
) -> pd.DataFrame:
    """Per-partition class counts: index = partition id, columns = class ids ``0..C-1``."""
    labels = as_labels(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}); got range "
            f"[{labels.min()}, {labels.max()}]"
        )
    counts = np.zeros((len(partitions), num_classes), dtype=np.int64)
    for i, part in enumerate(partitions):
        counts[i] = np.bincount(labels[np.asarray(part, dtype=np.int64)], minlength=num_classes)
    return pd.DataFrame(
        counts,
        index=pd.RangeIndex(len(partitions), name="partition"),
        columns=pd.RangeIndex(num_classes, name="class"),
    )


def plot_class_histograms(histograms: pd.DataFrame, path: str | Path) -> None:
    """Save a stacked bar chart (one bar per client, one colour per class) as PNG at ``path``."""
    # Figure + Agg canvas directly, not pyplot: no global backend switch, no GUI, thread-safe.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    num_clients, num_classes = histograms.shape
    fig = Figure(figsize=(max(6.0, 0.25 * num_clients + 2.0), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    if num_classes > 20:
        cmap = matplotlib.colormaps["viridis"]
    x = np.arange(num_clients)
    bottom = np.zeros(num_clients)
    for j, cls in enumerate(histograms.columns):
        values = histograms[cls].to_numpy(dtype=float)
        colour = cmap(j / max(num_classes - 1, 1)) if num_classes > 20 else cmap(j)
        ax.bar(x, values, bottom=bottom, color=colour, width=0.9, label=str(cls))
        bottom += values
    ax.set_xlabel("client")
    ax.set_ylabel("samples")
    ax.set_title(f"class distribution over {num_clients} clients")
    if num_classes <= 20:  # a legend with more entries would hide the bars
        ax.legend(
            title="class", fontsize="small", ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left"
        )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
