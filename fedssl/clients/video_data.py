"""Video data access of the video tasks (:class:`~fedssl.clients.data.PartitionedData` over
:func:`fedssl.datasets.video_loader.load_video_dataset`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedssl.clients.data import PartitionedData
from fedssl.datasets.video_loader import VideoArrays, load_video_dataset

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["VIDEO_DATA"]


def _key(cfg: RunConfig) -> tuple:
    # The real datasets decode to video-frames frames of image-size pixels from split
    # video-split; motion-digits ignores the three.
    return (cfg.dataset, cfg.data_dir, cfg.video_split, cfg.video_frames, cfg.image_size)


def _load(key: tuple, split: str) -> VideoArrays:
    dataset, data_dir, fold, frames, size = key
    return load_video_dataset(dataset, split, data_dir=data_dir, fold=fold, frames=frames,
                              size=size)


VIDEO_DATA = PartitionedData(_key, _load)
