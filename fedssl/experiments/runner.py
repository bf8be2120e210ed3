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
import pandas as pd
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
    combination."""
    metrics = [c for c in runs.columns
               if _is_reported(c, report_metrics) or c == "rounds-to-target"]
    if not grid_keys:
        runs = runs.assign(variant="all")
        grid_keys = ["variant"]
    sizes = runs.groupby(grid_keys, sort=False).size()
    if metrics:
        table = runs.groupby(grid_keys, sort=False)[metrics].agg(["mean", "std"])
        table.columns = [f"{m} {stat}" for m, stat in table.columns]
    else:  # no run has metrics yet (a partial report whose runs failed)
        table = sizes.to_frame().iloc[:, :0]
    table["seeds"] = sizes
    if "rounds-to-target" in runs.columns:
        table["reached-target"] = runs.groupby(grid_keys, sort=False)["rounds-to-target"].count()
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
    _plot_final(table, grid_keys, root / "final_accuracy.png", spec.report.metrics)
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
