"""Atomic checkpoints: a crash mid-write never leaves a half-written checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FILE", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``run_dir/checkpoint.pt`` via a temporary file and ``os.replace``."""
    run_dir = Path(run_dir)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, run_dir / CHECKPOINT_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return run_dir / CHECKPOINT_FILE


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """Read the checkpoint of an earlier run (our own files, so full unpickling is allowed)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; give the run directory of an earlier run"
        )
    return torch.load(path, map_location="cpu", weights_only=False)
