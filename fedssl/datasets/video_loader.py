"""Single entry point for video datasets: name -> a split as :class:`VideoArrays`.

``motion-digits`` is embedded (:mod:`fedssl.datasets.motion_digits`, rendered on first use into
the cache, read back memory-mapped; always 64 frames of 32 x 32). The real layouts ``ucf101``,
``hmdb51`` and ``kinetics400`` (:mod:`fedssl.datasets.video_sources`) are read from
``data_dir``, each video decoded once into a cached memory map of ``frames`` frames of
``size`` x ``size`` (run-config keys ``video-frames`` and ``image-size``), from official split
``fold`` (``video-split``).

Importing this module, and :func:`check_video_dataset`, import no decoder, pandas or torch.
"""

from __future__ import annotations

import functools

from fedssl.datasets.base import DatasetNotFoundError
from fedssl.datasets.video_base import VideoArrays

__all__ = ["VIDEO_DATASETS", "VideoArrays", "check_video_dataset", "load_video_dataset"]

# The registered video datasets, in the catalogue's order.
VIDEO_DATASETS: tuple[str, ...] = ("motion-digits", "ucf101", "hmdb51", "kinetics400")
# Those rendered into the package's cache rather than read from data_dir.
_EMBEDDED = ("motion-digits",)


def check_video_dataset(name: str, *, data_dir: str = "", hf_dataset: str = "") -> None:
    """The registry's cheap check: ``name`` is a video dataset, and a real one's layout is in
    ``data_dir`` with every listed video present (file names only; nothing decoded).
    ``hf_dataset`` is not used (the registry's checks share one signature).

    Raises
    ------
    ValueError
        Unknown ``name``, or a malformed split list.
    DatasetNotFoundError
        ``data_dir`` is empty or lacks the layout or listed videos; the message names the
        paths examined and the layout expected.
    """
    if name not in VIDEO_DATASETS:
        raise ValueError(f"unknown video dataset {name!r}; valid: {', '.join(VIDEO_DATASETS)}")
    if name in _EMBEDDED:
        return
    from fedssl.datasets.video_sources import VIDEO_CHECKS

    if not data_dir:
        raise DatasetNotFoundError(f"dataset {name!r} needs data-dir, the dataset's directory")
    VIDEO_CHECKS[name](data_dir)


def load_video_dataset(name: str, split: str, *, data_dir: str = "", fold: int = 1,
                       frames: int = 64, size: int = 32) -> VideoArrays:
    """One split (``"train"`` or ``"test"``) of a video dataset, memoised per process.

    ``fold`` (the official split number, 1..3; Kinetics has one), ``frames`` and ``size`` apply
    to the real datasets, whose videos are decoded into the cache on first use (see
    :func:`fedssl.datasets.video_sources.decode.decode_index`); ``motion-digits`` ignores them.
    """
    if name not in VIDEO_DATASETS:
        raise ValueError(f"unknown video dataset {name!r}; valid: {', '.join(VIDEO_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if name in _EMBEDDED:
        return _load_cached(name, split, "", 1, 0, 0)
    return _load_cached(name, split, str(data_dir), int(fold), int(frames), int(size))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, split: str, data_dir: str, fold: int, frames: int,
                 size: int) -> VideoArrays:
    if name == "motion-digits":
        import numpy as np

        from fedssl.datasets.motion_digits import load_motion_digits

        data = load_motion_digits(split)
        return VideoArrays(data.clips, np.asarray(data.labels, dtype=np.int64), data.num_classes,
                           data.name, class_names=data.class_names)
    from fedssl.datasets.video_sources import VIDEO_SOURCES

    return VIDEO_SOURCES[name](data_dir, split, fold=fold, frames=frames, size=size)
