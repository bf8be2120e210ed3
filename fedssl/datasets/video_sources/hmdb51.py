"""HMDB-51: 6,766 clips of 51 human actions from films and web videos, and three official
train/test splits of 70 train and 30 test clips per class.

On-disk layout: ``hmdb51_org.rar`` (one ``.rar`` per class, each unpacked into its folder) and
``test_train_splits.rar`` extracted into one folder::

    <root>/<class>/<clip>.avi
    <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt   "<clip>.avi <tag>"

for N = 1, 2, 3 (153 files). The tag says what the clip is in split N: **1 train, 2 test, 0
unused** (torchvision's ``TRAIN_TAG`` / ``TEST_TAG``). Class ids number the **sorted** class
names: CtP's ``process_hmdb51.py`` numbers them in ``os.listdir`` order, which differs between
machines. Any video may be the frame zip ``fedssl video-to-zip`` made of it.

Citation: H. Kuehne, H. Jhuang, E. Garrote, T. Poggio and T. Serre, "HMDB: A Large Video
Database for Human Motion Recognition", Proc. IEEE International Conference on Computer
Vision (ICCV), 2011.
"""

from __future__ import annotations

import re
from pathlib import Path

from fedssl.datasets.video_base import VideoArrays
from fedssl.datasets.video_sources.decode import decode_index
from fedssl.datasets.video_sources.video_index import VideoIndex, VideoLayout, read_lines

__all__ = ["HMDB51_FOLDS", "HMDB51_LAYOUT", "check_hmdb51", "index_hmdb51", "load_hmdb51"]

HMDB51_LAYOUT = (
    "<root>/<class>/<clip>.avi (a .zip frame zip from `fedssl video-to-zip` may replace any "
    ".avi) and <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt for the split N, "
    "lines '<clip>.avi <tag>' with tag 1 = train, 2 = test, 0 = unused (test_train_splits.rar)"
)
HMDB51_FOLDS = 3
SPLITS_DIR = "testTrainMulti_7030_splits"
#: The tag of each of the task's splits in the split files.
TAGS = {"train": "1", "test": "2"}
_SPLIT_FILE = re.compile(r"(.+)_test_split([0-9]+)\.txt")

HMDB51 = VideoLayout("hmdb51", HMDB51_LAYOUT)


def _split_files(splits: Path, fold: int) -> dict[str, Path]:
    """Class name -> its split file for ``fold``, sorted by class name."""
    found = {}
    for path in splits.iterdir():
        match = _SPLIT_FILE.fullmatch(path.name)
        if match and int(match.group(2)) == fold and path.is_file():
            found[match.group(1)] = path
    if not found:
        raise HMDB51.not_found(f"{splits} holds no <class>_test_split{fold}.txt")
    return dict(sorted(found.items()))


def index_hmdb51(root: str | Path, split: str, *, fold: int = 1) -> VideoIndex:
    """The clips of HMDB-51's ``split`` (``"train"``: tag 1, ``"test"``: tag 2) in official
    split ``fold`` (1..3), located but not decoded. Class ids follow the sorted class names.

    Raises
    ------
    DatasetNotFoundError
        The split files are missing, or a listed clip has neither its file nor its frame zip.
    ValueError
        A bad ``split`` or ``fold``, or a malformed line (a tag other than 0, 1, 2).
    """
    HMDB51.check_split(split)
    HMDB51.check_fold(fold, HMDB51_FOLDS)
    path = HMDB51.root_dir(root)
    files = _split_files(HMDB51.require_dir(path / SPLITS_DIR), fold)
    class_names = tuple(files)
    listed: list[str] = []
    labels: list[int] = []
    for label, (name, split_file) in enumerate(files.items()):
        for n, fields in read_lines(HMDB51, split_file):
            if len(fields) < 2 or fields[-1] not in ("0", "1", "2"):
                raise ValueError(f"dataset 'hmdb51': {split_file} line {n} is not '<clip>.avi "
                                 f"<tag>' with tag 0, 1 or 2: {' '.join(fields)!r}")
            if fields[-1] == TAGS[split]:
                listed.append(f"{name}/{' '.join(fields[:-1])}")
                labels.append(label)
    where = f"{path / SPLITS_DIR}/*_test_split{fold}.txt (tag {TAGS[split]})"
    return VideoIndex.located(HMDB51, split, listed, labels, class_names, root=path,
                              listed_in=where, allow_missing=False)


def check_hmdb51(root: str | Path) -> None:
    """The cheap layout check (nothing decoded): every split whose files are present (at
    least one) parses and lists only clips that exist, as ``.avi`` or frame zip."""
    path = HMDB51.root_dir(root)
    splits = HMDB51.require_dir(path / SPLITS_DIR)
    folds = sorted({int(m.group(2)) for p in splits.iterdir()
                    if (m := _SPLIT_FILE.fullmatch(p.name))} & set(range(1, HMDB51_FOLDS + 1)))
    if not folds:
        raise HMDB51.not_found(f"{splits} holds no <class>_test_splitN.txt (N = 1..3)")
    for fold in folds:
        for split in ("train", "test"):
            index_hmdb51(path, split, fold=fold)


def load_hmdb51(root: str | Path, split: str, *, fold: int = 1, frames: int = 64,
                size: int = 32, cache_dir: str | Path | None = None,
                progress: bool = True) -> VideoArrays:
    """HMDB-51's ``split`` of official split ``fold`` as :class:`VideoArrays`
    (:func:`~fedssl.datasets.video_sources.decode.decode_index`), named ``"hmdb51/<split>"``."""
    return decode_index(index_hmdb51(root, split, fold=fold), frames=frames, size=size,
                        cache_dir=cache_dir, progress=progress)
