"""Decoding a :class:`~fedssl.datasets.video_sources.video_index.VideoIndex` once into a cached
memory map of fixed-size videos: the :class:`~fedssl.datasets.video_base.VideoArrays` the video
task reads.

The video task indexes whole videos and cuts its clips in time, so every video becomes the same
``uint8 [frames, size, size, 3]`` array:

* **time**: its first ``frames`` frames at the file's own frame rate (64 frames are 2.56 s
  of a 25 fps UCF-101 video); a shorter video is padded by repeating its last frame;
* **space**: the centre square of side ``min(H, W)``, resized to ``size`` x ``size``
  (bilinear, antialiased when shrinking); that is the short side scaled to ``size`` and the
  centre cropped.

Cache: ``<cache_dir>/videos/<dataset>-<split>-<frames>f-<size>px-<hash>/`` holds ``clips.u8``
(the raw ``uint8 [N, frames, size, size, 3]`` array) and ``meta.json`` (shape, labels, names,
class names, skipped files, settings), written into a temporary folder and renamed into place,
so a reader never sees half a cache. The hash covers :data:`DECODE_VERSION`, the decode
settings and every listed file's name, label, size and modification time: adding, replacing or
touching a video decodes the split again. A complete cache is read without locking; a loader
that finds none takes an exclusive lock (``fcntl.flock`` on ``<folder>.lock``), so of the
concurrent loaders (simulated clients, the ServerApp) one decodes while the others wait and
then read its cache. Old caches are never deleted; remove
``<cache_dir>/videos/`` to reclaim the space.

A video that cannot be decoded (garbage, truncated, a broken frame zip) is left out: one
warning per split and process names the files (up to
:data:`~fedssl.datasets.base.BAD_FILES_NAMED`) and counts them, and
:attr:`VideoArrays.skipped` lists them; when none decodes it is an error saying where it
looked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fedssl.datasets.base import CorruptDataError, default_cache_dir, describe_bad_files
from fedssl.datasets.video.source import CorruptVideoError, open_video
from fedssl.datasets.video_base import VideoArrays
from fedssl.datasets.video_sources.video_index import VideoIndex

__all__ = ["DECODE_VERSION", "cache_folder", "decode_index", "decode_video", "square_frame"]

#: Bump when the decoding below changes what is written (the settings are hashed anyway).
DECODE_VERSION = 1

_log = logging.getLogger(__name__)


def square_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """The centre square of ``frame`` (``uint8 [H, W, 3]``), of side ``min(H, W)``, resized to
    ``uint8 [size, size, 3]`` (bilinear, which Pillow antialiases when shrinking)."""
    height, width = frame.shape[:2]
    side = min(height, width)
    left, top = (width - side) / 2, (height - side) / 2
    image = Image.fromarray(np.ascontiguousarray(frame))
    if side == size and height == width:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    out = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR,
                                      box=(left, top, left + side, top + side))
    return np.asarray(out, dtype=np.uint8)


def decode_video(path: str | Path, *, frames: int, size: int,
                 out: np.ndarray | None = None) -> np.ndarray:
    """The first ``frames`` frames of the video (or frame zip) at ``path`` as
    ``uint8 [frames, size, size, 3]`` (:func:`square_frame` each), a short video padded with
    copies of its last frame; written into ``out`` when given.

    Raises
    ------
    CorruptVideoError
        The file cannot be opened or a frame cannot be decoded.
    """
    if out is None:
        out = np.empty((frames, size, size, 3), dtype=np.uint8)
    count = 0
    with open_video(path) as video:
        stream = video.frames()
        try:
            for frame in stream:
                out[count] = square_frame(frame, size)
                count += 1
                if count == frames:
                    break
        finally:
            stream.close()
    if count == 0:
        raise CorruptVideoError(path, "no frame decoded")
    out[count:] = out[count - 1]
    return out


def _settings(frames: int, size: int) -> dict[str, Any]:
    return {"version": DECODE_VERSION, "frames": frames, "size": size,
            "crop": "centre-square", "resample": "bilinear", "pad": "repeat-last",
            "start": "first-frame"}


def cache_folder(index: VideoIndex, *, frames: int, size: int,
                 cache_dir: str | Path | None = None) -> Path:
    """The cache folder of ``index`` decoded at these settings (see the module docstring).

    Stats every listed file: its size and modification time are part of the hash.
    """
    files = []
    for name, path, label in zip(index.names, index.paths, index.labels.tolist(), strict=True):
        st = path.stat()
        files.append([name, path.name, int(label), st.st_size, st.st_mtime_ns])
    text = json.dumps({"settings": _settings(frames, size), "dataset": index.source.name,
                       "split": index.split, "classes": list(index.class_names),
                       "files": files}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / "videos" / f"{index.source.name}-{index.split}-{frames}f-{size}px-{digest}"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<folder>.lock`` (one decoder per cache, across processes)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_cache(folder: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        shape = tuple(int(s) for s in meta["shape"])
        clips_path = folder / "clips.u8"
        if clips_path.stat().st_size != int(np.prod(shape)):
            return None
        clips = np.memmap(clips_path, dtype=np.uint8, mode="r", shape=shape)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, partial or unreadable: decoded again
    return clips, meta


def _decode_into(folder: Path, index: VideoIndex, *, frames: int, size: int,
                 progress: bool) -> None:
    """Decode every video of ``index`` into a temporary folder, then rename it to ``folder``."""
    from tqdm import tqdm

    n = len(index)
    per_video = frames * size * size * 3
    tmp = Path(tempfile.mkdtemp(prefix=folder.name, suffix=".tmp", dir=folder.parent))
    try:
        clips_path = tmp / "clips.u8"
        out = np.memmap(clips_path, dtype=np.uint8, mode="w+", shape=(n, frames, size, size, 3))
        kept: list[int] = []
        bad: dict[str, str] = {}
        _log.info("decoding %d videos of %s into %s", n, index.name, folder)
        # disable=None: no bar without a terminal, where redrawn bars are only noise in a log.
        bar = tqdm(total=n, desc=f"decoding {index.name}", unit="video", file=sys.stderr,
                   disable=None if progress else True, dynamic_ncols=True)
        with bar:
            for i, path in enumerate(index.paths):
                try:
                    # Kept videos are packed to the front: a skipped one costs no copy.
                    decode_video(path, frames=frames, size=size, out=out[len(kept)])
                    kept.append(i)
                except CorruptDataError as err:
                    bad[str(path)] = err.reason or str(err)
                bar.update()
        out.flush()
        del out
        if not kept:
            raise CorruptDataError(
                f"{index.name}: none of the {n} videos in {index.root} can be decoded: "
                f"{describe_bad_files(bad)}",
                path=str(index.root), reason=f"all {n} videos are unusable")
        os.truncate(clips_path, len(kept) * per_video)
        meta = {
            "shape": [len(kept), frames, size, size, 3],
            "labels": index.labels[kept].tolist(),
            "names": [index.names[i] for i in kept],
            "class_names": list(index.class_names),
            "skipped": bad,
            "listed": n,
            "settings": _settings(frames, size),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700; the cache is meant to be shared
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def decode_index(index: VideoIndex, *, frames: int = 64, size: int = 32,
                 cache_dir: str | Path | None = None, progress: bool = True) -> VideoArrays:
    """The videos of ``index`` as :class:`VideoArrays` of ``uint8 [N, frames, size, size, 3]``,
    decoded on first use into the cache and memory-mapped read-only afterwards (see the module
    docstring for what is decoded, the cache and the locking).

    Parameters
    ----------
    frames : int
        Frames kept per video, from its first (a shorter video repeats its last frame).
    size : int
        Side of the square frames, in pixels.
    cache_dir : str or Path, optional
        Default :func:`fedssl.datasets.base.default_cache_dir` (``$FEDSSL_CACHE_DIR`` or
        ``~/.cache/fedssl``).
    progress : bool
        Show a tqdm bar on stderr while decoding (when stderr is a terminal).

    Raises
    ------
    CorruptDataError
        No video of the split can be decoded (the message says where it looked and names
        the files).
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int (run-config key video-frames); got "
                         f"{frames!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (run-config key image-size); got "
                         f"{size!r}")
    folder = cache_folder(index, frames=frames, size=size, cache_dir=cache_dir)
    # A complete cache is read without the lock (it appears by one rename, never half
    # written), so readers neither queue nor need write access to the cache folder.
    cached = _read_cache(folder)
    if cached is None:
        with _locked(folder):
            cached = _read_cache(folder)  # another process may have decoded it meanwhile
            if cached is None:
                shutil.rmtree(folder, ignore_errors=True)  # a damaged cache is decoded again
                _decode_into(folder, index, frames=frames, size=size, progress=progress)
                cached = _read_cache(folder)
                if cached is None:
                    raise OSError(f"{index.name}: could not read back the decoded videos "
                                  f"just written in {folder}")
    clips, meta = cached
    skipped: dict[str, str] = meta["skipped"]
    if skipped:
        warnings.warn(
            f"{index.name}: skipped {len(skipped)} of {meta['listed']} videos in {index.root} "
            f"that cannot be decoded (listed in VideoArrays.skipped): "
            f"{describe_bad_files(skipped)}",
            stacklevel=3,
        )
    labels = np.asarray(meta["labels"], dtype=np.int64)
    labels.setflags(write=False)
    return VideoArrays(
        clips=clips,
        labels=labels,
        num_classes=len(meta["class_names"]),
        name=index.name,
        names=tuple(meta["names"]),
        class_names=tuple(meta["class_names"]),
        skipped=tuple(skipped),
    )
