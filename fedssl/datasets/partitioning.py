"""Label-based partitioning of a dataset across federated clients, and its diagnostics.

``iid``, ``dirichlet`` and ``shard`` run the flwr-datasets partitioners on an in-memory
``datasets.Dataset`` of the labels; ``paper-dirichlet`` is the Orchestra-style sampler
:func:`paper_dirichlet_split`; ``group`` gives each client whole groups (speakers,
recordings) with :func:`group_split`. Every method returns, per partition, the sorted ``int64``
indices into ``labels``; equal arguments give equal results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from flwr_datasets.partitioner import Partitioner

PARTITIONERS: tuple[str, ...] = ("iid", "dirichlet", "shard", "paper-dirichlet", "group")


def _as_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array; got dtype {arr.dtype} and shape {arr.shape}"
        )
    return arr.astype(np.int64, copy=False)


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
    groups = _as_labels(groups)
    ids = np.unique(groups)
    if not 1 <= num_partitions <= len(ids):
        raise ValueError(
            f"the group partitioner needs 1 <= num_partitions <= the number of groups "
            f"({len(ids)}); got {num_partitions}"
        )
    shuffled = np.random.default_rng(seed).permutation(ids)
    return [np.flatnonzero(np.isin(groups, part)).astype(np.int64)
            for part in np.array_split(shuffled, num_partitions)]


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
    labels = _as_labels(labels)
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


def _flwr_partitioner(
    method: str, num_partitions: int, alpha: float, classes_per_partition: int, seed: int
) -> Partitioner:
    # Deferred: flwr-datasets (and datasets) take seconds to import.
    from flwr_datasets.partitioner import (
        DirichletPartitioner,
        IidPartitioner,
        PathologicalPartitioner,
    )

    if method == "iid":
        return IidPartitioner(num_partitions=num_partitions)
    if method == "dirichlet":
        # min_partition_size=0: resampling until every client has data would silently change
        # the requested heterogeneity (and fails outright for small alpha / many clients).
        return DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            alpha=alpha,
            min_partition_size=0,
            self_balancing=False,
            shuffle=False,
            seed=seed,
        )
    # "deterministic": client i gets classes i, i+1, ... (mod num_classes), so every class is
    # used about equally often; which samples of a class go where depends on the seed.
    return PathologicalPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        num_classes_per_partition=classes_per_partition,
        class_assignment_mode="deterministic",
        shuffle=False,
        seed=seed,
    )


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
    labels = _as_labels(labels)
    if method not in PARTITIONERS:
        raise ValueError(f"method must be one of {PARTITIONERS}; got {method!r}")
    if not 1 <= num_partitions <= len(labels):
        raise ValueError(
            f"num_partitions must be between 1 and the number of samples ({len(labels)}); "
            f"got {num_partitions}"
        )
    if method in ("dirichlet", "paper-dirichlet") and not alpha > 0:
        raise ValueError(f"alpha must be > 0 for method {method!r}; got {alpha}")
    if method == "shard":
        num_classes = len(np.unique(labels))
        if not 1 <= classes_per_partition <= num_classes:
            raise ValueError(
                f"classes_per_partition must be between 1 and the number of distinct labels "
                f"({num_classes}); got {classes_per_partition}"
            )
    if method == "group":
        if groups is None or len(groups) != len(labels):
            raise ValueError("the group partitioner needs a group id per sample (speakers or "
                             "recordings); this dataset has none: use another partitioner")
        return group_split(groups, num_partitions, seed=seed)
    if method == "paper-dirichlet":
        return paper_dirichlet_split(labels, num_partitions, alpha, seed=seed)

    # IidPartitioner takes contiguous shards, so shuffle first (as FederatedDataset does);
    # "_idx" maps rows of the shuffled table back to positions in `labels`.
    from datasets import Dataset

    perm = np.random.default_rng(seed).permutation(len(labels))
    partitioner = _flwr_partitioner(method, num_partitions, alpha, classes_per_partition, seed)
    partitioner.dataset = Dataset.from_dict({"label": labels[perm], "_idx": perm})
    return [
        np.sort(np.asarray(partitioner.load_partition(i)["_idx"], dtype=np.int64))
        for i in range(num_partitions)
    ]


def class_histograms(
    labels: np.ndarray, partitions: list[np.ndarray], num_classes: int
) -> pd.DataFrame:
    """Per-partition class counts: index = partition id, columns = class ids ``0..C-1``."""
    labels = _as_labels(labels)
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
