"""EPIC-SOUNDS: 44 classes of sound events annotated in the audio of EPIC-KITCHENS-100.

EPIC-KITCHENS-100 is 100 hours of egocentric video recorded in 45 kitchens by 37
participants (``P01``..``P37``); EPIC-SOUNDS annotates about 78k temporal segments of its
untrimmed audio with the sound they make. Each annotation gives the video, the segment as
``[start_sample, stop_sample)`` at 24 kHz (the rate of the official audio) and the class;
each segment is cut out of the per-video file. The test labels are withheld for the
challenge server, so ``"test"`` loads the validation annotations.

On-disk layout::

    <root>/EPIC_Sounds_train.csv        annotation_id, participant_id, video_id,
    <root>/EPIC_Sounds_validation.csv   start_timestamp, stop_timestamp, start_sample,
                                        stop_sample, description, class, class_id
    <root>/audio/<video_id>.wav (or .flac)  the untrimmed audio of one video, exported one
                                        file per video from the official audio HDF5

Citations: J. Huh, J. Chalk, E. Kazakos, D. Damen and A. Zisserman, "EPIC-SOUNDS: A
Large-Scale Dataset of Actions that Sound", Proc. IEEE International Conference on
Acoustics, Speech and Signal Processing (ICASSP), 2023; D. Damen et al., "Rescaling
Egocentric Vision: Collection, Pipeline and Challenges for EPIC-KITCHENS-100",
International Journal of Computer Vision, 2022.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import (
    AUDIO_EXTENSIONS,
    ClipIndex,
    SourceLayout,
    balanced_prefix,
    class_names_by_id,
    clip_samples,
    dense_ids,
)

EPIC_SOUNDS_LAYOUT = (
    "<root>/EPIC_Sounds_train.csv and <root>/EPIC_Sounds_validation.csv (columns "
    "annotation_id, participant_id, video_id, start_timestamp, stop_timestamp, start_sample, "
    "stop_sample, description, class, class_id) and <root>/audio/<video_id>.wav or .flac: the "
    "untrimmed 24 kHz audio of each video, exported one file per video from the official "
    "EPIC-KITCHENS-100 audio HDF5 (one dataset per video id)"
)
EPIC_SOUNDS_NUM_CLASSES = 44
# Sample rate of the official EPIC-SOUNDS audio; start_sample / stop_sample count at it.
EPIC_SOUNDS_RATE = 24000

EPIC_SOUNDS = SourceLayout("epic-sounds", EPIC_SOUNDS_LAYOUT)

_EPIC_FILES = {"train": "EPIC_Sounds_train.csv", "validation": "EPIC_Sounds_validation.csv"}
_EPIC_COLUMNS = (
    "participant_id",
    "video_id",
    "start_sample",
    "stop_sample",
    "class",
    "class_id",
)


def _epic_table(path: Path, split: str) -> pd.DataFrame:
    """The annotations of ``split``, ids stripped and the class and samples as integers."""
    csv = path / _EPIC_FILES[split]
    table = EPIC_SOUNDS.read_table(csv, _EPIC_COLUMNS)
    for column in ("participant_id", "video_id"):
        table[column] = table[column].str.strip()
    table["class_id"] = EPIC_SOUNDS.int_column(
        table, "class_id", csv, range(EPIC_SOUNDS_NUM_CLASSES)
    )
    table["start_sample"] = EPIC_SOUNDS.int_column(table, "start_sample", csv)
    table["stop_sample"] = EPIC_SOUNDS.int_column(table, "stop_sample", csv)
    return table


def _epic_videos(path: Path, video_ids: Sequence[str], source: str) -> dict[str, Path]:
    """The audio file of every video in ``video_ids`` (annotated in ``source``)."""
    audio = EPIC_SOUNDS.require_dir(path / "audio")
    found: dict[str, Path] = {}
    missing = []
    for vid in sorted(set(video_ids)):
        candidates = [audio / (vid + ext) for ext in AUDIO_EXTENSIONS]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            missing.append(vid)
        else:
            found[vid] = match
    if missing:
        total = len(found) + len(missing)
        raise EPIC_SOUNDS.not_found(
            f"no audio file for {len(missing)} of {total} videos annotated in {source} "
            f"(looked for {audio}/<video_id>.wav or .flac, e.g. {missing[:3]})"
        )
    return found


def _file_rate(path: Path) -> int | None:
    """The file's sample rate, or ``None`` when its header is unreadable (decoding then
    skips the file's clips, naming it)."""
    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.SoundFileError, RuntimeError):
        return None


def _participant_ids(participants: list[str]) -> np.ndarray:
    """``"P01"`` -> 1; falls back to dense ids if any id carries no number."""
    numbers = [re.search(r"(\d+)", p) for p in participants]
    if all(numbers):
        return np.asarray([int(m.group(1)) for m in numbers if m], dtype=np.int64)
    return dense_ids(participants)


def check_epic_sounds(root: str | Path) -> None:
    """Check both annotation CSVs, that every annotated video has an audio file, and that
    those files are usable (no decoding: headers for up to ``HEADER_CHECK_MAX_FILES`` videos,
    else sizes). Bad files are named in one warning and their clips skipped when loading;
    raises only if none is usable."""
    path = EPIC_SOUNDS.root_dir(root)
    videos: dict[str, Path] = {}
    for split, filename in _EPIC_FILES.items():
        table = _epic_table(path, split)
        videos |= _epic_videos(path, table["video_id"].tolist(), str(path / filename))
    EPIC_SOUNDS.check_audio_files(
        sorted(videos.values()), f"annotated in {', '.join(_EPIC_FILES.values())}"
    )


def load_epic_sounds(
    root: str | Path,
    split: str,
    *,
    sample_rate: int = 24000,
    duration: float = 2.08,
    max_clips: int = 0,
) -> AudioArrays:
    """Load EPIC-SOUNDS ``split`` ("train", "validation"; "test" loads "validation").

    The test labels are withheld for the challenge server, so ``"test"`` returns the
    validation annotations (named ``"epic-sounds/validation"``). Each annotation's
    ``[start_sample, stop_sample)`` segment (counted at 24 kHz, the rate of the official
    audio) is read from ``audio/<video_id>.wav``/``.flac``; if a file was exported at
    another rate the indices are rescaled to it. Segments are centre-cropped or padded
    symmetrically to ``duration``. Labels are ``class_id`` (44 classes), ``groups`` the
    participant number (``"P01"`` -> 1).
    """
    EPIC_SOUNDS.check_split(split, ("train", "validation", "test"))
    split = "validation" if split == "test" else split
    num_samples = clip_samples(sample_rate, duration)
    path = EPIC_SOUNDS.root_dir(root)
    table = _epic_table(path, split)
    # From the whole split, so that max_clips does not lose names.
    class_names = class_names_by_id(
        table["class_id"].to_numpy(), table["class"], EPIC_SOUNDS_NUM_CLASSES
    )
    # Selected before the videos are located: only the kept clips need their files.
    table = table.iloc[balanced_prefix(table["class_id"].to_numpy(), max_clips)]
    listed_in = str(path / _EPIC_FILES[split])
    video_ids = table["video_id"].tolist()
    videos = _epic_videos(path, video_ids, listed_in)
    # One header read per video: start/stop count at 24 kHz whatever rate a file was saved at.
    rates = {vid: _file_rate(f) for vid, f in videos.items()}
    scales = {vid: (rate or EPIC_SOUNDS_RATE) / EPIC_SOUNDS_RATE for vid, rate in rates.items()}
    starts = table["start_sample"].tolist()
    stops = table["stop_sample"].tolist()
    clips = ClipIndex.of(
        EPIC_SOUNDS,
        [videos[vid] for vid in video_ids],
        table["class_id"].to_numpy(dtype=np.int64),
        num_classes=EPIC_SOUNDS_NUM_CLASSES,
        class_names=class_names,
        listed_in=listed_in,
        groups=table["participant_id"].tolist(),
        group_ids=_participant_ids,
        starts=[round(s * scales[v]) for v, s in zip(video_ids, starts, strict=True)],
        stops=[round(s * scales[v]) for v, s in zip(video_ids, stops, strict=True)],
    )
    return clips.decode(split, sample_rate=sample_rate, num_samples=num_samples, mode="centre")
