"""Speech Commands v0.02: 105,829 one-second utterances of 35 words by 2618 speakers.

Each word has its own folder of 16 kHz mono WAVs named ``<speaker>_nohash_<n>.wav``, where
``<speaker>`` is a hash of the speaker's id. The validation and test splits are the files
listed in ``validation_list.txt`` / ``testing_list.txt`` (a speaker's files all fall in one
split); the training split is every other file.

On-disk layout (the extracted ``speech_commands_v0.02`` archive)::

    <root>/<word>/<speaker>_nohash_<n>.wav   one folder per word
    <root>/_background_noise_/               long noise recordings (ignored)
    <root>/validation_list.txt               one <word>/<file>.wav per line
    <root>/testing_list.txt                  likewise

Citation: P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition",
arXiv:1804.03209, 2018.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import (
    ClipIndex,
    SourceLayout,
    clip_samples,
    dense_ids,
)

SPEECH_COMMANDS_LAYOUT = (
    "<root>/<word>/<speaker>_nohash_<n>.wav (one folder per word; _background_noise_/ is "
    "ignored), <root>/validation_list.txt and <root>/testing_list.txt (one <word>/<file>.wav "
    "per line); <root> is the extracted speech_commands_v0.02 archive"
)

SPEECH_COMMANDS = SourceLayout("speech-commands", SPEECH_COMMANDS_LAYOUT)

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
    """The root, its word folders (sorted) and the entries of each split list."""
    path = SPEECH_COMMANDS.root_dir(root)
    lists: dict[str, list[str]] = {}
    for split, filename in _SC_LISTS.items():
        list_path = path / filename
        if not list_path.is_file():
            raise SPEECH_COMMANDS.not_found(f"split list {list_path} is missing")
        lists[split] = _sc_read_list(list_path)
    words = _sc_words(path)
    if not words:
        raise SPEECH_COMMANDS.not_found(f"no word folders in {path}")
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
    """Every listed file of the ``words`` must be ``present``."""
    wanted = set(words)
    for split, entries in lists.items():
        missing = [e for e in entries if e.split("/", 1)[0] in wanted and e not in present]
        if missing:
            raise SPEECH_COMMANDS.not_found(
                f"{len(missing)} files listed in {root / _SC_LISTS[split]} are missing under "
                f"{root}, e.g. {missing[:3]}"
            )


def _sc_classes(classes: str, available: list[str], root: Path) -> list[str]:
    """The words of ``classes`` ("all" or a comma-separated list), in label order."""
    if classes.strip() == "all":
        return available
    words = [w.strip() for w in classes.split(",") if w.strip()]
    if not words:
        raise ValueError(f"classes must be 'all' or comma-separated words; got {classes!r}")
    if len(set(words)) != len(words):
        raise ValueError(f"classes lists a word twice: {classes!r}")
    unknown = [w for w in words if w not in available]
    if unknown:
        raise SPEECH_COMMANDS.not_found(
            f"no folder for words {unknown} in {root} (found {available})"
        )
    return words


def check_speech_commands(root: str | Path) -> None:
    """Check the Speech Commands layout, that every listed file exists, and that the files
    are usable (no decoding: the full dataset's 105k files are only checked for being
    non-empty; headers are read when there are at most ``HEADER_CHECK_MAX_FILES``). Bad files
    are named in one warning and skipped when loading; raises only if none is usable."""
    path, words, lists = _sc_layout(root)
    files = _sc_files(path, words)
    if not files:
        raise SPEECH_COMMANDS.not_found(f"no .wav files in the word folders of {path}")
    _sc_check_lists(path, lists, set(files), words)
    SPEECH_COMMANDS.check_audio_files([path / f for f in files], f"in the word folders of {path}")


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
    SPEECH_COMMANDS.check_split(split, ("train", "validation", "test"))
    num_samples = clip_samples(sample_rate, duration)
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
    clips = ClipIndex.of(
        SPEECH_COMMANDS,
        [path / f for f in chosen],
        np.asarray([index[f.split("/", 1)[0]] for f in chosen], dtype=np.int64),
        num_classes=len(words),
        class_names=tuple(words),
        groups=[f.split("/", 1)[1].split("_nohash_", 1)[0] for f in chosen],
        group_ids=dense_ids,
    )
    return clips.balanced(max_clips).decode(split, sample_rate=sample_rate, num_samples=num_samples)
