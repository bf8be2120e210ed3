"""The RepOpt scales file: written by ``fedssl hyper-search``, read by the FedRepOpt strategy
(server) and by the image-classification task (a plain model's initialisation).

A ``torch.save`` of ``{"format": "fedssl-repopt-scales", "arch": ..., "scales": {key: tensor},
...}`` with the hyper-search's settings and proxy accuracy. Both sides import this module, so
neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["SCALES_FORMAT", "load_scales", "write_scales"]

SCALES_FORMAT = "fedssl-repopt-scales"


def write_scales(path: str | Path, *, arch: str, scales: dict[str, torch.Tensor],
                 **provenance: Any) -> Path:
    """Write a scales file for network ``arch`` (``provenance``: settings, proxy, history)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": SCALES_FORMAT, "arch": arch, "scales": scales, **provenance}, path)
    return path


def load_scales(path: str | Path, *, arch: str | None = None) -> dict[str, torch.Tensor]:
    """Read a scales file; with ``arch``, refuse scales searched for another network."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"repopt scales file {str(path)!r} does not exist; write one "
                                "with `fedssl hyper-search --model MODEL --out FILE`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a file that is not its own
        raise ValueError(f"{path}: not a scales file written by `fedssl hyper-search` "
                         f"({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != SCALES_FORMAT:
        raise ValueError(f"{path}: not a scales file written by `fedssl hyper-search`")
    if arch is not None and payload["arch"] != arch:
        raise ValueError(f"{path} holds scales of {payload['arch']!r}, not of model={arch!r}; "
                         f"run `fedssl hyper-search --model {arch}`")
    return {k: v.float() for k, v in payload["scales"].items()}
