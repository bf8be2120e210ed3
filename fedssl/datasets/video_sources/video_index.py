"""What every video source shares: its layout (quoted by every error), the lookup of a listed
video in either of its forms, and :class:`VideoIndex`, the videos of a split before any is
decoded.

A source reads its split lists through a :class:`VideoLayout` (the dataset's name and expected
on-disk layout) and describes a split as a :class:`VideoIndex`: per video its name (its path
in the dataset without the suffix), file and label, plus the class names. A listed video is
found as the file the list names or, in its place, the frame zip ``fedssl video-to-zip`` makes
of it (the same path with ``.zip``): :class:`VideoFinder`.

This module imports only the standard library, numpy and :mod:`fedssl.datasets.base`: the
layout checks the run-config check calls import no decoder, pandas or torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedssl.datasets.base import DatasetLayout
from fedssl.datasets.video.source import FRAME_ZIP_SUFFIX

__all__ = ["VideoFinder", "VideoIndex", "VideoLayout", "read_lines", "video_name"]


@dataclass(frozen=True)
class VideoLayout(DatasetLayout):
    """:class:`~fedssl.datasets.base.DatasetLayout` (errors quoting the layout; the folder is
    the run config's ``data-dir``) plus the split and official-split-number checks."""

    root_key: str = "data-dir"

    def check_split(self, split: str) -> None:
        """Raise ``ValueError`` unless ``split`` is ``"train"`` or ``"test"``."""
        if split not in ("train", "test"):
            raise ValueError(f"dataset {self.name!r}: split must be 'train' or 'test'; got "
                             f"{split!r}")

    def check_fold(self, fold: int, folds: int = 3) -> None:
        """Raise ``ValueError`` unless ``1 <= fold <= folds`` (the official split number)."""
        if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= folds:
            raise ValueError(f"dataset {self.name!r} has the official splits 1..{folds} "
                             f"(run-config key video-split); got {fold!r}")


def read_lines(layout: VideoLayout, path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank lines of the text file ``path`` as ``(line number, fields)``, split on
    whitespace (the official lists end their lines with ``\\r\\n``)."""
    layout.require_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"dataset {layout.name!r}: {path} is not a text file ({err})") from err
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


class VideoFinder:
    """Finds listed videos under a folder, as the listed file or as its frame zip.

    ``find("Class/v_x.avi")`` is ``<root>/Class/v_x.avi`` when that file exists, else
    ``<root>/Class/v_x.zip`` when that does, else ``None``. Each folder is listed once
    (``os.scandir``), so locating Kinetics' 240k clips costs 400 folder reads, not 480k
    ``stat`` calls.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[str, frozenset[str]] = {}

    def _listing(self, folder: str) -> frozenset[str]:
        if folder not in self._listings:
            try:
                with os.scandir(self.root / folder) as it:
                    names = frozenset(e.name for e in it if e.is_file())
            except (FileNotFoundError, NotADirectoryError):
                names = frozenset()
            self._listings[folder] = names
        return self._listings[folder]

    def find(self, listed: str) -> Path | None:
        """The file of the video listed as ``listed`` (relative to the root, ``/``-separated),
        or ``None`` when neither form is there."""
        folder, _, base = listed.rpartition("/")
        names = self._listing(folder)
        if base in names:
            return self.root / listed
        zipped = Path(base).with_suffix(FRAME_ZIP_SUFFIX).name
        if zipped in names:
            return self.root / folder / zipped if folder else self.root / zipped
        return None

    def find_all(self, listed: Sequence[str]) -> tuple[list[Path | None], list[str]]:
        """``(paths, missing)``: a path (or ``None``) per listed video, and those not found."""
        paths = [self.find(item) for item in listed]
        return paths, [item for item, p in zip(listed, paths, strict=True) if p is None]


def video_name(listed: str) -> str:
    """A video's name: its listed path without the file suffix (``"Class/v_x"``)."""
    folder, _, base = listed.rpartition("/")
    stem = Path(base).stem if Path(base).suffix else base
    return f"{folder}/{stem}" if folder else stem


@dataclass(frozen=True, eq=False)
class VideoIndex:
    """The videos of one split, in list order, before any is decoded.

    Attributes
    ----------
    source : VideoLayout
        The dataset; its name prefixes the split in :attr:`VideoArrays.name` and its layout
        ends the errors.
    split : str
        ``"train"`` or ``"test"`` (the task's names; Kinetics' ``"test"`` is its val set).
    names : tuple of str
        Per video: its path under :attr:`root` without the suffix (``"Class/v_x"``).
    paths : tuple of Path
        Per video: the file found (the video or its frame zip).
    labels : np.ndarray
        ``int64 [N]`` class ids in ``[0, len(class_names))``.
    class_names : tuple of str
        The class names by id.
    root : Path
        The folder the videos were found in (for the messages).
    listed_in : str
        The list file(s) the split comes from.
    missing : tuple of str
        Listed videos without a file, left out (Kinetics mirrors lack some clips; UCF-101
        and HMDB-51 refuse to load instead).
    """

    source: VideoLayout
    split: str
    names: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    root: Path
    listed_in: str
    missing: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.paths) == len(self.labels)):
            raise ValueError(f"{len(self.names)} names, {len(self.paths)} paths and "
                             f"{len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def name(self) -> str:
        """``"<dataset>/<split>"``."""
        return f"{self.source.name}/{self.split}"

    @classmethod
    def located(cls, source: VideoLayout, split: str, listed: Sequence[str],
                labels: Sequence[int], class_names: tuple[str, ...], *, root: Path,
                listed_in: str, allow_missing: bool) -> VideoIndex:
        """Index the videos ``listed`` (paths relative to ``root``), each found in either
        form (:class:`VideoFinder`).

        With ``allow_missing`` the videos without a file are left out and recorded in
        :attr:`missing`; without it, any missing video raises. Either way, a split with no
        video found raises.

        Raises
        ------
        DatasetNotFoundError
            Videos without a file (unless ``allow_missing``), or none found; the message
            counts them, names a few, says where it looked and gives the layout.
        """
        paths, missing = VideoFinder(root).find_all(list(listed))
        if not listed:
            raise source.not_found(f"{listed_in} lists no video")
        if missing and (not allow_missing or len(missing) == len(listed)):
            raise source.not_found(
                f"{len(missing)} of {len(listed)} videos listed in {listed_in} have no file "
                f"under {root} (looked for each listed file and for its {FRAME_ZIP_SUFFIX} "
                f"frame zip), e.g. {missing[:3]}")
        keep = [i for i, p in enumerate(paths) if p is not None]
        return cls(
            source=source, split=split,
            names=tuple(video_name(listed[i]) for i in keep),
            paths=tuple(p for p in paths if p is not None),
            labels=np.asarray([labels[i] for i in keep], dtype=np.int64),
            class_names=class_names, root=root, listed_in=listed_in,
            missing=tuple(missing),
        )
