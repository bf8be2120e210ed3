"""Audio data access of the audio tasks (:class:`~fedssl.clients.data.PartitionedData` over
:func:`fedssl.datasets.load_audio_dataset`; partitions may split by speaker/recording)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedssl.clients.data import PartitionedData
from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_loader import load_audio_dataset

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["AUDIO_DATA"]


def _key(cfg: RunConfig) -> tuple:
    return (cfg.dataset, cfg.data_dir)


def _load(key: tuple, split: str) -> AudioArrays:
    dataset, data_dir = key
    return load_audio_dataset(dataset, split, data_dir=data_dir)


AUDIO_DATA = PartitionedData(_key, _load)
