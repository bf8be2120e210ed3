"""Partitioning of labels across clients, per-client histograms and their plot."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fedssl.datasets import (
    PARTITIONERS,
    class_histograms,
    paper_dirichlet_split,
    partition_indices,
    plot_class_histograms,
)
from fedssl.datasets.partitioners import (
    PARTITIONER_REGISTRY,
    check_partitioner,
    partition_with,
    partitioner_config_keys,
)

# 10 balanced classes of 60 samples, interleaved as in a shuffled dataset.
LABELS = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 60))


def _assert_disjoint_cover(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert allidx.dtype == np.int64
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))
    for p in parts:
        assert np.array_equal(p, np.sort(p))


@pytest.mark.parametrize("method", ["iid", "dirichlet", "shard"])
def test_flwr_methods_cover_all_indices_and_are_deterministic(method: str) -> None:
    parts = partition_indices(LABELS, 10, method=method, alpha=0.5, seed=1)
    assert len(parts) == 10
    _assert_disjoint_cover(parts, len(LABELS))
    again = partition_indices(LABELS, 10, method=method, alpha=0.5, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition_indices(LABELS, 10, method=method, alpha=0.5, seed=2)
    assert any(not np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_iid_is_balanced() -> None:
    parts = partition_indices(LABELS, 6, method="iid")
    assert [len(p) for p in parts] == [100] * 6
    hist = class_histograms(LABELS, parts, 10)
    assert hist.to_numpy().min() > 0  # every client sees every class


def test_shard_limits_classes_per_partition() -> None:
    for k in (1, 2, 3):
        parts = partition_indices(LABELS, 10, method="shard", classes_per_partition=k)
        hist = class_histograms(LABELS, parts, 10)
        assert ((hist > 0).sum(axis=1) <= k).all()
        assert ((hist > 0).sum(axis=1) == k).all()  # and each class given is really there


def test_dirichlet_small_alpha_is_skewed() -> None:
    def dominant_share(alpha: float) -> float:
        parts = partition_indices(LABELS, 5, method="dirichlet", alpha=alpha, seed=0)
        hist = class_histograms(LABELS, parts, 10).to_numpy()
        nonempty = hist[hist.sum(axis=1) > 0]
        return float((nonempty.max(axis=1) / nonempty.sum(axis=1)).mean())

    assert dominant_share(0.05) > 0.5
    assert dominant_share(1000.0) < 0.2


def test_paper_dirichlet_hand_checked() -> None:
    # alpha=1e5 makes every Dirichlet draw ~[0.5, 0.5]; normalised by the global sum (2) each
    # entry is ~0.25, so floor(0.25 * 10) = 2 samples of each class per client, cut in client
    # order from each class's indices in dataset order: class 0 = [0, 2, 4, 6, 8],
    # class 1 = [1, 3, 5, 7, 9]. Indices 8 and 9 stay unassigned.
    labels = np.array([0, 1] * 5)
    parts = paper_dirichlet_split(labels, 2, alpha=1e5)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_paper_dirichlet_matches_reference_stream() -> None:
    labels = np.repeat(np.arange(3), 20)  # N = 60, 3 classes
    parts = paper_dirichlet_split(labels, 4, alpha=0.1, seed=15)
    # The paper's sampler, spelled out step by step on numpy's legacy seeded stream.
    rs = np.random.RandomState(15)
    dist = np.stack([rs.dirichlet(0.1 * np.ones(4)) for _ in range(3)]).T
    samples = np.floor(dist / dist.sum() * 60).astype(int)
    for client in range(4):
        expected = []
        for cls in range(3):
            start = samples[:client, cls].sum()
            expected += list(range(cls * 20 + start, cls * 20 + start + samples[client, cls]))
        assert parts[client].tolist() == sorted(expected)
    # numpy's global random state is left alone.
    np.random.seed(123)
    first = np.random.rand()
    np.random.seed(123)
    paper_dirichlet_split(labels, 4, alpha=0.1)
    assert np.random.rand() == first


def test_paper_dirichlet_invariants() -> None:
    labels = np.repeat(np.arange(10), 100)
    for alpha in (0.1, 1e5):
        parts = partition_indices(labels, 8, method="paper-dirichlet", alpha=alpha, seed=15)
        allidx = np.concatenate(parts)
        assert len(np.unique(allidx)) == len(allidx)  # disjoint
        hist = class_histograms(labels, parts, 10)
        # Each class keeps about N / num_classes samples (floor loses < 1 per client).
        assert ((hist.sum(axis=0) > 100 - 8) & (hist.sum(axis=0) <= 100)).all()
    iid = partition_indices(labels, 8, method="paper-dirichlet", alpha=1e5, seed=15)
    assert {len(p) for p in iid} == {120}  # floor(1000 / 80) = 12 per class and client
    niid = class_histograms(labels, partition_indices(labels, 8, method="paper-dirichlet"), 10)
    assert (niid.to_numpy() == 0).mean() > 0.3  # alpha 0.1: many empty client/class cells


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="paper-dirichlet") as err:
        partition_indices(LABELS, 2, method="quantity")
    assert "'quantity'" in str(err.value)
    with pytest.raises(ValueError, match="num_partitions"):
        partition_indices(LABELS, 0, method="iid")
    with pytest.raises(ValueError, match="num_partitions"):
        partition_indices(LABELS, len(LABELS) + 1, method="iid")
    for method in ("dirichlet", "paper-dirichlet"):
        with pytest.raises(ValueError, match="alpha"):
            partition_indices(LABELS, 2, method=method, alpha=0.0)
    for k in (0, 11):
        with pytest.raises(ValueError, match=r"classes_per_partition.*10"):
            partition_indices(LABELS, 2, method="shard", classes_per_partition=k)
    with pytest.raises(ValueError, match="1-D integer"):
        partition_indices(LABELS.astype(float), 2, method="iid")
    assert PARTITIONERS == ("iid", "dirichlet", "shard", "paper-dirichlet", "group",
                            "fedvssl-clients")


def test_histograms_and_plot(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    hist = class_histograms(labels, [np.array([0, 3]), np.array([1, 2, 4, 5])], num_classes=4)
    assert isinstance(hist, pd.DataFrame)
    assert hist.index.tolist() == [0, 1] and hist.columns.tolist() == [0, 1, 2, 3]
    assert hist.to_numpy().tolist() == [[1, 0, 1, 0], [1, 1, 2, 0]]
    with pytest.raises(ValueError, match="num_classes=2"):
        class_histograms(labels, [np.arange(6)], num_classes=2)

    out = tmp_path / "plots" / "hist.png"
    plot_class_histograms(hist, out)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 100
    many = class_histograms(
        np.arange(100) % 50, partition_indices(np.arange(100) % 50, 20, method="iid"), 50
    )
    plot_class_histograms(many, tmp_path / "many.png")  # > 20 classes: no legend, no error
    assert (tmp_path / "many.png").stat().st_size > 0


def _default_run_config() -> dict:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    with pyproject.open("rb") as f:
        return tomllib.load(f)["tool"]["flwr"]["app"]["config"]


def test_registry_holds_partitioners_with_run_config_params() -> None:
    run_config = _default_run_config()
    assert PARTITIONER_REGISTRY.names() == PARTITIONERS
    assert PARTITIONER_REGISTRY.names(needs_groups=True) == ("group",)
    for name in PARTITIONER_REGISTRY:
        keys = partitioner_config_keys(name)
        assert set(keys) <= run_config.keys(), (name, keys)
    assert partitioner_config_keys("dirichlet") == ("dirichlet-alpha",)
    assert partitioner_config_keys("paper-dirichlet") == ("dirichlet-alpha",)
    assert partitioner_config_keys("shard") == ("classes-per-client",)
    assert partitioner_config_keys("iid") == partitioner_config_keys("group") == ()
    assert partitioner_config_keys("fedvssl-clients") == ("client-dist-dir",)
    assert PARTITIONER_REGISTRY.names(needs_names=True) == ("fedvssl-clients",)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_partition_with_reads_run_config() -> None:
    run_config = {**_default_run_config(), "dirichlet-alpha": 0.3, "classes-per-client": 3}
    for method in ("paper-dirichlet", "dirichlet"):
        got = partition_with(method, LABELS, 5, seed=4, run_config=run_config)
        assert _same(got, partition_indices(LABELS, 5, method=method, alpha=0.3, seed=4))
        assert not _same(got, partition_indices(LABELS, 5, method=method, alpha=1.0, seed=4))
    got = partition_with("shard", LABELS, 10, seed=4, run_config=run_config)
    assert _same(
        got, partition_indices(LABELS, 10, method="shard", classes_per_partition=3, seed=4)
    )
    assert ((class_histograms(LABELS, got, 10) > 0).sum(axis=1) == 3).all()
    # iid reads nothing: an empty run config is enough.
    assert _same(
        partition_with("iid", LABELS, 4, seed=2, run_config={}),
        partition_indices(LABELS, 4, method="iid", seed=2),
    )
    groups = np.arange(len(LABELS)) % 12
    assert _same(
        partition_with("group", LABELS, 3, seed=1, groups=groups, run_config={}),
        partition_indices(LABELS, 3, method="group", seed=1, groups=groups),
    )
    with pytest.raises(ValueError, match="'dirichlet-alpha'"):
        partition_with("dirichlet", LABELS, 5, seed=0, run_config={})
    with pytest.raises(ValueError, match="alpha must be > 0 for method 'paper-dirichlet'"):
        partition_with("paper-dirichlet", LABELS, 5, seed=0, run_config={"dirichlet-alpha": 0})


def test_unknown_partitioner_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="'quantity'") as err:
        partition_with("quantity", LABELS, 2, seed=0, run_config={})
    assert all(repr(name) in str(err.value) for name in PARTITIONERS)
    with pytest.raises(ValueError, match="valid names"):
        partitioner_config_keys("quantity")
    with pytest.raises(ValueError, match="valid names"):
        check_partitioner("quantity", has_groups=True)


def test_check_partitioner_needs_groups() -> None:
    for name in PARTITIONERS:
        check_partitioner(name, has_groups=True, has_names=True)
    for name in ("iid", "dirichlet", "shard", "paper-dirichlet"):
        check_partitioner(name, has_groups=False)
    with pytest.raises(ValueError) as err:
        check_partitioner("group", has_groups=False)
    assert str(err.value) == (
        "partitioner='group' splits by speaker/recording, which only the audio datasets "
        "have; use iid, dirichlet, shard or paper-dirichlet"
    )
