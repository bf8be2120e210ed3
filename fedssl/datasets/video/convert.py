"""One-off conversion of a tree of videos into the same tree of frame zips (``fedssl
video-to-zip``): ``SRC/a/b.avi`` becomes ``DST/a/b.zip`` (:mod:`fedssl.datasets.video.frame_zip`).

Video SSL samples clips of 16 frames at random strides many times per video; from a frame zip
that is 16 JPEG decodes, from an H.264 file up to a keyframe interval of decoding per clip. The
conversion decodes each video once (PyAV, sequentially) and encodes every frame with PIL.

It is idempotent: a zip already holding the same number of frames, made with the same quality
and size from a source of the same size, is kept; zips are written under a temporary name and
renamed when complete, so an interrupted conversion leaves no half zip to be mistaken for one.
Corrupt videos are skipped: one warning names them and gives their count
(:func:`fedssl.datasets.base.skip_corrupt`); when every video is corrupt, it raises.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedssl.datasets.base import DatasetNotFoundError, skip_corrupt
from fedssl.datasets.video.frame_zip import frame_zip_settings, write_frame_zip
from fedssl.datasets.video.source import (
    FRAME_ZIP_SUFFIX,
    VIDEO_EXTENSIONS,
    CorruptVideoError,
    open_video,
)

__all__ = ["ConvertReport", "convert_tree", "find_videos", "parse_size"]

#: JPEG quality of ``fedssl video-to-zip`` when none is given.
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class ConvertReport:
    """What :func:`convert_tree` did; paths are relative to the source folder.

    Attributes
    ----------
    converted : tuple of str
        Videos written as frame zips by this call.
    up_to_date : tuple of str
        Videos whose frame zip was already complete with the same settings (kept).
    skipped : dict of str to str
        Corrupt videos (full path -> the decoder's reason); no zip is written for them.
    frames : int
        Frames written by this call.
    seconds : float
        Wall time of the call.
    """

    src: Path
    dst: Path
    converted: tuple[str, ...]
    up_to_date: tuple[str, ...]
    skipped: dict[str, str]
    frames: int
    seconds: float


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (e.g. ``"171x128"``) as ``(width, height)``, both positive."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) <= 0:
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, e.g. 171x128; got {text!r}")
    return size


def find_videos(src: Path) -> list[Path]:
    """Every file under ``src`` with a suffix of
    :data:`~fedssl.datasets.video.source.VIDEO_EXTENSIONS` (any case), sorted."""
    return sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS
                  and p.is_file())


def _settings(quality: int, size: tuple[int, int] | None, source: Path) -> dict[str, object]:
    return {"quality": quality, "size": list(size) if size else None,
            "source-bytes": source.stat().st_size}


def _up_to_date(video: Path, zip_path: Path, quality: int, size: tuple[int, int] | None) -> bool:
    meta = frame_zip_settings(zip_path)
    return meta is not None and all(meta.get(k) == v
                                    for k, v in _settings(quality, size, video).items())


def _convert_one(video: Path, zip_path: Path, quality: int,
                 size: tuple[int, int] | None) -> tuple[int, str]:
    """(frames written, "") or (0, the reason the video is corrupt). Runs in a worker."""
    try:
        with open_video(video, "pyav") as source:
            zip_path.parent.mkdir(parents=True, exist_ok=True)
            frames = write_frame_zip(source.frames(), zip_path, quality=quality, size=size,
                                     fps=source.fps,
                                     extra={"source-bytes": video.stat().st_size})
    except CorruptVideoError as err:
        return 0, err.reason
    return frames, ""


def convert_tree(
    src_dir: str | Path,
    dst_dir: str | Path,
    *,
    quality: int = DEFAULT_QUALITY,
    size: tuple[int, int] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> ConvertReport:
    """Convert every video under ``src_dir`` into a frame zip at the same relative path under
    ``dst_dir`` (suffix ``.zip``), keeping zips that are already complete.

    Parameters
    ----------
    quality : int
        JPEG quality, 1..100 (default 90).
    size : (width, height) or None
        Resize every frame to exactly this size; ``None`` keeps each video's size.
    workers : int
        Videos converted in parallel (processes); 1 converts in this process.
    progress : bool
        Show a tqdm bar on stderr (when stderr is a terminal).

    Raises
    ------
    DatasetNotFoundError
        ``src_dir`` is not a folder, or holds no video file.
    ValueError
        A bad ``quality``, ``size`` or ``workers``, or two videos that would make the same
        zip (``a.avi`` and ``a.mp4``).
    CorruptDataError
        Every video is corrupt (the message says where it looked and names them).
    """
    started = time.perf_counter()
    src, dst = Path(src_dir).expanduser(), Path(dst_dir).expanduser()
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be a JPEG quality in 1..100; got {quality}")
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise ValueError(f"size must be (width, height) in pixels; got {size!r}")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    quality, size = int(quality), (tuple(int(s) for s in size) if size else None)
    if not src.is_dir():
        raise DatasetNotFoundError(f"video folder {src} does not exist or is not a folder")
    videos = find_videos(src)
    if not videos:
        raise DatasetNotFoundError(
            f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {src.resolve()}")
    targets: dict[Path, Path] = {}
    for video in videos:
        zip_path = dst / video.relative_to(src).with_suffix(FRAME_ZIP_SUFFIX)
        if zip_path in targets:
            raise ValueError(f"{targets[zip_path]} and {video} would both be converted to "
                             f"{zip_path}; rename one of them")
        targets[zip_path] = video
    todo = [(v, z) for z, v in targets.items() if not _up_to_date(v, z, quality, size)]
    results = dict.fromkeys(videos, (0, ""))
    results.update(_run(todo, quality, size, int(workers), progress))

    def outcome(video: Path) -> int:
        frames, reason = results[video]
        if reason:
            raise CorruptVideoError(video, reason)
        return frames

    kept, bad = skip_corrupt(videos, outcome, what="video files", where=src.resolve(),
                             stacklevel=2)
    done = {v for v, _ in todo}
    return ConvertReport(
        src=src, dst=dst,
        converted=tuple(str(v.relative_to(src)) for v, _ in kept if v in done),
        up_to_date=tuple(str(v.relative_to(src)) for v, _ in kept if v not in done),
        skipped=bad,
        frames=sum(frames for _, frames in kept),
        seconds=time.perf_counter() - started,
    )


def _run(todo: Sequence[tuple[Path, Path]], quality: int, size: tuple[int, int] | None,
         workers: int, progress: bool) -> dict[Path, tuple[int, str]]:
    from tqdm import tqdm

    results: dict[Path, tuple[int, str]] = {}
    # disable=None: no bar without a terminal, where redrawn bars are only noise in a log.
    bar = tqdm(total=len(todo), desc="video-to-zip", unit="video", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True)
    with bar:
        if workers == 1 or len(todo) <= 1:
            for video, zip_path in todo:
                results[video] = _convert_one(video, zip_path, quality, size)
                bar.update()
            return results
        # spawn: a forked child would inherit this process's threads' locks (tqdm's monitor).
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                                    mp_context=context) as pool:
            futures = {pool.submit(_convert_one, v, z, quality, size): v for v, z in todo}
            for future in cf.as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    return results
