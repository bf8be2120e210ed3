"""Kinetics-400: about 240k training and 20k validation clips of 10 s cut from YouTube videos,
400 human action classes.

On-disk layout (the annotation CSVs of the official release and the clips as torchvision's
``Kinetics`` and most mirrors store them)::

    <root>/train.csv, <root>/val.csv       (or <root>/annotations/<split>.csv)
        columns read by name: label, youtube_id, time_start, time_end (split and any other
        column are ignored)
    <root>/<split>/<label dir>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4

where ``<label dir>`` is the label with spaces replaced by ``_`` and quotes and parentheses
removed (``"passing American football (in game)"`` -> ``passing_American_football_in_game``;
:func:`label_dir`). The task's ``"train"`` split is ``train``, its ``"test"`` split is ``val``
(the test labels were not released with the clips). Class ids number the sorted label
directories of ``train.csv``. Every mirror lacks some clips (YouTube videos taken down): a
listed clip without a file is left out and counted in one warning per split. Any clip may be
the frame zip ``fedssl video-to-zip`` made of it (``.zip`` in its place).

A clip's name, ``"<label dir>/<youtube_id>_<start>_<end>"``, is how FedVSSL's
``client_dist*.json`` files name it (partitioner ``fedvssl-clients``).

Citation: W. Kay et al., "The Kinetics Human Action Video Dataset", arXiv:1705.06950, 2017.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from fedssl.datasets.video_base import VideoArrays
from fedssl.datasets.video_sources.decode import decode_index
from fedssl.datasets.video_sources.video_index import VideoIndex, VideoLayout

__all__ = [
    "KINETICS400_COLUMNS",
    "KINETICS400_LAYOUT",
    "check_kinetics400",
    "clip_file",
    "index_kinetics400",
    "label_dir",
    "load_kinetics400",
]

KINETICS400_LAYOUT = (
    "<root>/train.csv and <root>/val.csv (or <root>/annotations/<split>.csv; columns label, "
    "youtube_id, time_start, time_end, split) and "
    "<root>/<split>/<label with spaces as _ and no quotes or parentheses>/"
    "<youtube_id>_<time_start:06d>_<time_end:06d>.mp4 (or the .zip frame zip from "
    "`fedssl video-to-zip`), split = train and val"
)
KINETICS400_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
#: The Kinetics split each of the task's splits reads.
SPLITS = {"train": "train", "test": "val"}

KINETICS400 = VideoLayout("kinetics400", KINETICS400_LAYOUT)


def label_dir(label: str) -> str:
    """The folder of a label: spaces as ``_``, quotes and parentheses removed."""
    out = label.strip().replace(" ", "_")
    for char in "'\"()":
        out = out.replace(char, "")
    return out


def clip_file(youtube_id: str, time_start: int, time_end: int, suffix: str = ".mp4") -> str:
    """``<youtube_id>_<time_start:06d>_<time_end:06d><suffix>``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}{suffix}"


def _csv_path(root: Path, split: str) -> Path:
    for path in (root / f"{split}.csv", root / "annotations" / f"{split}.csv"):
        if path.is_file():
            return path
    raise KINETICS400.not_found(f"no annotation file {split}.csv in {root} or "
                                f"{root / 'annotations'}")


def _seconds(value: str, column: str, path: Path, line: int) -> int:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= 0 or number != int(number):
        raise ValueError(f"dataset 'kinetics400': {path} line {line}: {column} must be whole "
                         f"seconds; got {value!r}")
    return int(number)


def _rows(root: Path, split: str) -> tuple[list[tuple[str, str]], Path]:
    """``(label dir, clip file)`` per row of ``<split>.csv``, and the file."""
    path = _csv_path(root, split)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [c.strip() for c in reader.fieldnames or ()]
        missing = [c for c in KINETICS400_COLUMNS if c not in header]
        if missing:
            raise KINETICS400.not_found(f"{path} lacks columns {missing} (has {header})")
        reader.fieldnames = header
        rows = []
        for row in reader:
            start = _seconds(row["time_start"], "time_start", path, reader.line_num)
            end = _seconds(row["time_end"], "time_end", path, reader.line_num)
            rows.append((label_dir(row["label"]),
                         clip_file(row["youtube_id"].strip(), start, end)))
    return rows, path


def index_kinetics400(root: str | Path, split: str) -> VideoIndex:
    """The clips of Kinetics-400's ``split`` (``"train"``: ``train``, ``"test"``: ``val``)
    that have a file, located but not decoded; the listed clips without one are in
    :attr:`VideoIndex.missing`.

    Raises
    ------
    DatasetNotFoundError
        A CSV or the split's folder is missing, or none of its clips has a file.
    ValueError
        A bad ``split``, a malformed CSV, or a val label that ``train.csv`` does not have.
    """
    KINETICS400.check_split(split)
    path = KINETICS400.root_dir(root)
    train_rows, train_csv = _rows(path, "train")
    class_names = tuple(sorted({label for label, _ in train_rows}))
    rows, csv_path = (train_rows, train_csv) if split == "train" else _rows(path, SPLITS[split])
    ids = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({label for label, _ in rows} - set(ids))
    if unknown:
        raise ValueError(f"dataset 'kinetics400': {csv_path} has labels that {train_csv} does "
                         f"not: {unknown[:5]}")
    videos = KINETICS400.require_dir(path / SPLITS[split])
    return VideoIndex.located(KINETICS400, split, [f"{label}/{clip}" for label, clip in rows],
                              [ids[label] for label, _ in rows], class_names, root=videos,
                              listed_in=str(csv_path), allow_missing=True)


def check_kinetics400(root: str | Path) -> None:
    """The cheap layout check (nothing decoded): both CSVs parse and each split has at least
    one clip file (missing clips are normal for Kinetics; the loader counts them)."""
    for split in SPLITS:
        index_kinetics400(root, split)


def load_kinetics400(root: str | Path, split: str, *, frames: int = 64, size: int = 32,
                     cache_dir: str | Path | None = None, progress: bool = True) -> VideoArrays:
    """Kinetics-400's ``split`` as :class:`VideoArrays`
    (:func:`~fedssl.datasets.video_sources.decode.decode_index`), named
    ``"kinetics400/<split>"``, each video named ``"<label dir>/<clip>"``. Listed clips without
    a file are left out with one warning that counts them."""
    index = index_kinetics400(root, split)
    if index.missing:
        total = len(index) + len(index.missing)
        warnings.warn(
            f"{index.name}: {len(index.missing)} of {total} clips listed in {index.listed_in} "
            f"have no file under {index.root} (left out; every Kinetics copy lacks the clips "
            f"taken down from YouTube), e.g. {list(index.missing[:3])}",
            stacklevel=2,
        )
    return decode_index(index, frames=frames, size=size, cache_dir=cache_dir, progress=progress)
