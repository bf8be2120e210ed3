"""UrbanSound8K: 8732 urban sound excerpts of at most 4 s, in 10 classes and 10 folds.

The excerpts ("slices") are cut from Freesound field recordings, at the rates, bit depths
and channel counts of their sources; slices of one recording share a fold, so the official
protocol is 10-fold cross-validation over the predefined folds. ``"test"`` is fold
``test_fold``, ``"train"`` the other nine.

On-disk layout (the extracted ``UrbanSound8K`` archive)::

    <root>/metadata/UrbanSound8K.csv        slice_file_name, fsID, start, end, salience,
                                            fold, classID, class
    <root>/audio/fold<k>/<slice_file_name>  k = 1..10, the row's fold

Citation: J. Salamon, C. Jacoby and J. P. Bello, "A Dataset and Taxonomy for Urban Sound
Research", Proc. 22nd ACM International Conference on Multimedia (ACM MM), 2014.
"""

from __future__ import annotations

from pathlib import Path

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import SourceLayout
from fedssl.datasets.audio_sources.fold_table import FoldTable

URBANSOUND8K_LAYOUT = (
    "<root>/metadata/UrbanSound8K.csv (columns slice_file_name, fsID, start, end, salience, "
    "fold, classID, class) and <root>/audio/fold<k>/<slice_file_name> for k = 1..10 "
    "(<root> is the extracted UrbanSound8K folder)"
)
URBANSOUND8K_NUM_CLASSES = 10
URBANSOUND8K_FOLDS = 10

_TABLE = FoldTable(
    SourceLayout("urbansound8k", URBANSOUND8K_LAYOUT),
    csv="metadata/UrbanSound8K.csv",
    file_column="slice_file_name",
    fold_column="fold",
    label_column="classID",
    name_column="class",
    num_classes=URBANSOUND8K_NUM_CLASSES,
    folds=URBANSOUND8K_FOLDS,
    fold_folders=True,
)


def check_urbansound8k(root: str | Path) -> None:
    """Check the UrbanSound8K layout, that every listed file exists and is usable (no decoding:
    headers for up to ``HEADER_CHECK_MAX_FILES`` files, else sizes; bad files are named in
    one warning and skipped when loading; raises only if none is usable)."""
    _TABLE.check(root)


def load_urbansound8k(
    root: str | Path,
    split: str,
    *,
    test_fold: int = 10,
    sample_rate: int = 16000,
    duration: float = 4.0,
    max_clips: int = 0,
) -> AudioArrays:
    """Load UrbanSound8K ``split``: ``"train"`` = folds other than ``test_fold``, ``"test"``.

    The official protocol is 10-fold cross-validation over the predefined folds; vary
    ``test_fold``. Labels are ``classID`` (10 classes), ``class_names`` the ``class`` column,
    ``groups`` the fold (1..10). Clips shorter than ``duration`` are zero-padded at the end.
    """
    return _TABLE.load(
        root,
        split,
        test_fold=test_fold,
        sample_rate=sample_rate,
        duration=duration,
        max_clips=max_clips,
    )
