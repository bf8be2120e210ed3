"""The :class:`VideoSource` interface, its errors, and :func:`open_video`, which picks a backend.

A video source gives random access to the frames of one video: ``num_frames``, ``fps`` and
``read(indices)``, a ``uint8 [T, H, W, 3]`` RGB array of the frames at ``indices`` (0-based,
any order, repeats allowed), each backend reading them the cheap way it has. Backends are
entries of :data:`VIDEO_BACKENDS`, declared as ``"module:attr"`` and imported the first time
they are opened, so importing this module imports neither PyAV nor torch.

This module imports only the standard library, numpy and :mod:`fedssl.datasets.base`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedssl.common.registry import Registry
from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError, skip_corrupt

__all__ = [
    "FRAME_ZIP_SUFFIX",
    "VIDEO_BACKENDS",
    "VIDEO_EXTENSIONS",
    "CorruptVideoError",
    "VideoInfo",
    "VideoSource",
    "backend_for",
    "check_indices",
    "open_video",
    "probe_videos",
]

#: Container formats the PyAV backend is chosen for by ``backend="auto"`` (any file FFmpeg
#: reads works with ``backend="pyav"``).
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v")
#: The suffix of a frame zip (CtP's storage format: one zip of JPEG frames per video).
FRAME_ZIP_SUFFIX = ".zip"


class CorruptVideoError(CorruptDataError):
    """A video (or frame zip) exists but cannot be decoded: garbage, truncated, no video
    stream, fewer frames than its header declares, a broken JPEG member.

    The message is ``"cannot decode video <path>: <reason>"``; ``path`` and ``reason`` hold
    the two parts (a :class:`CorruptDataError`, hence a ``ValueError``).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot decode video {path}: {reason}", path=str(path), reason=reason)


def check_indices(indices: Sequence[int] | np.ndarray, num_frames: int, path: Path) -> np.ndarray:
    """``indices`` as a 1-D ``int64`` array, each in ``[0, num_frames)`` (negative indices are
    refused rather than counted from the end, which would hide an off-by-one in a sampler)."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TypeError(
            f"indices must be a 1-D sequence of integers; got dtype {idx.dtype} and shape "
            f"{idx.shape}"
        )
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= num_frames):
        bad = idx[(idx < 0) | (idx >= num_frames)]
        raise IndexError(
            f"frame indices must lie in [0, {num_frames}) for {path}; got {bad[:5].tolist()}"
        )
    return idx


class VideoSource(abc.ABC):
    """Random access to the frames of one video file.

    Open one with :func:`open_video`. A source holds an open file, opened lazily and again
    in a new process (a forked DataLoader worker or an unpickled copy never shares the
    parent's handle); use it as a context manager or call :meth:`close`.

    Attributes
    ----------
    path : Path
        The file.
    num_frames : int
        Number of frames (> 0).
    fps : float or None
        Frames per second; ``None`` when the file does not record it (a CtP frame zip).
    """

    #: The backend's name in :data:`VIDEO_BACKENDS`.
    backend: str = ""

    path: Path
    num_frames: int
    fps: float | None

    @abc.abstractmethod
    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The frames at ``indices`` as ``uint8 [len(indices), H, W, 3]`` RGB, in the order
        asked (0-based; any order, repeats allowed).

        Raises
        ------
        IndexError
            An index outside ``[0, num_frames)``.
        CorruptVideoError
            A frame cannot be decoded.
        """

    def frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Every frame in order, one ``uint8 [H, W, 3]`` array at a time (backends that decode
        sequentially faster than by index override this)."""
        for start in range(0, self.num_frames, chunk):
            yield from self.read(np.arange(start, min(start + chunk, self.num_frames)))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the open file (the source reopens it if read again)."""

    def __len__(self) -> int:
        return self.num_frames

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        fps = "?" if self.fps is None else f"{self.fps:g}"
        return f"{type(self).__name__}({str(self.path)!r}, frames={self.num_frames}, fps={fps})"


#: name -> VideoSource class (``cls(path)`` opens a file). ``extensions``: the suffixes
#: ``backend="auto"`` picks it for; ``optional``: may be unavailable on a machine.
VIDEO_BACKENDS: Registry[Any] = Registry("video backend")
VIDEO_BACKENDS.declare("pyav", "fedssl.datasets.video.pyav_source:PyAVSource",
                       extensions=VIDEO_EXTENSIONS, optional=False)
VIDEO_BACKENDS.declare("frame-zip", "fedssl.datasets.video.frame_zip:FrameZipSource",
                       extensions=(FRAME_ZIP_SUFFIX,), optional=False)
VIDEO_BACKENDS.declare("torchcodec", "fedssl.datasets.video.torchcodec_source:TorchcodecSource",
                       extensions=(), optional=True)


def backend_for(path: str | Path) -> str:
    """The backend ``backend="auto"`` uses for ``path``: ``"frame-zip"`` for a ``.zip``, else
    ``"pyav"`` (the default decoder; torchcodec is used only when asked for by name)."""
    return "frame-zip" if Path(path).suffix.lower() == FRAME_ZIP_SUFFIX else "pyav"


def open_video(path: str | Path, backend: str = "auto") -> VideoSource:
    """Open the video at ``path`` with ``backend`` (``"auto"``: by extension, see
    :func:`backend_for`; else a name of :data:`VIDEO_BACKENDS`).

    The file is read enough to know its frame count (PyAV demuxes every packet without
    decoding; a frame zip reads its member list), so a truncated or garbage file fails here.

    Raises
    ------
    ValueError
        An unknown ``backend``; the message lists the valid ones.
    DatasetNotFoundError
        ``path`` is not a file.
    CorruptVideoError
        The file cannot be decoded (the message names it and gives the decoder's reason).
    RuntimeError
        ``backend="torchcodec"`` on a machine where it cannot decode (the reason is given).
    """
    valid = ("auto", *VIDEO_BACKENDS)
    if backend not in valid:
        raise ValueError(
            f"video backend must be one of {', '.join(repr(v) for v in valid)}; got {backend!r}"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"video file {path} does not exist or is not a file")
    name = backend_for(path) if backend == "auto" else backend
    return VIDEO_BACKENDS.get(name)(path)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_videos` learnt of a usable video."""

    path: Path
    num_frames: int
    fps: float | None


def _probe(path: Path, backend: str) -> VideoInfo:
    with open_video(path, backend) as video:
        return VideoInfo(path=Path(path), num_frames=video.num_frames, fps=video.fps)


def probe_videos(
    paths: Sequence[str | Path], *, where: str | Path, backend: str = "auto"
) -> tuple[list[VideoInfo], tuple[str, ...]]:
    """Open every video of a dataset once, keeping those that open (frame count and fps) and
    skipping the corrupt ones (:func:`~fedssl.datasets.base.skip_corrupt`: one warning names
    them and gives their count).

    ``where`` is where the files were found (the dataset folder), for the messages.

    Returns
    -------
    (infos, skipped)
        A :class:`VideoInfo` per usable video, in order, and the skipped files.

    Raises
    ------
    DatasetNotFoundError
        ``paths`` is empty or a file is missing.
    CorruptDataError
        No video can be decoded; the message says where it looked.
    """
    kept, bad = skip_corrupt([Path(p) for p in paths], lambda p: _probe(p, backend),
                             what="video files", where=where, stacklevel=3)
    return [info for _, info in kept], tuple(bad)
