"""In-memory audio container and the decode / resample / crop helpers shared by audio sources.

Audio is decoded with ``soundfile`` (libsndfile: WAV, FLAC, OGG, ...) rather than
``torchaudio.load``, whose backend needs ``torchcodec``; resampling uses
``torchaudio.functional.resample`` (windowed-sinc, pure torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError, check_labels

FIT_MODES: tuple[str, ...] = ("start", "centre")


# eq=False: field-wise == / hash on numpy arrays is ambiguous; compare by identity instead.
@dataclass(frozen=True, eq=False)
class AudioArrays:
    """A labelled set of equal-length mono clips held in memory.

    Attributes
    ----------
    waveforms : np.ndarray
        ``float32`` array of shape ``[N, L]``: mono clips, values roughly in ``[-1, 1]``
        (not enforced: float files may exceed it).
    labels : np.ndarray
        ``int64`` array of shape ``[N]`` with values in ``[0, num_classes)``.
    num_classes : int
        Number of classes of the dataset (not only those present in this set).
    sample_rate : int
        Sample rate of ``waveforms`` in Hz (> 0).
    name : str
        Human-readable dataset name, e.g. ``"esc50/train"``.
    groups : np.ndarray or None
        Optional ``int64 [N]`` group id per clip (speaker, fold, recording, participant) so
        that splits can keep a group on one side.
    class_names : tuple of str
        Optional class names; when given, ``len(class_names) == num_classes``.
    skipped : tuple of str
        The audio files the loader skipped because they could not be decoded (empty,
        garbage, truncated; see :func:`audio_file_problem`), in the order met; their clips
        are not in the set. It describes the load that produced the split, so
        :meth:`subset` keeps it as it is: every partition of a split reports the split's
        skipped files.
    """

    waveforms: np.ndarray
    labels: np.ndarray
    num_classes: int
    sample_rate: int
    name: str
    groups: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.waveforms.dtype != np.float32 or self.waveforms.ndim != 2:
            raise ValueError(
                f"waveforms must be a float32 array of shape [N, L] (mono clips); got dtype "
                f"{self.waveforms.dtype} and shape {self.waveforms.shape}"
            )
        n = self.waveforms.shape[0]
        check_labels(self.labels, n, self.num_classes)
        # bool is an int subclass, and a float rate would break resampling to integer ratios.
        if not isinstance(self.sample_rate, int | np.integer) or isinstance(self.sample_rate, bool):
            raise ValueError(f"sample_rate must be an int (Hz); got {self.sample_rate!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0 Hz; got {self.sample_rate}")
        if self.groups is not None and (self.groups.dtype != np.int64 or self.groups.shape != (n,)):
            raise ValueError(
                f"groups must be None or an int64 array of shape [{n}]; got dtype "
                f"{self.groups.dtype} and shape {self.groups.shape}"
            )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names must be empty or have num_classes={self.num_classes} entries; "
                f"got {len(self.class_names)}"
            )
        if not isinstance(self.skipped, tuple) or not all(isinstance(f, str) for f in self.skipped):
            raise ValueError(f"skipped must be a tuple of file names; got {self.skipped!r}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_samples(self) -> int:
        """Length ``L`` of every clip, in samples."""
        return int(self.waveforms.shape[1])

    @property
    def duration(self) -> float:
        """Length of every clip in seconds (``L / sample_rate``)."""
        return self.num_samples / self.sample_rate

    def subset(self, indices: np.ndarray) -> AudioArrays:
        """Return the clips at ``indices`` (a copy), keeping all metadata (``skipped`` too) and
        slicing ``groups``.

        ``indices`` are integer positions or a boolean mask of length ``len(self)``.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            # flatnonzero of a short mask would silently select from the head only.
            if idx.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape ({len(self)},); got {idx.shape}")
            # A boolean mask cast to int64 would silently select rows 0 and 1.
            idx = np.flatnonzero(idx)
        else:
            idx = idx.astype(np.int64, copy=False)
        return AudioArrays(
            waveforms=self.waveforms[idx],
            labels=self.labels[idx],
            num_classes=self.num_classes,
            sample_rate=self.sample_rate,
            name=self.name,
            groups=None if self.groups is None else self.groups[idx],
            class_names=self.class_names,
            skipped=self.skipped,
        )


# A data chunk size that streaming writers leave in the header when they cannot seek back
# to fill it in: "until the end of the file", not a claim.
_WAV_UNKNOWN_SIZE = 0xFFFFFFFF


def _wav_data_problem(path: Path, size: int) -> str | None:
    """Whether a RIFF/WAVE header claims more audio data than the file holds.

    libsndfile trims such a file to what is there without complaint, so a truncated download
    would pass as a shorter clip. Only the chunk headers are read (a few seeks).
    """
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not RIFF/WAVE (FLAC, RF64, ...): libsndfile judges it
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                held = size - pos - 8
                if declared > held and declared != _WAV_UNKNOWN_SIZE:
                    return (
                        f"its WAV header claims {declared} bytes of audio data but only {held} "
                        "follow the header (truncated file?)"
                    )
                return None
            pos += 8 + declared + (declared & 1)  # chunks are padded to even sizes
    return None  # no data chunk: libsndfile reports it


def _sf_reason(err: Exception) -> str:
    """libsndfile's reason without soundfile's "Error opening '<path>': " prefix."""
    return str(getattr(err, "error_string", "") or err).strip()


def audio_file_problem(path: str | Path) -> str | None:
    """What makes the audio file at ``path`` unusable, from its header alone, or ``None``.

    Cheap: a ``stat``, libsndfile's header parse (``soundfile.info``) and, for WAV, a walk
    over the chunk headers; no audio is decoded. Finds an empty file, a file libsndfile
    cannot open (garbage, unknown format), a WAV whose header claims more data than the
    file holds, and a file with no audio frames. A missing file is ``"missing"``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return "missing"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        return f"not a readable audio file ({_sf_reason(err)})"
    if (problem := _wav_data_problem(path, size)) is not None:
        return problem
    if info.frames == 0:
        return "holds no audio frames"
    return None


def _read_frames(path: Path, start: int, stop: int | None) -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` of ``path`` as ``float32 [T, channels]``, and its rate;
    :class:`CorruptDataError` when the file cannot be decoded."""

    def corrupt(problem: str) -> CorruptDataError:
        return CorruptDataError(
            f"cannot decode audio file {path}: {problem}", path=str(path), reason=problem
        )

    size = path.stat().st_size
    if size == 0:
        raise corrupt("empty file (0 bytes)")
    if (problem := _wav_data_problem(path, size)) is not None:
        raise corrupt(problem)
    try:
        f = sf.SoundFile(path)
    except (sf.SoundFileError, RuntimeError) as err:
        raise corrupt(f"not a readable audio file ({_sf_reason(err)})") from err
    with f:
        file_rate, total = int(f.samplerate), f.frames
        if total == 0:
            raise corrupt("holds no audio frames")
        begin = min(start, total)
        end = total if stop is None else min(stop, total)
        try:
            f.seek(begin)
            data = f.read(end - begin, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as err:
            raise corrupt(f"decoding failed ({_sf_reason(err)})") from err
    if data.shape[0] < end - begin:
        raise corrupt(
            f"its header announces {total} frames but decoding stopped at frame "
            f"{begin + data.shape[0]} (truncated file?)"
        )
    return data, file_rate


def read_audio(
    path: str | Path, *, sample_rate: int, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Decode frames ``[start, stop)`` of an audio file to mono ``float32`` at ``sample_rate``.

    Parameters
    ----------
    path : str or Path
        Any file libsndfile reads (WAV, FLAC, OGG, ...; any bit depth, any channel count).
    sample_rate : int
        Target rate in Hz; the segment is resampled with ``torchaudio.functional.resample``
        when the file's rate differs.
    start, stop : int
        Frame range in the file's *own* sample rate (``stop=None``: to the end). Only this
        range is decoded (libsndfile seeks), so a short segment of a long file is cheap. A
        range past the end of the file is truncated, possibly to nothing.

    Returns
    -------
    np.ndarray
        ``float32 [T]``; channels are averaged, integer PCM is scaled to ``[-1, 1)``.

    Raises
    ------
    DatasetNotFoundError
        If ``path`` is not an existing file.
    CorruptDataError
        If the file cannot be decoded: it is empty or garbage, its WAV header claims more
        data than the file holds, or fewer frames decode than its header announces. The
        message is ``"cannot decode audio file <path>: <reason>"``.
    ValueError
        For a bad range / rate.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0 Hz; got {sample_rate}")
    # soundfile reads negative indices from the end of the file, which would silently
    # return the wrong segment for a bad annotation.
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"need 0 <= start <= stop; got start={start}, stop={stop} for {path}")
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"audio file {path} does not exist (or is not a file)")
    data, file_rate = _read_frames(path, start, stop)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if file_rate != sample_rate and mono.size:
        mono = resample(mono, file_rate, sample_rate)
    elif file_rate != sample_rate:
        # torchaudio cannot reshape an empty signal; an empty segment stays empty.
        mono = np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a 1-D ``float32`` signal with ``torchaudio.functional.resample`` (sinc, Hann).

    The output has ``ceil(len * new_rate / orig_rate)`` samples.
    """
    # Imported here: torch/torchaudio take seconds to import and are only needed for files
    # whose rate differs from the target.
    import torch
    import torchaudio.functional as AF

    if orig_rate == new_rate:
        return waveform
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(waveform)), orig_rate, new_rate)
    return out.numpy().astype(np.float32, copy=False)


def fit_length(waveform: np.ndarray, num_samples: int, *, mode: str = "start") -> np.ndarray:
    """Crop or zero-pad a 1-D signal to exactly ``num_samples`` (returns a new float32 array).

    Parameters
    ----------
    waveform : np.ndarray
        1-D signal.
    num_samples : int
        Target length (>= 1).
    mode : {"start", "centre"}
        ``"start"`` keeps the beginning and pads zeros at the end; ``"centre"`` keeps the
        middle (a centre crop) and pads zeros evenly on both sides (the extra sample, if
        the padding is odd, goes at the end).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {FIT_MODES}; got {mode!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1; got {num_samples}")
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be 1-D (mono); got shape {waveform.shape}")
    length = waveform.shape[0]
    out = np.zeros(num_samples, dtype=np.float32)
    if length >= num_samples:
        offset = (length - num_samples) // 2 if mode == "centre" else 0
        out[:] = waveform[offset : offset + num_samples]
    else:
        offset = (num_samples - length) // 2 if mode == "centre" else 0
        out[offset : offset + length] = waveform
    return out


def stack_clips(clips: list[np.ndarray], num_samples: int, mode: str = "start") -> np.ndarray:
    """Fit each clip with :func:`fit_length` and stack to ``float32 [N, num_samples]``.

    An empty list gives shape ``(0, num_samples)``.
    """
    # Checked here too so that an empty list fails the same way as a full one.
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {FIT_MODES}; got {mode!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1; got {num_samples}")
    out = np.zeros((len(clips), num_samples), dtype=np.float32)
    for i, clip in enumerate(clips):
        out[i] = fit_length(clip, num_samples, mode=mode)
    return out
