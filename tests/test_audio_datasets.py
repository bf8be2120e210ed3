"""Audio container, decoding helpers and dataset sources, read from tiny fake datasets
written in each dataset's real on-disk layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fedssl.datasets.audio_base import AudioArrays, fit_length, read_audio, stack_clips
from fedssl.datasets.audio_sources import (
    AUDIO_CHECKS,
    AUDIO_SOURCES,
    balanced_prefix,
    check_esc50,
    check_speech_commands,
    check_vggsound,
    load_epic_sounds,
    load_esc50,
    load_speech_commands,
    load_urbansound8k,
    load_vggsound,
)
from fedssl.datasets.base import DatasetNotFoundError


def _write(path: Path, data: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)


def _dc(value: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """A constant clip; its value identifies the file after loading."""
    n = round(seconds * rate)
    return np.full((n, channels) if channels > 1 else n, value, dtype=np.float32)


def _nearest(values: dict[str, float], value: float) -> str:
    """The key whose value is closest to ``value`` (resampling blurs constants slightly)."""
    return min(values, key=lambda k: abs(values[k] - value))


def _value_of(clip: np.ndarray) -> float:
    # Away from the clip's edges, where resampling or padding changes the constant.
    nonzero = np.flatnonzero(clip)
    return float(clip[nonzero[len(nonzero) // 2]])


# ----------------------------------------------------------------------------- AudioArrays


def _arrays(**overrides) -> AudioArrays:
    kwargs = {
        "waveforms": np.arange(24, dtype=np.float32).reshape(4, 6),
        "labels": np.array([0, 1, 2, 1], dtype=np.int64),
        "num_classes": 3,
        "sample_rate": 2,
        "name": "toy/train",
        "groups": np.array([7, 7, 8, 9], dtype=np.int64),
        "class_names": ("a", "b", "c"),
    }
    kwargs.update(overrides)
    return AudioArrays(**kwargs)


def test_audio_arrays_subset_and_duration() -> None:
    data = _arrays()
    assert len(data) == 4 and data.duration == 3.0 and data.num_samples == 6
    by_mask = data.subset(np.array([True, False, True, False]))
    by_pos = data.subset(np.array([2, 0]))
    np.testing.assert_array_equal(by_mask.waveforms, data.waveforms[[0, 2]])
    np.testing.assert_array_equal(by_pos.labels, [2, 0])
    np.testing.assert_array_equal(by_pos.groups, [8, 7])
    assert by_pos.class_names == ("a", "b", "c") and by_pos.name == "toy/train"
    assert by_pos.sample_rate == 2 and by_pos.num_classes == 3
    by_pos.waveforms[0, 0] = -1.0  # a copy: the original is untouched
    assert data.waveforms[2, 0] == 12.0
    assert _arrays(groups=None).subset([1]).groups is None
    with pytest.raises(ValueError, match="boolean mask"):
        data.subset(np.array([True, False]))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"waveforms": np.zeros((4, 6))}, "float32"),
        ({"waveforms": np.zeros(4, dtype=np.float32)}, r"\[N, L\]"),
        ({"labels": np.zeros(4, dtype=np.int32)}, "int64"),
        ({"labels": np.zeros(3, dtype=np.int64)}, "shape"),
        ({"labels": np.array([0, 1, 3, 0])}, r"\[0, 3\)"),
        ({"labels": np.array([0, -1, 0, 0])}, r"\[0, 3\)"),
        ({"num_classes": 0, "class_names": ()}, "num_classes"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 16000.0}, "sample_rate"),
        ({"groups": np.zeros(3, dtype=np.int64)}, "groups"),
        ({"groups": np.zeros(4)}, "groups"),
        ({"class_names": ("a", "b")}, "class_names"),
    ],
)
def test_audio_arrays_validation(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _arrays(**overrides)


# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("signal", "n", "mode", "expected"),
    [
        ([1, 2, 3, 4, 5], 3, "start", [1, 2, 3]),
        ([1, 2, 3, 4, 5], 3, "centre", [2, 3, 4]),
        ([1, 2, 3, 4, 5, 6], 3, "centre", [2, 3, 4]),
        ([1, 2], 5, "start", [1, 2, 0, 0, 0]),
        ([1, 2], 5, "centre", [0, 1, 2, 0, 0]),
        ([1, 2], 6, "centre", [0, 0, 1, 2, 0, 0]),
        ([1, 2, 3], 3, "centre", [1, 2, 3]),
    ],
)
def test_fit_length(signal: list, n: int, mode: str, expected: list) -> None:
    out = fit_length(np.asarray(signal, dtype=np.float32), n, mode=mode)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_fit_length_and_stack_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        fit_length(np.zeros(3), 2, mode="end")
    with pytest.raises(ValueError, match="1-D"):
        fit_length(np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="num_samples"):
        fit_length(np.zeros(3), 0)
    with pytest.raises(ValueError, match="mode"):
        stack_clips([], 4, mode="middle")


def test_stack_clips() -> None:
    assert stack_clips([], 7).shape == (0, 7) and stack_clips([], 7).dtype == np.float32
    out = stack_clips([np.ones(2), np.arange(9.0)], 4, mode="centre")
    np.testing.assert_array_equal(out, [[0, 1, 1, 0], [2, 3, 4, 5]])
    assert out.dtype == np.float32


def test_balanced_prefix_covers_classes_first() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(balanced_prefix(labels, 3), [0, 3, 5])
    np.testing.assert_array_equal(balanced_prefix(labels, 4), [0, 1, 3, 5])
    np.testing.assert_array_equal(balanced_prefix(labels, 0), np.arange(6))
    with pytest.raises(ValueError, match="max_clips"):
        balanced_prefix(labels, -1)


# ----------------------------------------------------------------------------- read_audio

# Integers / 32768 are exact in 16-bit PCM, 24-bit PCM and float32 alike.
_RAMP = (np.arange(3000) - 1500).astype(np.float32) / 32768


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [(".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "FLOAT"), (".flac", "PCM_16")],
)
def test_read_audio_segment_is_exact(tmp_path: Path, suffix: str, subtype: str) -> None:
    path = tmp_path / f"ramp{suffix}"
    _write(path, _RAMP, 8000, subtype)
    whole = read_audio(path, sample_rate=8000)
    assert whole.dtype == np.float32
    np.testing.assert_array_equal(whole, _RAMP)
    np.testing.assert_array_equal(
        read_audio(path, sample_rate=8000, start=1234, stop=1300), _RAMP[1234:1300]
    )
    np.testing.assert_array_equal(read_audio(path, sample_rate=8000, start=2990), _RAMP[2990:])
    # Past the end: truncated, possibly to nothing, also when resampling.
    assert read_audio(path, sample_rate=8000, start=2995, stop=5000).shape == (5,)
    assert read_audio(path, sample_rate=16000, start=4000, stop=5000).shape == (0,)


def test_read_audio_averages_channels(tmp_path: Path) -> None:
    left = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    right = np.full(800, 0.25, dtype=np.float32)
    _write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 8000, "FLOAT")
    mono = read_audio(tmp_path / "stereo.wav", sample_rate=8000, start=100, stop=200)
    np.testing.assert_allclose(mono, (left[100:200] + right[100:200]) / 2, atol=1e-7)


def test_read_audio_resamples_and_keeps_pitch(tmp_path: Path) -> None:
    t = np.arange(22050) / 44100  # 0.5 s
    _write(tmp_path / "a440.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    out = read_audio(tmp_path / "a440.wav", sample_rate=16000)
    assert out.shape == (math.ceil(22050 * 16000 / 44100),) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(out.size, d=1 / 16000)
    assert freqs[spectrum.argmax()] == pytest.approx(440, abs=2)
    # The amplitude survives too (the sinc filter passes 440 Hz untouched).
    assert np.abs(out[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)


def test_read_audio_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"nowhere\.wav"):
        read_audio(tmp_path / "nowhere.wav", sample_rate=16000)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(ValueError, match=r"text\.wav"):
        read_audio(tmp_path / "text.wav", sample_rate=16000)
    _write(tmp_path / "ok.wav", _RAMP, 8000)
    with pytest.raises(ValueError, match="start"):
        read_audio(tmp_path / "ok.wav", sample_rate=8000, start=-10)
    with pytest.raises(ValueError, match="start"):
        read_audio(tmp_path / "ok.wav", sample_rate=8000, start=10, stop=5)


# ----------------------------------------------------------------------------- ESC-50

# (fold, target) per file; the file's constant value is its row number / 100.
_ESC_ROWS = [(1, 0), (1, 7), (2, 0), (2, 3), (3, 7), (3, 49), (4, 3), (5, 0), (5, 7), (5, 7)]


def make_esc50(root: Path) -> dict[str, tuple[int, int, float]]:
    """ESC-50-master layout: 0.2-s 44.1 kHz mono WAVs, files named fold-src-take-target."""
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    files = {}
    for i, (fold, target) in enumerate(_ESC_ROWS):
        name = f"{fold}-{100 + i}-A-{target}.wav"
        value = (i + 1) / 100
        _write(root / "audio" / name, _dc(value, 0.2, 44100), 44100)
        lines.append(f"{name},{fold},{target},cat{target},{target == 0},{100 + i},A")
        files[name] = (fold, target, value)
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return files


@pytest.mark.parametrize("test_fold", [5, 2])
def test_esc50_fold_splits_labels_and_groups(tmp_path: Path, test_fold: int) -> None:
    files = make_esc50(tmp_path)
    for split in ("train", "test"):
        data = load_esc50(tmp_path, split, test_fold=test_fold, sample_rate=44100, duration=0.1)
        expected = sorted(
            (fold, target, value)
            for fold, target, value in files.values()
            if (fold == test_fold) == (split == "test")
        )
        got = sorted(
            (int(g), int(label), round(_value_of(w), 4))
            for g, label, w in zip(data.groups, data.labels, data.waveforms, strict=True)
        )
        assert got == expected
        assert data.waveforms.shape == (len(expected), 4410)
        assert data.num_classes == 50 and data.sample_rate == 44100
        assert data.name == f"esc50/{split}"
        assert data.class_names[7] == "cat7" and data.class_names[1] == "1"


def test_esc50_resampled_and_padded(tmp_path: Path) -> None:
    make_esc50(tmp_path)
    data = load_esc50(tmp_path, "test", sample_rate=16000, duration=0.25)
    assert data.waveforms.shape == (3, 4000)
    # 0.2 s at 16 kHz = 3200 samples, then zeros up to 0.25 s.
    assert np.all(data.waveforms[:, 3300:] == 0) and np.all(data.waveforms[:, 100:3100] > 0)
    assert data.duration == 0.25


def test_esc50_max_clips_is_class_balanced(tmp_path: Path) -> None:
    make_esc50(tmp_path)
    data = load_esc50(tmp_path, "train", sample_rate=44100, duration=0.01, max_clips=4)
    # The train classes are 0, 3, 7 and 49: one clip of each before any second one.
    assert sorted(data.labels.tolist()) == [0, 3, 7, 49]
    assert len(load_esc50(tmp_path, "train", sample_rate=8000, duration=0.01, max_clips=99)) == 7


def test_esc50_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        load_esc50(tmp_path / "absent", "train")
    with pytest.raises(DatasetNotFoundError, match=r"meta/esc50\.csv.*expected layout"):
        check_esc50(tmp_path)
    make_esc50(tmp_path)
    check_esc50(tmp_path)
    (tmp_path / "audio" / "5-107-A-0.wav").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 10 audio files.*5-107-A-0\.wav"):
        check_esc50(tmp_path)
    # The train split does not need the missing test file.
    assert len(load_esc50(tmp_path, "train", sample_rate=8000, duration=0.01)) == 7
    with pytest.raises(ValueError, match="split"):
        load_esc50(tmp_path, "validation")
    with pytest.raises(ValueError, match="test_fold"):
        load_esc50(tmp_path, "train", test_fold=6)


# ----------------------------------------------------------------------------- Speech Commands

_SPEAKERS = ("0a1b2c3d", "9f8e7d6c", "feedbeef")


def make_speech_commands(root: Path) -> dict[str, float]:
    """speech_commands_v0.02 layout with 3 words, 3 speakers and _background_noise_."""
    values = {}
    for w, word in enumerate(("yes", "no", "up")):
        for s, speaker in enumerate(_SPEAKERS):
            for n in range(2 if s == 0 else 1):
                rel = f"{word}/{speaker}_nohash_{n}.wav"
                values[rel] = round(0.1 + 0.2 * w + 0.05 * s + 0.01 * n, 4)
                _write(root / rel, _dc(values[rel], 0.3, 16000), 16000)
    _write(root / "_background_noise_" / "white_noise.wav", _dc(0.9, 0.5, 16000), 16000)
    (root / "README.md").write_text("fake")
    (root / "validation_list.txt").write_text(
        "".join(f"{w}/{_SPEAKERS[1]}_nohash_0.wav\n" for w in ("yes", "no", "up"))
    )
    (root / "testing_list.txt").write_text(
        "".join(f"{w}/{_SPEAKERS[2]}_nohash_0.wav\n" for w in ("no", "up"))
    )
    return values


def _files_of(data: AudioArrays, values: dict[str, float]) -> set[str]:
    by_value = {v: k for k, v in values.items()}
    return {by_value[round(_value_of(w), 4)] for w in data.waveforms}


def test_speech_commands_list_splits(tmp_path: Path) -> None:
    values = make_speech_commands(tmp_path)
    train = load_speech_commands(tmp_path, "train", duration=0.5)
    valid = load_speech_commands(tmp_path, "validation", duration=0.5)
    test = load_speech_commands(tmp_path, "test", duration=0.5)
    assert _files_of(valid, values) == {f"{w}/9f8e7d6c_nohash_0.wav" for w in ("yes", "no", "up")}
    assert _files_of(test, values) == {"no/feedbeef_nohash_0.wav", "up/feedbeef_nohash_0.wav"}
    # Everything else, including yes/feedbeef which is in neither list.
    assert _files_of(train, values) == set(values) - _files_of(valid, values) - _files_of(
        test, values
    )
    assert len(train) == 7 and train.waveforms.shape == (7, 8000)
    assert train.class_names == ("no", "up", "yes") and train.num_classes == 3
    for data in (train, valid, test):
        for label, clip in zip(data.labels, data.waveforms, strict=True):
            word = {v: k for k, v in values.items()}[round(_value_of(clip), 4)].split("/")[0]
            assert data.class_names[label] == word
    # Speakers numbered by sorted hash within the split: 0a1b2c3d has two clips per word,
    # feedbeef only yes/feedbeef, and 9f8e7d6c is all in the validation list.
    assert np.bincount(train.groups).tolist() == [6, 1]
    assert valid.groups.tolist() == [0, 0, 0] and test.groups.tolist() == [0, 0]


def test_speech_commands_explicit_classes(tmp_path: Path) -> None:
    make_speech_commands(tmp_path)
    data = load_speech_commands(tmp_path, "test", classes="up, no", duration=1.0)
    assert data.class_names == ("up", "no") and data.num_classes == 2
    assert sorted(data.labels.tolist()) == [0, 1] and data.waveforms.shape == (2, 16000)
    train = load_speech_commands(tmp_path, "train", classes="yes", duration=0.1)
    assert len(train) == 3 and set(train.labels.tolist()) == {0}
    with pytest.raises(DatasetNotFoundError, match="'down'"):
        load_speech_commands(tmp_path, "train", classes="yes,down")
    with pytest.raises(ValueError, match="twice"):
        load_speech_commands(tmp_path, "train", classes="yes,yes")


def test_speech_commands_layout_errors(tmp_path: Path) -> None:
    make_speech_commands(tmp_path)
    check_speech_commands(tmp_path)
    (tmp_path / "no" / "feedbeef_nohash_0.wav").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"testing_list\.txt.*no/feedbeef"):
        load_speech_commands(tmp_path, "train")
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"testing_list\.txt.*expected layout"):
        check_speech_commands(tmp_path)


# ----------------------------------------------------------------------------- UrbanSound8K

# (fold, classID, native rate, channels, subtype)
_US8K_ROWS = [
    (1, 0, 22050, 2, "PCM_16"),
    (1, 3, 48000, 1, "PCM_24"),
    (2, 3, 44100, 1, "FLOAT"),
    (2, 9, 22050, 1, "PCM_16"),
    (3, 5, 48000, 2, "PCM_24"),
    (10, 0, 44100, 2, "PCM_16"),
    (10, 9, 96000, 1, "PCM_16"),
]


def make_urbansound8k(root: Path) -> list[tuple[int, int, float]]:
    """UrbanSound8K layout: 0.3-s slices at mixed rates, bit depths and channel counts."""
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    rows = []
    for i, (fold, cls, rate, channels, subtype) in enumerate(_US8K_ROWS):
        name = f"{1000 + i}-{cls}-0-{i}.wav"
        value = round(0.1 + 0.1 * i, 4)
        clip = _dc(value, 0.3, rate, channels)
        if channels == 2:  # average of the two channels is value
            clip = clip + np.array([0.05, -0.05], dtype=np.float32)
        _write(root / "audio" / f"fold{fold}" / name, clip, rate, subtype)
        lines.append(f"{name},{1000 + i},0.0,0.3,1,{fold},{cls},class{cls}")
        rows.append((fold, cls, value))
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    return rows


@pytest.mark.parametrize("test_fold", [10, 1])
def test_urbansound8k_folds_rates_and_channels(tmp_path: Path, test_fold: int) -> None:
    rows = make_urbansound8k(tmp_path)
    for split in ("train", "test"):
        data = load_urbansound8k(tmp_path, split, test_fold=test_fold, duration=0.5)
        expected = [r for r in rows if (r[0] == test_fold) == (split == "test")]
        assert data.waveforms.shape == (len(expected), 8000)
        got = sorted(
            (int(g), int(c), _value_of(w))
            for g, c, w in zip(data.groups, data.labels, data.waveforms, strict=True)
        )
        for (fold, cls, value), (g, c, v) in zip(sorted(expected), got, strict=True):
            assert (g, c) == (fold, cls) and v == pytest.approx(value, abs=2e-3)
        # Every clip is 0.3 s after resampling to 16 kHz, then zero-padded.
        assert np.all(data.waveforms[:, 4850:] == 0)
        assert np.all(np.abs(data.waveforms[:, 200:4600]) > 0.05)
    assert data.class_names[9] == "class9" and data.class_names[1] == "1"


def test_urbansound8k_missing_metadata(tmp_path: Path) -> None:
    (tmp_path / "audio" / "fold1").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"metadata/UrbanSound8K\.csv.*fold<k>"):
        load_urbansound8k(tmp_path, "train")


# ----------------------------------------------------------------------------- VGG-Sound

# youtube_id, start_seconds, label, split, how the file is stored (None = never downloaded)
_VGG_ROWS = [
    ("-0abcDEF_12", 30, "dog barking", "train", "padded.wav"),
    ("nan", 0, "male speech, man speaking", "train", "plain.flac"),
    ("0123456789a", 120, "dog barking", "train", None),
    ("zz--top----", 7, "airplane", "train", "padded.flac"),
    ("x_y_z-12345", 15, "male speech, man speaking", "test", "plain.wav"),
    ("QqQqQqQqQqQ", 40, "zither only in test", "test", "padded.wav"),
]


def make_vggsound(root: Path) -> dict[str, float]:
    """vggsound.csv (no header, quoted label with a comma) and audio/ at 44.1 kHz stereo."""
    lines = []
    values = {}
    for i, (vid, start, label, split, stored) in enumerate(_VGG_ROWS):
        lines.append(
            f'{vid},{start},"{label}",{split}' if "," in label else f"{vid},{start},{label},{split}"
        )
        if stored is None:
            continue
        kind, ext = stored.split(".")
        stem = f"{vid}_{start:06d}" if kind == "padded" else f"{vid}_{start}"
        values[vid] = round(0.1 * (i + 1), 4)
        _write(root / "audio" / f"{stem}.{ext}", _dc(values[vid], 0.2, 44100, 2), 44100)
    (root / "vggsound.csv").write_text("\n".join(lines) + "\n")
    return values


def test_vggsound_labels_splits_and_missing_files(tmp_path: Path) -> None:
    values = make_vggsound(tmp_path)
    with pytest.warns(UserWarning, match=r"skipping 1 of 4 clips.*0123456789a_120"):
        train = load_vggsound(tmp_path, "train", duration=0.1)
    test = load_vggsound(tmp_path, "test", duration=0.1)
    names = ("airplane", "dog barking", "male speech, man speaking", "zither only in test")
    assert train.class_names == test.class_names == names
    assert train.num_classes == test.num_classes == 4
    assert train.waveforms.shape == (3, 1600) and test.waveforms.shape == (2, 1600)
    label_of = {row[0]: names.index(row[2]) for row in _VGG_ROWS}
    for data in (train, test):
        for label, clip in zip(data.labels, data.waveforms, strict=True):
            assert label == label_of[_nearest(values, _value_of(clip))]
    got = {_nearest(values, _value_of(w)) for w in train.waveforms}
    assert got == {"-0abcDEF_12", "nan", "zz--top----"}
    got = {_nearest(values, _value_of(w)) for w in test.waveforms}
    assert got == {"x_y_z-12345", "QqQqQqQqQqQ"}
    assert train.groups is None


def test_vggsound_no_files_or_bad_csv(tmp_path: Path) -> None:
    make_vggsound(tmp_path)
    for path in (tmp_path / "audio").iterdir():
        if path.name.startswith(("x_y_z", "QqQ")):
            path.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"none of the 2 'test' clips"):
        load_vggsound(tmp_path, "test")
    check_vggsound(tmp_path)  # some train clips are still there
    csv = tmp_path / "vggsound.csv"
    csv.write_text("youtube_id,start_seconds,label,split\n" + csv.read_text())
    with pytest.raises(ValueError, match="header"):
        check_vggsound(tmp_path)
    csv.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"vggsound\.csv.*no header"):
        load_vggsound(tmp_path, "train")


# ----------------------------------------------------------------------------- EPIC-SOUNDS

_EPIC_HEADER = (
    "annotation_id,participant_id,video_id,start_timestamp,stop_timestamp,start_sample,"
    "stop_sample,description,class,class_id"
)
# Integers / 32768 are exact in 16-bit FLAC as well as float WAV.
_EPIC_RAMP = np.arange(24000, dtype=np.float32) / 32768


def _epic_row(i: int, video: str, start: int, stop: int, cls: int) -> str:
    return (
        f"P0x_{i},{video.split('_')[0]},{video},00:00:00.000,00:00:01.000,{start},{stop},"
        f"something,class{cls},{cls}"
    )


def make_epic_sounds(root: Path) -> None:
    """Annotation CSVs plus audio/<video_id>.{wav,flac}: 1 s of ramp at 24 kHz per video."""
    _write(root / "audio" / "P01_01.wav", _EPIC_RAMP, 24000, "FLOAT")
    _write(root / "audio" / "P12_03.flac", _EPIC_RAMP, 24000, "PCM_16")
    train = [
        _epic_row(0, "P01_01", 1000, 1240, 3),  # exactly 240 samples
        _epic_row(1, "P12_03", 5000, 5100, 43),  # shorter: padded on both sides
        _epic_row(2, "P01_01", 20000, 20600, 3),  # longer: centre crop
    ]
    (root / "EPIC_Sounds_train.csv").write_text("\n".join([_EPIC_HEADER, *train]) + "\n")
    valid = [_epic_row(3, "P12_03", 100, 340, 0)]
    (root / "EPIC_Sounds_validation.csv").write_text("\n".join([_EPIC_HEADER, *valid]) + "\n")


def test_epic_sounds_segments_labels_and_groups(tmp_path: Path) -> None:
    make_epic_sounds(tmp_path)
    data = load_epic_sounds(tmp_path, "train", duration=0.01)  # 240 samples at 24 kHz
    assert data.waveforms.shape == (3, 240) and data.num_classes == 44
    np.testing.assert_array_equal(data.waveforms[0], _EPIC_RAMP[1000:1240])
    np.testing.assert_array_equal(data.waveforms[1, 70:170], _EPIC_RAMP[5000:5100])
    assert not data.waveforms[1, :70].any() and not data.waveforms[1, 170:].any()
    np.testing.assert_array_equal(data.waveforms[2], _EPIC_RAMP[20180:20420])
    np.testing.assert_array_equal(data.labels, [3, 43, 3])
    np.testing.assert_array_equal(data.groups, [1, 12, 1])
    assert data.class_names[43] == "class43" and data.class_names[5] == "5"
    # "test" is the validation set, whose labels are public.
    test = load_epic_sounds(tmp_path, "test", sample_rate=16000, duration=0.01)
    assert test.name == "epic-sounds/validation" and test.waveforms.shape == (1, 160)
    assert test.labels.tolist() == [0] and test.groups.tolist() == [12]
    assert len(load_epic_sounds(tmp_path, "train", duration=0.01, max_clips=2)) == 2


def test_epic_sounds_rescales_indices_of_other_rates(tmp_path: Path) -> None:
    make_epic_sounds(tmp_path)
    ramp48 = np.arange(48000, dtype=np.float32) / 65536
    (tmp_path / "audio" / "P01_01.wav").unlink()
    _write(tmp_path / "audio" / "P01_01.wav", ramp48, 48000, "FLOAT")
    data = load_epic_sounds(tmp_path, "train", sample_rate=48000, duration=0.005)
    # [1000, 1240) at 24 kHz is [2000, 2480) at 48 kHz, centre-cropped to 240 samples.
    np.testing.assert_array_equal(data.waveforms[0], ramp48[2120:2360])


def test_epic_sounds_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"EPIC_Sounds_train\.csv.*HDF5"):
        load_epic_sounds(tmp_path, "train")
    make_epic_sounds(tmp_path)
    (tmp_path / "audio" / "P12_03.flac").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 2 videos.*P12_03"):
        load_epic_sounds(tmp_path, "train")


# ----------------------------------------------------------------------------- registry


def test_registry_checks_real_layouts_and_reject_empty_dirs(tmp_path: Path) -> None:
    names = {"esc50", "speech-commands", "urbansound8k", "vggsound", "epic-sounds"}
    assert set(AUDIO_SOURCES) == set(AUDIO_CHECKS) == names
    makers = {
        "esc50": make_esc50,
        "speech-commands": make_speech_commands,
        "urbansound8k": make_urbansound8k,
        "vggsound": make_vggsound,
        "epic-sounds": make_epic_sounds,
    }
    for name, make in makers.items():
        empty = tmp_path / f"empty-{name}"
        empty.mkdir()
        with pytest.raises(DatasetNotFoundError, match="expected layout"):
            AUDIO_CHECKS[name](empty)
        with pytest.raises(DatasetNotFoundError, match="empty string"):
            AUDIO_CHECKS[name]("")
        make(tmp_path / name)
        AUDIO_CHECKS[name](tmp_path / name)
