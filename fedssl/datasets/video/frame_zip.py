"""Frame zips, CtP's storage format for videos: one zip per video holding its frames as JPEG
files ``img_00001.jpg``, ``img_00002.jpg``, ... (numbered from 1), stored uncompressed.

Reading a frame reads one zip member and decodes one JPEG (PIL), so random access costs the
same for every frame, which suits the repeated clip sampling of video SSL
(``microsoft/CtP``: ``pyvrl/datasets/backends/zip_backend.py``, ``README.md``).

The zips written here (:func:`write_frame_zip`) also hold ``video.json``: fps, frame count,
JPEG quality, size and the source file's size. CtP counts only the ``.jpg`` members, so the
extra member does not bother it; here it gives ``fps`` and lets a conversion tell a complete
zip made with the same settings (:func:`frame_zip_settings`).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fedssl.datasets.video.source import CorruptVideoError, VideoSource, check_indices

__all__ = ["FRAME_NAME", "META_NAME", "FrameZipSource", "frame_zip_settings", "write_frame_zip"]

#: Member name of frame ``i`` (0-based): ``FRAME_NAME.format(i + 1)``.
FRAME_NAME = "img_{:05d}.jpg"
#: The metadata member of the zips this module writes.
META_NAME = "video.json"
_FRAME_RE = re.compile(r"img_(\d{5,})\.jpg")


class FrameZipSource(VideoSource):
    """A frame zip read by index (see the module docstring).

    ``fps`` comes from ``video.json`` when the zip has one (zips written by
    :func:`write_frame_zip`), else it is ``None`` (CtP's own zips record none).
    """

    backend = "frame-zip"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1
        names = self._open().namelist()
        numbers = sorted(int(m.group(1)) for n in names if (m := _FRAME_RE.fullmatch(n)))
        if not numbers:
            raise CorruptVideoError(
                self.path, f"the zip holds no frames named like {FRAME_NAME.format(1)}")
        if numbers != list(range(1, len(numbers) + 1)):
            gap = next(i for i, n in enumerate(numbers, 1) if n != i)
            raise CorruptVideoError(
                self.path, f"frames are not numbered 1..{len(numbers)}: "
                f"{FRAME_NAME.format(gap)} is missing")
        self.num_frames = len(numbers)
        self.meta = self._read_meta(names)
        fps = self.meta.get("fps")
        self.fps = float(fps) if isinstance(fps, (int, float)) and fps > 0 else None

    def _open(self) -> zipfile.ZipFile:
        """The open zip (reopened in a new process, whose file offset is not shared)."""
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError, ValueError) as err:
                raise CorruptVideoError(self.path, f"not a readable zip ({err})") from err
            self._pid = os.getpid()
        return self._zip

    def _read_meta(self, names: Sequence[str]) -> dict[str, Any]:
        if META_NAME not in names:
            return {}
        try:
            meta = json.loads(self._member(META_NAME))
        except ValueError:
            return {}
        return meta if isinstance(meta, dict) else {}

    def _member(self, name: str) -> bytes:
        try:
            return self._open().read(name)
        except (zipfile.BadZipFile, OSError, KeyError, EOFError) as err:
            raise CorruptVideoError(self.path, f"cannot read member {name} ({err})") from err

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = check_indices(indices, self.num_frames, self.path)
        decoded: dict[int, np.ndarray] = {}
        for i in dict.fromkeys(idx.tolist()):
            name = FRAME_NAME.format(i + 1)
            try:
                with Image.open(io.BytesIO(self._member(name))) as img:
                    decoded[i] = np.asarray(img.convert("RGB"), dtype=np.uint8)
            except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for bad JPEG data
                if isinstance(err, CorruptVideoError):
                    raise
                raise CorruptVideoError(self.path, f"member {name} is not a readable JPEG "
                                        f"({err})") from err
        if not decoded:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        shapes = {a.shape for a in decoded.values()}
        if len(shapes) > 1:
            raise CorruptVideoError(self.path, f"frames differ in size: {sorted(shapes)}")
        return np.stack([decoded[i] for i in idx.tolist()])

    def close(self) -> None:
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_zip": None, "_pid": -1}


def write_frame_zip(
    frames: Iterable[np.ndarray],
    path: str | Path,
    *,
    quality: int = 90,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Write ``frames`` (``uint8 [H, W, 3]`` RGB each) as a frame zip at ``path``; returns the
    number of frames.

    The zip is written to ``<path>.partial`` and renamed when complete, so a zip at ``path``
    is never half written. Members are stored uncompressed (JPEG does not compress further).

    Parameters
    ----------
    quality : int
        JPEG quality, 1..100 (PIL's scale; above 95 the files grow for little gain).
    size : (width, height) or None
        Resize every frame to exactly this size (bilinear, antialiased when shrinking);
        ``None`` keeps the video's size.
    fps : float or None
        Recorded in ``video.json``.
    extra : dict
        More keys for ``video.json`` (the converter records the source's size).
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be a JPEG quality in 1..100; got {quality}")
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as zf:
            for frame in frames:
                img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
                if size is not None and img.size != tuple(size):
                    img = img.resize(tuple(size), Image.Resampling.BILINEAR)
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=int(quality))
                count += 1
                zf.writestr(FRAME_NAME.format(count), buf.getvalue())
            meta = {"fps": fps, "num_frames": count, "quality": int(quality),
                    "size": list(size) if size is not None else None, **(extra or {})}
            zf.writestr(META_NAME, json.dumps(meta, sort_keys=True))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def frame_zip_settings(path: str | Path) -> dict[str, Any] | None:
    """``video.json`` of the complete frame zip at ``path``, or ``None`` when there is none,
    it is not a readable zip, or its frame count disagrees with its members."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if META_NAME not in names:
                return None
            meta = json.loads(zf.read(META_NAME))
    except (zipfile.BadZipFile, OSError, KeyError, EOFError, ValueError):
        return None
    frames = sum(1 for n in names if _FRAME_RE.fullmatch(n))
    if not isinstance(meta, dict) or meta.get("num_frames") != frames or frames == 0:
        return None
    return meta
