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

Corrupt files: ``check_<name>`` (run before Ray starts) also checks that the files are usable
without decoding them: every header when the dataset has at most
:data:`~fedssl.datasets.audio_sources.clip_index.HEADER_CHECK_MAX_FILES` files, else only
that none is empty. It names the bad files in one warning (they will be skipped) and raises
:class:`~fedssl.datasets.base.CorruptDataError` only when no file is usable. The loaders skip
a clip whose file cannot be decoded (empty, garbage, a WAV header claiming more data than
the file holds, a truncated FLAC) with one warning per split naming the files and reasons,
and list them in :attr:`AudioArrays.skipped`; when no clip decodes they raise
:class:`~fedssl.datasets.base.CorruptDataError`.

Each source has its own module, which maps its metadata to the shared
:class:`~fedssl.datasets.audio_sources.clip_index.ClipIndex`.

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

from collections.abc import Callable
from pathlib import Path

from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_sources.clip_index import AUDIO_EXTENSIONS, balanced_prefix
from fedssl.datasets.audio_sources.epic_sounds import (
    EPIC_SOUNDS_LAYOUT,
    EPIC_SOUNDS_NUM_CLASSES,
    EPIC_SOUNDS_RATE,
    check_epic_sounds,
    load_epic_sounds,
)
from fedssl.datasets.audio_sources.esc50 import (
    ESC50_FOLDS,
    ESC50_LAYOUT,
    ESC50_NUM_CLASSES,
    check_esc50,
    load_esc50,
)
from fedssl.datasets.audio_sources.speech_commands import (
    SPEECH_COMMANDS_LAYOUT,
    check_speech_commands,
    load_speech_commands,
)
from fedssl.datasets.audio_sources.urbansound8k import (
    URBANSOUND8K_FOLDS,
    URBANSOUND8K_LAYOUT,
    URBANSOUND8K_NUM_CLASSES,
    check_urbansound8k,
    load_urbansound8k,
)
from fedssl.datasets.audio_sources.vggsound import VGGSOUND_LAYOUT, check_vggsound, load_vggsound

__all__ = [
    "AUDIO_CHECKS",
    "AUDIO_EXTENSIONS",
    "AUDIO_SOURCES",
    "EPIC_SOUNDS_LAYOUT",
    "EPIC_SOUNDS_NUM_CLASSES",
    "EPIC_SOUNDS_RATE",
    "ESC50_FOLDS",
    "ESC50_LAYOUT",
    "ESC50_NUM_CLASSES",
    "SPEECH_COMMANDS_LAYOUT",
    "URBANSOUND8K_FOLDS",
    "URBANSOUND8K_LAYOUT",
    "URBANSOUND8K_NUM_CLASSES",
    "VGGSOUND_LAYOUT",
    "balanced_prefix",
    "check_epic_sounds",
    "check_esc50",
    "check_speech_commands",
    "check_urbansound8k",
    "check_vggsound",
    "load_epic_sounds",
    "load_esc50",
    "load_speech_commands",
    "load_urbansound8k",
    "load_vggsound",
]

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
