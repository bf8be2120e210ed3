"""Audio classification datasets read from their distributed on-disk layouts.

Every loader takes the dataset folder ``root``, a ``split``, the target ``sample_rate`` (Hz)
and ``duration`` (s), and returns :class:`AudioArrays` whose clips are mono ``float32`` of
``round(duration * sample_rate)`` samples (cropped or zero-padded). ``max_clips > 0`` keeps
only the first ``max_clips`` clips of the split in a stable, class-interleaved order (the
first clip of every class, then the second of every class, ...), so quick runs still see
every class; the kept clips are returned in dataset order. The layout is checked, and every
needed file located, before any audio is decoded. ``check_<name>(root)`` does the same checks
without decoding; both raise :class:`DatasetNotFoundError` whose message says what was
missing, where it looked and which layout is expected.

Sources
-------
``esc50``
    ESC-50: 2000 5-s clips, 50 classes, 5 folds; ``"test"`` = fold ``test_fold``.
``speech-commands``
    Speech Commands v0.02: 1-s words; splits from ``validation_list.txt`` /
    ``testing_list.txt``.
``urbansound8k``
    UrbanSound8K: 8732 clips of <= 4 s, 10 classes, 10 folds; ``"test"`` = ``test_fold``.
``vggsound``
    VGG-Sound: 10-s YouTube clips, 309 classes (310 in older CSVs); clips whose file was
    never downloaded are skipped with a warning.
``epic-sounds``
    EPIC-SOUNDS: 44 classes of sound events annotated in the untrimmed EPIC-KITCHENS-100
    audio; each annotated segment is cut out of the per-video file.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from fedssl.datasets.audio_base import AudioArrays, fit_length, read_audio
from fedssl.datasets.base import DatasetNotFoundError

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")

ESC50_LAYOUT = (
    "<root>/meta/esc50.csv (columns filename, fold, target, category, esc10, src_file, take) "
    "and <root>/audio/<filename> for every row (<root> is the extracted ESC-50-master folder)"
)
SPEECH_COMMANDS_LAYOUT = (
    "<root>/<word>/<speaker>_nohash_<n>.wav (one folder per word; _background_noise_/ is "
    "ignored), <root>/validation_list.txt and <root>/testing_list.txt (one <word>/<file>.wav "
    "per line); <root> is the extracted speech_commands_v0.02 archive"
)
URBANSOUND8K_LAYOUT = (
    "<root>/metadata/UrbanSound8K.csv (columns slice_file_name, fsID, start, end, salience, "
    "fold, classID, class) and <root>/audio/fold<k>/<slice_file_name> for k = 1..10 "
    "(<root> is the extracted UrbanSound8K folder)"
)
VGGSOUND_LAYOUT = (
    "<root>/vggsound.csv (the official CSV: no header, columns youtube_id, start_seconds, "
    "label, split with split 'train' or 'test') and <root>/audio/<youtube_id>_<start_seconds "
    "zero-padded to 6 digits>.wav or .flac (<youtube_id>_<start_seconds>.wav/.flac is also "
    "accepted), holding the 10-s clip that starts at start_seconds; rows without a file are "
    "skipped"
)
EPIC_SOUNDS_LAYOUT = (
    "<root>/EPIC_Sounds_train.csv and <root>/EPIC_Sounds_validation.csv (columns "
    "annotation_id, participant_id, video_id, start_timestamp, stop_timestamp, start_sample, "
    "stop_sample, description, class, class_id) and <root>/audio/<video_id>.wav or .flac: the "
    "untrimmed 24 kHz audio of each video, exported one file per video from the official "
    "EPIC-KITCHENS-100 audio HDF5 (one dataset per video id)"
)

ESC50_NUM_CLASSES = 50
ESC50_FOLDS = 5
URBANSOUND8K_NUM_CLASSES = 10
URBANSOUND8K_FOLDS = 10
EPIC_SOUNDS_NUM_CLASSES = 44
# Sample rate of the official EPIC-SOUNDS audio; start_sample / stop_sample count at it.
EPIC_SOUNDS_RATE = 24000


# ----------------------------------------------------------------------------- helpers


def _root_dir(name: str, root: str | Path, layout: str) -> Path:
    if not str(root):
        raise DatasetNotFoundError(
            f"dataset {name!r} needs root (got an empty string); expected layout: {layout}"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"dataset {name!r}: root={str(root)!r} is not a directory (looked at "
            f"{path.resolve()}); expected layout: {layout}"
        )
    return path


def _require_dir(name: str, path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"dataset {name!r}: folder {path} is missing; expected layout: {layout}"
        )
    return path


def _read_table(
    name: str,
    path: Path,
    columns: Sequence[str],
    layout: str,
    *,
    headerless: bool = False,
) -> pd.DataFrame:
    """Read a CSV as strings (no NaN guessing: a YouTube id may well be "nan")."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dataset {name!r}: metadata file {path} is missing; expected layout: {layout}"
        )
    try:
        table = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            header=None if headerless else "infer",
            names=list(columns) if headerless else None,
            # Without this, rows with one field too many silently shift into the index.
            index_col=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"dataset {name!r}: cannot parse {path}: {err}") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {name!r}: {path} lacks columns {missing} (has {list(table.columns)}); "
            f"expected layout: {layout}"
        )
    return table


def _int_column(
    name: str, table: pd.DataFrame, column: str, path: Path, valid: range | None = None
) -> np.ndarray:
    try:
        values = pd.to_numeric(table[column].str.strip(), errors="raise")
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"dataset {name!r}: column {column!r} of {path} is not numeric: {err}"
        ) from err
    out = np.asarray(values, dtype=np.float64)
    if not np.all(out == np.round(out)):
        raise ValueError(f"dataset {name!r}: column {column!r} of {path} has non-integer values")
    out = out.astype(np.int64)
    if valid is not None and out.size and (out.min() < valid.start or out.max() >= valid.stop):
        raise ValueError(
            f"dataset {name!r}: column {column!r} of {path} must lie in "
            f"[{valid.start}, {valid.stop - 1}]; got range [{out.min()}, {out.max()}]"
        )
    return out


def _check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"dataset {name!r}: split must be one of {allowed}; got {split!r}")


def _check_fold(name: str, test_fold: int, folds: int) -> None:
    if not 1 <= test_fold <= folds:
        raise ValueError(f"dataset {name!r}: test_fold must be in 1..{folds}; got {test_fold}")


def _num_samples(sample_rate: int, duration: float) -> int:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0 Hz; got {sample_rate}")
    num = round(duration * sample_rate)
    if num < 1:
        raise ValueError(
            f"duration * sample_rate must give at least one sample; got duration={duration} s "
            f"at {sample_rate} Hz"
        )
    return num


def _class_names(ids: np.ndarray, names: pd.Series, num_classes: int) -> tuple[str, ...]:
    """Names by class id; an id absent from the table is named by its number."""
    by_id: dict[int, str] = {}
    for i, label in zip(ids.tolist(), names.tolist(), strict=True):
        by_id.setdefault(int(i), str(label).strip())
    return tuple(by_id.get(i, str(i)) for i in range(num_classes))


def balanced_prefix(labels: np.ndarray, max_clips: int) -> np.ndarray:
    """Positions of the first ``max_clips`` items in class-interleaved order, sorted.

    The order takes the first item of every class (in dataset order), then the second of
    every class, and so on, so that a small ``max_clips`` still covers every class. The
    selection for ``k`` clips is contained in the one for ``k + 1``. ``max_clips <= 0`` or
    ``>= len(labels)`` keeps everything.
    """
    if max_clips < 0:
        raise ValueError(f"max_clips must be >= 0 (0 = all); got {max_clips}")
    n = len(labels)
    if max_clips == 0 or max_clips >= n:
        return np.arange(n, dtype=np.int64)
    rank = pd.Series(labels).groupby(labels).cumcount().to_numpy()
    # lexsort sorts by its last key first: rank within class, then position.
    order = np.lexsort((np.arange(n), rank))
    return np.sort(order[:max_clips]).astype(np.int64)


def _require_files(name: str, paths: Sequence[Path], source: str, layout: str) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {name!r}: {len(missing)} of {len(paths)} audio files listed in {source} "
            f"are missing, e.g. {missing[:3]}; expected layout: {layout}"
        )


def _decode(
    segments: Sequence[tuple[Path, int, int | None]],
    *,
    sample_rate: int,
    num_samples: int,
    mode: str = "start",
) -> np.ndarray:
    """Decode ``(path, start, stop)`` segments into one preallocated ``float32 [N, L]``."""
    # Filled in place: a list of clips plus np.stack would need twice the memory.
    out = np.zeros((len(segments), num_samples), dtype=np.float32)
    for i, (path, start, stop) in enumerate(segments):
        clip = read_audio(path, sample_rate=sample_rate, start=start, stop=stop)
        out[i] = fit_length(clip, num_samples, mode=mode)
    return out


def _dense_ids(keys: Sequence[str]) -> np.ndarray:
    """Map strings to ``0..G-1`` by sorted order."""
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.asarray([index[k] for k in keys], dtype=np.int64)


# ----------------------------------------------------------------------------- ESC-50


def _esc50_table(root: str | Path) -> tuple[Path, pd.DataFrame]:
    path = _root_dir("esc50", root, ESC50_LAYOUT)
    csv = path / "meta" / "esc50.csv"
    table = _read_table("esc50", csv, ("filename", "fold", "target", "category"), ESC50_LAYOUT)
    _require_dir("esc50", path / "audio", ESC50_LAYOUT)
    table["fold"] = _int_column("esc50", table, "fold", csv, range(1, ESC50_FOLDS + 1))
    table["target"] = _int_column("esc50", table, "target", csv, range(ESC50_NUM_CLASSES))
    return path, table


def check_esc50(root: str | Path) -> None:
    """Check the ESC-50 layout and that every listed file exists (no decoding)."""
    path, table = _esc50_table(root)
    files = [path / "audio" / f for f in table["filename"]]
    _require_files("esc50", files, str(path / "meta" / "esc50.csv"), ESC50_LAYOUT)


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
    _check_split("esc50", split, ("train", "test"))
    _check_fold("esc50", test_fold, ESC50_FOLDS)
    num_samples = _num_samples(sample_rate, duration)
    path, table = _esc50_table(root)
    class_names = _class_names(table["target"].to_numpy(), table["category"], ESC50_NUM_CLASSES)
    folds = table["fold"].to_numpy()
    rows = table[(folds == test_fold) if split == "test" else (folds != test_fold)]
    rows = rows.iloc[balanced_prefix(rows["target"].to_numpy(), max_clips)]
    files = [path / "audio" / f for f in rows["filename"]]
    _require_files("esc50", files, str(path / "meta" / "esc50.csv"), ESC50_LAYOUT)
    return AudioArrays(
        waveforms=_decode(
            [(f, 0, None) for f in files], sample_rate=sample_rate, num_samples=num_samples
        ),
        labels=rows["target"].to_numpy(dtype=np.int64),
        num_classes=ESC50_NUM_CLASSES,
        sample_rate=sample_rate,
        name=f"esc50/{split}",
        groups=rows["fold"].to_numpy(dtype=np.int64),
        class_names=class_names,
    )


# ----------------------------------------------------------------------------- Speech Commands

_SC_LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}


def _sc_words(root: Path) -> list[str]:
    # Folders starting with "_" hold long noise recordings (_background_noise_), not words.
    return sorted(
        e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(("_", "."))
    )


def _sc_read_list(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [ln.strip().replace("\\", "/") for ln in lines if ln.strip()]


def _sc_layout(root: str | Path) -> tuple[Path, list[str], dict[str, list[str]]]:
    path = _root_dir("speech-commands", root, SPEECH_COMMANDS_LAYOUT)
    lists: dict[str, list[str]] = {}
    for split, filename in _SC_LISTS.items():
        list_path = path / filename
        if not list_path.is_file():
            raise DatasetNotFoundError(
                f"dataset 'speech-commands': split list {list_path} is missing; expected "
                f"layout: {SPEECH_COMMANDS_LAYOUT}"
            )
        lists[split] = _sc_read_list(list_path)
    words = _sc_words(path)
    if not words:
        raise DatasetNotFoundError(
            f"dataset 'speech-commands': no word folders in {path}; expected layout: "
            f"{SPEECH_COMMANDS_LAYOUT}"
        )
    return path, words, lists


def _sc_files(root: Path, words: Sequence[str]) -> list[str]:
    """Sorted ``word/file.wav`` paths of the given word folders."""
    return sorted(
        f"{word}/{e.name}"
        for word in words
        for e in os.scandir(root / word)
        if e.is_file() and e.name.lower().endswith(".wav")
    )


def _sc_check_lists(
    root: Path, lists: dict[str, list[str]], present: set[str], words: Sequence[str]
) -> None:
    wanted = set(words)
    for split, entries in lists.items():
        missing = [e for e in entries if e.split("/", 1)[0] in wanted and e not in present]
        if missing:
            raise DatasetNotFoundError(
                f"dataset 'speech-commands': {len(missing)} files listed in "
                f"{root / _SC_LISTS[split]} are missing under {root}, e.g. {missing[:3]}; "
                f"expected layout: {SPEECH_COMMANDS_LAYOUT}"
            )


def _sc_classes(classes: str, available: list[str], root: Path) -> list[str]:
    if classes.strip() == "all":
        return available
    words = [w.strip() for w in classes.split(",") if w.strip()]
    if not words:
        raise ValueError(f"classes must be 'all' or comma-separated words; got {classes!r}")
    if len(set(words)) != len(words):
        raise ValueError(f"classes lists a word twice: {classes!r}")
    unknown = [w for w in words if w not in available]
    if unknown:
        raise DatasetNotFoundError(
            f"dataset 'speech-commands': no folder for words {unknown} in {root} (found "
            f"{available}); expected layout: {SPEECH_COMMANDS_LAYOUT}"
        )
    return words


def check_speech_commands(root: str | Path) -> None:
    """Check the Speech Commands layout and that every listed file exists (no decoding)."""
    path, words, lists = _sc_layout(root)
    files = _sc_files(path, words)
    if not files:
        raise DatasetNotFoundError(
            f"dataset 'speech-commands': no .wav files in the word folders of {path}; "
            f"expected layout: {SPEECH_COMMANDS_LAYOUT}"
        )
    _sc_check_lists(path, lists, set(files), words)


def load_speech_commands(
    root: str | Path,
    split: str,
    *,
    sample_rate: int = 16000,
    duration: float = 1.0,
    max_clips: int = 0,
    classes: str = "all",
) -> AudioArrays:
    """Load Speech Commands ``split`` ("train", "validation" or "test").

    ``"validation"`` / ``"test"`` are the files in ``validation_list.txt`` /
    ``testing_list.txt``; ``"train"`` is every other file of the word folders.
    ``classes="all"`` uses every word folder (sorted, so label = position; 35 words in
    v0.02); otherwise a comma-separated word list such as ``"yes,no,up"`` gives the classes
    in that order and files of other words are dropped. ``groups`` are the speakers (the
    hash before ``_nohash_``) numbered ``0..G-1`` by sorted id within the returned split.
    Clips are kept from their start (they are at most 1 s).
    """
    _check_split("speech-commands", split, ("train", "validation", "test"))
    num_samples = _num_samples(sample_rate, duration)
    path, available, lists = _sc_layout(root)
    words = _sc_classes(classes, available, path)
    present = _sc_files(path, words)
    _sc_check_lists(path, lists, set(present), words)
    if split == "train":
        held_out = set(lists["validation"]) | set(lists["test"])
        chosen = [f for f in present if f not in held_out]
    else:
        wanted = set(words)
        chosen = sorted({e for e in lists[split] if e.split("/", 1)[0] in wanted})
    index = {w: i for i, w in enumerate(words)}
    labels = np.asarray([index[f.split("/", 1)[0]] for f in chosen], dtype=np.int64)
    keep = balanced_prefix(labels, max_clips)
    chosen = [chosen[i] for i in keep]
    speakers = [f.split("/", 1)[1].split("_nohash_", 1)[0] for f in chosen]
    return AudioArrays(
        waveforms=_decode(
            [(path / f, 0, None) for f in chosen],
            sample_rate=sample_rate,
            num_samples=num_samples,
        ),
        labels=labels[keep],
        num_classes=len(words),
        sample_rate=sample_rate,
        name=f"speech-commands/{split}",
        groups=_dense_ids(speakers),
        class_names=tuple(words),
    )


# ----------------------------------------------------------------------------- UrbanSound8K


def _us8k_table(root: str | Path) -> tuple[Path, pd.DataFrame]:
    path = _root_dir("urbansound8k", root, URBANSOUND8K_LAYOUT)
    csv = path / "metadata" / "UrbanSound8K.csv"
    table = _read_table(
        "urbansound8k", csv, ("slice_file_name", "fold", "classID", "class"), URBANSOUND8K_LAYOUT
    )
    _require_dir("urbansound8k", path / "audio", URBANSOUND8K_LAYOUT)
    table["fold"] = _int_column(
        "urbansound8k", table, "fold", csv, range(1, URBANSOUND8K_FOLDS + 1)
    )
    table["classID"] = _int_column(
        "urbansound8k", table, "classID", csv, range(URBANSOUND8K_NUM_CLASSES)
    )
    return path, table


def _us8k_files(path: Path, rows: pd.DataFrame) -> list[Path]:
    return [
        path / "audio" / f"fold{k}" / f
        for k, f in zip(rows["fold"].tolist(), rows["slice_file_name"].tolist(), strict=True)
    ]


def check_urbansound8k(root: str | Path) -> None:
    """Check the UrbanSound8K layout and that every listed file exists (no decoding)."""
    path, table = _us8k_table(root)
    source = str(path / "metadata" / "UrbanSound8K.csv")
    _require_files("urbansound8k", _us8k_files(path, table), source, URBANSOUND8K_LAYOUT)


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
    _check_split("urbansound8k", split, ("train", "test"))
    _check_fold("urbansound8k", test_fold, URBANSOUND8K_FOLDS)
    num_samples = _num_samples(sample_rate, duration)
    path, table = _us8k_table(root)
    class_names = _class_names(
        table["classID"].to_numpy(), table["class"], URBANSOUND8K_NUM_CLASSES
    )
    folds = table["fold"].to_numpy()
    rows = table[(folds == test_fold) if split == "test" else (folds != test_fold)]
    rows = rows.iloc[balanced_prefix(rows["classID"].to_numpy(), max_clips)]
    files = _us8k_files(path, rows)
    source = str(path / "metadata" / "UrbanSound8K.csv")
    _require_files("urbansound8k", files, source, URBANSOUND8K_LAYOUT)
    return AudioArrays(
        waveforms=_decode(
            [(f, 0, None) for f in files], sample_rate=sample_rate, num_samples=num_samples
        ),
        labels=rows["classID"].to_numpy(dtype=np.int64),
        num_classes=URBANSOUND8K_NUM_CLASSES,
        sample_rate=sample_rate,
        name=f"urbansound8k/{split}",
        groups=rows["fold"].to_numpy(dtype=np.int64),
        class_names=class_names,
    )


# ----------------------------------------------------------------------------- VGG-Sound

_VGG_COLUMNS = ("youtube_id", "start_seconds", "label", "split")


def _vgg_table(root: str | Path) -> tuple[Path, pd.DataFrame]:
    path = _root_dir("vggsound", root, VGGSOUND_LAYOUT)
    csv = path / "vggsound.csv"
    table = _read_table("vggsound", csv, _VGG_COLUMNS, VGGSOUND_LAYOUT, headerless=True)
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
    table["start_int"] = _int_column("vggsound", table, "start_seconds", csv)
    _require_dir("vggsound", path / "audio", VGGSOUND_LAYOUT)
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
    """Check the VGG-Sound CSV and that at least one listed clip has a file (no decoding)."""
    path, table = _vgg_table(root)
    if not any(f is not None for f in _vgg_locate(path, table)):
        raise DatasetNotFoundError(
            f"dataset 'vggsound': none of the {len(table)} clips of {path / 'vggsound.csv'} "
            f"has an audio file in {path / 'audio'}; expected layout: {VGGSOUND_LAYOUT}"
        )


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
    _check_split("vggsound", split, ("train", "test"))
    num_samples = _num_samples(sample_rate, duration)
    path, table = _vgg_table(root)
    class_names = tuple(sorted(set(table["label"])))
    index = {label: i for i, label in enumerate(class_names)}
    rows = table[table["split"] == split]
    files = _vgg_locate(path, rows)
    present = np.asarray([f is not None for f in files], dtype=bool)
    if not present.any():
        raise DatasetNotFoundError(
            f"dataset 'vggsound': none of the {len(rows)} {split!r} clips of "
            f"{path / 'vggsound.csv'} has an audio file in {path / 'audio'}; expected "
            f"layout: {VGGSOUND_LAYOUT}"
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
    kept = [f for f in files if f is not None]
    labels = np.asarray([index[x] for x in rows["label"][present]], dtype=np.int64)
    keep = balanced_prefix(labels, max_clips)
    return AudioArrays(
        waveforms=_decode(
            [(kept[i], 0, None) for i in keep], sample_rate=sample_rate, num_samples=num_samples
        ),
        labels=labels[keep],
        num_classes=len(class_names),
        sample_rate=sample_rate,
        name=f"vggsound/{split}",
        class_names=class_names,
    )


# ----------------------------------------------------------------------------- EPIC-SOUNDS

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
    csv = path / _EPIC_FILES[split]
    table = _read_table("epic-sounds", csv, _EPIC_COLUMNS, EPIC_SOUNDS_LAYOUT)
    for column in ("participant_id", "video_id"):
        table[column] = table[column].str.strip()
    table["class_id"] = _int_column(
        "epic-sounds", table, "class_id", csv, range(EPIC_SOUNDS_NUM_CLASSES)
    )
    table["start_sample"] = _int_column("epic-sounds", table, "start_sample", csv)
    table["stop_sample"] = _int_column("epic-sounds", table, "stop_sample", csv)
    return table


def _epic_videos(path: Path, video_ids: Sequence[str], source: str) -> dict[str, Path]:
    audio = _require_dir("epic-sounds", path / "audio", EPIC_SOUNDS_LAYOUT)
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
        raise DatasetNotFoundError(
            f"dataset 'epic-sounds': no audio file for {len(missing)} of {total} videos "
            f"annotated in {source} (looked for {audio}/<video_id>.wav or .flac, e.g. "
            f"{missing[:3]}); expected layout: {EPIC_SOUNDS_LAYOUT}"
        )
    return found


def _file_rate(path: Path) -> int:
    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.SoundFileError, RuntimeError) as err:
        raise ValueError(f"cannot read the header of audio file {path}: {err}") from err


def _participant_ids(participants: Sequence[str]) -> np.ndarray:
    """``"P01"`` -> 1; falls back to dense ids if any id carries no number."""
    numbers = [re.search(r"(\d+)", p) for p in participants]
    if all(numbers):
        return np.asarray([int(m.group(1)) for m in numbers if m], dtype=np.int64)
    return _dense_ids(participants)


def check_epic_sounds(root: str | Path) -> None:
    """Check both annotation CSVs and that every annotated video has an audio file."""
    path = _root_dir("epic-sounds", root, EPIC_SOUNDS_LAYOUT)
    for split, filename in _EPIC_FILES.items():
        table = _epic_table(path, split)
        _epic_videos(path, table["video_id"].tolist(), str(path / filename))


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
    _check_split("epic-sounds", split, ("train", "validation", "test"))
    split = "validation" if split == "test" else split
    num_samples = _num_samples(sample_rate, duration)
    path = _root_dir("epic-sounds", root, EPIC_SOUNDS_LAYOUT)
    table = _epic_table(path, split)
    # From the whole split, so that max_clips does not lose names.
    class_names = _class_names(
        table["class_id"].to_numpy(), table["class"], EPIC_SOUNDS_NUM_CLASSES
    )
    table = table.iloc[balanced_prefix(table["class_id"].to_numpy(), max_clips)]
    videos = _epic_videos(path, table["video_id"].tolist(), str(path / _EPIC_FILES[split]))
    # One header read per video: start/stop count at 24 kHz whatever rate a file was saved at.
    rates = {vid: _file_rate(f) for vid, f in videos.items()}
    segments: list[tuple[Path, int, int | None]] = []
    for vid, start, stop in zip(
        table["video_id"].tolist(),
        table["start_sample"].tolist(),
        table["stop_sample"].tolist(),
        strict=True,
    ):
        scale = rates[vid] / EPIC_SOUNDS_RATE
        segments.append((videos[vid], round(start * scale), round(stop * scale)))
    return AudioArrays(
        waveforms=_decode(
            segments, sample_rate=sample_rate, num_samples=num_samples, mode="centre"
        ),
        labels=table["class_id"].to_numpy(dtype=np.int64),
        num_classes=EPIC_SOUNDS_NUM_CLASSES,
        sample_rate=sample_rate,
        name=f"epic-sounds/{split}",
        groups=_participant_ids(table["participant_id"].tolist()),
        class_names=class_names,
    )


# ----------------------------------------------------------------------------- registry

AUDIO_SOURCES: dict[str, Callable[..., AudioArrays]] = {
    "esc50": load_esc50,
    "speech-commands": load_speech_commands,
    "urbansound8k": load_urbansound8k,
    "vggsound": load_vggsound,
    "epic-sounds": load_epic_sounds,
}
AUDIO_CHECKS: dict[str, Callable[[str | Path], None]] = {
    "esc50": check_esc50,
    "speech-commands": check_speech_commands,
    "urbansound8k": check_urbansound8k,
    "vggsound": check_vggsound,
    "epic-sounds": check_epic_sounds,
}
