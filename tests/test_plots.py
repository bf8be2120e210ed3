"""The figures a researcher reads: a run's metrics.png and heatmaps, an experiment's curves and
final_accuracy.png, drawn from hand-made metrics.csv / runs.csv (no Flower run)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from fedssl.experiments.runner import _plot_curves, _plot_final, results_table, write_report
from fedssl.experiments.spec import ExperimentSpec, ReportSpec
from fedssl.tracking.recorder import METRIC_COLUMNS, RunRecorder, family_figure

# ---------------------------------------------------------------- hand-made inputs
LAYERS = ("backbone.conv1.weight", "backbone.bn1.weight", "backbone.conv2.weight",
          "backbone.bn2.weight", "backbone.fc.weight", "projector.0.weight",
          "projector.2.weight")

# What each task's central monitor reports per round, and its final phase (image-ssl,
# audio-ssl, image-classification).
CENTRAL = {"image-ssl": ("knn-accuracy",), "audio-ssl": ("retrieval-r1", "knn-accuracy"),
           "image-classification": ("test-accuracy", "test-loss")}


def _final(task: str, quality: float) -> dict[str, float]:
    if task == "image-classification":
        return {"test-accuracy": quality, "test-loss": 2.3 - quality,
                "random-init-test-accuracy": 0.1}
    out = {"knn-accuracy": quality, "random-init-knn-accuracy": 0.31,
           "linear-probe-accuracy": quality + 0.03, "random-init-linear-probe-accuracy": 0.28}
    if task == "audio-ssl":
        out |= {"retrieval-r1": quality - 0.05, "retrieval-r5": quality + 0.1,
                "retrieval-r10": quality + 0.18, "random-init-retrieval-r1": 0.22,
                "random-init-retrieval-r5": 0.41, "random-init-retrieval-r10": 0.55,
                "log-mel-linear-probe-accuracy": 0.33}
    else:
        out["raw-pixel-linear-probe-accuracy"] = 0.36
    return out


def metrics_rows(task: str = "image-ssl", *, rounds: int = 6, clients: int = 4,
                 eval_every: int = 2, ldawa: bool = False, seed: int = 0,
                 failures: int = 0, gain: float = 0.3) -> pd.DataFrame:
    """A metrics.csv as a run of ``task`` writes it: per-round server and client train rows,
    the central monitor every ``eval_every`` rounds and at the last, then the final phase."""
    rng = np.random.default_rng(seed)
    rows = []

    def add(rnd, phase, metric, value, partition=None):
        rows.append({"round": rnd, "phase": phase,
                     "source": "server" if partition is None else "client",
                     "partition": "" if partition is None else partition,
                     "metric": metric, "value": float(value)})

    quality = 0.0
    for rnd in range(1, rounds + 1):
        losses = 5.5 / rnd ** 0.4 + rng.normal(0, 0.3, clients)
        times = 1.0 + rng.uniform(0, 0.3, clients)
        for pid in range(clients):
            for metric, value in (("train-loss", losses[pid]), ("train-time", times[pid]),
                                  ("local-steps", 10), ("num-examples", 100 + 10 * pid),
                                  ("partition-id", pid)):
                add(rnd, "train", metric, value, pid)
        for metric, value in (("train-loss", losses.mean()), ("train-time", times.mean()),
                              ("local-steps", 10), ("valid-replies", clients),
                              ("failures", failures if rnd == 2 else 0),
                              ("round-wall-time-s", 4.5 + rng.uniform(0, 2))):
            add(rnd, "train", metric, value)
        if ldawa:
            deltas = {k: 1 - (0.05 + 0.02 * i) * (rnd / rounds) - rng.uniform(0, 0.02)
                      for i, k in enumerate(LAYERS)}
            for key, value in deltas.items():
                add(rnd, "train", f"ldawa-delta/{key}", value)
            add(rnd, "train", "ldawa-delta-mean", np.mean(list(deltas.values())))
            add(rnd, "train", "ldawa-delta-min", min(deltas.values()) - 0.03)
        if rnd % eval_every == 0 or rnd == rounds:
            quality = 0.35 + gain * rnd / rounds + rng.normal(0, 0.01)
            for metric in CENTRAL[task]:
                add(rnd, "central", metric, _final(task, quality)[metric])
    for metric, value in _final(task, quality).items():
        add(rounds, "final", metric, value)
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def write_run(run_dir: Path, task: str = "image-ssl", **kwargs) -> Path:
    """A run directory with its metrics.csv and summary.json (the final metrics)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    frame = metrics_rows(task, **kwargs)
    frame.to_csv(run_dir / "metrics.csv", index=False)
    final = frame[frame["phase"] == "final"]
    (run_dir / "summary.json").write_text(json.dumps(dict(zip(final["metric"], final["value"],
                                                              strict=True))))
    return run_dir


def write_experiment(root: Path, spec, *, task: str = "image-ssl", rounds: int = 6,
                     failed: tuple[int, ...] = ()) -> pd.DataFrame:
    """Run directories ``root/NN`` and the runs frame ``write_report`` takes, one row per
    variant of ``spec`` (runs listed in ``failed`` ended without metrics)."""
    from fedssl.experiments.runner import COMPLETED, summary_metrics

    rows = []
    for i, variant in enumerate(spec.variants()):
        run_dir = root / f"{i:02d}"
        row = {"run": i, "variant": variant.name, "status": COMPLETED, "wall-time-s": 1.0,
               "run-dir": str(run_dir)} | variant.labels
        if i in failed:
            row["status"] = "finished:failed"
            rows.append(row)
            continue
        gain = 0.1 + 0.1 * (i // len(spec.seeds) % 4)  # each group learns at its own pace
        write_run(run_dir, task, rounds=rounds, seed=i, gain=gain)
        rows.append(row | summary_metrics(run_dir, spec.report.metrics))
    return pd.DataFrame(rows)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


PNG = b"\x89PNG\r\n\x1a\n"


def _recorder(run_dir: Path, task: str = "image-ssl", **kwargs) -> RunRecorder:
    recorder = RunRecorder(run_dir)  # a fresh metrics.csv, then the hand-made one over it
    write_run(run_dir, task, **kwargs)
    return recorder


def _panels(fig) -> dict[str, Axes]:
    """The figure's panels by title (colour bars and secondary axes have none)."""
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def _integer_rounds(ax: Axes) -> bool:
    locator = ax.xaxis.get_major_locator()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    return (isinstance(locator, MaxNLocator) and ax.get_xlabel() == "round" and len(ticks) > 1
            and all(float(t).is_integer() for t in ticks))


def _reference(ax: Axes) -> Line2D | None:
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    return dashed[0] if len(dashed) == 1 else None


# ---------------------------------------------------------------- metrics.png
def test_metrics_png_has_one_panel_per_series_with_integer_rounds(tmp_path):
    recorder = _recorder(tmp_path, "image-ssl", rounds=8, ldawa=True, failures=1)
    final = metrics_rows("image-ssl", rounds=8, ldawa=True, failures=1).query("phase == 'final'")
    assert _is_png(recorder.plot())
    assert _is_png(tmp_path / "ldawa-delta.png")

    fig = recorder.metrics_figure()
    panels = _panels(fig)
    # The server's train-loss/train-time are the line of the clients' panels, not panels of
    # their own; ldawa-delta-mean/-min share one; per-layer δ is the heatmap's.
    assert list(panels) == ["central knn-accuracy", "clients train-loss", "clients train-time",
                            "train round-wall-time-s", "train ldawa-delta", "failed replies"]
    assert len(fig.axes) == len(panels)
    for ax in panels.values():
        assert _integer_rounds(ax), ax.get_title()
    assert len({ax.get_xlim() for ax in panels.values()}) == 1  # one round range for all
    # No two panels draw the same series.
    drawn = [tuple(np.round(line.get_ydata(), 9)) for ax in panels.values()
             for line in ax.get_lines() if len(line.get_ydata()) > 2]
    assert len(drawn) == len(set(drawn))

    central = panels["central knn-accuracy"]
    reference = _reference(central)
    random_init = final.set_index("metric")["value"]["random-init-knn-accuracy"]
    assert reference is not None and set(reference.get_ydata()) == {random_init}
    assert "random init" in reference.get_label() and f"{random_init:.3f}" in reference.get_label()
    assert any("random init" in t.get_text() for t in central.get_legend().get_texts())
    # The clients' band and the server's weighted mean.
    loss = panels["clients train-loss"]
    assert len(loss.collections) == 1
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [
        "weighted mean (server)", "clients min-max"]
    assert [t.get_text() for t in panels["train ldawa-delta"].get_legend().get_texts()] == [
        "mean", "min"]
    plt.close(fig)


def test_metrics_png_of_an_audio_run_shows_retrieval_at_1_5_10(tmp_path):
    recorder = _recorder(tmp_path, "audio-ssl", rounds=6)
    assert _is_png(recorder.plot())
    fig = recorder.metrics_figure()
    panels = _panels(fig)
    assert list(panels) == ["central retrieval-r1", "central knn-accuracy", "clients train-loss",
                            "clients train-time", "train round-wall-time-s",
                            "final retrieval recall@k"]
    assert "failed replies" not in panels and fig.get_suptitle() == "no failed replies"
    final = _final("audio-ssl", 0)
    for metric in ("retrieval-r1", "knn-accuracy"):
        reference = _reference(panels[f"central {metric}"])
        assert set(reference.get_ydata()) == {final[f"random-init-{metric}"]}
    recall = panels["final retrieval recall@k"]
    assert [t.get_text() for t in recall.get_xticklabels()] == ["R@1", "R@5", "R@10"]
    trained, baseline = recall.containers
    assert np.allclose([b.get_height() for b in baseline],
                       [final[f"random-init-retrieval-r{k}"] for k in (1, 5, 10)])
    last = metrics_rows("audio-ssl", rounds=6).query("phase == 'final'").set_index("metric")
    assert np.allclose([b.get_height() for b in trained],
                       [last.loc[f"retrieval-r{k}", "value"] for k in (1, 5, 10)])
    assert not _integer_rounds(recall)  # not a round axis
    plt.close(fig)


def test_metrics_png_of_a_classification_run(tmp_path):
    recorder = _recorder(tmp_path, "image-classification", rounds=5, eval_every=5)
    fig = recorder.metrics_figure()
    panels = _panels(fig)
    assert set(panels) >= {"central test-accuracy", "central test-loss"}
    assert set(_reference(panels["central test-accuracy"]).get_ydata()) == {0.1}
    assert _reference(panels["central test-loss"]) is None  # no random-init test-loss
    # One central point (round 5) on the same integer round axis as the train panels.
    assert _integer_rounds(panels["central test-accuracy"])
    assert panels["central test-accuracy"].get_xlim() == panels["clients train-loss"].get_xlim()
    plt.close(fig)


# ---------------------------------------------------------------- heatmaps
def test_ldawa_heatmap_has_its_own_labelled_colour_bar(tmp_path):
    recorder = _recorder(tmp_path, "image-ssl", rounds=4, ldawa=True)
    frame = recorder.metrics()
    # L-DAWA's warm-up rounds have no δ; one round missing in the middle too.
    frame = frame[~frame["metric"].str.startswith("ldawa-delta/") | frame["round"].isin([2, 4])]
    frame.to_csv(recorder.metrics_path, index=False)
    (path,) = recorder.plot_families()
    assert path.name == "ldawa-delta.png" and _is_png(path)

    rows = frame[frame["metric"].str.startswith("ldawa-delta/")]
    fig = family_figure("ldawa-delta", rows)
    heatmap = _panels(fig)["ldawa-delta"]
    (image,) = heatmap.images
    bar = image.colorbar
    assert bar is not None and bar.ax.figure is fig and bar.ax in fig.axes
    assert "δ" in bar.ax.get_ylabel()
    assert bar.ax.get_position().x0 >= heatmap.get_position().x1  # beside the heatmap
    fig.canvas.draw()  # as saved: the colour bar spans the heatmap's height
    assert bar.ax.get_position().y0 == pytest.approx(heatmap.get_position().y0, abs=0.01)
    assert bar.ax.get_position().y1 == pytest.approx(heatmap.get_position().y1, abs=0.01)
    assert bar.ax.get_position().width < 0.15 * heatmap.get_position().width
    # Columns at their rounds: 2, 3 (blank), 4.
    assert image.get_array().shape == (len(LAYERS), 3)
    assert np.ma.getmaskarray(np.ma.masked_invalid(image.get_array()))[:, 1].all()
    assert not np.ma.getmaskarray(np.ma.masked_invalid(image.get_array()))[:, [0, 2]].any()
    assert tuple(image.get_extent()[:2]) == (1.5, 4.5)
    assert _integer_rounds(heatmap)
    assert [t.get_text() for t in heatmap.get_yticklabels()] == list(LAYERS)
    plt.close(fig)


# ---------------------------------------------------------------- experiment report
GRID = {"aggregation": [{"name": "fedavg", "strategy": "fedavg"},
                        {"name": "ldawa", "strategy": "ldawa"}],
        "setting": [{"name": "cross-silo", "num-supernodes": 10},
                    {"name": "cross-device", "num-supernodes": 100}]}


def _spec(**kwargs) -> ExperimentSpec:
    return ExperimentSpec(**{"name": "plots", "seeds": (0, 1), "grid": GRID} | kwargs)


def test_experiment_report_writes_its_figures(tmp_path):
    spec = _spec(report=ReportSpec(target=0.5))
    write_report(spec, write_experiment(tmp_path, spec, failed=(7,)), tmp_path, announce=False)
    assert _is_png(tmp_path / "final_accuracy.png")
    assert _is_png(tmp_path / "knn_accuracy.png")


def test_curves_are_means_with_a_band_over_seeds(tmp_path):
    spec = _spec()
    # Run 7 (ldawa, cross-device, seed 1) failed: that group has one seed, and no band.
    runs = write_experiment(tmp_path, spec, failed=(7,))
    fig = _plot_curves(runs, list(spec.grid), tmp_path / "curves.png", "knn-accuracy", 0.5)
    assert _is_png(tmp_path / "curves.png")
    panels = _panels(fig)
    assert list(panels) == ["setting=cross-silo", "setting=cross-device"]
    silo, device = panels.values()
    assert [t.get_text() for t in silo.get_legend().get_texts()] == [
        "fedavg (n=2)", "ldawa (n=2)", "target 0.5"]
    assert [t.get_text() for t in device.get_legend().get_texts()] == [
        "fedavg (n=2)", "ldawa (n=1)", "target 0.5"]
    assert len(silo.collections) == 2 and len(device.collections) == 1  # bands
    for ax in (silo, device):
        assert _integer_rounds(ax)
        assert set(_reference(ax).get_ydata()) == {0.5}
    # The mean line lies within its band, and is the mean of the seeds' curves.
    values = []
    for i in (0, 1):  # fedavg, cross-silo: runs 0 and 1
        frame = pd.read_csv(tmp_path / f"{i:02d}" / "metrics.csv").query("phase == 'central'")
        values.append(frame["value"].to_numpy())
    mean = silo.get_lines()[0]
    assert np.allclose(mean.get_ydata(), np.mean(values, axis=0))
    band = silo.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(np.min(values)) and band.max() == pytest.approx(
        np.max(values))
    # The y range is the data's (and the target's) with a small margin, not 0-1.
    low, high = silo.get_ylim()
    data = [line.get_ydata() for ax in (silo, device) for line in ax.get_lines()]
    assert low < min(map(np.min, data)) and high > max(map(np.max, data))
    assert low > 0.2 and high < 0.95
    assert (high - low) < 1.2 * (max(map(np.max, data)) - min(map(np.min, data)))
    plt.close(fig)


def test_curves_without_a_grid_and_with_one_seed(tmp_path):
    spec = ExperimentSpec(name="one", seeds=(0,))
    runs = write_experiment(tmp_path, spec)
    fig = _plot_curves(runs, [], tmp_path / "curves.png", "knn-accuracy", None)
    (ax,) = _panels(fig).values()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all (n=1)"]
    assert not ax.collections and _reference(ax) is None
    assert ax.get_ylim()[0] > 0.2
    plt.close(fig)


def test_final_accuracy_labels_groups_and_shows_the_floors(tmp_path):
    spec = _spec()
    runs = write_experiment(tmp_path, spec, failed=(6, 7))  # ldawa, cross-device: no result
    table = results_table(runs, list(spec.grid), spec.report.metrics)
    fig = _plot_final(table, list(spec.grid), tmp_path / "final.png", spec.report.metrics, runs)
    assert _is_png(tmp_path / "final.png")
    panels = _panels(fig)
    assert list(panels) == ["linear-probe-accuracy", "knn-accuracy"]
    final = _final("image-ssl", 0)
    for metric, ax in panels.items():
        # Every bar is labelled with its first-axis value, every cluster with the others.
        assert [t.get_text() for t in ax.get_xticklabels()] == ["fedavg", "ldawa"] * 2
        (under,) = ax.child_axes
        assert [t.get_text() for t in under.get_xticklabels()] == [
            "setting=cross-silo", "setting=cross-device"]
        assert "aggregation" in under.get_xlabel()
        # Floors: random init on every bar that has a result; the raw-pixel probe only on
        # the linear probe.
        floors = {c.get_label(): [seg[:, 1] for seg in c.get_segments() if len(seg)]
                  for c in ax.collections if c.get_label() and not c.get_label().startswith("_")}
        random_init = floors["random init (same network)"]
        assert len(random_init) == 3  # the group without a result has none
        assert np.allclose(random_init, final[f"random-init-{metric}"])
        if metric == "linear-probe-accuracy":
            assert np.allclose(floors["raw-pixel probe (data only)"],
                               final["raw-pixel-linear-probe-accuracy"])
        else:
            assert set(floors) == {"random init (same network)"}
        texts = [t.get_text() for t in ax.texts]
        assert texts.count("no result") == 1
        assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] <= 1.0
        (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        means = table[f"{metric} mean"].fillna(0).to_numpy()
        assert sorted(b.get_height() for b in bars) == pytest.approx(sorted(means))
        assert ax.get_ylim()[1] >= (table[f"{metric} mean"] + table[f"{metric} std"]).max()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["trained: mean ± std over 2 seeds", "random init (same network)",
                      "raw-pixel probe (data only)"]
    plt.close(fig)


def test_final_accuracy_counts_seeds_per_bar_when_they_differ(tmp_path):
    spec = ExperimentSpec(name="audio", seeds=(0, 1, 2),
                          grid={"ssl-method": ["simclr", "byol", "clip-order"]},
                          report=ReportSpec(metrics=("linear-probe-accuracy", "retrieval-r1"),
                                            curve="retrieval-r1"))
    runs = write_experiment(tmp_path, spec, task="audio-ssl", failed=(4,))  # byol, seed 1
    table = results_table(runs, list(spec.grid), spec.report.metrics)
    fig = _plot_final(table, list(spec.grid), tmp_path / "final.png", spec.report.metrics, runs)
    panels = _panels(fig)
    assert list(panels) == ["linear-probe-accuracy", "retrieval-r1"]
    for ax in panels.values():
        assert [t.get_text() for t in ax.get_xticklabels()] == ["simclr", "byol", "clip-order"]
        assert not ax.child_axes and ax.get_xlabel() == "ssl-method"
        assert [t.get_text() for t in ax.texts] == ["n=3", "n=2", "n=3"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["trained: mean ± std over n seeds (on each bar)",
                      "random init (same network)", "log-mel probe (data only)"]
    plt.close(fig)
    write_report(spec, runs, tmp_path, announce=False)
    assert _is_png(tmp_path / "final_accuracy.png") and _is_png(tmp_path / "retrieval_r1.png")


def test_results_table_counts_completed_seeds_and_failed_ones_apart():
    runs = pd.DataFrame({
        "status": ["finished:completed", "finished:failed", "finished:completed",
                   "finished:failed"],
        "strategy": ["fedavg", "fedavg", "ldawa", "krum"],
        "knn-accuracy": [0.5, float("nan"), 0.7, float("nan")],
    })
    table = results_table(runs, ["strategy"]).set_index("strategy")
    assert table.loc["fedavg", "seeds"] == 1 and table.loc["fedavg", "failed"] == 1
    assert table.loc["fedavg", "knn-accuracy mean"] == 0.5
    assert table.loc["ldawa", "seeds"] == 1 and table.loc["ldawa", "failed"] == 0
    assert table.loc["krum", "seeds"] == 0 and table.loc["krum", "failed"] == 1
    assert "failed" not in results_table(runs[runs["status"] == "finished:completed"],
                                         ["strategy"])
