"""ESC-50: 2000 environmental sound recordings, 5 s each, in 50 classes and 5 folds.

The clips (44.1 kHz mono WAV) are cut from Freesound recordings; clips cut from one
recording share a fold, so the official protocol is 5-fold cross-validation over the
predefined folds. ``"test"`` is fold ``test_fold``, ``"train"`` the other four.

On-disk layout (the extracted ``ESC-50-master`` archive of
https://github.com/karolpiczak/ESC-50)::

    <root>/meta/esc50.csv     filename, fold, target, category, esc10, src_file, take
    <root>/audio/<filename>   one WAV per row

Citation: K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", Proc. 23rd
ACM International Conference on Multimedia (ACM MM), 2015.
"""

from __future__ import annotations

from pathlib import Path

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import SourceLayout
from fedssl.datasets.audio_sources.fold_table import FoldTable

ESC50_LAYOUT = (
    "<root>/meta/esc50.csv (columns filename, fold, target, category, esc10, src_file, take) "
    "and <root>/audio/<filename> for every row (<root> is the extracted ESC-50-master folder)"
)
ESC50_NUM_CLASSES = 50
ESC50_FOLDS = 5

_TABLE = FoldTable(
    SourceLayout("esc50", ESC50_LAYOUT),
    csv="meta/esc50.csv",
    file_column="filename",
    fold_column="fold",
    label_column="target",
    name_column="category",
    num_classes=ESC50_NUM_CLASSES,
    folds=ESC50_FOLDS,
)


def check_esc50(root: str | Path) -> None:
    """Check the ESC-50 layout, that every listed file exists and is usable (no decoding:
    headers for up to ``HEADER_CHECK_MAX_FILES`` files, else sizes; bad files are named in
    one warning and skipped when loading; raises only if none is usable)."""
    _TABLE.check(root)


def load_esc50(
    root: str | Path,
    split: str,
    *,
    test_fold: int = 5,
    sample_rate: int = 16000,
    duration: float = 5.0,
    max_clips: int = 0,
) -> AudioArrays:
    """Load ESC-50 ``split``: ``"train"`` = folds other than ``test_fold``, ``"test"`` = it.

    Labels are the CSV's ``target`` (50 classes), ``class_names`` its ``category`` by target,
    ``groups`` the fold (1..5). Clips are kept from their start.
    """
    return _TABLE.load(
        root,
        split,
        test_fold=test_fold,
        sample_rate=sample_rate,
        duration=duration,
        max_clips=max_clips,
    )
