"""UCF-101: 13,320 YouTube clips of 101 human actions, 25 groups of 4-7 clips per class, and
three official train/test splits (split 1: 9,537 train and 3,783 test clips).

On-disk layout: ``UCF101.rar`` and ``UCF101TrainTestSplits-RecognitionTask.zip`` extracted into
one folder::

    <root>/<Class>/v_<Class>_gGG_cCC.avi     (or <root>/UCF-101/<Class>/..., as the rar unpacks)
    <root>/ucfTrainTestlist/classInd.txt     "1 ApplyEyeMakeup": 1-based class numbers
    <root>/ucfTrainTestlist/trainlist0N.txt  "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0N.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

for N = 1, 2, 3. The test lists carry no label: a test video's class is its folder's number in
``classInd.txt``. Labels are that number minus 1, as CtP and VCOP read them (UCF's own numbers
follow the sorted class names, so this is also torchvision's sorted-folder order). Any video may
be the frame zip ``fedssl video-to-zip`` made of it (``v_..._c01.zip`` in its place).

Citation: K. Soomro, A. R. Zamir and M. Shah, "UCF101: A Dataset of 101 Human Actions Classes
From Videos in The Wild", CRCV-TR-12-01, arXiv:1212.0402, 2012.
"""

from __future__ import annotations

from pathlib import Path

from fedssl.datasets.video_base import VideoArrays
from fedssl.datasets.video_sources.decode import decode_index
from fedssl.datasets.video_sources.video_index import VideoIndex, VideoLayout, read_lines

__all__ = ["UCF101_FOLDS", "UCF101_LAYOUT", "check_ucf101", "index_ucf101", "load_ucf101"]

UCF101_LAYOUT = (
    "<root>/<Class>/v_<Class>_gGG_cCC.avi (or <root>/UCF-101/<Class>/...; a .zip frame zip "
    "from `fedssl video-to-zip` may replace any .avi) and <root>/ucfTrainTestlist/ with "
    "classInd.txt ('1 ApplyEyeMakeup'), trainlist0N.txt ('ApplyEyeMakeup/v_..._g08_c01.avi 1') "
    "and testlist0N.txt ('ApplyEyeMakeup/v_..._g01_c01.avi', no label) for the split N "
    "(UCF101TrainTestSplits-RecognitionTask.zip)"
)
UCF101_FOLDS = 3
LISTS = "ucfTrainTestlist"

UCF101 = VideoLayout("ucf101", UCF101_LAYOUT)


def _video_root(root: Path) -> Path:
    """Where the class folders are: ``<root>/UCF-101`` when the rar was unpacked as is."""
    nested = root / "UCF-101"
    return nested if nested.is_dir() else root


def _class_names(lists: Path) -> tuple[str, ...]:
    """The class names by label, from ``classInd.txt`` (numbered 1..C)."""
    path = lists / "classInd.txt"
    by_number: dict[int, str] = {}
    for n, fields in read_lines(UCF101, path):
        if len(fields) != 2 or not fields[0].isdigit():
            raise ValueError(f"dataset 'ucf101': {path} line {n} is not '<number> <Class>': "
                             f"{' '.join(fields)!r}")
        number = int(fields[0])
        if number in by_number:
            raise ValueError(f"dataset 'ucf101': {path} numbers two classes {number}")
        by_number[number] = fields[1]
    if sorted(by_number) != list(range(1, len(by_number) + 1)):
        raise ValueError(f"dataset 'ucf101': {path} must number its classes 1..{len(by_number)}; "
                         f"got {sorted(by_number)[:5]}...")
    return tuple(by_number[i] for i in range(1, len(by_number) + 1))


def _listed(lists: Path, split: str, fold: int,
            class_names: tuple[str, ...]) -> tuple[list[str], list[int], Path]:
    """The videos of ``<split>list0<fold>.txt`` and their labels (0-based), and the file."""
    path = lists / f"{split}list0{fold}.txt"
    folder_label = {name.lower(): i for i, name in enumerate(class_names)}
    listed: list[str] = []
    labels: list[int] = []
    for n, fields in read_lines(UCF101, path):
        video = fields[0].replace("\\", "/")
        folder = video.rpartition("/")[0]
        if folder.lower() not in folder_label:
            raise ValueError(f"dataset 'ucf101': {path} line {n}: the class folder of "
                             f"{video!r} is not in classInd.txt")
        label = folder_label[folder.lower()]
        if split == "train":
            if len(fields) < 2 or not fields[1].isdigit():
                raise ValueError(f"dataset 'ucf101': {path} line {n} is not '<Class>/<video> "
                                 f"<number>': {' '.join(fields)!r}")
            if int(fields[1]) - 1 != label:
                raise ValueError(f"dataset 'ucf101': {path} line {n} labels {video!r} "
                                 f"{fields[1]}, but classInd.txt numbers {folder!r} "
                                 f"{label + 1}")
        listed.append(video)
        labels.append(label)
    return listed, labels, path


def index_ucf101(root: str | Path, split: str, *, fold: int = 1) -> VideoIndex:
    """The videos of UCF-101's ``split`` (``"train"`` or ``"test"``) in official split
    ``fold`` (1..3), located but not decoded.

    Raises
    ------
    DatasetNotFoundError
        A list is missing, or a listed video has neither its file nor its frame zip.
    ValueError
        A bad ``split`` or ``fold``, or a malformed list.
    """
    UCF101.check_split(split)
    UCF101.check_fold(fold, UCF101_FOLDS)
    path = UCF101.root_dir(root)
    lists = UCF101.require_dir(path / LISTS)
    class_names = _class_names(lists)
    listed, labels, list_file = _listed(lists, split, fold, class_names)
    return VideoIndex.located(UCF101, split, listed, labels, class_names,
                              root=_video_root(path), listed_in=str(list_file),
                              allow_missing=False)


def check_ucf101(root: str | Path) -> None:
    """The cheap layout check (nothing decoded): ``classInd.txt`` parses, and every split
    whose lists are present (at least one) lists only videos that exist, as ``.avi`` or
    frame zip."""
    path = UCF101.root_dir(root)
    lists = UCF101.require_dir(path / LISTS)
    folds = [f for f in range(1, UCF101_FOLDS + 1)
             if (lists / f"trainlist0{f}.txt").is_file() or (lists / f"testlist0{f}.txt").is_file()]
    if not folds:
        raise UCF101.not_found(f"{lists} holds no trainlist0N.txt / testlist0N.txt (N = 1..3)")
    for fold in folds:
        for split in ("train", "test"):
            index_ucf101(path, split, fold=fold)


def load_ucf101(root: str | Path, split: str, *, fold: int = 1, frames: int = 64,
                size: int = 32, cache_dir: str | Path | None = None,
                progress: bool = True) -> VideoArrays:
    """UCF-101's ``split`` of official split ``fold`` as :class:`VideoArrays`
    (:func:`~fedssl.datasets.video_sources.decode.decode_index`: the first ``frames`` frames
    of each video, ``size`` x ``size``, cached), named ``"ucf101/<split>"``."""
    return decode_index(index_ucf101(root, split, fold=fold), frames=frames, size=size,
                        cache_dir=cache_dir, progress=progress)
