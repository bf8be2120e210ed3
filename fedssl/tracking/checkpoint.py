"""Checkpoints and kept models without pickle: loading one never runs code from the file.

Arrays live in safetensors files, written and read with the ``safetensors`` library; all else
is JSON. Neither format can carry code, so a crafted or damaged file is refused with a
:class:`CheckpointError` that names the file, never unpickled. A run directory holds:

* ``checkpoint.json`` + ``checkpoint-<digest>.safetensors``: the latest round's full state
  (round, model, strategy state, RNG states, W&B run id), for resuming; each round replaces
  it. The JSON holds the state's structure and scalars, names each array by its key in the
  safetensors file, names that file with its size and SHA-256, and is written last. The
  array file is named by its digest, so the previous pair stays intact until the new JSON
  replaces the old one: a crash leaves either the old or the new checkpoint, and a pair that
  does not match is refused.
* ``rounds/round-0007.safetensors``: the global model after each round, kept when the run
  config says ``keep-round-models = true``, so that ``fedssl select-best`` can pick the round
  whose global model scores best downstream (FASSL: the last round need not be best). Round
  files of earlier fedssl versions (``round-0007.pt``) are still listed and loaded, with
  ``torch.load(..., weights_only=True)``, which builds tensors and plain containers only.

Every file is written to a temporary file in the same directory, flushed to disk and moved
into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open

__all__ = [
    "CHECKPOINT_FILE", "LEGACY_CHECKPOINT_FILE", "ROUND_CHECKPOINT_DIR", "CheckpointError",
    "has_checkpoint", "list_round_models", "load_checkpoint", "load_round_model",
    "load_tensors", "load_tensors_metadata", "round_model_path", "save_checkpoint",
    "save_round_model", "save_tensors",
]

CHECKPOINT_FILE = "checkpoint.json"
LEGACY_CHECKPOINT_FILE = "checkpoint.pt"  # pickled by fedssl before this format; never loaded
ROUND_CHECKPOINT_DIR = "rounds"
CHECKPOINT_FORMAT, CHECKPOINT_VERSION, TENSORS_FORMAT = "fedssl-checkpoint", 1, "fedssl-tensors"
# The keys a checkpoint must have (``wandb-id`` is optional; other keys are kept as they are).
REQUIRED_KEYS = ("round", "arrays", "strategy-state", "rng")
RNG_KEYS = ("python", "numpy", "torch")

# Four digits keep `ls` in round order for ordinary runs; the parser accepts any width.
_ROUND_FILE = re.compile(r"^round-(\d+)\.(safetensors|pt)$")
_TENSORS_FILE = re.compile(r"^checkpoint-[0-9a-f]{16}\.safetensors$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What safetensors raises for a file it cannot read or tensors it cannot write.
_LIBRARY_ERRORS = (SafetensorError, KeyError, ValueError, TypeError, RuntimeError)
_NOT_SAFETENSORS = ("it is not a safetensors file (empty or too short, truncated, or another "
                    "format such as a pickle, which is never loaded): {}")
# A JSON object with exactly one of these keys is a tagged value; any other JSON object is a
# dict (one with keys starting with "$" is wrapped in "$dict").
_TAGS = ("$dict", "$tuple", "$float", "$tensor", "$ndarray", "$npscalar", "$arrayrecord")


class CheckpointError(ValueError):
    """A checkpoint or model file cannot be read (or a state cannot be written as one); the
    message names the file and says what is wrong with it."""


def _unreadable(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is unreadable: {what}; give the run directory of an earlier run")


def _model_unreadable(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"model file {path} is unreadable: {what}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _at(where: str, key: object) -> str:
    """The path of an item inside the value at ``where`` (array names and error messages)."""
    return f"{where}/{key}" if where else str(key)


# ---------------------------------------------------------------------------- files
def _atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, ``os.replace``
    it to ``path`` and make the rename durable (where the platform can sync a directory)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def _owned(tensor: torch.Tensor, where: str, seen: set[int]) -> torch.Tensor:
    """``tensor`` on the CPU and contiguous, copied if it shares memory with one in ``seen``
    (safetensors refuses tensors that share memory, as tied weights do)."""
    if tensor.layout != torch.strided:
        raise CheckpointError(f"cannot store the {tensor.layout} tensor at {where}: only dense "
                              "tensors go into a checkpoint or model file")
    tensor = tensor.detach().to("cpu").contiguous()
    pointer = tensor.untyped_storage().data_ptr()
    if pointer in seen:
        return tensor.clone()
    seen.add(pointer)
    return tensor


def _serialize(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None,
               path: Path) -> bytes:
    try:
        return safetensors.torch.save(tensors, metadata)
    except _LIBRARY_ERRORS as err:
        raise CheckpointError(f"cannot write {path}: safetensors cannot store the tensors "
                              f"({type(err).__name__}: {str(err).strip()})") from None


# ---------------------------------------------------------------------------- model files
def save_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``tensors`` (a state_dict, on any device) as the safetensors file ``path``
    (whose folder must exist), atomically, with JSON-serialisable ``metadata`` (e.g.
    ``{"round": 7}``) that :func:`load_tensors_metadata` reads back. Returns ``path``."""
    path = Path(path)
    for name, value in tensors.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"cannot write {path}: {name!r} is not a named tensor")
    try:
        info = json.dumps(dict(metadata or {}), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot write {path}: metadata is not JSON ({err})") from None
    seen: set[int] = set()
    owned = {name: _owned(value, name, seen) for name, value in tensors.items()}
    # safetensors sorts a file's tensors itself; "names" keeps the caller's order.
    header = {"format": TENSORS_FORMAT, "metadata": info, "names": json.dumps(list(owned))}
    return _atomic_write(path, _serialize(owned, header, path))


def _read_model_file(path: str | Path, read: Callable[[Any], Any]) -> Any:
    """``read(handle)`` of the safetensors file ``path`` opened with ``safe_open``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with safe_open(path, framework="pt") as handle:
            return read(handle)
    except _LIBRARY_ERRORS as err:
        raise _model_unreadable(path, _NOT_SAFETENSORS.format(err)) from None


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (any writer's), on the CPU: for files of
    :func:`save_tensors` in the order they were given in, else in the file's order."""

    def read(handle: Any) -> dict[str, torch.Tensor]:
        names = list(handle.keys())
        try:
            given = json.loads((handle.metadata() or {}).get("names", "null"))
        except (ValueError, RecursionError):
            given = None
        if isinstance(given, list) and sorted(given, key=str) == sorted(names):
            names = given
        return {name: handle.get_tensor(name) for name in names}

    return _read_model_file(path, read)


def load_tensors_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` given to :func:`save_tensors` for ``path`` (``{}`` for other files)."""
    header = _read_model_file(path, lambda handle: handle.metadata() or {})
    try:
        metadata = json.loads(header.get("metadata", "{}"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise _model_unreadable(Path(path), f"its metadata is not JSON ({err})") from None
    if not isinstance(metadata, dict):
        raise _model_unreadable(Path(path), "its metadata is not a JSON object")
    return metadata


# ---------------------------------------------------------------------------- JSON encoding
class _Encoder:
    """Turns a state into JSON, collecting its arrays as tensors under unique names."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.seen: set[int] = set()
        # Flower's ArrayRecord class; no value can be one unless flwr is loaded (isinstance
        # of the empty tuple is always False).
        self.record_type = getattr(sys.modules.get("flwr.app"), "ArrayRecord", ())

    def array(self, where: str, value: torch.Tensor | np.ndarray) -> str:
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf" or value.dtype.itemsize > 8:
                raise CheckpointError(f"cannot store the numpy array of dtype {value.dtype} at "
                                      f"{where}; storable: bool, (unsigned) integers, "
                                      "float16/32/64")
            # native byte order, C order, writable: what torch.from_numpy takes without a fuss
            value = np.require(value, value.dtype.newbyteorder("="), ("C", "W"))
            value = torch.from_numpy(value)
        name, n = where or "state", 1
        while name in self.tensors:
            name, n = f"{where}#{n}", n + 1
        self.tensors[name] = _owned(value, where, self.seen)
        return name

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, torch.Tensor):
            return {"$tensor": self.array(where, value)}
        if isinstance(value, np.ndarray):
            return {"$ndarray": self.array(where, value)}
        if isinstance(value, np.generic):  # before float: np.float64 is a float
            return {"$npscalar": self.array(where, np.asarray(value))}
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise CheckpointError(f"cannot store the dict at {where}: its keys must be "
                                      "strings")
            encoded = {k: self.encode(v, _at(where, k)) for k, v in value.items()}
            return {"$dict": encoded} if any(k.startswith("$") for k in value) else encoded
        if isinstance(value, list):
            return [self.encode(v, _at(where, i)) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, _at(where, i)) for i, v in enumerate(value)]}
        if isinstance(value, self.record_type):
            return {"$arrayrecord": {k: self.array(_at(where, k), a.numpy())
                                     for k, a in value.items()}}
        raise CheckpointError(
            f"cannot store the {type(value).__module__}.{type(value).__qualname__} at {where} "
            "in a checkpoint: only None, bool, int, float, str, lists, tuples, dicts with str "
            "keys, numpy arrays and scalars, torch tensors and Flower ArrayRecords")


class _Decoder:
    """The inverse of :class:`_Encoder`, given the tensors of the array file."""

    def __init__(self, tensors: dict[str, torch.Tensor], path: Path, tensors_path: Path) -> None:
        self.tensors, self.path, self.tensors_path = tensors, path, tensors_path

    def tensor(self, name: Any, where: str) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise _unreadable(self.path, f"{where} refers to array {name!r}, which "
                                         f"{self.tensors_path.name} does not hold")
        return self.tensors[name]

    def numpy(self, name: Any, where: str) -> np.ndarray:
        tensor = self.tensor(name, where)
        try:
            return tensor.numpy()
        except TypeError:
            raise _unreadable(self.tensors_path, f"{name!r} is a {tensor.dtype} tensor, which "
                                                 "numpy cannot hold") from None

    def decode(self, node: Any, where: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v, _at(where, i)) for i, v in enumerate(node)]
        if not any(k.startswith("$") for k in node):
            return {k: self.decode(v, _at(where, k)) for k, v in node.items()}
        if len(node) != 1 or next(iter(node)) not in _TAGS:
            raise _unreadable(self.path, f"{where} has unknown tags {sorted(node)}")
        tag, payload = next(iter(node.items()))
        if tag == "$dict" and isinstance(payload, dict):
            return {k: self.decode(v, _at(where, k)) for k, v in payload.items()}
        if tag == "$tuple" and isinstance(payload, list):
            return tuple(self.decode(v, _at(where, i)) for i, v in enumerate(payload))
        if tag == "$float" and payload in ("nan", "inf", "-inf"):
            return float(payload)
        if tag == "$tensor":
            return self.tensor(payload, where)
        if tag == "$ndarray":
            return self.numpy(payload, where)
        if tag == "$npscalar" and self.tensor(payload, where).dim() == 0:
            return self.numpy(payload, where)[()]
        if tag == "$arrayrecord" and isinstance(payload, dict):
            from flwr.app import Array, ArrayRecord

            return ArrayRecord({k: Array(self.numpy(v, _at(where, k)))
                                for k, v in payload.items()})
        raise _unreadable(self.path, f"{where or 'the state'}: {tag} has an invalid value")


# ---------------------------------------------------------------------------- checkpoints
def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint a run can resume from (its ``checkpoint.json``)."""
    return (Path(run_dir) / CHECKPOINT_FILE).is_file()


def _check_state(state: Any, bad: Callable[[str], CheckpointError]) -> None:
    """Refuse a state that :func:`fedssl.flwr_app.server_app` could not resume from."""
    if not isinstance(state, dict):
        raise bad(f"the state is a {type(state).__name__}, not a dict")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise bad(f"no {', '.join(repr(k) for k in missing)} entry (a checkpoint has "
                  f"{', '.join(REQUIRED_KEYS)} and optionally wandb-id)")
    rnd = state["round"]
    if not isinstance(rnd, int) or isinstance(rnd, bool) or rnd < 0:
        raise bad(f"'round' is {rnd!r}, not a round number")
    arrays = state["arrays"]
    if not isinstance(arrays, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in arrays.items()):
        raise bad("'arrays' is not a state_dict (names to torch tensors)")
    if not isinstance(state["strategy-state"], dict):
        raise bad("'strategy-state' is not a dict")
    if state.get("wandb-id") is not None and not isinstance(state["wandb-id"], str):
        raise bad(f"'wandb-id' is {state['wandb-id']!r}, not a string or None")
    rng = state["rng"]
    if not isinstance(rng, dict) or not all(k in rng for k in RNG_KEYS):
        raise bad(f"'rng' is not a dict with the states {', '.join(RNG_KEYS)}")
    # Each RNG state must be one its generator accepts (tried on throwaway generators).
    for key, set_state in zip(RNG_KEYS, (random.Random().setstate,
                                         np.random.RandomState().set_state,
                                         torch.Generator().set_state), strict=True):
        try:
            set_state(rng[key])
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, RuntimeError) as err:
            raise bad(f"rng/{key} is not a state its generator accepts ({err})") from None


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the checkpoint of ``run_dir`` (which must exist), replacing the
    previous one atomically; returns ``run_dir/checkpoint.json``.

    ``state`` is ``{"round": int, "arrays": state_dict, "strategy-state": dict, "rng":
    {"python", "numpy", "torch"}, "wandb-id": str | None}`` and any further keys. Values may
    nest None, bool, int, float, str, lists, tuples, dicts with str keys, numpy arrays and
    scalars, torch tensors and Flower ArrayRecords; each comes back as the same type.
    Raises :class:`CheckpointError`, writing nothing, if ``state`` lacks a key or holds a
    value that cannot be stored.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_FILE
    _check_state(state, lambda what: CheckpointError(f"cannot write checkpoint {path}: {what}"))
    encoder = _Encoder()
    tree = encoder.encode(state, "")
    data = _serialize(encoder.tensors, None, path)
    digest = hashlib.sha256(data).hexdigest()
    # Named by its digest and on disk before the JSON that names it; the previous array file
    # stays until the new JSON stops naming it.
    tensors_path = _atomic_write(run_dir / f"checkpoint-{digest[:16]}.safetensors", data)
    document = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "tensors": {"file": tensors_path.name, "size": len(data), "sha256": digest},
                "state": tree}
    _atomic_write(path, json.dumps(document, allow_nan=False, separators=(",", ":")).encode())
    for old in run_dir.glob("checkpoint-*.safetensors"):  # earlier rounds' arrays
        if old.name != tensors_path.name and _TENSORS_FILE.match(old.name):
            old.unlink(missing_ok=True)
    return path


class _Replaced(CheckpointError):
    """The array file a checkpoint names is missing or differs (mid-replacement or damaged)."""


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """The state given to :func:`save_checkpoint` for ``run_dir``; nothing in the files is run.

    Each value has the type it had: tensors as CPU tensors, numpy arrays and scalars with
    their dtype and shape, tuples as tuples (so ``rng["python"]`` and ``rng["numpy"]`` go
    straight to ``random.setstate`` and ``np.random.set_state``), ArrayRecords as such.
    Raises FileNotFoundError if ``run_dir`` has no checkpoint, and :class:`CheckpointError`
    (a ValueError) naming the file and the fault if a file is damaged, truncated, empty, not
    ours, an older fedssl's pickled ``checkpoint.pt``, or lacks what a resume needs.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_FILE
    for attempt in range(3):
        if not path.is_file():
            legacy = run_dir / LEGACY_CHECKPOINT_FILE
            if legacy.is_file():
                raise CheckpointError(
                    f"checkpoint {legacy} is unreadable: it is a pickle, the format of earlier "
                    "fedssl versions, which is never loaded (unpickling can run code); resume "
                    f"only runs written by this version (with a {CHECKPOINT_FILE}), or start "
                    "the run again")
            raise FileNotFoundError(
                f"no checkpoint at {path}; give the run directory of an earlier run")
        try:
            text = path.read_bytes()
            return _read_checkpoint(text, path)
        except _Replaced:
            # A run writing its next checkpoint replaced the pair while we read it: read again.
            if attempt == 2 or path.read_bytes() == text:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _read_checkpoint(text: bytes, path: Path) -> dict[str, Any]:
    try:
        document = json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _unreadable(path, "it is empty" if not text.strip()
                          else f"it is not JSON ({err})") from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise _unreadable(path, f"it is not a fedssl checkpoint (no \"format\": "
                                f"\"{CHECKPOINT_FORMAT}\")")
    if document.get("version") != CHECKPOINT_VERSION:
        raise _unreadable(path, f"format version {document.get('version')!r}; this fedssl reads "
                                f"version {CHECKPOINT_VERSION}")
    tensors = document.get("tensors")
    if not (isinstance(tensors, dict) and isinstance(tensors.get("file"), str)
            and _TENSORS_FILE.match(tensors["file"])
            and isinstance(tensors.get("sha256"), str) and _SHA256.match(tensors["sha256"])
            and isinstance(tensors.get("size"), int)):
        raise _unreadable(path, "its \"tensors\" entry does not name an array file with its "
                                "size and sha256")
    tensors_path = path.parent / tensors["file"]
    if not tensors_path.is_file():
        raise _Replaced(f"checkpoint {path} is unreadable: the array file it names, "
                        f"{tensors_path}, is missing; give the run directory of an earlier run")
    data = tensors_path.read_bytes()
    if len(data) != tensors["size"] or hashlib.sha256(data).hexdigest() != tensors["sha256"]:
        raise _Replaced(f"checkpoint {path} is unreadable: {tensors_path} is not the array file "
                        f"it was written with ({len(data)} bytes, {tensors['size']} expected, or "
                        "a different SHA-256): damaged or half-written; give the run directory "
                        "of an earlier run")
    try:
        arrays = safetensors.torch.load(data)  # tensors that own (a copy of) their bytes
    except _LIBRARY_ERRORS as err:
        raise _unreadable(tensors_path, _NOT_SAFETENSORS.format(err)) from None
    try:
        state = _Decoder(arrays, path, tensors_path).decode(document.get("state"), "")
    except RecursionError:
        raise _unreadable(path, "its state is nested too deeply") from None
    _check_state(state, lambda what: _unreadable(path, what))
    return state


# ---------------------------------------------------------------------------- round models
def round_model_path(run_dir: str | Path, rnd: int) -> Path:
    """Where the global model of round ``rnd`` is kept: ``rounds/round-0007.safetensors``."""
    return Path(run_dir) / ROUND_CHECKPOINT_DIR / f"round-{rnd:04d}.safetensors"


def save_round_model(run_dir: str | Path, rnd: int, state_dict: dict[str, torch.Tensor]) -> Path:
    """Keep ``state_dict``, the global model after server round ``rnd`` (>= 1), atomically in
    ``run_dir/rounds/`` (created when missing) with metadata ``{"round": rnd}``; returns the
    file. A resumed run that repeats a round overwrites that round's file."""
    if rnd < 1:
        raise ValueError(f"round {rnd} is not a server round; rounds start at 1")
    path = round_model_path(run_dir, rnd)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_tensors(path, state_dict, {"round": int(rnd)})


def list_round_models(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(round, path)`` of every kept round model of ``run_dir``, sorted by round.

    Empty when the run kept none; temporary files of an interrupted write are ignored. Where a
    round has both a ``.safetensors`` file and an earlier version's ``.pt``, the former is
    listed.
    """
    folder = Path(run_dir) / ROUND_CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        match = _ROUND_FILE.match(path.name)
        if match and path.is_file():
            rnd = int(match.group(1))
            if rnd not in found or match.group(2) == "safetensors":
                found[rnd] = path
    return sorted(found.items())


def load_round_model(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state_dict in a round file (or ``best-model``), on the CPU.

    A ``.pt`` file (of earlier fedssl versions) is read with ``torch.load(...,
    weights_only=True)``, which builds tensors and plain containers only; any other file as
    safetensors. Raises FileNotFoundError if there is no file at ``path``, and
    :class:`CheckpointError` (a ValueError) if it is damaged, truncated or holds anything but
    tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no round model at {path}")
    if path.suffix != ".pt":
        return load_tensors(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a bad or hostile file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise _model_unreadable(path, f"{type(err).__name__}: {first[:300]}") from None
    if not (isinstance(payload, dict) and isinstance(payload.get("arrays"), dict)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in payload["arrays"].items())):
        raise _model_unreadable(path, "no 'arrays' state_dict in it; not a round model file")
    return payload["arrays"]
