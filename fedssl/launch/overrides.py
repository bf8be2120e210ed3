"""The one merge of a run's config: defaults <- experiment base <- ``key=value`` overrides.

``fedssl run``, ``fedssl experiment`` (every variant) and ``fedssl deploy submit`` all build
their :class:`~fedssl.config.RunConfig` with :func:`resolve_config`, so a key means the same
thing whichever way a run is started, and an invalid value is refused before any process
starts.

Runs started here (simulation) read their paths on this machine: ``resume-from`` and
``repopt-scales`` become absolute (the ServerApp runs in another working directory), a
``resume-from`` run that already has all its rounds is refused, and ``output-dir`` defaults to
``<default_root>/<run name>``. With ``paths_elsewhere=True`` (deployment) the paths name files
on the SuperLink's and SuperNodes' machines: they are validated as written and left alone
(see :func:`fedssl.config.paths_elsewhere`), and an empty ``output-dir`` is left to the
ServerApp.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedssl.compose import default_run_name, validate
from fedssl.config import RESUME_MAY_CHANGE, ConfigError, RunConfig, load_defaults, resume_conflicts
from fedssl.config import paths_elsewhere as _remote_paths

__all__ = ["resolve_config"]


def _validated(merged: dict[str, Any]) -> RunConfig:
    """The merged run config, typed and validated: raises ConfigError before any process."""
    return validate(RunConfig.from_run_config(merged))


def resolve_config(
    base: dict[str, Any],
    overrides: dict[str, Any],
    *,
    default_root: Path | None = None,
    paths_elsewhere: bool = False,
) -> RunConfig:
    """Defaults <- ``base`` <- ``overrides``, validated.

    For a run on this machine (the default) the result has an absolute ``output-dir``
    (``default_root`` / run name when none is given; ``default_root`` is then required),
    absolute ``resume-from`` and ``repopt-scales``, and a ``resume-from`` run is checked to
    have rounds left. With ``paths_elsewhere=True`` (``fedssl deploy submit``) local paths are
    neither checked nor resolved: the validated config is returned as merged.
    """
    merged = load_defaults() | base | overrides  # pyproject's [tool.flwr.app.config] first
    if paths_elsewhere:
        with _remote_paths():  # they name files on the SuperLink's and SuperNodes' machines
            return _validated(merged)
    # Paths are typed relative to where the command runs; the ServerApp runs elsewhere.
    for key in ("data-dir", "resume-from", "repopt-scales", "output-dir"):
        if merged.get(key):
            merged[key] = str(Path(merged[key]).expanduser().resolve())
    if merged.get("resume-from"):
        merged = _resumed(merged, base | overrides)
    cfg = _validated(merged)
    if cfg.resume_from:
        from fedssl.tracking.checkpoint import load_checkpoint

        done = load_checkpoint(cfg.resume_from)["round"]
        if done >= cfg.num_server_rounds:
            raise ConfigError(
                f"resume-from={cfg.resume_from!r} already finished {done} rounds and "
                f"num-server-rounds={cfg.num_server_rounds}; set num-server-rounds above "
                f"{done} to continue it"
            )
    if not cfg.output_dir:
        if cfg.resume_from:
            return cfg.replace(output_dir=cfg.resume_from)
        if default_root is None:
            raise ValueError("resolve_config: default_root is needed when output-dir is not set")
        name = cfg.run_name or default_run_name(cfg)
        cfg = cfg.replace(output_dir=str((default_root / name).resolve()), run_name=name)
    return cfg


def _resumed(merged: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A resumed run's config: the original run's (its ``config.json``) with what was given
    on top, refused when a given key that defines the run differs from the original."""
    run_dir = Path(merged["resume-from"])
    stored = run_dir / "config.json"
    try:
        original = json.loads(stored.read_text())
    except FileNotFoundError:
        raise ConfigError(f"resume-from={str(run_dir)!r}: no config.json there; give the run "
                          "directory of an earlier run") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"resume-from={str(run_dir)!r}: {stored} is unreadable ({err})"
                          ) from None
    original.pop("run-dir", None)
    conflicts = resume_conflicts(original, {k: merged[k] for k in given if k in merged})
    if conflicts:
        raise ConfigError(
            f"resume-from={str(run_dir)!r} continues a run whose settings it must keep; these "
            f"differ: {'; '.join(conflicts)}. Leave them out (the run's own are used), or start "
            "a new run")
    kept = {k: v for k, v in original.items() if k not in RESUME_MAY_CHANGE}
    return merged | kept
