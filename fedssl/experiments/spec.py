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

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedssl.config import ConfigError, load_defaults

__all__ = ["ExperimentSpec", "ReportSpec", "Variant", "load_experiment", "substitute_keys"]


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


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Read and check an experiment file; unknown run-config keys are refused up front."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    meta, base, grid = data.get("experiment", {}), data.get("base", {}), data.get("grid", {})
    valid = set(load_defaults())
    unknown = sorted(set(base) - valid)
    if unknown:
        raise ConfigError(f"{path}: [base] has unknown run-config keys {unknown}; "
                          f"valid keys: {sorted(valid)}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: [grid] {key} must be a non-empty list, got {values!r}")
        tables = [v for v in values if isinstance(v, dict)]
        if tables and len(tables) != len(values):
            raise ConfigError(f"{path}: [grid] {key} mixes tables and plain values")
        if not tables and key not in valid:
            raise ConfigError(f"{path}: [grid] has unknown run-config key {key!r}; "
                              f"valid keys: {sorted(valid)}")
        for table in tables:
            unknown = sorted(set(table) - valid - set(TABLE_KEYS))
            if unknown:
                raise ConfigError(
                    f"{path}: [grid] {key} table {table!r} has unknown keys {unknown}; "
                    f"a table may set run-config keys and {', '.join(TABLE_KEYS)}"
                )
    seeds = meta.get("seeds", [0])
    report = data.get("report", {})
    unknown = sorted(set(report) - {"metrics", "curve", "target"})
    if unknown:
        raise ConfigError(f"{path}: [report] has unknown keys {unknown}; valid: metrics, "
                          "curve, target")
    target = report.get("target")
    if target is not None and not isinstance(target, int | float):
        raise ConfigError(f"{path}: [report] target must be a number, got {target!r}")
    return ExperimentSpec(
        name=str(meta.get("name", path.stem)),
        description=str(meta.get("description", "")),
        seeds=tuple(int(s) for s in seeds),
        num_supernodes=int(meta.get("num-supernodes", 10)),
        base=base,
        grid=grid,
        report=ReportSpec(
            metrics=tuple(report.get("metrics", ReportSpec.metrics)),
            curve=str(report.get("curve", ReportSpec.curve)),
            target=float(target) if target is not None else None,
        ),
    )
