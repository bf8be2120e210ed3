"""Run every variant of an experiment on one private SuperLink, then tabulate and plot.

The experiment directory holds ``experiment.json`` (what was started: the experiment's name,
its variants in order, the settings that define them, the ``key=value`` overrides and the
client count), one run directory per variant (``00``, ``01``, ...), and ``runs.csv`` with the
report, both rewritten after every finished variant: an interrupted experiment keeps a valid
partial report, and ``--continue DIR`` runs only the variants that have not completed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fedssl.config import ConfigError
from fedssl.experiments.spec import ExperimentSpec, Variant, duplicate_variants
from fedssl.launch import Federation, LocalSuperLink, RoundProgress
from fedssl.launch.overrides import resolve_config

__all__ = ["EXPERIMENT_FILE", "results_table", "rewrite_report", "rounds_to_target",
           "run_experiment", "summary_metrics", "write_report"]

# What an experiment directory was started with; --continue checks it.
EXPERIMENT_FILE = "experiment.json"
COMPLETED = "finished:completed"
# Columns every runs.csv has (the grid labels and metrics come after).
RUNS_COLUMNS = ("run", "variant", "status", "run-dir")


def run_experiment(
    spec: ExperimentSpec,
    overrides: dict[str, Any],
    *,
    federation: Federation,
    runs_dir: Path,
    dry_run: bool = False,
    quiet: bool = False,
    continue_dir: Path | None = None,
) -> int:
    """Run all variants; returns 0 when every run completed, 1 otherwise.

    ``runs.csv`` and the report are rewritten after every finished variant. With
    ``continue_dir`` (the directory of an earlier, interrupted run of the same experiment)
    the variants that completed there (``summary.json`` and a completed status in its
    ``runs.csv``) are kept, the others run again from scratch, then the report is rewritten.
    """
    variants = spec.variants()
    duplicates = duplicate_variants(variants)
    if duplicates:
        raise ConfigError(f"experiment {spec.name!r}: these variants have the same name: "
                          f"{', '.join(map(repr, duplicates))}")
    done: dict[int, dict[str, Any]] = {}
    if continue_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        root = (runs_dir / f"{spec.name}-{stamp}").resolve()
    else:
        root = Path(continue_dir).resolve()
        overrides = _check_continued(spec, variants, root, overrides, federation)
        done = _completed_rows(spec, root, variants)
    # Validate every variant before the first one starts: a typo in variant 7 should not
    # surface after six finished runs.
    configs = [
        resolve_config(v.overrides, overrides | {"output-dir": str(_run_dir(root, i)),
                                                 "run-name": f"{spec.name}-{i:02d}",
                                                 "wandb-group": spec.name},
                       default_root=root)
        for i, v in enumerate(variants)
    ]
    if continue_dir is None:
        print(f"fedssl: experiment {spec.name}: {len(variants)} runs -> {root}")
    else:
        print(f"fedssl: experiment {spec.name}: continuing {root}: {len(done)} of "
              f"{len(variants)} runs completed, {len(variants) - len(done)} to run")
    for i, variant in enumerate(variants):
        clients = variant.num_supernodes or federation.num_supernodes
        kept = ", completed: skipped" if i in done else ""
        print(f"  {i:02d}  {variant.name}  ({clients} clients{kept})")
    if dry_run:
        return 0
    root.mkdir(parents=True, exist_ok=True)
    _write_manifest(root, spec, variants, overrides, federation)
    rows = dict(done)
    pending = [i for i in range(len(variants)) if i not in done]
    try:
        if pending:
            with LocalSuperLink(ray_address=federation.ray_address) as link:
                for i in pending:
                    rows[i] = _run_variant(spec, variants, i, configs[i], link, federation,
                                           root, quiet=quiet, clear=continue_dir is not None)
                    _write_partial(spec, _runs_frame(rows), root)
    except KeyboardInterrupt:
        finished = sum(r["status"] == COMPLETED for r in rows.values())
        kept = "runs.csv and the report there hold them; " if rows else ""
        print(f"\nfedssl: experiment interrupted with {finished} of {len(variants)} runs "
              f"completed in {root}; {kept}run the rest with: fedssl experiment "
              f"{spec.path or 'FILE'} --continue {root}", file=sys.stderr)
        raise
    write_report(spec, _runs_frame(rows), root)
    failed = [i for i in range(len(variants)) if rows[i]["status"] != COMPLETED]
    if failed:
        print(f"fedssl: {len(failed)} of {len(variants)} runs did not complete; run them again "
              f"with: fedssl experiment {spec.path or 'FILE'} --continue {root}",
              file=sys.stderr)
    return 1 if failed else 0


def _write_partial(spec: ExperimentSpec, runs: pd.DataFrame, root: Path) -> None:
    """runs.csv and the report after every run, so that an interruption leaves both; a
    report that cannot be drawn yet must not end the experiment (runs.csv is written first)."""
    _replace_text(root / "runs.csv", runs.to_csv(index=False))
    try:
        write_report(spec, runs, root, announce=False)
    except Exception as err:  # the runs go on; the final report says more
        print(f"fedssl: the partial report in {root} was not written: {err!r}", file=sys.stderr)


def _run_dir(root: Path, index: int) -> Path:
    return root / f"{index:02d}"


def _run_variant(spec: ExperimentSpec, variants: list[Variant], i: int, cfg: Any, link: Any,
                 federation: Federation, root: Path, *, quiet: bool, clear: bool
                 ) -> dict[str, Any]:
    """Run variant ``i``; its row of runs.csv."""
    variant = variants[i]
    run_dir = _run_dir(root, i)
    if clear and run_dir.is_dir():
        # The unfinished run of an interrupted experiment: its rounds would be mixed into the
        # new run's record, so it starts from an empty directory.
        print(f"fedssl: clearing the unfinished run directory {run_dir}", flush=True)
        shutil.rmtree(run_dir)
    print(f"\nfedssl: [{i + 1}/{len(variants)}] {variant.name}", flush=True)
    with RoundProgress(cfg.num_server_rounds, quiet=quiet, desc=f"run {i:02d}") as bar:
        outcome = link.run(cfg.to_run_config(), _federation_of(variant, federation),
                           on_line=bar.write, on_progress=bar.update)
    row = {"run": i, "variant": variant.name, "status": outcome.status,
           "wall-time-s": round(outcome.wall_time_s, 1), "run-dir": str(outcome.run_dir)}
    if not outcome.completed:
        print(f"fedssl: run {i:02d} ended {outcome.status}: {outcome.details}", file=sys.stderr)
    return _with_metrics(spec, row | variant.labels, Path(outcome.run_dir or run_dir))


def _with_metrics(spec: ExperimentSpec, row: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    row = row | summary_metrics(run_dir, spec.report.metrics)
    if spec.report.target is not None:
        row["rounds-to-target"] = rounds_to_target(run_dir / "metrics.csv", spec.report.curve,
                                                   spec.report.target)
    return row


def _runs_frame(rows: dict[int, dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([rows[i] for i in sorted(rows)])


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _settings_of(spec: ExperimentSpec) -> dict[str, Any]:
    """What defines an experiment's runs (the report and description may change)."""
    return _jsonable({"seeds": list(spec.seeds), "num-supernodes": spec.num_supernodes,
                      "base": spec.base, "grid": spec.grid})


def _write_manifest(root: Path, spec: ExperimentSpec, variants: list[Variant],
                    overrides: dict[str, Any], federation: Federation) -> None:
    manifest = {"name": spec.name, "file": spec.path, "variants": [v.name for v in variants],
                "settings": _settings_of(spec), "overrides": _jsonable(overrides),
                "num-supernodes": federation.num_supernodes}
    _replace_text(root / EXPERIMENT_FILE, json.dumps(manifest, indent=2) + "\n")


def _replace_text(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace``: an interruption leaves the old file or
    the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _some(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _check_continued(spec: ExperimentSpec, variants: list[Variant], root: Path,
                     overrides: dict[str, Any], federation: Federation) -> dict[str, Any]:
    """Refuse to continue a directory of another experiment, or of this one started with other
    settings; the overrides to run with (the directory's own when none are given)."""
    flag = f"--continue {str(root)!r}"
    if not root.is_dir():
        raise ConfigError(f"{flag}: no such directory; give the directory an interrupted "
                          f"`fedssl experiment {spec.path or spec.name}` wrote")
    names = [v.name for v in variants]
    manifest_path = root / EXPERIMENT_FILE
    if not manifest_path.is_file():
        # Written before experiment.json existed: runs.csv or the directory's name tells.
        if (root / "runs.csv").is_file():
            _check_variants(spec, names, _read_runs(root, flag), flag, by_index=True)
        elif not re.fullmatch(rf"{re.escape(spec.name)}-\d{{8}}-\d{{6}}", root.name):
            raise ConfigError(f"{flag}: not a directory of experiment {spec.name!r} (it has no "
                              f"{EXPERIMENT_FILE} or runs.csv, and its name is not "
                              f"{spec.name}-<date>-<time>)")
        return overrides
    try:
        manifest = json.loads(manifest_path.read_text())
        started, listed = manifest["name"], list(manifest["variants"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{flag}: {manifest_path} is unreadable ({err})") from None
    if started != spec.name:
        raise ConfigError(
            f"{flag}: that directory holds experiment {started!r}, not {spec.name!r} (the "
            f"experiment of {spec.path or 'the file given'}); give {started!r}'s experiment file "
            f"or a directory of {spec.name!r}")
    if listed != names:
        missing = [n for n in listed if n not in names]
        new = [n for n in names if n not in listed]
        parts = []
        if missing:
            parts.append(f"the directory has variants the file does not define: {_some(missing)}")
        if new:
            parts.append(f"the file defines variants the directory does not have: {_some(new)}")
        what = "; ".join(parts) or ("the file lists the same variants in another order (the run "
                                    "directories are numbered in the file's order)")
        raise ConfigError(f"{flag}: experiment {spec.name!r} was started with other variants: "
                          f"{what}; start it anew instead of continuing")
    sections = {"seeds": "[experiment] seeds", "num-supernodes": "[experiment] num-supernodes",
                "base": "[base]", "grid": "[grid]"}
    changed = [sections[key] for key, value in _settings_of(spec).items()
               if manifest.get("settings", {}).get(key) != value]
    if changed:
        raise ConfigError(f"{flag}: {', '.join(changed)} of {spec.path or spec.name} changed "
                          "since the experiment was started, so the finished runs would not "
                          "compare with the new ones; undo the change or start the experiment "
                          "anew")
    stored = manifest.get("overrides", {})
    if overrides and _jsonable(overrides) != stored:
        differ = sorted(k for k in set(stored) | set(_jsonable(overrides))
                        if stored.get(k) != _jsonable(overrides).get(k))
        raise ConfigError(f"{flag}: the experiment was started with the overrides "
                          f"{_overrides_text(stored)}; these differ: {', '.join(differ)}. Give "
                          "none (the directory's own are used) or the same")
    if stored and not overrides:
        print(f"fedssl: continuing with the experiment's overrides {_overrides_text(stored)}")
    clients = manifest.get("num-supernodes", federation.num_supernodes)
    if clients != federation.num_supernodes:
        raise ConfigError(f"{flag}: the experiment was started with {clients} clients, this "
                          f"command asks for {federation.num_supernodes}; continue it with "
                          f"--num-supernodes {clients}")
    return stored


def _overrides_text(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "(none)"


def _completed_rows(spec: ExperimentSpec, root: Path, variants: list[Variant]
                    ) -> dict[int, dict[str, Any]]:
    """The rows of runs.csv whose variant completed and whose run directory has its
    ``summary.json``, by variant index: their run directory where it is now, their final
    metrics read again from it (as ``--report`` does)."""
    if not (root / "runs.csv").is_file():
        return {}
    runs = _read_runs(root, f"--continue {str(root)!r}")
    done = {}
    for row in runs.to_dict("records"):
        i = int(row["run"])
        run_dir = _run_dir(root, i)
        if (row["status"] == COMPLETED and 0 <= i < len(variants)
                and row["variant"] == variants[i].name and (run_dir / "summary.json").is_file()):
            row |= {"run": i, "run-dir": str(run_dir)} | variants[i].labels
            done[i] = _with_metrics(spec, row, run_dir)
    return done


def _read_runs(root: Path, flag: str) -> pd.DataFrame:
    """An experiment directory's runs.csv; a ConfigError if it is not one."""
    path = Path(root) / "runs.csv"
    try:
        runs = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ConfigError(f"{flag}: {path} is unreadable ({err})") from None
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise ConfigError(f"{flag}: {path} is not an experiment's runs.csv (it has no "
                          f"{', '.join(missing)} column)")
    return runs


def _check_variants(spec: ExperimentSpec, names: list[str], runs: pd.DataFrame, flag: str,
                    *, by_index: bool = False) -> None:
    """Every variant of runs.csv is one of the spec's (at its index, for --continue)."""
    foreign = list(dict.fromkeys(str(v) for v in runs["variant"] if str(v) not in names))
    source = spec.path or f"experiment {spec.name!r}"
    if foreign:
        raise ConfigError(
            f"{flag}: its runs.csv has {len(foreign)} variant(s) that {source} does not define: "
            f"{_some(foreign)}; {source} defines {_some(names)}. Give the experiment file that "
            "wrote that directory")
    if by_index:
        moved = [str(r["variant"]) for r in runs.to_dict("records")
                 if not (0 <= int(r["run"]) < len(names) and names[int(r["run"])] == r["variant"])]
        if moved:
            raise ConfigError(f"{flag}: the variants {_some(moved)} have another place in "
                              f"{source} than in that directory's runs.csv (the run "
                              "directories are numbered in the file's order)")


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
    combination. ``seeds`` counts the runs that completed (those the means are over);
    ``failed`` the others, when there are any."""
    metrics = [c for c in runs.columns
               if _is_reported(c, report_metrics) or c == "rounds-to-target"]
    if not grid_keys:
        runs = runs.assign(variant="all")
        grid_keys = ["variant"]
    completed = (runs["status"] == COMPLETED if "status" in runs.columns
                 else pd.Series(True, index=runs.index))
    failed = (~completed).groupby([runs[k] for k in grid_keys], sort=False).sum()
    runs = runs[completed]
    sizes = runs.groupby(grid_keys, sort=False).size().reindex(failed.index, fill_value=0)
    if metrics:
        table = runs.groupby(grid_keys, sort=False)[metrics].agg(["mean", "std"])
        table.columns = [f"{m} {stat}" for m, stat in table.columns]
    else:  # no run has metrics yet (a partial report whose runs failed)
        table = sizes.to_frame().iloc[:, :0]
    table = table.reindex(failed.index)  # a combination whose every seed failed stays a row
    table["seeds"] = sizes
    if failed.any():
        table["failed"] = failed
    if "rounds-to-target" in runs.columns:
        table["reached-target"] = runs.groupby(grid_keys, sort=False)["rounds-to-target"].count(
        ).reindex(failed.index, fill_value=0)
    return table.reset_index()


def rewrite_report(spec: ExperimentSpec, root: Path) -> None:
    """Tables and plots again from a finished experiment's ``runs.csv`` (nothing is rerun).

    Refused, before anything is rewritten, when ``runs.csv`` holds a variant the spec does
    not define (the directory of another experiment). A partial ``runs.csv`` (an interrupted
    experiment) is reported as it is.
    """
    runs_path = Path(root) / "runs.csv"
    flag = f"--report {str(root)!r}"
    if not runs_path.is_file():
        raise ConfigError(f"{flag}: no runs.csv there; give the directory an experiment wrote")
    runs = _read_runs(Path(root), flag)
    _check_variants(spec, [v.name for v in spec.variants()], runs, flag)
    # Refresh the final metrics from each run's summary: a report metric added to the
    # experiment file after the runs (or one an older version did not keep) is found there.
    refreshed = [summary_metrics(Path(d), spec.report.metrics) for d in runs["run-dir"]]
    for i, metrics in enumerate(refreshed):
        for key, value in metrics.items():
            runs.loc[i, key] = value
    write_report(spec, runs, Path(root))


def write_report(spec: ExperimentSpec, runs: pd.DataFrame, root: Path, *,
                 announce: bool = True) -> None:
    """runs.csv (one row per run), results.csv/.md (aggregated), comparison plots; with
    ``announce`` the table and the directory are printed too."""
    _replace_text(root / "runs.csv", runs.to_csv(index=False))
    grid_keys = list(spec.grid)
    table = results_table(runs, grid_keys, spec.report.metrics)
    table.to_csv(root / "results.csv", index=False)
    (root / "results.md").write_text(
        f"# {spec.name}\n\n{spec.description}\n\n" + table.to_markdown(index=False,
                                                                        floatfmt=".4f") + "\n"
    )
    if announce:
        print("\n" + table.to_markdown(index=False, floatfmt=".4f"))
    _plot_final(table, grid_keys, root / "final_accuracy.png", spec.report.metrics, runs)
    _plot_curves(runs, grid_keys, root / f"{spec.report.curve.replace('-', '_')}.png",
                 spec.report.curve, spec.report.target)
    if announce:
        print(f"\nfedssl: experiment results in {root}")


def _split_axes(grid_keys: list[str]) -> tuple[str | None, list[str]]:
    """Colour by the first grid axis; group (bars) or panel (curves) by the others."""
    if not grid_keys:
        return None, []
    return grid_keys[0], grid_keys[1:]


def _group_label(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys) if keys else "all"


# The probes of the input itself (no network): the floor a linear probe of an encoder should
# beat, by the prefix of its key (``raw-pixel-linear-probe-accuracy``, ...).
DATA_PROBES = {"raw-pixel": "raw-pixel probe (data only)", "log-mel": "log-mel probe (data only)"}


def _colours(values: list[Any]) -> dict[Any, Any]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {v: cycle[i % len(cycle)] for i, v in enumerate(values)}


def _floors(table: pd.DataFrame, metric: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The reference marks of a final metric: (column, legend label, line style)."""
    marks = [(f"random-init-{metric} mean", "random init (same network)",
              {"color": "black", "linestyle": "-", "linewidth": 2.0})]
    marks += [(f"{prefix}-{metric} mean", label,
               {"color": "tab:red", "linestyle": "--", "linewidth": 1.5})
              for prefix, label in DATA_PROBES.items()]
    return [m for m in marks if m[0] in table.columns and table[m[0]].notna().any()]


def _seed_counts(runs: pd.DataFrame | None, table: pd.DataFrame, grid_keys: list[str],
                 metric: str) -> pd.Series:
    """How many runs of each group (row of ``table``) have ``metric``: a failed seed has none;
    the table's ``seeds`` (runs started) where the runs are not given."""
    if runs is None or metric not in runs.columns:
        return table["seeds"] if "seeds" in table.columns else pd.Series(1, index=table.index)
    if not grid_keys:
        return pd.Series(int(runs[metric].count()), index=table.index)
    counts = runs.groupby(grid_keys, sort=False)[metric].count().rename("n").reset_index()
    merged = table[grid_keys].merge(counts, on=grid_keys, how="left")["n"]
    return merged.fillna(0).astype(int).set_axis(table.index)


def _plot_final(table: pd.DataFrame, grid_keys: list[str], path: Path,
                metrics: tuple[str, ...], runs: pd.DataFrame | None = None) -> Figure | None:
    """One panel per final metric, one bar per group (variant without the seed): the mean
    over its seeds with the std as error bar. Bars are clustered by the other grid axes
    (labelled under each cluster), labelled and coloured by the first axis. Each bar carries
    its floors: the same network at random init (solid black) and, for the linear probe, the
    probe of the input itself (dashed red: raw pixels or log-mel). The seeds are counted in
    the legend, or on every bar where groups have different counts (failed runs)."""
    metrics = [m for m in metrics if f"{m} mean" in table.columns]
    if not metrics or table.empty:
        return None
    hue, cluster_keys = _split_axes(grid_keys)
    hues = list(dict.fromkeys(table[hue])) if hue else ["all"]
    colours = _colours(hues)
    rows = table.reset_index(drop=True)
    rows = rows.assign(cluster=rows.apply(lambda r: "\n".join(f"{k}={r[k]}"
                                                              for k in cluster_keys), axis=1)
                       if cluster_keys else "", hue=rows[hue] if hue else "all")
    clusters = list(dict.fromkeys(rows["cluster"]))
    slot = len(hues) + 1  # a gap between clusters
    rows["x"] = [clusters.index(c) * slot + hues.index(h)
                 for c, h in zip(rows["cluster"], rows["hue"], strict=True)]
    rows = rows.sort_values("x", kind="stable").reset_index(drop=True)
    counts = {m: _seed_counts(runs, rows, grid_keys, m) for m in metrics}
    shown = {int(n) for m in metrics for n in counts[m][rows[f"{m} mean"].notna()]}
    per_bar = len(shown) > 1
    trained = "trained: mean ± std over " + ("n seeds (on each bar)" if per_bar else
                                             f"{shown.pop() if shown else 0} seeds")
    widest = max(len(str(h)) for h in hues)
    long_labels = widest > 12 or widest * len(rows) > 60
    stacked = len(rows) > 8  # many bars: one panel per row, full width
    panel = (max(4.5, 1.5 + 0.45 * len(rows)), 3.4 + 0.35 * len(cluster_keys))
    shape = (len(metrics), 1) if stacked else (1, len(metrics))
    fig, axes = plt.subplots(*shape, squeeze=False, layout="constrained",
                             figsize=(panel[0] * shape[1], panel[1] * shape[0]))
    handles: dict[str, Any] = {trained: Patch(facecolor="lightgrey", edgecolor="grey")}
    unders = []  # (panel, its axis of group labels)
    for ax, metric in zip(axes.ravel(), metrics, strict=True):
        mean, std = rows[f"{metric} mean"], rows[f"{metric} std"].fillna(0)
        bars = ax.bar(rows["x"], mean.fillna(0), width=0.8, yerr=std, capsize=3,
                      color=[colours[h] for h in rows["hue"]])
        tops = [(mean + std).max()]
        for column, label, style in _floors(rows, metric):
            ax.hlines(rows[column], rows["x"] - 0.42, rows["x"] + 0.42, zorder=3, label=label,
                      **style)
            handles[label] = Line2D([], [], **style)
            tops.append(rows[column].max())
        top = float(np.nanmax(tops)) if np.isfinite(tops).any() else 1.0
        ax.set_ylim(0, min(1.0, top * 1.12) if top <= 1.0 else top * 1.05)
        for bar, x, value, n in zip(bars, rows["x"], mean, counts[metric], strict=True):
            if pd.isna(value):  # a group whose runs all failed
                ax.text(x, 0.02 * top, "no result", rotation=90, ha="center", va="bottom",
                        fontsize=7, color="grey")
            elif per_bar:
                ax.text(x, 0.02 * top, f"n={n}", ha="center", va="bottom", fontsize=7,
                        color="white", zorder=4)
            bar.set_gid(f"n={n}")
        ax.set_xticks(rows["x"], [str(h) for h in rows["hue"]],
                      rotation=30 if long_labels else 0, ha="right" if long_labels else "center",
                      fontsize=8)
        ax.set_xlim(-0.7, rows["x"].max() + 0.7)
        if cluster_keys:
            centres = [rows.loc[rows["cluster"] == c, "x"].mean() for c in clusters]
            under = ax.secondary_xaxis("bottom")
            under.set_xticks(centres, clusters, fontsize=8)
            under.tick_params(length=0)
            unders.append((ax, under))
            under.spines["bottom"].set_visible(False)
            under.set_xlabel(f"bars: {hue}; groups: {', '.join(cluster_keys)}", fontsize=8)
        elif hue:
            ax.set_xlabel(hue, fontsize=8)
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(list(handles.values()), list(handles), loc="outside upper center",
               ncols=len(handles), fontsize=8, frameon=False)
    if unders:  # the group labels go below the bars' (possibly rotated) labels
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax, under in unders:
            height = max(t.get_window_extent(renderer).height
                         for t in ax.get_xticklabels() if t.get_text())
            under.tick_params(pad=height * 72 / fig.dpi + 12)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


def _plot_curves(runs: pd.DataFrame, grid_keys: list[str], path: Path, metric: str,
                 target: float | None) -> Figure | None:
    """A central metric per round: one panel per combination of the other grid axes, one line
    per group (variant without the seed) coloured by the first axis: the mean over its seeds,
    a band from the lowest to the highest seed where it has several, the number of seeds in
    the legend; the target as a dashed line. The y range is the data's (and the target's)
    with a small margin. Runs that did not complete are left out, so that every round's mean
    is over the same seeds."""
    curves = []
    for i, run in runs.iterrows():
        metrics_path = Path(run["run-dir"]) / "metrics.csv"
        if run.get("status", COMPLETED) != COMPLETED or not metrics_path.exists():
            continue
        frame = pd.read_csv(metrics_path)
        central = frame[(frame["phase"] == "central") & (frame["metric"] == metric)]
        for _, row in central.iterrows():
            curves.append({**{k: run[k] for k in grid_keys}, "run": i, "round": row["round"],
                           "value": row["value"]})
    if not curves:
        return None
    frame = pd.DataFrame(curves)
    hue, panel_keys = _split_axes(grid_keys)
    frame["panel"] = frame.apply(_group_label, axis=1, keys=panel_keys)
    frame["hue"] = frame[hue] if hue else "all"
    panels = list(dict.fromkeys(frame["panel"]))
    colours = _colours(list(dict.fromkeys(frame["hue"])))
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.2 * ncols, 5.5), 3.4 * nrows + 0.3),
                             squeeze=False, sharey=True)
    for ax in axes.ravel()[len(panels):]:
        fig.delaxes(ax)
    values = [] if target is None else [target]
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        rows = frame[frame["panel"] == panel]
        for value, line in rows.groupby("hue", sort=False):
            per_seed = line.pivot_table(index="round", columns="run", values="value",
                                        aggfunc="last")
            seeds = per_seed.shape[1]
            mean = per_seed.mean(axis=1)
            ax.plot(mean.index, mean.values, marker="o", markersize=3, color=colours[value],
                    label=f"{value} (n={seeds})")
            if seeds > 1:
                low, high = per_seed.min(axis=1), per_seed.max(axis=1)
                ax.fill_between(mean.index, low.values, high.values, color=colours[value],
                                alpha=0.2, linewidth=0)
                values += [low.min(), high.max()]
            values += [mean.min(), mean.max()]
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1,
                       label=f"target {target:g}")
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title=hue, title_fontsize=7)
    finite = [v for v in values if np.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        margin = 0.06 * (high - low) or 0.02 * max(abs(high), 1e-3)
        axes[0][0].set_ylim(low - margin, high + margin)
    several = frame.groupby(["panel", "hue"])["run"].nunique().gt(1).any()
    band = "\nline: mean over seeds; band: lowest to highest seed" if several else ""
    for row in axes:
        row[0].set_ylabel(f"{metric}, mean over seeds", fontsize=9)
    fig.suptitle(f"central {metric} per round{band}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
