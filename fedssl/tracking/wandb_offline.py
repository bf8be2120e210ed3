"""Read an offline W&B run (``<run-dir>/wandb/offline-run-*``) without uploading it.

An offline run is what ``wandb sync`` would send: a ``run-<id>.wandb`` file of protobuf
records (``wandb.proto.wandb_internal_pb2.Record``) in wandb's LevelDB-style log format, plus
the logged media under ``files/``. wandb 0.31 keeps its reader of that format in the Go core
(the Python ``wandb.sdk.internal.datastore`` module of older releases is gone), so the framing
is read here (32 KiB blocks, 7-byte record headers, CRC-32 checked) and the records are parsed
with wandb's own protobuf classes. Tests use it to check what the dashboards will show; users
can use it to look at a run on a machine without W&B access::

    run = read_offline_run("~/fedssl-runs/my-run")    # or .../wandb/offline-run-...
    run.frame()[["_step", "train/train-loss", "central/knn-accuracy"]]
    run.summary["knn-accuracy"], run.group, run.files
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["OfflineRun", "find_offline_runs", "read_offline_run", "read_records"]

_HEADER = struct.Struct("<4sHB")  # ident, magic, version
_RECORD = struct.Struct("<IHB")  # crc32 of type byte + data, data length, type
_IDENT, _MAGIC, _VERSION = b":W&B", 0xBEE1, 0
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline W&B run holds, as the W&B UI would show it after ``wandb sync``.

    ``history`` has one dict per step (``_step`` included); a logged table or image is the
    dict W&B stores in its place (``_type``, ``path`` under ``files/``, ...). ``files`` are
    paths relative to ``files_dir``, as logged (``media/table/...``, ``media/images/...``).
    """

    path: Path
    run_id: str
    project: str
    name: str
    group: str
    job_type: str
    tags: list[str]
    config: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    files: list[str]
    exit_code: int | None = None
    files_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.files_dir = self.path / "files"

    def frame(self) -> pd.DataFrame:
        """The history as a DataFrame, one row per step."""
        return pd.DataFrame(self.history)

    def values(self, key: str) -> dict[int, Any]:
        """``{step: value}`` of one history key, for the steps that logged it."""
        return {row["_step"]: row[key] for row in self.history if key in row}


def find_offline_runs(path: str | Path) -> list[Path]:
    """The offline run directories at ``path`` (a fedssl run directory, its ``wandb/``
    folder, or one offline run), oldest first; a resumed run has one per process."""
    path = Path(path).expanduser()
    if list(path.glob("run-*.wandb")):
        return [path]
    for root in (path / "wandb", path):
        runs = sorted(p for p in root.glob("offline-run-*") if p.is_dir())
        if runs:
            return runs
    return []


def read_records(wandb_file: str | Path) -> list[Any]:
    """Every record of a ``.wandb`` file, as ``wandb_internal_pb2.Record`` messages.

    A run cut short can end in a partly written record: reading stops there. A checksum
    mismatch raises ``ValueError`` (the file is damaged, not merely unfinished).
    """
    from wandb.proto.wandb_internal_pb2 import Record

    data = Path(wandb_file).read_bytes()
    if len(data) < _HEADER.size or _HEADER.unpack_from(data) != (_IDENT, _MAGIC, _VERSION):
        raise ValueError(f"{wandb_file}: not a W&B run file (version {_VERSION})")
    records, parts, pos = [], None, _HEADER.size
    while pos + _RECORD.size <= len(data):
        if _BLOCK - pos % _BLOCK < _RECORD.size:  # block trailer: zero padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = _RECORD.unpack_from(data, pos)
        if (crc, length, kind) == (0, 0, 0):  # zero-filled rest of a block
            pos += _BLOCK - pos % _BLOCK
            continue
        start, pos = pos + _RECORD.size, pos + _RECORD.size + length
        if pos > len(data):
            break
        chunk = data[start:pos]
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            raise ValueError(f"{wandb_file}: checksum mismatch at byte {start - _RECORD.size}")
        if kind == _FULL:
            records.append(chunk)
        elif kind == _FIRST:
            parts = [chunk]
        elif kind in (_MIDDLE, _LAST) and parts is not None:
            parts.append(chunk)
            if kind == _LAST:
                records.append(b"".join(parts))
                parts = None
    out = []
    for raw in records:
        record = Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def _key_path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _set(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _remove(target: dict[str, Any], keys: list[str]) -> None:
    for key in keys[:-1]:
        target = target.get(key, {})
    target.pop(keys[-1], None)


def _apply(target: dict[str, Any], update: Any, remove: Any) -> None:
    """Apply a config or summary record's updates and removals to ``target``."""
    for item in update:
        _set(target, _key_path(item), json.loads(item.value_json))
    for item in remove:
        _remove(target, _key_path(item))


def read_offline_run(path: str | Path) -> OfflineRun:
    """Read the offline W&B run at ``path`` (the newest one if there are several, e.g. after
    a resume: each process writes its own offline directory under the same run id)."""
    runs = find_offline_runs(path)
    if not runs:
        raise FileNotFoundError(f"no offline W&B run (wandb/offline-run-*) at {path}")
    run_dir = runs[-1]
    (wandb_file,) = run_dir.glob("run-*.wandb")
    meta: dict[str, Any] = {"run_id": "", "project": "", "name": "", "group": "", "job_type": "",
                            "tags": []}
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    files: list[str] = []
    exit_code = None
    for record in read_records(wandb_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            meta = {"run_id": run.run_id, "project": run.project, "name": run.display_name,
                    "group": run.run_group, "job_type": run.job_type, "tags": list(run.tags)}
            for item in run.config.update:
                _set(config, _key_path(item), json.loads(item.value_json))
        elif kind == "config":
            _apply(config, record.config.update, record.config.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, _key_path(item), json.loads(item.value_json))
            if record.history.HasField("step"):
                row["_step"] = record.history.step.num
            history.append(row)
        elif kind == "summary":
            _apply(summary, record.summary.update, record.summary.remove)
        elif kind == "files":
            files.extend(f.path for f in record.files.files if f.path not in files)
        elif kind == "exit":
            exit_code = record.exit.exit_code
    config.pop("_wandb", None)
    return OfflineRun(path=run_dir, config=config, history=history, summary=summary,
                      files=files, exit_code=exit_code, **meta)
