"""Single entry point for audio datasets: name -> loader, clip length and log-mel front end."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources import AUDIO_CHECKS, AUDIO_SOURCES
from fedssl.datasets.base import DatasetNotFoundError
from fedssl.datasets.spoken_digits import find_spoken_digits_dir, load_spoken_digits

__all__ = [
    "AUDIO_DATASETS",
    "AudioDatasetInfo",
    "check_audio_dataset",
    "clear_audio_cache",
    "load_audio_dataset",
]


@dataclass(frozen=True)
class AudioDatasetInfo:
    """How a dataset is read: its sample rate, clip length and log-mel front end preset
    (a key of :data:`fedssl.models.audio_frontend.AUDIO_FRONTENDS`)."""

    sample_rate: int
    duration: float
    frontend: str


# The Auditory SlowFast settings: VGG-Sound's 16 kHz / 20 ms / 10 ms front end for 16 kHz
# data, EPIC-SOUNDS' 24 kHz / 10 ms / 5 ms for EPIC-SOUNDS.
AUDIO_DATASETS: dict[str, AudioDatasetInfo] = {
    "spoken-digits": AudioDatasetInfo(16_000, 1.0, "vggsound"),
    "speech-commands": AudioDatasetInfo(16_000, 1.0, "vggsound"),
    "esc50": AudioDatasetInfo(16_000, 5.0, "vggsound"),
    "urbansound8k": AudioDatasetInfo(16_000, 4.0, "vggsound"),
    "vggsound": AudioDatasetInfo(16_000, 5.119, "vggsound"),
    "epic-sounds": AudioDatasetInfo(24_000, 2.08, "epic-sounds"),
}


def check_audio_dataset(name: str, *, data_dir: str = "", hf_dataset: str = "") -> None:
    """Cheaply verify that ``name`` can be loaded from ``data_dir`` (no audio decoded).

    ``hf_dataset`` is not used (the registry's checks share one signature). Audio files that
    cannot be used (empty; with at most ``HEADER_CHECK_MAX_FILES`` files also garbage or a
    WAV header claiming more data than the file holds) are named in one ``UserWarning``;
    the loader skips them and lists them in :attr:`AudioArrays.skipped`.

    Raises
    ------
    ValueError
        Unknown ``name``.
    DatasetNotFoundError
        The files are missing; the message gives the expected layout.
    CorruptDataError
        None of the dataset's audio files is usable (the message names them, up to a cap).
    """
    if name not in AUDIO_DATASETS:
        raise ValueError(f"audio dataset must be one of {tuple(AUDIO_DATASETS)}; got {name!r}")
    if name == "spoken-digits":
        find_spoken_digits_dir(data_dir)
    elif not data_dir:
        raise DatasetNotFoundError(f"dataset {name!r} needs data-dir, the dataset's directory")
    else:
        AUDIO_CHECKS[name](data_dir)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, split: str, data_dir: str) -> AudioArrays:
    check_audio_dataset(name, data_dir=data_dir)
    info = AUDIO_DATASETS[name]
    if name == "spoken-digits":
        arrays = load_spoken_digits(split, sample_rate=info.sample_rate, duration=info.duration,
                                    data_dir=data_dir)
    else:
        arrays = AUDIO_SOURCES[name](data_dir, split, sample_rate=info.sample_rate,
                                     duration=info.duration)
    # Shared by every caller in the process: freeze it (subset() returns writable copies).
    arrays.waveforms.setflags(write=False)
    arrays.labels.setflags(write=False)
    return arrays


def load_audio_dataset(name: str, split: str, *, data_dir: str = "") -> AudioArrays:
    """One split of an audio dataset at its :data:`AUDIO_DATASETS` rate and clip length.

    Memoised per process and returned read-only. ``split`` is ``"train"`` or ``"test"``
    (EPIC-SOUNDS' test labels are hidden, so its ``"test"`` is the validation set). Clips
    whose file cannot be decoded are skipped with one ``UserWarning`` per split and process,
    and listed in the result's ``skipped``; if none decodes, :class:`CorruptDataError`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    return _load_cached(name, split, str(data_dir))


def clear_audio_cache() -> None:
    """Drop the memoised audio datasets."""
    _load_cached.cache_clear()
