"""Video classification datasets read from their distributed on-disk layouts.

Each source has its own module, which reads its split lists into the shared
:class:`~fedssl.datasets.video_sources.video_index.VideoIndex` (per video: name, file, label;
plus the class names) and hands it to
:func:`~fedssl.datasets.video_sources.decode.decode_index`, which decodes every video once into
a cached memory map of ``uint8 [N, frames, size, size, 3]`` (the first ``frames`` frames, a
short video repeating its last; the centre square resized to ``size``) and returns
:class:`~fedssl.datasets.video_base.VideoArrays`. Any video may be stored as the frame zip
``fedssl video-to-zip`` makes of it (same path, ``.zip``).

``check_<name>(root)`` checks the layout and that the listed files exist, decoding nothing and
importing no decoder, pandas or torch; it raises
:class:`~fedssl.datasets.base.DatasetNotFoundError` saying what was missing, where it looked
and which layout is expected. A video that cannot be decoded is skipped when loading, with one
warning naming it; when none decodes, :class:`~fedssl.datasets.base.CorruptDataError`.

Sources
-------
``ucf101``
    UCF-101: 101 classes, official splits 1-3 (``fold``), ``ucfTrainTestlist/``.
``hmdb51``
    HMDB-51: 51 classes, official splits 1-3, ``testTrainMulti_7030_splits/``; class ids
    from the sorted class names.
``kinetics400``
    Kinetics-400: 400 classes, ``train.csv`` / ``val.csv`` (``"test"`` is val); clips
    missing from the copy are left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedssl.datasets.video_base import VideoArrays
from fedssl.datasets.video_sources.decode import decode_index, decode_video
from fedssl.datasets.video_sources.hmdb51 import (
    HMDB51_LAYOUT,
    check_hmdb51,
    index_hmdb51,
    load_hmdb51,
)
from fedssl.datasets.video_sources.kinetics400 import (
    KINETICS400_LAYOUT,
    check_kinetics400,
    index_kinetics400,
    label_dir,
    load_kinetics400,
)
from fedssl.datasets.video_sources.ucf101 import (
    UCF101_LAYOUT,
    check_ucf101,
    index_ucf101,
    load_ucf101,
)
from fedssl.datasets.video_sources.video_index import VideoFinder, VideoIndex, VideoLayout

__all__ = [
    "HMDB51_LAYOUT",
    "KINETICS400_LAYOUT",
    "UCF101_LAYOUT",
    "VIDEO_CHECKS",
    "VIDEO_FOLDS",
    "VIDEO_SOURCES",
    "VideoFinder",
    "VideoIndex",
    "VideoLayout",
    "check_hmdb51",
    "check_kinetics400",
    "check_ucf101",
    "decode_index",
    "decode_video",
    "index_hmdb51",
    "index_kinetics400",
    "index_ucf101",
    "label_dir",
    "load_hmdb51",
    "load_kinetics400",
    "load_ucf101",
]


def _load_kinetics400(root: str | Path, split: str, *, fold: int = 1,
                      **kwargs: object) -> VideoArrays:
    # Kinetics has one train/val split; the split number (video-split) does not apply.
    return load_kinetics400(root, split, **kwargs)  # type: ignore[arg-type]


#: name -> ``load(root, split, *, fold, frames, size, cache_dir, progress)``.
VIDEO_SOURCES: dict[str, Callable[..., VideoArrays]] = {
    "ucf101": load_ucf101,
    "hmdb51": load_hmdb51,
    "kinetics400": _load_kinetics400,
}
#: name -> the cheap layout check ``check(root)``.
VIDEO_CHECKS: dict[str, Callable[[str | Path], None]] = {
    "ucf101": check_ucf101,
    "hmdb51": check_hmdb51,
    "kinetics400": check_kinetics400,
}
#: name -> how many official train/test splits it has (``video-split`` picks one).
VIDEO_FOLDS: dict[str, int] = {"ucf101": 3, "hmdb51": 3, "kinetics400": 1}
