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
    return (cfg.dataset, cfg.data_dir)


def _load(key: tuple, split: str) -> VideoArrays:
    dataset, data_dir = key
    return load_video_dataset(dataset, split, data_dir=data_dir)


VIDEO_DATA = PartitionedData(_key, _load)
