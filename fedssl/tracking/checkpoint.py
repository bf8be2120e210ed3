"""Atomic checkpoints: a crash mid-write never leaves a half-written checkpoint behind.

Two kinds of file live in a run directory:

* ``checkpoint.pt``: the latest round's full state (model, strategy state, RNG), for resuming;
  each round overwrites it.
* ``rounds/round-0007.pt``: the global model after each round, kept when the run config says
  ``keep-round-models = true``, so that ``fedssl select-best`` can afterwards pick the round
  whose global model scores best downstream (the FASSL idea: the last round need not be best).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_FILE",
    "ROUND_CHECKPOINT_DIR",
    "atomic_save",
    "list_round_models",
    "load_checkpoint",
    "load_round_model",
    "round_model_path",
    "save_checkpoint",
    "save_round_model",
]

CHECKPOINT_FILE = "checkpoint.pt"
ROUND_CHECKPOINT_DIR = "rounds"

# Four digits keep `ls` in round order for ordinary runs; the parser accepts any width.
_ROUND_FILE = re.compile(r"^round-(\d+)\.pt$")


def atomic_save(obj: Any, path: Path, *, prefix: str) -> Path:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace`` it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``run_dir/checkpoint.pt`` via a temporary file and ``os.replace``."""
    return atomic_save(state, Path(run_dir) / CHECKPOINT_FILE, prefix=".checkpoint-")


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """Read the checkpoint of an earlier run (our own files, so full unpickling is allowed)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; give the run directory of an earlier run"
        )
    return torch.load(path, map_location="cpu", weights_only=False)


def round_model_path(run_dir: str | Path, rnd: int) -> Path:
    """Where the global model of round ``rnd`` is kept: ``run_dir/rounds/round-0007.pt``."""
    return Path(run_dir) / ROUND_CHECKPOINT_DIR / f"round-{rnd:04d}.pt"


def save_round_model(
    run_dir: str | Path, rnd: int, state_dict: dict[str, torch.Tensor]
) -> Path:
    """Keep the global model of round ``rnd`` (atomically, like :func:`save_checkpoint`).

    Parameters
    ----------
    run_dir
        The run directory; ``rounds/`` is created in it when missing.
    rnd
        The server round (>= 1) after which ``state_dict`` is the global model.
    state_dict
        The global arrays as a torch state_dict (``ArrayRecord.to_torch_state_dict()``).

    Returns
    -------
    Path
        The written file. A resumed run that repeats a round overwrites that round's file.
    """
    if rnd < 1:
        raise ValueError(f"round {rnd} is not a server round; rounds start at 1")
    path = round_model_path(run_dir, rnd)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only tensors and an int: the file loads with weights_only=True, i.e. without unpickling
    # arbitrary objects.
    payload = {"round": int(rnd), "arrays": {k: v.detach().cpu() for k, v in state_dict.items()}}
    return atomic_save(payload, path, prefix=".round-")


def list_round_models(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(round, path)`` of every kept round model of ``run_dir``, sorted by round.

    Returns an empty list when the run kept none (no ``rounds/`` directory); temporary files
    of an interrupted write are ignored.
    """
    folder = Path(run_dir) / ROUND_CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _ROUND_FILE.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_round_model(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state_dict stored in a round file (or in ``best-model.pt``), on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no round model at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "arrays" not in payload:
        raise ValueError(f"{path} is not a round model file (no 'arrays' entry)")
    return payload["arrays"]
