"""The default video backend: PyAV (FFmpeg bundled in the wheel; ``.avi``, ``.mp4``, ``.mkv``, ...).

Opening a file demuxes every packet of its first video stream once, without decoding: the
packets' presentation timestamps, sorted, give the frame index -> timestamp map (so B-frames,
decoded out of order, are numbered in display order) and the keyframes give where a seek can
start. Reading frame ``i`` seeks to the last keyframe at or before it and decodes forward;
frames asked for together are read in one pass per keyframe interval, a read that continues
forward within reach of the decoder's position decodes on without seeking, and recently
returned frames are kept in a small cache.

Truncation is caught when opening: fewer packets than the header declares (AVI, MP4), or, for
a single-stream container without a frame count (Matroska), a timestamp span more than a frame
short of the container's duration.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedssl.datasets.video.source import CorruptVideoError, VideoSource, check_indices

__all__ = ["PyAVSource"]

#: Bytes of decoded RGB frames a source keeps for repeated reads.
CACHE_BYTES = 32 * 2**20


def _av() -> Any:
    import av  # the wheel bundles FFmpeg; imported only when a video is opened

    return av


class PyAVSource(VideoSource):
    """A video decoded with PyAV, by index (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Any file FFmpeg can demux with a video stream; the first video stream is read.
    cache_bytes : int
        Decoded frames kept for repeated reads (default :data:`CACHE_BYTES`).
    """

    backend = "pyav"

    def __init__(self, path: str | Path, *, cache_bytes: int = CACHE_BYTES) -> None:
        self.path = Path(path)
        self.cache_bytes = int(cache_bytes)
        self._container: Any = None
        self._pid = -1
        self._cursor: Iterator[tuple[int, Any]] | None = None
        self._position = -1  # ordinal of the last frame the cursor produced
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._index()

    # --- opening --------------------------------------------------------------------------

    def _open(self) -> Any:
        """The open container (reopened in a new process: an FFmpeg handle is not fork-safe)."""
        if self._container is None or self._pid != os.getpid():
            av = _av()
            self._container = None
            self._cursor = None
            try:
                container = av.open(str(self.path))
            except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
                raise CorruptVideoError(self.path, _reason(err)) from err
            if not container.streams.video:
                container.close()
                raise CorruptVideoError(self.path, "the file holds no video stream")
            self._container, self._pid = container, os.getpid()
        return self._container

    def _index(self) -> None:
        av = _av()
        container = self._open()
        stream = container.streams.video[0]
        stamps: list[int] = []
        keyframes: list[int] = []
        missing_pts = False
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    missing_pts = True
                    pts = len(stamps)
                stamps.append(pts)
                if packet.is_keyframe:
                    keyframes.append(pts)
        except av.FFmpegError as err:
            raise CorruptVideoError(self.path, _reason(err)) from err
        if not stamps:
            raise CorruptVideoError(self.path, "its video stream holds no frames")
        declared = int(stream.frames or 0)
        if declared and len(stamps) < declared:
            raise CorruptVideoError(
                self.path, f"truncated: the header declares {declared} frames, the file holds "
                f"{len(stamps)}")
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        if not declared and self.fps and len(container.streams) == 1 and container.duration:
            expected = container.duration / 1e6 * self.fps  # microseconds -> frames
            if len(stamps) < expected - 1.5:
                raise CorruptVideoError(
                    self.path, f"truncated: the container lasts {container.duration / 1e6:.3f} s "
                    f"(about {round(expected)} frames at {self.fps:g} fps), the file holds "
                    f"{len(stamps)} frames")
        self.num_frames = len(stamps)
        # Seeking needs real timestamps; without them every read decodes from the start.
        self._seekable = not missing_pts and len(set(stamps)) == len(stamps)
        self._stamps = sorted(stamps)
        self._ordinal = {pts: i for i, pts in enumerate(self._stamps)}
        keys = sorted(self._ordinal[k] for k in set(keyframes)) if self._seekable else []
        self._keyframes = keys if keys and keys[0] == 0 else [0, *keys]
        self._key_pts = [self._stamps[k] for k in self._keyframes]

    # --- reading --------------------------------------------------------------------------

    def _keyframe_before(self, ordinal: int) -> int:
        return self._keyframes[bisect.bisect_right(self._keyframes, ordinal) - 1]

    def _start_at(self, ordinal: int) -> None:
        """Point the cursor at the keyframe at or before ``ordinal``."""
        container = self._open()
        stream = container.streams.video[0]
        key = self._keyframe_before(ordinal) if self._seekable else 0
        av = _av()
        try:
            container.seek(self._stamps[key] if self._seekable else 0, stream=stream,
                           backward=True, any_frame=False)
        except av.FFmpegError as err:
            raise CorruptVideoError(self.path, f"cannot seek to frame {ordinal}: "
                                    f"{_reason(err)}") from err
        self._cursor = self._decode(container, stream, key)
        self._position = key - 1

    def _decode(self, container: Any, stream: Any, first: int) -> Iterator[tuple[int, Any]]:
        """(ordinal, frame) pairs from the seek point on; an ordinal comes from the frame's
        timestamp when it has a known one, else by counting on from the last."""
        av = _av()
        ordinal = first - 1
        try:
            for frame in container.decode(stream):
                known = self._ordinal.get(frame.pts) if self._seekable else None
                ordinal = known if known is not None else ordinal + 1
                # A frame shown before the seek's keyframe (an open GOP's leading B-frame)
                # may reference the previous interval: not trusted.
                if ordinal >= first:
                    yield ordinal, frame
        except av.FFmpegError as err:
            raise CorruptVideoError(self.path, _reason(err)) from err

    def _remember(self, ordinal: int, image: np.ndarray) -> None:
        self._cache[ordinal] = image
        self._cache.move_to_end(ordinal)
        budget = max(1, self.cache_bytes // max(1, image.nbytes))
        while len(self._cache) > budget:
            self._cache.popitem(last=False)

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = check_indices(indices, self.num_frames, self.path)
        found: dict[int, np.ndarray] = {}
        for i in np.unique(idx).tolist():
            if i in self._cache:
                self._cache.move_to_end(i)
                found[i] = self._cache[i]
        todo = sorted(set(idx.tolist()) - set(found))
        for target in todo:
            if target in found:  # decoded on the way to an earlier target
                continue
            # Decode on from the cursor when the target lies ahead of it and no keyframe
            # nearer than the cursor would let a seek skip frames.
            ahead = self._cursor is not None and self._position < target
            if not (ahead and self._keyframe_before(target) <= self._position + 1):
                self._start_at(target)
            want = set(todo) - set(found)
            try:
                for ordinal, frame in self._cursor or ():
                    self._position = ordinal
                    if ordinal in want:
                        found[ordinal] = frame.to_ndarray(format="rgb24")
                        self._remember(ordinal, found[ordinal])
                    if ordinal >= target:
                        break
                else:
                    self._cursor = None
            except CorruptVideoError:
                self._cursor = None  # the decoder stopped: the next read seeks afresh
                raise
            if target not in found:
                self._cursor = None
                raise CorruptVideoError(
                    self.path, f"frame {target} of {self.num_frames} did not decode (the "
                    "stream ended early)")
        if not idx.size:
            stream = self._open().streams.video[0]
            return np.zeros((0, int(stream.height), int(stream.width), 3), dtype=np.uint8)
        return np.stack([found[i] for i in idx.tolist()])

    def frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Every frame in display order, decoded in one sequential pass.

        Raises :class:`CorruptVideoError` when fewer frames decode than were indexed."""
        self._start_at(0)
        # A private cursor: a read() meanwhile seeks on its own instead of stealing frames.
        cursor, self._cursor = self._cursor or iter(()), None
        count = 0
        for _, frame in cursor:
            count += 1
            yield frame.to_ndarray(format="rgb24")
        if count < self.num_frames:
            raise CorruptVideoError(
                self.path, f"only {count} of {self.num_frames} frames decoded")

    def close(self) -> None:
        if self._container is not None and self._pid == os.getpid():
            self._container.close()
        self._container = None
        self._cursor = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_container=None, _cursor=None, _position=-1, _cache=OrderedDict())
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()


def _reason(err: BaseException) -> str:
    """The decoder's message without the file name FFmpeg appends (the caller names it)."""
    text = str(err) or type(err).__name__
    strerror = getattr(err, "strerror", None)
    return strerror or text
