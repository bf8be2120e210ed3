"""VGG-Sound: about 200k 10-s clips of YouTube videos, in 309 audio-visual sound classes.

Each clip is the 10 s of a YouTube video starting at ``start_seconds``; the official CSV
lists the video id, start, label and train/test split of every clip (310 classes in older
CSVs). The audio has to be downloaded from YouTube, where videos go offline over time, so
rows whose file is missing are skipped with a warning.

On-disk layout::

    <root>/vggsound.csv    no header: youtube_id, start_seconds, label, split
    <root>/audio/<youtube_id>_<start_seconds zero-padded to 6 digits>.wav (or .flac;
                 <youtube_id>_<start_seconds>.wav / .flac is accepted too)

Citation: H. Chen, W. Xie, A. Vedaldi and A. Zisserman, "VGGSound: A Large-Scale
Audio-Visual Dataset", Proc. IEEE International Conference on Acoustics, Speech and Signal
Processing (ICASSP), 2020.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import (
    AUDIO_EXTENSIONS,
    ClipIndex,
    SourceLayout,
    clip_samples,
)

VGGSOUND_LAYOUT = (
    "<root>/vggsound.csv (the official CSV: no header, columns youtube_id, start_seconds, "
    "label, split with split 'train' or 'test') and <root>/audio/<youtube_id>_<start_seconds "
    "zero-padded to 6 digits>.wav or .flac (<youtube_id>_<start_seconds>.wav/.flac is also "
    "accepted), holding the 10-s clip that starts at start_seconds; rows without a file are "
    "skipped"
)

VGGSOUND = SourceLayout("vggsound", VGGSOUND_LAYOUT)

_VGG_COLUMNS = ("youtube_id", "start_seconds", "label", "split")


def _vgg_table(root: str | Path) -> tuple[Path, pd.DataFrame]:
    """The root and the CSV, stripped, with ``start_seconds`` as ``start_int`` too."""
    path = VGGSOUND.root_dir(root)
    csv = path / "vggsound.csv"
    table = VGGSOUND.read_table(csv, _VGG_COLUMNS, headerless=True)
    for column in _VGG_COLUMNS:
        table[column] = table[column].str.strip()
    bad = ~table["split"].isin(["train", "test"])
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"dataset 'vggsound': {csv} row {first + 1} has split "
            f"{table['split'].iloc[first]!r}, not 'train' or 'test' (is there a header "
            f"line, or an unquoted comma in a label?); expected layout: {VGGSOUND_LAYOUT}"
        )
    table["start_int"] = VGGSOUND.int_column(table, "start_seconds", csv)
    VGGSOUND.require_dir(path / "audio")
    return path, table


def _vgg_locate(path: Path, table: pd.DataFrame) -> list[Path | None]:
    """The audio file of each row, or None; one directory listing instead of a stat per row."""
    audio = path / "audio"
    names = {e.name for e in os.scandir(audio) if e.is_file()}
    found: list[Path | None] = []
    rows = zip(
        table["youtube_id"].tolist(),
        table["start_int"].tolist(),
        table["start_seconds"].tolist(),
        strict=True,
    )
    for vid, start, raw in rows:
        stems = (f"{vid}_{start:06d}", f"{vid}_{raw}", f"{vid}_{start}")
        candidates = [stem + ext for stem in stems for ext in AUDIO_EXTENSIONS]
        found.append(next((audio / c for c in candidates if c in names), None))
    return found


def check_vggsound(root: str | Path) -> None:
    """Check the VGG-Sound CSV, that at least one listed clip has a file, and that the files
    found are usable (no decoding: sizes only for the full dataset, headers when there are at
    most ``HEADER_CHECK_MAX_FILES``). Bad files are named in one warning and skipped when
    loading; raises only if none is usable."""
    path, table = _vgg_table(root)
    found = [f for f in _vgg_locate(path, table) if f is not None]
    if not found:
        raise VGGSOUND.not_found(
            f"none of the {len(table)} clips of {path / 'vggsound.csv'} has an audio file in "
            f"{path / 'audio'}"
        )
    VGGSOUND.check_audio_files(found, f"in {path / 'audio'} for {path / 'vggsound.csv'}")


def load_vggsound(
    root: str | Path,
    split: str,
    *,
    sample_rate: int = 16000,
    duration: float = 5.119,
    max_clips: int = 0,
) -> AudioArrays:
    """Load VGG-Sound ``split`` ("train" or "test", the CSV's own split column).

    Labels index the sorted set of label strings of the whole CSV, so train and test agree
    (309 classes in the current CSV). Rows whose clip was never downloaded (videos go
    offline) are skipped with one warning giving their count. Clips are kept from their
    start. The whole train split (~180k clips) takes ~60 GB as float32 at 16 kHz and 5.119 s;
    use ``max_clips`` for anything smaller than a large machine.

    Raises
    ------
    DatasetNotFoundError
        If the layout is wrong or no clip of ``split`` has a file.
    """
    VGGSOUND.check_split(split, ("train", "test"))
    num_samples = clip_samples(sample_rate, duration)
    path, table = _vgg_table(root)
    class_names = tuple(sorted(set(table["label"])))
    index = {label: i for i, label in enumerate(class_names)}
    rows = table[table["split"] == split]
    files = _vgg_locate(path, rows)
    present = np.asarray([f is not None for f in files], dtype=bool)
    if not present.any():
        raise VGGSOUND.not_found(
            f"none of the {len(rows)} {split!r} clips of {path / 'vggsound.csv'} has an audio "
            f"file in {path / 'audio'}"
        )
    if not present.all():
        missing = rows[~present]
        examples = [
            f"{v}_{s}" for v, s in zip(missing["youtube_id"], missing["start_seconds"], strict=True)
        ]
        warnings.warn(
            f"vggsound/{split}: skipping {len(missing)} of {len(rows)} clips whose audio file "
            f"is missing from {path / 'audio'} (e.g. {examples[:3]})",
            stacklevel=2,
        )
    clips = ClipIndex.of(
        VGGSOUND,
        [f for f in files if f is not None],
        [index[x] for x in rows["label"][present]],
        num_classes=len(class_names),
        class_names=class_names,
        listed_in=str(path / "vggsound.csv"),
    )
    return clips.balanced(max_clips).decode(split, sample_rate=sample_rate, num_samples=num_samples)
