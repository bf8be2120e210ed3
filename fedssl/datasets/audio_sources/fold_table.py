"""Datasets listed in one CSV whose rows give a clip's file, fold, class id and class name.

Such datasets (ESC-50, UrbanSound8K) come split into predefined folds for
cross-validation: ``"test"`` is fold ``test_fold`` and ``"train"`` the other folds, and
the clips' ``groups`` are their folds. A :class:`FoldTable` says where the CSV is and which
of its columns hold what; it then indexes, checks and loads the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import (
    ClipIndex,
    SourceLayout,
    class_names_by_id,
    clip_samples,
)


@dataclass(frozen=True)
class FoldTable:
    """Where a fold dataset's CSV is and what its columns mean.

    Attributes
    ----------
    source : SourceLayout
        The dataset's name and expected layout.
    csv : str
        The CSV, relative to the root (``"meta/esc50.csv"``).
    file_column, fold_column, label_column, name_column : str
        The columns of the audio file name, the fold (``1..folds``), the class id
        (``0..num_classes-1``) and the class name.
    num_classes, folds : int
        Number of classes and of folds.
    fold_folders : bool
        Whether the files lie in ``<root>/audio/fold<k>/`` (``k`` the row's fold) rather
        than in ``<root>/audio/``.
    """

    source: SourceLayout
    csv: str
    file_column: str
    fold_column: str
    label_column: str
    name_column: str
    num_classes: int
    folds: int
    fold_folders: bool = False

    def index(self, root: str | Path) -> ClipIndex:
        """Every clip of the dataset, with its fold as ``group``; checks the layout."""
        source = self.source
        path = source.root_dir(root)
        csv = path / self.csv
        columns = (self.file_column, self.fold_column, self.label_column, self.name_column)
        table = source.read_table(csv, columns)
        audio = source.require_dir(path / "audio")
        folds = source.int_column(table, self.fold_column, csv, range(1, self.folds + 1))
        labels = source.int_column(table, self.label_column, csv, range(self.num_classes))
        names = table[self.file_column].tolist()
        if self.fold_folders:
            files = [audio / f"fold{k}" / f for k, f in zip(folds.tolist(), names, strict=True)]
        else:
            files = [audio / f for f in names]
        return ClipIndex.of(
            source,
            files,
            labels,
            num_classes=self.num_classes,
            class_names=class_names_by_id(labels, table[self.name_column], self.num_classes),
            listed_in=str(csv),
            groups=folds,
        )

    def check(self, root: str | Path) -> None:
        """Check the layout, that every listed file exists, and (cheaply, no decoding) that
        the files are usable: see :meth:`SourceLayout.check_audio_files`."""
        self.index(root).check_files()

    def load(
        self,
        root: str | Path,
        split: str,
        *,
        test_fold: int,
        sample_rate: int,
        duration: float,
        max_clips: int,
    ) -> AudioArrays:
        """Load ``split``: ``"test"`` = fold ``test_fold``, ``"train"`` = the other folds.

        The layout and the split's files are checked before any decoding; clips are kept
        from their start and ``groups`` are their folds.
        """
        self.source.check_split(split, ("train", "test"))
        self.source.check_fold(test_fold, self.folds)
        num_samples = clip_samples(sample_rate, duration)
        clips = self.index(root)
        folds = clips.clips["group"].to_numpy()
        clips = clips.take((folds == test_fold) if split == "test" else (folds != test_fold))
        clips = clips.balanced(max_clips)
        clips.require_files()
        return clips.decode(split, sample_rate=sample_rate, num_samples=num_samples)
