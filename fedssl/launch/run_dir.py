"""Claiming a run directory, so that no two runs write into one and no run mixes its results
with an earlier run's."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from fedssl.config import ConfigError, RunConfig

__all__ = ["CLAIM_FILE", "claim_run_dir"]

# Created exclusively in a run directory by the command that starts the run.
CLAIM_FILE = ".fedssl-claim"


def claim_run_dir(cfg: RunConfig, *, overwrite: bool = False) -> Path:
    """Create ``cfg.output_dir`` for a new run, exclusively; the directory.

    A resumed run continues in its own directory (nothing to claim). Otherwise the directory
    must not exist or be empty: an existing run's directory is refused (its files would be
    mixed into the new run's) unless ``overwrite``, which clears it first, and only when it
    is a run directory (it holds ``config.json``). Two commands claiming one directory at the
    same moment: the second is refused.

    Raises
    ------
    ConfigError
        Naming the directory and what to do instead.
    """
    path = Path(cfg.output_dir)
    if cfg.resume_from and path.resolve() == Path(cfg.resume_from).resolve():
        return path
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output-dir={str(path)!r} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()):
        claim = path / CLAIM_FILE
        if claim.is_file() and not (path / "config.json").is_file():
            raise ConfigError(f"output-dir={str(path)!r} was just claimed by another run "
                              f"({claim.read_text().strip()}); choose another run-name or "
                              "output-dir")
        if not overwrite:
            raise ConfigError(
                f"output-dir={str(path)!r} already holds a run ({_listing(path)}); its results "
                "would be mixed with this run's. Choose another run-name or output-dir, continue "
                "it with resume-from=<that directory>, or pass --overwrite to clear it")
        if not (path / "config.json").is_file():
            raise ConfigError(f"--overwrite: {str(path)!r} is not a run directory (it has no "
                              "config.json), so it is not cleared; choose another output-dir")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(path / CLAIM_FILE, "x") as fh:
            fh.write(f"pid {os.getpid()} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    except FileExistsError:
        raise ConfigError(f"output-dir={str(path)!r} was just claimed by another run; choose "
                          "another run-name or output-dir") from None
    except OSError as err:
        raise ConfigError(f"output-dir={str(path)!r} cannot be written: {err.strerror or err}; "
                          "choose a directory you can write to") from None
    return path


def _listing(path: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in path.iterdir())
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
