"""Video I/O: random access to the frames of a video file, whatever stores it.

:func:`open_video` returns a :class:`VideoSource` (``num_frames``, ``fps``, ``read(indices)``
-> ``uint8 [T, H, W, 3]`` RGB) from one of the backends of :data:`VIDEO_BACKENDS`:

``pyav`` (default)
    PyAV, whose wheel bundles FFmpeg: ``.avi`` (MPEG-4, MJPEG), ``.mp4`` (H.264), ``.mkv``,
    ... Seeks to the keyframe before a frame and decodes forward.
``frame-zip``
    CtP's storage format: one uncompressed zip of ``img_00001.jpg``, ... per video; a frame is
    one member. :func:`convert_tree` (``fedssl video-to-zip``) makes them from videos.
``torchcodec`` (optional)
    Only where FFmpeg's shared libraries are installed; :func:`torchcodec_available` says
    whether it works here, and why not.

A file that cannot be decoded raises :class:`CorruptVideoError` (a ``ValueError``) naming
it; :func:`probe_videos` opens a dataset's videos, skipping the corrupt ones with one warning.

Importing this package imports neither PyAV nor torch: a backend is imported when a video is
first opened with it.
"""

from __future__ import annotations

from fedssl.datasets.video.convert import ConvertReport, convert_tree, find_videos, parse_size
from fedssl.datasets.video.frame_zip import FrameZipSource, write_frame_zip
from fedssl.datasets.video.source import (
    FRAME_ZIP_SUFFIX,
    VIDEO_BACKENDS,
    VIDEO_EXTENSIONS,
    CorruptVideoError,
    VideoInfo,
    VideoSource,
    backend_for,
    open_video,
    probe_videos,
)
from fedssl.datasets.video.torchcodec_source import Capability, torchcodec_available

__all__ = [
    "FRAME_ZIP_SUFFIX",
    "VIDEO_BACKENDS",
    "VIDEO_EXTENSIONS",
    "Capability",
    "ConvertReport",
    "CorruptVideoError",
    "FrameZipSource",
    "VideoInfo",
    "VideoSource",
    "backend_for",
    "convert_tree",
    "find_videos",
    "open_video",
    "parse_size",
    "probe_videos",
    "torchcodec_available",
    "write_frame_zip",
]
