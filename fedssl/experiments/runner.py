"""Run every variant of an experiment on one private SuperLink, then tabulate and plot."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from fedssl.config import ConfigError
from fedssl.experiments.spec import ExperimentSpec, Variant
from fedssl.launch import Federation, LocalSuperLink, RoundProgress
from fedssl.launch.overrides import resolve_config

__all__ = ["results_table", "rewrite_report", "rounds_to_target", "run_experiment",
           "summary_metrics", "write_report"]


def run_experiment(
    spec: ExperimentSpec,
    overrides: dict[str, Any],
    *,
    federation: Federation,
    runs_dir: Path,
    dry_run: bool = False,
    quiet: bool = False,
) -> int:
    """Run all variants; returns 0 when every run completed, 1 otherwise."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (runs_dir / f"{spec.name}-{stamp}").resolve()
    variants = spec.variants()
    # Validate every variant before the first one starts: a typo in variant 7 should not
    # surface after six finished runs.
    configs = [
        resolve_config(v.overrides, overrides | {"output-dir": str(root / f"{i:02d}"),
                                                 "run-name": f"{spec.name}-{i:02d}",
                                                 "wandb-group": spec.name},
                       default_root=root)
        for i, v in enumerate(variants)
    ]
    print(f"fedssl: experiment {spec.name}: {len(variants)} runs -> {root}")
    for i, variant in enumerate(variants):
        clients = variant.num_supernodes or federation.num_supernodes
        print(f"  {i:02d}  {variant.name}  ({clients} clients)")
    if dry_run:
        return 0
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    with LocalSuperLink(ray_address=federation.ray_address) as link:
        for i, (variant, cfg) in enumerate(zip(variants, configs, strict=True)):
            print(f"\nfedssl: [{i + 1}/{len(variants)}] {variant.name}", flush=True)
            with RoundProgress(cfg.num_server_rounds, quiet=quiet, desc=f"run {i:02d}") as bar:
                outcome = link.run(cfg.to_run_config(), _federation_of(variant, federation),
                                   on_line=bar.write, on_progress=bar.update)
            row = {"run": i, "variant": variant.name, "status": outcome.status,
                   "wall-time-s": round(outcome.wall_time_s, 1), "run-dir": str(outcome.run_dir)}
            row |= variant.labels
            row |= summary_metrics(outcome.run_dir, spec.report.metrics)
            if spec.report.target is not None:
                row["rounds-to-target"] = rounds_to_target(
                    outcome.run_dir / "metrics.csv", spec.report.curve, spec.report.target)
            rows.append(row)
            if not outcome.completed:
                print(f"fedssl: run {i:02d} ended {outcome.status}: {outcome.details}",
                      file=sys.stderr)
    write_report(spec, pd.DataFrame(rows), root)
    return 0 if all(r["status"] == "finished:completed" for r in rows) else 1


def _federation_of(variant: Variant, default: Federation) -> Federation:
    if variant.num_supernodes is None:
        return default
    return dataclasses.replace(default, num_supernodes=variant.num_supernodes)


def rounds_to_target(metrics_csv: Path, metric: str, target: float) -> float:
    """First round whose central ``metric`` is at least ``target``; NaN if none is."""
    if not Path(metrics_csv).exists():
        return float("nan")
    frame = pd.read_csv(metrics_csv)
    rows = frame[(frame["phase"] == "central") & (frame["metric"] == metric)]
    reached = rows[rows["value"] >= target]
    return float(reached["round"].min()) if len(reached) else float("nan")


def _is_reported(key: str, report_metrics: tuple[str, ...] | list[str]) -> bool:
    """Accuracies, the report's metrics (e.g. retrieval recall) and their random-init twins."""
    return key.endswith("accuracy") or key.removeprefix("random-init-") in report_metrics


def summary_metrics(run_dir: Path, report_metrics: tuple[str, ...] | list[str] = ()) -> dict:
    """The final metrics of a run (from its ``summary.json``) that the report tabulates."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items()
            if _is_reported(k, report_metrics)}


def results_table(runs: pd.DataFrame, grid_keys: list[str],
                  report_metrics: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """Mean and std over seeds of every accuracy column and every report metric (and
    rounds-to-target, with the number of seeds that reached the target), one row per grid
    combination."""
    metrics = [c for c in runs.columns
               if _is_reported(c, report_metrics) or c == "rounds-to-target"]
    if not grid_keys:
        runs = runs.assign(variant="all")
        grid_keys = ["variant"]
    table = runs.groupby(grid_keys, sort=False)[metrics].agg(["mean", "std"])
    table.columns = [f"{m} {stat}" for m, stat in table.columns]
    table["seeds"] = runs.groupby(grid_keys, sort=False).size()
    if "rounds-to-target" in runs.columns:
        table["reached-target"] = runs.groupby(grid_keys, sort=False)["rounds-to-target"].count()
    return table.reset_index()


def rewrite_report(spec: ExperimentSpec, root: Path) -> None:
    """Tables and plots again from a finished experiment's ``runs.csv`` (nothing is rerun)."""
    runs_path = Path(root) / "runs.csv"
    if not runs_path.is_file():
        raise ConfigError(f"--report {str(root)!r}: no runs.csv there; give the directory "
                          "an experiment wrote")
    runs = pd.read_csv(runs_path)
    # Refresh the final metrics from each run's summary: a report metric added to the
    # experiment file after the runs (or one an older version did not keep) is found there.
    refreshed = [summary_metrics(Path(d), spec.report.metrics) for d in runs["run-dir"]]
    for i, metrics in enumerate(refreshed):
        for key, value in metrics.items():
            runs.loc[i, key] = value
    write_report(spec, runs, Path(root))


def write_report(spec: ExperimentSpec, runs: pd.DataFrame, root: Path) -> None:
    """runs.csv (one row per run), results.csv/.md (aggregated), comparison plots."""
    runs.to_csv(root / "runs.csv", index=False)
    grid_keys = list(spec.grid)
    table = results_table(runs, grid_keys, spec.report.metrics)
    table.to_csv(root / "results.csv", index=False)
    (root / "results.md").write_text(
        f"# {spec.name}\n\n{spec.description}\n\n" + table.to_markdown(index=False,
                                                                        floatfmt=".4f") + "\n"
    )
    print("\n" + table.to_markdown(index=False, floatfmt=".4f"))
    _plot_final(table, grid_keys, root / "final_accuracy.png", spec.report.metrics)
    _plot_curves(runs, grid_keys, root / f"{spec.report.curve.replace('-', '_')}.png",
                 spec.report.curve, spec.report.target)
    print(f"\nfedssl: experiment results in {root}")


def _split_axes(grid_keys: list[str]) -> tuple[str | None, list[str]]:
    """Colour by the first grid axis; group (bars) or panel (curves) by the others."""
    if not grid_keys:
        return None, []
    return grid_keys[0], grid_keys[1:]


def _group_label(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys) if keys else "all"


def _plot_final(table: pd.DataFrame, grid_keys: list[str], path: Path,
                metrics: tuple[str, ...]) -> None:
    """Grouped bars: one group per combination of the other axes, one colour per first-axis
    value, error bars over seeds, black ticks for the same network at random init."""
    metrics = [m for m in metrics if f"{m} mean" in table.columns]
    if not metrics:
        return
    hue, group_keys = _split_axes(grid_keys)
    hues = list(dict.fromkeys(table[hue])) if hue else ["all"]
    groups = list(dict.fromkeys(table.apply(_group_label, axis=1, keys=group_keys)))
    width = 0.8 / len(hues)
    panel_width = max(5.0, 1.0 + 0.3 * len(hues) * len(groups))
    fig, axes = plt.subplots(1, len(metrics), squeeze=False,
                             figsize=(panel_width * len(metrics), 4.0))
    for ax, metric in zip(axes[0], metrics, strict=True):
        top = 0.0
        for h, value in enumerate(hues):
            rows = table if hue is None else table[table[hue] == value]
            positions = [groups.index(_group_label(r, group_keys)) + (h - (len(hues) - 1) / 2)
                         * width for _, r in rows.iterrows()]
            ax.bar(positions, rows[f"{metric} mean"], width=width * 0.95,
                   yerr=rows[f"{metric} std"].fillna(0), capsize=3, label=str(value))
            baseline = f"random-init-{metric} mean"
            if baseline in rows.columns:
                ax.scatter(positions, rows[baseline], color="black", marker="_", s=120,
                           zorder=3, label="random init" if h == 0 else None)
            top = max(top, float((rows[f"{metric} mean"] + rows[f"{metric} std"].fillna(0))
                                 .max()))
        ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, min(1.0, top * 1.25))
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, title=hue, title_fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_curves(runs: pd.DataFrame, grid_keys: list[str], path: Path, metric: str,
                 target: float | None) -> None:
    """A central metric per round, mean over seeds: one panel per combination of the other
    grid axes, one line per first-axis value; the target as a dashed line."""
    curves = []
    for _, run in runs.iterrows():
        metrics_path = Path(run["run-dir"]) / "metrics.csv"
        if not metrics_path.exists():
            continue
        frame = pd.read_csv(metrics_path)
        central = frame[(frame["phase"] == "central") & (frame["metric"] == metric)]
        for _, row in central.iterrows():
            curves.append({**{k: run[k] for k in grid_keys}, "round": row["round"],
                           "value": row["value"]})
    if not curves:
        return
    frame = pd.DataFrame(curves)
    hue, panel_keys = _split_axes(grid_keys)
    frame["panel"] = frame.apply(_group_label, axis=1, keys=panel_keys)
    panels = list(dict.fromkeys(frame["panel"]))
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False,
                             sharey=True)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        rows = frame[frame["panel"] == panel]
        for value, line in rows.groupby(hue, sort=False) if hue else [("all", rows)]:
            mean = line.groupby("round")["value"].mean()
            ax.plot(mean.index, mean.values, marker="o", markersize=3, label=str(value))
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} (mean over seeds)")
    axes[0][0].legend(fontsize=7, title=hue, title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
