"""Image data access shared by the image tasks (:class:`~fedssl.clients.data.PartitionedData`
over :func:`fedssl.datasets.load_image_dataset`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedssl.clients.data import PartitionedData
from fedssl.datasets import ImageArrays, load_image_dataset

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["IMAGE_DATA", "data_key"]


def data_key(cfg: RunConfig) -> tuple:
    """What determines the loaded arrays (hashable, for the caches)."""
    return (cfg.dataset, cfg.data_dir, cfg.hf_dataset, cfg.image_size)


def _load(key: tuple, split: str) -> ImageArrays:
    dataset, data_dir, hf_dataset, image_size = key
    return load_image_dataset(dataset, split, data_dir=data_dir, hf_dataset=hf_dataset,
                              image_size=image_size)


IMAGE_DATA = PartitionedData(data_key, _load)
