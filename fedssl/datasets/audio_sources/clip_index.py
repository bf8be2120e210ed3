"""What every clip source shares: layout checks with informative errors, and a clip index.

A source reads its metadata through a :class:`SourceLayout` (the dataset's name and
expected on-disk layout, quoted by every error) and describes the clips of a split as a
:class:`ClipIndex`: one row per clip with its file, label id, group key and optional
``[start, stop)`` frame range. The index then does what all sources do alike: keep a
class-balanced prefix (:meth:`ClipIndex.balanced`), check the files exist
(:meth:`ClipIndex.require_files`) and decode the clips into :class:`AudioArrays`
(:meth:`ClipIndex.decode`), skipping any clip whose file cannot be decoded.

Corrupt files: the cheap check run before Ray starts (:meth:`SourceLayout.check_audio_files`)
reads every file's header when a dataset has at most :data:`HEADER_CHECK_MAX_FILES` files,
and only their sizes (an empty file) above that; it warns once, naming the bad files (up to
:data:`BAD_FILES_NAMED`) and their count, and raises only when no file is usable. Decoding
skips a clip whose file fails (empty, garbage, truncated), warns once per split naming the
files and the reasons, and lists the files in :attr:`AudioArrays.skipped`.
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedssl.datasets.audio_base import AudioArrays, audio_file_problem, fit_length, read_audio
from fedssl.datasets.base import BAD_FILES_NAMED as _BAD_FILES_NAMED
from fedssl.datasets.base import CorruptDataError, DatasetLayout
from fedssl.datasets.base import describe_bad_files as _describe_bad_files

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")

#: The pre-Ray check (:meth:`SourceLayout.check_audio_files`) reads the header of every file
#: of a dataset with at most this many files (ESC-50's 2000 are read in about a second);
#: above it (UrbanSound8K, Speech Commands, VGG-Sound) only file sizes are checked, and the
#: loader finds the rest when it decodes.
HEADER_CHECK_MAX_FILES = 2500
#: How many bad files a warning or error names (all are counted); the shared default of
#: :mod:`fedssl.datasets.base`.
BAD_FILES_NAMED = _BAD_FILES_NAMED

# Maps the group keys of the kept clips (in order) to their int64 group ids.
GroupIds = Callable[[list[Any]], np.ndarray]


@dataclass(frozen=True)
class SourceLayout(DatasetLayout):
    """:class:`~fedssl.datasets.base.DatasetLayout` (errors quoting the layout) plus the
    metadata tables and audio-file checks of the clip sources."""

    def read_table(
        self, path: Path, columns: Sequence[str], *, headerless: bool = False
    ) -> pd.DataFrame:
        """Read a CSV as strings (no NaN guessing: a YouTube id may well be "nan").

        ``columns`` must all be present; with ``headerless`` they name the file's columns.
        """
        if not path.is_file():
            raise self.not_found(f"metadata file {path} is missing")
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
            raise ValueError(f"dataset {self.name!r}: cannot parse {path}: {err}") from err
        table.columns = [str(c).strip() for c in table.columns]
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise self.not_found(f"{path} lacks columns {missing} (has {list(table.columns)})")
        return table

    def int_column(
        self, table: pd.DataFrame, column: str, path: Path, valid: range | None = None
    ) -> np.ndarray:
        """Column ``column`` of ``table`` (read from ``path``) as ``int64``, within ``valid``."""
        try:
            values = pd.to_numeric(table[column].str.strip(), errors="raise")
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"dataset {self.name!r}: column {column!r} of {path} is not numeric: {err}"
            ) from err
        out = np.asarray(values, dtype=np.float64)
        if not np.all(out == np.round(out)):
            raise ValueError(
                f"dataset {self.name!r}: column {column!r} of {path} has non-integer values"
            )
        out = out.astype(np.int64)
        if valid is not None and out.size and (out.min() < valid.start or out.max() >= valid.stop):
            raise ValueError(
                f"dataset {self.name!r}: column {column!r} of {path} must lie in "
                f"[{valid.start}, {valid.stop - 1}]; got range [{out.min()}, {out.max()}]"
            )
        return out

    def check_split(self, split: str, allowed: tuple[str, ...]) -> None:
        """Raise ``ValueError`` unless ``split`` is one of ``allowed``."""
        if split not in allowed:
            raise ValueError(
                f"dataset {self.name!r}: split must be one of {allowed}; got {split!r}"
            )

    def check_fold(self, test_fold: int, folds: int) -> None:
        """Raise ``ValueError`` unless ``1 <= test_fold <= folds``."""
        if not 1 <= test_fold <= folds:
            raise ValueError(
                f"dataset {self.name!r}: test_fold must be in 1..{folds}; got {test_fold}"
            )

    def require_files(self, paths: Sequence[Path], listed_in: str) -> None:
        """Raise unless every one of ``paths`` (listed in the file ``listed_in``) exists."""
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise self.not_found(
                f"{len(missing)} of {len(paths)} audio files listed in {listed_in} are "
                f"missing, e.g. {missing[:3]}"
            )

    def check_audio_files(self, paths: Sequence[Path], where: str) -> None:
        """The cheap pre-Ray check of a dataset's audio files (``where``: how they were
        found, e.g. ``"listed in <csv>"``), reporting every bad file at once.

        A missing file raises :class:`DatasetNotFoundError` (as :meth:`require_files`).
        With at most :data:`HEADER_CHECK_MAX_FILES` distinct files every header is read
        (:func:`~fedssl.datasets.audio_base.audio_file_problem`: empty, garbage, a WAV
        claiming more data than it holds, no frames); above that only sizes are (an empty
        file). Bad files are not fatal, since the loader skips them: one warning names them
        (up to :data:`BAD_FILES_NAMED`) with their reasons and count. Only when none of the
        files is usable does it raise :class:`CorruptDataError`.
        """
        files = list(dict.fromkeys(paths))
        if not files:
            return
        headers = len(files) <= HEADER_CHECK_MAX_FILES
        missing: list[str] = []
        problems: dict[str, str] = {}
        for path in files:
            try:
                st = path.stat()
            except OSError:
                missing.append(str(path))
                continue
            if not stat.S_ISREG(st.st_mode):
                missing.append(str(path))
            elif st.st_size == 0:
                problems[str(path)] = "empty file (0 bytes)"
            elif headers and (problem := audio_file_problem(path)) is not None:
                problems[str(path)] = problem
        if missing:
            raise self.not_found(
                f"{len(missing)} of {len(files)} audio files {where} are missing, "
                f"e.g. {missing[:3]}"
            )
        if not problems:
            return
        if headers:
            scope = "every header was read"
        else:
            scope = (
                f"only sizes were checked, as there are more than {HEADER_CHECK_MAX_FILES} "
                "files; the loader skips any other bad file it meets"
            )
        if len(problems) == len(files):
            raise CorruptDataError(
                f"dataset {self.name!r}: none of the {len(files)} audio files {where} is "
                f"usable: {describe_bad_files(problems)}"
            )
        warnings.warn(
            f"dataset {self.name!r}: {len(problems)} of {len(files)} audio files {where} cannot "
            f"be used and will be skipped when loaded: {describe_bad_files(problems)} ({scope})",
            stacklevel=2,
        )


def describe_bad_files(problems: Mapping[str, str], limit: int | None = None) -> str:
    """:func:`fedssl.datasets.base.describe_bad_files` capped at this module's
    :data:`BAD_FILES_NAMED` (a module global, so that tests can lower it)."""
    return _describe_bad_files(problems, BAD_FILES_NAMED if limit is None else limit)


def clip_samples(sample_rate: int, duration: float) -> int:
    """Samples per clip: ``round(duration * sample_rate)``, at least one."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0 Hz; got {sample_rate}")
    num = round(duration * sample_rate)
    if num < 1:
        raise ValueError(
            f"duration * sample_rate must give at least one sample; got duration={duration} s "
            f"at {sample_rate} Hz"
        )
    return num


def class_names_by_id(ids: np.ndarray, names: pd.Series, num_classes: int) -> tuple[str, ...]:
    """Names by class id (the first name given to it); an id absent is named by its number."""
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


def dense_ids(keys: Sequence[Any]) -> np.ndarray:
    """Map keys to ``0..G-1`` by sorted order."""
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.asarray([index[k] for k in keys], dtype=np.int64)


def int_ids(keys: Sequence[Any]) -> np.ndarray:
    """Integer keys (fold numbers, say) as they are."""
    return np.asarray(keys, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class ClipIndex:
    """The clips of a dataset split, in dataset order, before any audio is decoded.

    Attributes
    ----------
    source : SourceLayout
        The dataset; its name prefixes the split in :attr:`AudioArrays.name` and its layout
        ends the errors.
    clips : pd.DataFrame
        One row per clip: ``path`` (:class:`Path` of the audio file), ``label`` (class id
        in ``[0, num_classes)``), optionally ``group`` (a key: speaker, fold, recording,
        participant) and optionally ``start`` / ``stop`` (the frame range ``[start, stop)``
        of the clip in the file's own sample rate; the whole file when absent).
    num_classes : int
        Number of classes of the dataset.
    class_names : tuple of str
        Names by class id (empty: unnamed).
    listed_in : str
        Where the clips are listed (a metadata file), for the errors about missing files.
    group_ids : callable or None
        Maps the ``group`` keys of the kept clips to ``int64`` ids (``None``: no groups).
        Applied after any selection, so that ids such as :func:`dense_ids` are numbered
        within the clips returned.
    """

    source: SourceLayout
    clips: pd.DataFrame
    num_classes: int
    class_names: tuple[str, ...] = ()
    listed_in: str = ""
    group_ids: GroupIds | None = None

    @classmethod
    def of(
        cls,
        source: SourceLayout,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        *,
        num_classes: int,
        class_names: tuple[str, ...] = (),
        listed_in: str = "",
        groups: Sequence[Any] | np.ndarray | None = None,
        group_ids: GroupIds = int_ids,
        starts: Sequence[int] | None = None,
        stops: Sequence[int] | None = None,
    ) -> ClipIndex:
        """Index the clips at ``paths``: whole files, or ``[start, stop)`` frame ranges when
        ``starts`` and ``stops`` are given; ``group_ids`` maps ``groups`` (if any) to ids."""
        if (starts is None) != (stops is None):
            raise ValueError("give both starts and stops, or neither")
        columns: dict[str, Any] = {
            "path": list(paths),
            "label": np.asarray(labels, dtype=np.int64),
        }
        if groups is not None:
            columns["group"] = list(groups)
        if starts is not None and stops is not None:
            columns["start"] = np.asarray(starts, dtype=np.int64)
            columns["stop"] = np.asarray(stops, dtype=np.int64)
        return cls(
            source=source,
            clips=pd.DataFrame(columns),
            num_classes=num_classes,
            class_names=class_names,
            listed_in=listed_in,
            group_ids=None if groups is None else group_ids,
        )

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def paths(self) -> list[Path]:
        """The audio file of every clip."""
        return self.clips["path"].tolist()

    @property
    def labels(self) -> np.ndarray:
        """``int64 [N]`` class ids."""
        return self.clips["label"].to_numpy(dtype=np.int64)

    def take(self, positions: np.ndarray) -> ClipIndex:
        """The clips at integer ``positions`` or where a boolean mask is true, in that order."""
        return replace(self, clips=self.clips.iloc[positions])

    def balanced(self, max_clips: int) -> ClipIndex:
        """The first ``max_clips`` clips in class-interleaved order (see
        :func:`balanced_prefix`), kept in dataset order; ``0`` keeps all."""
        return self.take(balanced_prefix(self.labels, max_clips))

    def require_files(self) -> None:
        """Raise :class:`DatasetNotFoundError` unless every clip's file exists."""
        self.source.require_files(self.paths, self.listed_in)

    def check_files(self) -> None:
        """The pre-Ray check of every clip's file (:meth:`SourceLayout.check_audio_files`)."""
        self.source.check_audio_files(self.paths, f"listed in {self.listed_in}")

    def decode(
        self, split: str, *, sample_rate: int, num_samples: int, mode: str = "start"
    ) -> AudioArrays:
        """Decode every clip to mono ``float32`` at ``sample_rate``, fitted to ``num_samples``
        (:func:`fit_length` with ``mode``), as ``AudioArrays`` named ``"<source>/<split>"``.

        A clip whose file cannot be decoded (:class:`CorruptDataError` from
        :func:`read_audio`: empty, garbage, truncated) is left out, with its label and group;
        a file is tried once, however many clips it holds. One warning per call names the
        bad files (up to :data:`BAD_FILES_NAMED`) with their reasons and counts them, and the
        result lists them in :attr:`AudioArrays.skipped`. When no clip decodes, it raises
        :class:`CorruptDataError` instead.
        """
        name = f"{self.source.name}/{split}"
        n = len(self.clips)
        starts = self.clips["start"].tolist() if "start" in self.clips else [0] * n
        stops = self.clips["stop"].tolist() if "stop" in self.clips else [None] * n
        # Filled in place: a list of clips plus np.stack would need twice the memory. The
        # kept clips are packed to the front, so a skipped one costs no copy.
        waveforms = np.zeros((n, num_samples), dtype=np.float32)
        keep = np.zeros(n, dtype=bool)
        bad: dict[str, str] = {}
        kept = 0
        for i, (path, start, stop) in enumerate(zip(self.paths, starts, stops, strict=True)):
            if str(path) in bad:
                continue
            try:
                clip = read_audio(path, sample_rate=sample_rate, start=start, stop=stop)
            except CorruptDataError as err:
                bad[str(path)] = err.reason or str(err)
                continue
            waveforms[kept] = fit_length(clip, num_samples, mode=mode)
            keep[i] = True
            kept += 1
        clips = self.clips
        if bad:
            if kept == 0:
                raise CorruptDataError(
                    f"{name}: none of the {n} clips could be decoded; {len(bad)} audio files "
                    f"are unusable: {describe_bad_files(bad)}"
                )
            warnings.warn(
                f"{name}: skipped {n - kept} of {n} clips whose audio file cannot be decoded "
                f"({len(bad)} file{'' if len(bad) == 1 else 's'}, listed in AudioArrays.skipped): "
                f"{describe_bad_files(bad)}",
                stacklevel=3,
            )
            waveforms = waveforms[:kept]
            clips = clips[keep]
        groups = None
        if self.group_ids is not None:
            groups = self.group_ids(clips["group"].tolist())
        return AudioArrays(
            waveforms=waveforms,
            labels=clips["label"].to_numpy(dtype=np.int64),
            num_classes=self.num_classes,
            sample_rate=sample_rate,
            name=name,
            groups=groups,
            class_names=self.class_names,
            skipped=tuple(bad),
        )
