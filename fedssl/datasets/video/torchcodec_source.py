"""An optional video backend: torchcodec (``torchcodec.decoders.VideoDecoder``).

torchcodec's wheel ships no FFmpeg: it imports only where FFmpeg 4-8 shared libraries are
installed (on Debian bookworm ``libavcodec59 libavformat59 libavutil57 libswscale6
libswresample4 libavdevice59 libavfilter8``). :func:`torchcodec_available` says whether it
works here and, when not, why. torch is imported only when this backend is used.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fedssl.datasets.video.source import CorruptVideoError, VideoSource, check_indices

__all__ = ["Capability", "TorchcodecSource", "torchcodec_available"]


class Capability(NamedTuple):
    """Whether an optional backend works here; false in a boolean context when it does not,
    with ``reason`` saying why (and what to install)."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


def _tiny_video() -> bytes:
    """A 2-frame 16x16 MPEG-4 AVI, made with PyAV in memory, for the decoder check."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for value in (0, 255):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), value, np.uint8),
                                               format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


@functools.cache
def torchcodec_available() -> Capability:
    """Whether torchcodec imports and decodes here: it imports ``torchcodec.decoders`` and
    creates a ``VideoDecoder`` on a tiny in-memory video. Cached for the process."""
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError as err:
        if getattr(err, "name", "") == "torchcodec":
            return Capability(False, "torchcodec is not installed (pip install torchcodec; it "
                              "also needs FFmpeg's shared libraries)")
        return Capability(False, f"torchcodec does not import, most likely because FFmpeg's "
                          f"shared libraries are missing: {err}")
    except Exception as err:  # torchcodec raises RuntimeError, OSError, ...
        return Capability(False, f"torchcodec does not load FFmpeg: {type(err).__name__}: "
                          f"{err}")
    try:
        decoder = VideoDecoder(_tiny_video())
        decoder.get_frames_at(indices=[0])
    except Exception as err:  # any failure: unusable
        return Capability(False, f"torchcodec imports but cannot decode: "
                          f"{type(err).__name__}: {err}")
    return Capability(True)


class TorchcodecSource(VideoSource):
    """A video decoded with torchcodec's ``VideoDecoder`` (exact seek mode: it scans the file
    once, then decodes any index)."""

    backend = "torchcodec"

    def __init__(self, path: str | Path) -> None:
        capability = torchcodec_available()
        if not capability:
            raise RuntimeError(f"video backend 'torchcodec' is unavailable: {capability.reason}"
                               "; use backend='pyav'")
        self.path = Path(path)
        self._decoder: Any = None
        decoder = self._open()
        meta = decoder.metadata
        self.num_frames = int(meta.num_frames or 0)
        if self.num_frames <= 0:
            raise CorruptVideoError(self.path, "its video stream holds no frames")
        fps = getattr(meta, "average_fps", None)
        self.fps = float(fps) if fps else None

    def _open(self) -> Any:
        if self._decoder is None:
            from torchcodec.decoders import VideoDecoder

            try:
                self._decoder = VideoDecoder(str(self.path), dimension_order="NHWC",
                                             seek_mode="exact")
            except (RuntimeError, ValueError) as err:
                raise CorruptVideoError(self.path, str(err)) from err
        return self._decoder

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = check_indices(indices, self.num_frames, self.path)
        try:
            batch = self._open().get_frames_at(indices=idx.tolist())
        except (RuntimeError, ValueError) as err:
            raise CorruptVideoError(self.path, str(err)) from err
        return np.ascontiguousarray(batch.data.numpy(), dtype=np.uint8)

    def close(self) -> None:
        self._decoder = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_decoder": None}
