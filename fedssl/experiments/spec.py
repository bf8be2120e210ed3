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
```
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedssl.config import ConfigError, load_defaults

__all__ = ["ExperimentSpec", "Variant", "load_experiment"]


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    num_supernodes: int = 10
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def variants(self) -> list[Variant]:
        """Every grid combination times every seed, named ``key=value,...,seed=N``."""
        keys = sorted(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        out = []
        for combo in combos:
            for seed in self.seeds:
                overrides = dict(zip(keys, combo, strict=True)) | {"seed": seed}
                name = ",".join(f"{k}={v}" for k, v in overrides.items())
                out.append(Variant(name, self.base | overrides))
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
    for table, keys in (("base", base), ("grid", grid)):
        unknown = sorted(set(keys) - valid)
        if unknown:
            raise ConfigError(f"{path}: [{table}] has unknown run-config keys {unknown}; "
                              f"valid keys: {sorted(valid)}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: [grid] {key} must be a non-empty list, got {values!r}")
    seeds = meta.get("seeds", [0])
    return ExperimentSpec(
        name=str(meta.get("name", path.stem)),
        description=str(meta.get("description", "")),
        seeds=tuple(int(s) for s in seeds),
        num_supernodes=int(meta.get("num-supernodes", 10)),
        base=base,
        grid=grid,
    )
