"""Experiment files: a base run config, a grid of overrides and seeds (TOML).

```toml
[experiment]
name = "image_ssl_methods"
description = "..."
seeds = [0, 1]            # each variant runs once per seed
num-supernodes = 10       # simulated clients

[base]                    # run-config keys shared by every variant
dirichlet-alpha = 0.1

[grid]                    # every combination of these values is one variant
ssl-method = ["simclr", "byol"]
# An axis may also list tables: each sets several keys at once and is shown by its name.
# A table may set num-supernodes too (cross-silo vs cross-device in one experiment).
# A string value may name another key of the same variant in braces: {model} below becomes
# the variant's model, so one table serves every network of another axis.
setting = [
  { name = "cross-silo", num-supernodes = 10, fraction-train = 1.0 },
  { name = "cross-device", num-supernodes = 100, fraction-train = 0.1 },
]

[report]                  # optional; defaults shown
metrics = ["linear-probe-accuracy", "knn-accuracy"]   # final values, bar plot
curve = "knn-accuracy"    # central metric plotted per round
target = 0.5              # optional: rounds until `curve` first reaches it, per run
```
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedssl.config import ConfigError, load_defaults

__all__ = ["ExperimentSpec", "ReportSpec", "Variant", "duplicate_variants", "load_experiment",
           "substitute_keys"]


# Keys a grid table may set besides run-config keys.
TABLE_KEYS = ("name", "num-supernodes")


@dataclass(frozen=True)
class Variant:
    """One run: its name, the run-config overrides, the label of each grid axis, the seed."""

    name: str
    overrides: dict[str, Any]
    labels: dict[str, Any] = field(default_factory=dict)
    num_supernodes: int | None = None


def _label(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("name") or ",".join(
            f"{k}={v}" for k, v in value.items() if k != "num-supernodes"
        )
    return value


def _settings(axis: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in TABLE_KEYS}
    return {axis: value}


_REFERENCE = re.compile(r"\{([a-z0-9-]+)\}")


def substitute_keys(settings: dict[str, Any]) -> dict[str, Any]:
    """Replace ``{key}`` in string values by the value of ``key`` in the same settings.

    Unknown names are left as they are (the run config then reports the odd value).
    """
    def fill(text: str) -> str:
        return _REFERENCE.sub(
            lambda m: str(settings[m.group(1)]) if m.group(1) in settings else m.group(0), text)

    return {k: fill(v) if isinstance(v, str) else v for k, v in settings.items()}


@dataclass(frozen=True)
class ReportSpec:
    """What the experiment report plots: final metrics, the per-round curve, a target."""

    metrics: tuple[str, ...] = ("linear-probe-accuracy", "knn-accuracy")
    curve: str = "knn-accuracy"
    target: float | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    num_supernodes: int = 10
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    report: ReportSpec = field(default_factory=ReportSpec)
    path: str = ""  # the experiment file it was read from ("" when built in code)

    def variants(self) -> list[Variant]:
        """Every grid combination times every seed, named ``axis=label,...,seed=N``."""
        keys = list(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        out = []
        for combo in combos:
            labels = {k: _label(v) for k, v in zip(keys, combo, strict=True)}
            settings: dict[str, Any] = {}
            num_supernodes = None
            for key, value in zip(keys, combo, strict=True):
                settings |= _settings(key, value)
                if isinstance(value, dict) and "num-supernodes" in value:
                    num_supernodes = int(value["num-supernodes"])
            for seed in self.seeds:
                name = ",".join(f"{k}={v}" for k, v in (labels | {"seed": seed}).items())
                overrides = substitute_keys(self.base | settings | {"seed": seed})
                out.append(Variant(name, overrides, labels | {"seed": seed}, num_supernodes))
        return out


# The tables of an experiment file and the keys each may hold ([base] and grid tables hold
# run-config keys, checked against the defaults).
SECTIONS = ("experiment", "base", "grid", "report")
EXPERIMENT_KEYS = ("name", "description", "seeds", "num-supernodes")
REPORT_KEYS = ("metrics", "curve", "target")


def _suggest(unknown: list[str], valid: list[str] | tuple[str, ...] | set[str]) -> str:
    """`` (did you mean 'num-supernodes'?)`` (``'x' for 'y', ...`` for several) or nothing."""
    close = {key: match[0] for key in unknown
             if (match := difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6))}
    if not close:
        return ""
    if len(unknown) == 1:
        return f" (did you mean {close[unknown[0]]!r}?)"
    return f" (did you mean {', '.join(f'{m!r} for {k!r}' for k, m in close.items())}?)"


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; a ConfigError naming the file and the problem (binary, not UTF-8, a
    TOML syntax error with its line and column) instead of a traceback."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"experiment file {str(path)!r} cannot be read: "
                          f"{err.strerror or err}") from None
    if b"\x00" in raw:
        raise ConfigError(f"experiment file {str(path)!r} is a binary file, not TOML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"experiment file {str(path)!r} is not UTF-8 text (byte "
                          f"{raw[err.start]:#04x} at offset {err.start}); an experiment file "
                          "is TOML text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"experiment file {str(path)!r} is not valid TOML: {err}") from None


def _check_sections(path: Path, data: dict[str, Any], valid: set[str]) -> None:
    """Every top-level entry is one of the known tables, and each of them is a table."""
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {key} must be a table ([{key}]), got {value!r}")
            continue
        tables = ", ".join(f"[{s}]" for s in SECTIONS)
        if isinstance(value, dict):
            close = difflib.get_close_matches(key, SECTIONS, n=1, cutoff=0.6)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise ConfigError(f"{path}: unknown table [{key}]{hint}; valid tables: {tables}")
        home = ("[experiment]" if key in EXPERIMENT_KEYS else "[base]" if key in valid
                else "[report]" if key in REPORT_KEYS else None)
        where = f"; it belongs in {home}" if home else _suggest([key], SECTIONS)
        raise ConfigError(f"{path}: unknown top-level key {key!r}{where} (a key before the "
                          f"first table is top-level); valid tables: {tables}")


def _check_keys(path: Path, section: str, table: dict[str, Any],
                valid: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        noun = "key" if len(unknown) == 1 else "keys"
        names = repr(unknown[0]) if len(unknown) == 1 else str(unknown)
        raise ConfigError(f"{path}: [{section}] has unknown {noun} {names}"
                          f"{_suggest(unknown, valid)}; valid keys: {', '.join(valid)}")


def _check_supernodes(where: str, value: Any) -> int:
    if not _whole_number(value) or value < 1:
        raise ConfigError(f"{where} num-supernodes must be a whole number >= 1 (the simulated "
                          f"clients), got {value!r}")
    return value


def _check_grid(path: Path, grid: dict[str, Any], valid: set[str]) -> None:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: [grid] {key} must be a non-empty list, got {values!r}")
        tables = [v for v in values if isinstance(v, dict)]
        if tables and len(tables) != len(values):
            raise ConfigError(f"{path}: [grid] {key} mixes tables and plain values")
        if not tables and key not in valid:
            hint = _suggest([key], valid)
            if key == "num-supernodes":
                hint = (" (num-supernodes is set in [experiment], or per value in grid tables: "
                        "setting = [{ name = \"small\", num-supernodes = 10 }, ...])")
            raise ConfigError(f"{path}: [grid] has unknown run-config key {key!r}{hint}; "
                              f"valid keys: {sorted(valid)}")
        for table in tables:
            unknown = sorted(set(table) - valid - set(TABLE_KEYS))
            if unknown:
                raise ConfigError(
                    f"{path}: [grid] {key} table {table!r} has unknown keys {unknown}"
                    f"{_suggest(unknown, valid | set(TABLE_KEYS))}; a table may set run-config "
                    f"keys and {', '.join(TABLE_KEYS)}"
                )
            if "name" in table and not isinstance(table["name"], str):
                raise ConfigError(f"{path}: [grid] {key} table {table!r}: name must be a "
                                  f"string, got {table['name']!r}")
            if "num-supernodes" in table:
                _check_supernodes(f"{path}: [grid] {key} table {_label(table)!r}:",
                                  table["num-supernodes"])
        labels = [str(_label(v)) for v in values]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated and tables:
            raise ConfigError(
                f"{path}: [grid] {key} has more than one table labelled "
                f"{', '.join(map(repr, repeated))}, so two variants would have the same name; "
                "give each table its own name = \"...\"")
        if repeated:
            raise ConfigError(
                f"{path}: [grid] {key} lists {', '.join(map(repr, repeated))} more than once, "
                "so two variants would have the same name; give each value once")


def _check_report(path: Path, report: dict[str, Any]) -> None:
    _check_keys(path, "report", report, REPORT_KEYS)
    metrics = report.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ConfigError(f"{path}: [report] metrics must be a list of metric names, e.g. "
                          f"[\"knn-accuracy\"], got {metrics!r}")
    if not isinstance(report.get("curve", ""), str):
        raise ConfigError(f"{path}: [report] curve must be a metric name, e.g. "
                          f"\"knn-accuracy\", got {report['curve']!r}")
    target = report.get("target")
    if target is not None and (not isinstance(target, int | float) or isinstance(target, bool)):
        raise ConfigError(f"{path}: [report] target must be a number, got {target!r}")


def duplicate_variants(variants: list[Variant]) -> list[str]:
    """Names that more than one variant has (their runs would be mixed up in the report)."""
    names = [v.name for v in variants]
    return sorted({n for n in names if names.count(n) > 1})


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Read and check an experiment file.

    Refused up front, with a ConfigError naming the file: a file that is not TOML text (with
    the line and column of a syntax error), an unknown table or key anywhere (with the
    closest valid one), a value of the wrong type, ``num-supernodes`` below 1, and two
    variants with the same name.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {str(path)!r} does not exist")
    data = _read_toml(path)
    valid = set(load_defaults())
    _check_sections(path, data, valid)
    meta, base, grid = data.get("experiment", {}), data.get("base", {}), data.get("grid", {})
    _check_keys(path, "experiment", meta, EXPERIMENT_KEYS)
    unknown = sorted(set(base) - valid)
    if unknown:
        hint = _suggest(unknown, valid)
        if "num-supernodes" in unknown:
            hint += " (num-supernodes belongs in [experiment] or in grid tables)"
        raise ConfigError(f"{path}: [base] has unknown run-config keys {unknown}{hint}; "
                          f"valid keys: {sorted(valid)}")
    _check_grid(path, grid, valid)
    report = data.get("report", {})
    _check_report(path, report)
    name = meta.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or re.search(r"[/\\]", name):
        raise ConfigError(f"{path}: [experiment] name must be a non-empty string without / "
                          f"or \\ (it names the experiment's directory), got {name!r}")
    if not isinstance(meta.get("description", ""), str):
        raise ConfigError(f"{path}: [experiment] description must be a string, got "
                          f"{meta['description']!r}")
    seeds = meta.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(map(_whole_number, seeds)):
        raise ConfigError(f"{path}: [experiment] seeds must be a non-empty list of whole "
                          f"numbers, e.g. seeds = [0, 1], got {seeds!r}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"{path}: [experiment] seeds lists {repeated} more than once, so two "
                          "variants would have the same name; give each seed once")
    num_supernodes = _check_supernodes(f"{path}: [experiment]",
                                       meta.get("num-supernodes", 10))
    target = report.get("target")
    spec = ExperimentSpec(
        name=name,
        description=meta.get("description", ""),
        seeds=tuple(seeds),
        num_supernodes=num_supernodes,
        base=base,
        grid=grid,
        report=ReportSpec(
            metrics=tuple(report.get("metrics", ReportSpec.metrics)),
            curve=report.get("curve", ReportSpec.curve),
            target=float(target) if target is not None else None,
        ),
        path=str(path),
    )
    # Labels are unique per axis and seeds are unique, yet names may still meet (a label
    # holding "," or "="): refuse rather than mix two variants' runs in one row of the report.
    duplicates = duplicate_variants(spec.variants())
    if duplicates:
        raise ConfigError(f"{path}: these variants have the same name: "
                          f"{', '.join(map(repr, duplicates))}; make their grid labels differ")
    return spec
