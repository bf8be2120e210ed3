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

from fedssl.experiments.launcher import Federation, LocalSuperLink
from fedssl.experiments.progress import RoundProgress
from fedssl.experiments.spec import ExperimentSpec, Variant

__all__ = ["results_table", "run_experiment", "write_report"]


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
    from fedssl.cli import resolve_config

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
    with LocalSuperLink() as link:
        for i, (variant, cfg) in enumerate(zip(variants, configs, strict=True)):
            print(f"\nfedssl: [{i + 1}/{len(variants)}] {variant.name}", flush=True)
            with RoundProgress(cfg.num_server_rounds, quiet=quiet, desc=f"run {i:02d}") as bar:
                outcome = link.run(cfg.to_run_config(), _federation_of(variant, federation),
                                   on_line=bar.write, on_progress=bar.update)
            row = {"run": i, "variant": variant.name, "status": outcome.status,
                   "wall-time-s": round(outcome.wall_time_s, 1), "run-dir": str(outcome.run_dir)}
            row |= variant.labels
            summary_path = outcome.run_dir / "summary.json"
            if summary_path.exists():
                row |= {k: v for k, v in json.loads(summary_path.read_text()).items()
                        if k.endswith("accuracy")}
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


def results_table(runs: pd.DataFrame, grid_keys: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of every accuracy column, one row per grid combination."""
    metrics = [c for c in runs.columns if c.endswith("accuracy")]
    if not grid_keys:
        runs = runs.assign(variant="all")
        grid_keys = ["variant"]
    table = runs.groupby(grid_keys, sort=False)[metrics].agg(["mean", "std"])
    table.columns = [f"{m} {stat}" for m, stat in table.columns]
    table["seeds"] = runs.groupby(grid_keys, sort=False).size()
    return table.reset_index()


def write_report(spec: ExperimentSpec, runs: pd.DataFrame, root: Path) -> None:
    """runs.csv (one row per run), results.csv/.md (aggregated), comparison plots."""
    runs.to_csv(root / "runs.csv", index=False)
    grid_keys = list(spec.grid)
    table = results_table(runs, grid_keys)
    table.to_csv(root / "results.csv", index=False)
    (root / "results.md").write_text(
        f"# {spec.name}\n\n{spec.description}\n\n" + table.to_markdown(index=False,
                                                                        floatfmt=".4f") + "\n"
    )
    print("\n" + table.to_markdown(index=False, floatfmt=".4f"))
    _plot_final(table, grid_keys, root / "final_accuracy.png")
    _plot_curves(runs, root / "knn_accuracy.png")
    print(f"\nfedssl: experiment results in {root}")


def _plot_final(table: pd.DataFrame, grid_keys: list[str], path: Path) -> None:
    metrics = [m for m in ("linear-probe-accuracy", "knn-accuracy")
               if f"{m} mean" in table.columns]
    if not metrics:
        return
    labels = table[grid_keys or ["variant"]].astype(str).agg(",".join, axis=1)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.bar(labels, table[f"{metric} mean"], yerr=table[f"{metric} std"].fillna(0),
               capsize=4, label="federated SSL")
        baseline = f"random-init-{metric} mean"
        if baseline in table.columns:
            ax.scatter(labels, table[baseline], color="black", marker="_", s=400,
                       label="random init", zorder=3)
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=30)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_curves(runs: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    plotted = False
    for _, run in runs.iterrows():
        metrics_path = Path(run["run-dir"]) / "metrics.csv"
        if not metrics_path.exists():
            continue
        frame = pd.read_csv(metrics_path)
        knn = frame[(frame["phase"] == "central") & (frame["metric"] == "knn-accuracy")]
        if not knn.empty:
            ax.plot(knn["round"], knn["value"], marker="o", label=run["variant"])
            plotted = True
    if plotted:
        ax.set_xlabel("round")
        ax.set_ylabel("kNN accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
