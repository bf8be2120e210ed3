"""``spoken-digits``: the embedded audio dataset, real synthetic speech with background noise.

The digits zero to nine spoken by 60 espeak-ng voices (a voice variant, i.e. a timbre, with
one of eight English accents), three times each at a random speed and pitch, resampled to
16 kHz. Speakers are disjoint between the splits: 45 train (1350 clips) and 15 test (450
clips). ``scripts/make_spoken_digits.py`` renders them; the clean utterances ship with the
package as one Ogg Opus file per split plus ``metadata.csv`` (2.9 MB in all).

Loading places each utterance at a random offset in a ``duration``-second canvas, scales it
by a random gain and adds background noise at a random SNR: white, pink or brown noise, or
babble made of other utterances of the same split. All draws come from a seed per clip, so
the dataset is the same on every load and machine.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fedssl.datasets.audio_base import AudioArrays, read_audio, resample
from fedssl.datasets.base import DatasetNotFoundError

__all__ = [
    "DIGITS",
    "NOISE_KINDS",
    "SNR_DB",
    "coloured_noise",
    "find_spoken_digits_dir",
    "load_spoken_digits",
    "mix_at_snr",
]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NATIVE_RATE = 16_000
NOISE_KINDS = ("white", "pink", "brown", "babble")
SNR_DB = (5.0, 20.0)
GAIN = (0.3, 1.0)
BABBLE_VOICES = 4
SEED = 0
FILES = ("metadata.csv", "train.opus", "test.opus")
_PACKAGE_DATA = Path("fedssl") / "datasets" / "data" / "spoken_digits"
# Spectral slope of each noise colour: power ∝ 1 / f**exponent.
_COLOUR_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def _candidate_dirs(data_dir: str | Path = "") -> list[Path]:
    if data_dir:
        return [Path(data_dir).expanduser()]
    candidates = []
    if os.environ.get("FEDSSL_SPOKEN_DIGITS_DIR"):
        candidates.append(Path(os.environ["FEDSSL_SPOKEN_DIGITS_DIR"]).expanduser())
    candidates.append(Path(__file__).resolve().parent / "data" / "spoken_digits")
    # Flower's app bundle (FAB) carries only source files, so an app running from an
    # unpacked FAB finds the audio through the installed distribution instead.
    try:
        dist = importlib.metadata.distribution("fedssl")
        candidates.append(Path(str(dist.locate_file(_PACKAGE_DATA))))
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        if direct.get("dir_info", {}).get("editable") and direct["url"].startswith("file://"):
            candidates.append(Path(direct["url"].removeprefix("file://")) / _PACKAGE_DATA)
    except importlib.metadata.PackageNotFoundError:
        pass
    return candidates


def find_spoken_digits_dir(data_dir: str | Path = "") -> Path:
    """The directory holding ``metadata.csv``, ``train.opus`` and ``test.opus``.

    Looks in ``data_dir`` when given; otherwise in ``$FEDSSL_SPOKEN_DIGITS_DIR``, next to this
    module, and in the installed ``fedssl`` distribution.

    Raises
    ------
    DatasetNotFoundError
        None of those places has the files; the message lists where it looked.
    """
    candidates = _candidate_dirs(data_dir)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(
        f"spoken-digits: no directory with {', '.join(FILES)} (looked in {looked}); "
        "regenerate it with `python scripts/make_spoken_digits.py --out DIR` "
        "(needs espeak-ng) and set FEDSSL_SPOKEN_DIGITS_DIR=DIR"
    )


def coloured_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f²) noise, shaped in the frequency domain."""
    if kind not in _COLOUR_EXPONENT:
        raise ValueError(f"noise kind must be one of {tuple(_COLOUR_EXPONENT)}; got {kind!r}")
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1]  # no infinite gain at DC
    spectrum *= freqs ** (-_COLOUR_EXPONENT[kind] / 2)
    noise = np.fft.irfft(spectrum, n=num_samples)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def mix_at_snr(
    signal: np.ndarray, noise: np.ndarray, snr_db: float, *, active: slice
) -> np.ndarray:
    """``signal + a·noise`` with ``a`` chosen so the SNR over ``active`` is ``snr_db``.

    The signal power is measured over ``active`` (where the utterance is) rather than the
    whole canvas, so the SNR means the same for short and long words.
    """
    signal_power = float(np.mean(signal[active] ** 2))
    noise_power = float(np.mean(noise**2))
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10))) if noise_power else 0.0
    return (signal + scale * noise).astype(np.float32)


def _place(clip: np.ndarray, num_samples: int, offset: int) -> np.ndarray:
    canvas = np.zeros(num_samples, dtype=np.float32)
    canvas[offset : offset + len(clip)] = clip
    return canvas


@functools.lru_cache(maxsize=4)
def _utterances(directory: str, split: str) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The clean utterances of a split (decoded once) and their metadata rows."""
    table = pd.read_csv(Path(directory) / "metadata.csv")
    table = table[table["split"] == split].reset_index(drop=True)
    audio = read_audio(Path(directory) / f"{split}.opus", sample_rate=NATIVE_RATE)
    clips = [audio[start:stop] for start, stop in zip(table["start"], table["stop"], strict=True)]
    return clips, table


def load_spoken_digits(
    split: str,
    *,
    sample_rate: int = NATIVE_RATE,
    duration: float = 1.0,
    snr_db: tuple[float, float] = SNR_DB,
    data_dir: str | Path = "",
) -> AudioArrays:
    """Load one split as noisy fixed-length clips.

    Parameters
    ----------
    split
        ``"train"`` (1350 clips, 45 speakers) or ``"test"`` (450 clips, 15 other speakers).
    sample_rate
        Output rate; the native 16 kHz audio is resampled with torchaudio when it differs.
    duration
        Canvas length in seconds; an utterance longer than it is centre-cropped.
    snr_db
        Range of the signal-to-noise ratio, drawn uniformly per clip.
    data_dir
        Where the shipped files are; empty: found by :func:`find_spoken_digits_dir`.

    Returns
    -------
    AudioArrays
        ``groups`` holds the speaker of each clip; ``class_names`` the digit words.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if duration <= 0:
        raise ValueError(f"duration must be > 0 seconds; got {duration}")
    if not snr_db[0] <= snr_db[1]:
        raise ValueError(f"snr_db must be a (low, high) range; got {snr_db}")
    clips, table = _utterances(str(find_spoken_digits_dir(data_dir)), split)
    num_samples = round(duration * NATIVE_RATE)
    waveforms = np.zeros((len(clips), num_samples), dtype=np.float32)
    split_seed = ("train", "test").index(split)
    for index, clip in enumerate(clips):
        rng = np.random.default_rng([SEED, split_seed, index])
        if len(clip) > num_samples:
            start = (len(clip) - num_samples) // 2
            clip = clip[start : start + num_samples]
        offset = int(rng.integers(0, num_samples - len(clip) + 1))
        speech = _place(clip * rng.uniform(*GAIN), num_samples, offset)
        kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
        if kind == "babble":
            others = rng.choice(len(clips), size=BABBLE_VOICES, replace=False)
            noise = sum(
                _place(clips[o][:num_samples], num_samples,
                       int(rng.integers(0, num_samples - min(len(clips[o]), num_samples) + 1)))
                for o in others
                if o != index
            )
        else:
            noise = coloured_noise(kind, num_samples, rng)
        active = slice(offset, offset + len(clip))
        waveforms[index] = mix_at_snr(speech, noise, rng.uniform(*snr_db), active=active)
    if sample_rate != NATIVE_RATE:
        waveforms = np.stack([resample(w, NATIVE_RATE, sample_rate) for w in waveforms])
    speakers = {name: i for i, name in enumerate(sorted(table["speaker"].unique()))}
    return AudioArrays(
        waveforms=waveforms,
        labels=table["label"].to_numpy(dtype=np.int64),
        num_classes=len(DIGITS),
        sample_rate=sample_rate,
        name=f"spoken-digits/{split}",
        groups=table["speaker"].map(speakers).to_numpy(dtype=np.int64),
        class_names=DIGITS,
    )
