"""Corrupt dataset files: CIFAR batches (truncated, wrong keys or shapes, a pickle that asks
for a global it may not load) fail with one error naming the file; a bad audio file among
good ones is skipped with one warning naming it and counted, the pre-Ray check names every
bad file, and only a dataset with no usable file fails. Small real-format files in tmp dirs."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fedssl.datasets import (
    check_audio_dataset,
    check_dataset,
    clear_dataset_cache,
    skipped_files,
)
from fedssl.datasets.audio_base import audio_file_problem, read_audio
from fedssl.datasets.audio_sources import (
    check_epic_sounds,
    check_esc50,
    check_speech_commands,
    clip_index,
    load_epic_sounds,
    load_esc50,
    load_speech_commands,
)
from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError
from fedssl.datasets.cifar import CIFAR_PICKLE_GLOBALS, check_pickle_file, load_cifar
from fedssl.datasets.loader import load_image_dataset


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


# ---------------------------------------------------------------- CIFAR


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def _write_cifar10(root: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        batch = {b"data": _rows(2, i), b"labels": [i, 9], b"batch_label": b"training batch"}
        _dump(folder / f"data_batch_{i}", batch, protocol)
    _dump(folder / "test_batch", {b"data": _rows(3, 0), b"labels": [0, 1, 2]}, protocol)
    return folder


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_batches_of_every_pickle_protocol_pass_the_restricted_unpickler(
    tmp_path: Path, protocol: int
) -> None:
    folder = _write_cifar10(tmp_path, protocol)
    check_dataset("cifar10", data_dir=str(tmp_path))
    train = load_cifar("cifar10", "train", data_dir=tmp_path, image_size=32)
    assert train.labels.tolist() == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]
    first = _rows(2, 1)[0]
    assert train.images[0, 0, 1].tolist() == [first[1], first[1025], first[2049]]
    assert all(check_pickle_file(folder / f) is None for f in os.listdir(folder))


def test_cifar_numpy_1_module_names_are_accepted(tmp_path: Path) -> None:
    """The official files were written by numpy 1.x, whose arrays pickle through
    ``numpy.core.multiarray``; numpy 2 writes ``numpy._core``."""
    folder = _write_cifar10(tmp_path, protocol=2)
    path = folder / "test_batch"
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_cifar("cifar10", "test", data_dir=tmp_path, image_size=32).labels.tolist() == [
        0, 1, 2]
    assert ("numpy.core.multiarray", "_reconstruct") in CIFAR_PICKLE_GLOBALS


def test_a_truncated_cifar_batch_is_named_before_and_at_load(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    batch = folder / "data_batch_2"
    raw = batch.read_bytes()
    batch.write_bytes(raw[: len(raw) // 2])
    (folder / "data_batch_4").write_bytes(b"")
    # The cheap check (no unpickling) names both bad files at once.
    with pytest.raises(CorruptDataError, match="2 of 6 batch files") as err:
        check_dataset("cifar10", data_dir=str(tmp_path))
    message = str(err.value)
    assert f"{batch}: does not end with the pickle STOP opcode" in message
    assert f"{folder / 'data_batch_4'}: empty file (0 bytes)" in message
    # A truncation that happens to end on the STOP byte passes the glance but not the load.
    batch.write_bytes(raw[: len(raw) // 2] + b".")
    _dump(folder / "data_batch_4", {b"data": _rows(2, 4), b"labels": [4, 9]})
    check_dataset("cifar10", data_dir=str(tmp_path))
    with pytest.raises(CorruptDataError, match=r"data_batch_2 is corrupt or truncated"):
        load_image_dataset("cifar10", "train", data_dir=str(tmp_path))
    # The test split does not read the bad batch.
    assert len(load_image_dataset("cifar10", "test", data_dir=str(tmp_path))) == 3


def test_garbage_that_is_not_a_pickle_fails_the_cheap_check(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"<html>404 Not Found</html>.")
    with pytest.raises(CorruptDataError, match=r"test_batch: does not start like a pickle"):
        check_dataset("cifar10", data_dir=str(folder))


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ({b"pixels": _rows(2, 3), b"labels": [3, 9]}, r"lacks the keys \[b'data'\]"),
        ({b"data": _rows(2, 3), b"fine_labels": [3, 9]}, r"lacks the keys \[b'labels'\]"),
        ([1, 2, 3], "holds a list, not a dict"),
        ({b"data": _rows(2, 3)[:, :100], b"labels": [3, 9]}, r"shape \[N, 3072\]; got \(2, 100\)"),
        ({b"data": [[0] * 3072] * 2, b"labels": [3, 9]}, r"shape \[N, 3072\]; got list"),
        ({b"data": _rows(2, 3).astype(np.float32), b"labels": [3, 9]}, "dtype float32"),
        ({b"data": _rows(2, 3), b"labels": [3]}, r"one label per row of b'data' \(2\)"),
        ({b"data": _rows(2, 3), b"labels": [3, 10]}, r"must lie in \[0, 10\)"),
        ({b"data": _rows(2, 3), b"labels": ["a", "b"]}, "not a sequence of ints"),
    ],
)
def test_a_wrong_keyed_or_shaped_cifar_batch_names_the_file_and_the_fault(
    tmp_path: Path, batch: object, match: str
) -> None:
    folder = _write_cifar10(tmp_path)
    _dump(folder / "data_batch_3", batch)
    with pytest.raises(CorruptDataError, match=match) as err:
        load_image_dataset("cifar10", "train", data_dir=str(tmp_path))
    assert f"CIFAR batch {folder / 'data_batch_3'}:" in str(err.value)
    assert "expected a pickled dict with b'data'" in str(err.value)


def test_integer_data_and_text_keys_of_a_re_pickled_batch_load(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    rows = _rows(2, 3)
    _dump(folder / "data_batch_3", {"data": rows.astype(np.int64), "labels": np.array([3, 9])})
    train = load_image_dataset("cifar10", "train", data_dir=str(tmp_path))
    np.testing.assert_array_equal(train.images[4], rows[0].reshape(3, 32, 32).transpose(1, 2, 0))


class _OpensAFile:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _TouchesAPath:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("payload", [_OpensAFile, _TouchesAPath])
def test_a_pickle_whose_reduce_would_create_a_file_is_refused(
    tmp_path: Path, payload: type
) -> None:
    folder = _write_cifar10(tmp_path / "data")
    marker = tmp_path / "pwned"
    _dump(folder / "data_batch_5", {b"data": payload(marker), b"labels": [5, 9]})
    # It looks like a pickle, so the cheap check lets it through; the load refuses it.
    check_dataset("cifar10", data_dir=str(folder))
    with pytest.raises(CorruptDataError, match="refused to load the global") as err:
        load_image_dataset("cifar10", "train", data_dir=str(folder))
    assert str(folder / "data_batch_5") in str(err.value)
    assert not marker.exists()
    # A plain pickle.load of the same file would have created it (the payload is real).
    with (folder / "data_batch_5").open("rb") as f:
        made = pickle.load(f)[b"data"]
    if hasattr(made, "close"):
        made.close()
    assert marker.exists()


# ---------------------------------------------------------------- audio files

_RATE = 8000


def _wav(path: Path, value: float, seconds: float = 0.2, rate: int = _RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(round(seconds * rate), value, dtype=np.float32), rate,
             subtype="PCM_16")


def _claim_more(path: Path, factor: int = 3) -> None:
    """Multiply the data chunk size in the WAV header, leaving the data as it is."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    size = int.from_bytes(raw[at:at + 4], "little")
    raw[at:at + 4] = (size * factor).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(3000))


def test_audio_file_problems_are_named_from_the_header(tmp_path: Path) -> None:
    good, empty, garbage, claims, cut = (tmp_path / f"{n}.wav" for n in
                                         ("good", "empty", "garbage", "claims", "cut"))
    for path in (good, claims, cut):
        _wav(path, 0.5)
    empty.write_bytes(b"")
    _garbage(garbage)
    _claim_more(claims)
    _truncate(cut)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(0, dtype=np.float32), _RATE)
    assert audio_file_problem(good) is None
    assert audio_file_problem(tmp_path / "nowhere.wav") == "missing"
    assert audio_file_problem(empty) == "empty file (0 bytes)"
    assert audio_file_problem(garbage).startswith("not a readable audio file (")
    assert audio_file_problem(claims) == (
        "its WAV header claims 9600 bytes of audio data but only 3200 follow the header "
        "(truncated file?)")
    assert "WAV header claims 3200 bytes" in audio_file_problem(cut)
    assert audio_file_problem(silent) == "holds no audio frames"
    # libsndfile alone would accept the lying header and return the 1600 frames there are.
    with sf.SoundFile(claims) as f:
        assert f.frames == 1600
    for path in (empty, garbage, claims, cut, silent):
        with pytest.raises(CorruptDataError, match=f"cannot decode audio file {path}") as err:
            read_audio(path, sample_rate=_RATE)
        assert err.value.path == str(path) and err.value.reason == audio_file_problem(path)
        assert isinstance(err.value, ValueError)
        # Ray sends exceptions between processes: what the loaders read survives pickling.
        again = pickle.loads(pickle.dumps(err.value))
        assert (again.path, again.reason, str(again)) == (
            err.value.path, err.value.reason, str(err.value))
    assert read_audio(good, sample_rate=_RATE).shape == (1600,)


def test_a_truncated_flac_is_skipped_with_its_decoding_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, (np.sin(np.arange(16000) / 5) * 0.5).astype(np.float32), _RATE)
    _truncate(path)
    with pytest.raises(CorruptDataError, match=r"cut\.flac: (decoding failed|its header)"):
        read_audio(path, sample_rate=_RATE)


def test_a_streamed_wav_with_an_unknown_data_size_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "streamed.wav"
    _wav(path, 0.25)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at:at + 4] = b"\xff\xff\xff\xff"  # what writers that cannot seek leave there
    path.write_bytes(bytes(raw))
    assert audio_file_problem(path) is None
    assert read_audio(path, sample_rate=_RATE).shape == (1600,)


# ---------------------------------------------------------------- ESC-50 with bad files

# (fold, target) per file; file i holds the constant (i + 1) / 100.
_ESC_ROWS = [(1, 0), (1, 7), (2, 0), (2, 3), (3, 7), (3, 49), (4, 3), (4, 7), (5, 0), (5, 7)]


def _esc_name(i: int) -> str:
    fold, target = _ESC_ROWS[i]
    return f"{fold}-{100 + i}-A-{target}.wav"


def make_esc50(root: Path) -> dict[float, tuple[int, int]]:
    """ESC-50-master layout of 0.2-s 8 kHz WAVs; returns value -> (fold, target)."""
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    truth = {}
    for i, (fold, target) in enumerate(_ESC_ROWS):
        _wav(root / "audio" / _esc_name(i), (i + 1) / 100)
        lines.append(f"{_esc_name(i)},{fold},{target},cat{target},False,{100 + i},A")
        truth[round((i + 1) / 100, 2)] = (fold, target)
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return truth


def _clip_value(clip: np.ndarray) -> float:
    return round(float(clip[100]), 2)


def _one_warning(record: list[warnings.WarningMessage]) -> str:
    messages = [str(w.message) for w in record]
    assert len(messages) == 1, messages
    return messages[0]


def test_esc50_skips_bad_files_with_one_warning_and_keeps_labels_aligned(
    tmp_path: Path,
) -> None:
    truth = make_esc50(tmp_path)
    audio = tmp_path / "audio"
    bad = {
        audio / _esc_name(0): "empty file (0 bytes)",
        audio / _esc_name(3): "not a readable audio file",
        audio / _esc_name(6): "its WAV header claims",
    }
    (audio / _esc_name(0)).write_bytes(b"")
    _garbage(audio / _esc_name(3))
    _claim_more(audio / _esc_name(6))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_esc50(tmp_path, "train", sample_rate=_RATE, duration=0.2)
    message = _one_warning(record)
    assert message.startswith("esc50/train: skipped 3 of 8 clips whose audio file cannot be "
                              "decoded (3 files, listed in AudioArrays.skipped): ")
    for path, reason in bad.items():
        assert f"{path} ({reason}" in message
    assert data.skipped == tuple(str(p) for p in bad)
    assert len(data) == 5 and data.waveforms.shape == (5, 1600)
    # Every kept clip carries its own file's label and fold.
    kept = [(_clip_value(w), int(label), int(fold))
            for w, label, fold in zip(data.waveforms, data.labels, data.groups, strict=True)]
    assert [(truth[v][1], truth[v][0]) for v, _, _ in kept] == [(t, f) for _, t, f in kept]
    assert sorted(v for v, _, _ in kept) == [0.02, 0.03, 0.05, 0.06, 0.08]
    # The skipped files describe the split: a partition of it reports them too.
    part = data.subset(np.array([0, 2]))
    assert part.skipped == data.skipped and len(part) == 2
    # The test fold has no bad file: nothing skipped, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = load_esc50(tmp_path, "test", sample_rate=_RATE, duration=0.2)
    assert test.skipped == () and len(test) == 2


def test_a_wav_that_claims_more_data_than_it_holds_is_not_silently_accepted(
    tmp_path: Path,
) -> None:
    make_esc50(tmp_path)
    path = tmp_path / "audio" / _esc_name(8)  # fold 5: the test split
    _claim_more(path)
    with pytest.warns(UserWarning, match=r"esc50/test: skipped 1 of 2 clips") as record:
        test = load_esc50(tmp_path, "test", sample_rate=_RATE, duration=0.2)
    assert "claims 9600 bytes of audio data but only 3200" in str(record[0].message)
    assert test.skipped == (str(path),) and test.labels.tolist() == [7]


def test_all_bad_files_fail_with_a_clear_error(tmp_path: Path) -> None:
    make_esc50(tmp_path)
    for i in (8, 9):  # the whole test fold
        _garbage(tmp_path / "audio" / _esc_name(i))
    with pytest.raises(CorruptDataError, match=r"esc50/test: none of the 2 clips could be "
                                               r"decoded; 2 audio files are unusable: "):
        load_esc50(tmp_path, "test", sample_rate=_RATE, duration=0.2)
    for i in range(8):
        (tmp_path / "audio" / _esc_name(i)).write_bytes(b"")
    with pytest.raises(CorruptDataError, match=r"dataset 'esc50': none of the 10 audio files "
                                               r"listed in .*esc50\.csv is usable: "):
        check_esc50(tmp_path)


def test_the_pre_ray_check_names_every_bad_file_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_esc50(tmp_path)
    audio = tmp_path / "audio"
    (audio / _esc_name(1)).write_bytes(b"")
    _garbage(audio / _esc_name(4))
    _claim_more(audio / _esc_name(9))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        check_audio_dataset("esc50", data_dir=str(tmp_path))  # what runs before Ray starts
    message = _one_warning(record)
    assert message.startswith(
        f"dataset 'esc50': 3 of 10 audio files listed in {tmp_path / 'meta' / 'esc50.csv'} "
        "cannot be used and will be skipped when loaded: ")
    assert f"{audio / _esc_name(1)} (empty file (0 bytes))" in message
    assert f"{audio / _esc_name(4)} (not a readable audio file" in message
    assert f"{audio / _esc_name(9)} (its WAV header claims" in message
    assert message.endswith("(every header was read)")
    # A missing file is still a layout error, named as before.
    (audio / _esc_name(2)).unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 10 audio files .* missing"):
        check_esc50(tmp_path)
    _wav(audio / _esc_name(2), 0.03)
    # Above the header limit only sizes are checked: the empty file is still found.
    monkeypatch.setattr(clip_index, "HEADER_CHECK_MAX_FILES", 5)
    with pytest.warns(UserWarning, match=r"1 of 10 audio files") as record:
        check_esc50(tmp_path)
    assert "only sizes were checked, as there are more than 5 files" in str(record[0].message)
    # At most BAD_FILES_NAMED files are named; the rest are counted.
    monkeypatch.setattr(clip_index, "BAD_FILES_NAMED", 2)
    for i in (0, 3, 5):
        (audio / _esc_name(i)).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"4 of 10 audio files .*; and 2 more \("):
        check_esc50(tmp_path)


def test_speech_commands_check_and_load_skip_a_bad_file(tmp_path: Path) -> None:
    for w, word in enumerate(("yes", "no")):
        for s, speaker in enumerate(("aa11", "bb22", "cc33")):
            _wav(tmp_path / word / f"{speaker}_nohash_0.wav", (10 * w + s + 1) / 100, 0.1)
    (tmp_path / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\nno/bb22_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nno/cc33_nohash_0.wav\n")
    bad = tmp_path / "no" / "aa11_nohash_0.wav"
    bad.write_bytes(b"RIFF")
    with pytest.warns(UserWarning, match=r"1 of 6 audio files in the word folders of"):
        check_speech_commands(tmp_path)
    with pytest.warns(UserWarning, match=r"speech-commands/train: skipped 1 of 2 clips"):
        train = load_speech_commands(tmp_path, "train", sample_rate=_RATE, duration=0.1)
    assert train.skipped == (str(bad),) and train.labels.tolist() == [1]
    assert _clip_value(train.waveforms[0]) == 0.01  # yes/aa11 is label 1 ("no" sorts first)


# ---------------------------------------------------------------- EPIC-SOUNDS

_EPIC_HEADER = ("annotation_id,participant_id,video_id,start_timestamp,stop_timestamp,"
                "start_sample,stop_sample,description,class,class_id")


def _epic_csv(path: Path, rows: list[tuple[str, int, int, int]]) -> None:
    lines = [_EPIC_HEADER] + [
        f"{video}_{i},{video.split('_')[0]},{video},00:00:00.000,00:00:01.000,{start},{stop},"
        f"d,cls{cls},{cls}"
        for i, (video, start, stop, cls) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_epic_sounds_skips_every_clip_of_a_bad_video_file_once(tmp_path: Path) -> None:
    rate = 24000
    _wav(tmp_path / "audio" / "P01_01.wav", 0.25, 1.0, rate)
    _wav(tmp_path / "audio" / "P02_01.wav", 0.5, 1.0, rate)
    rows = [("P01_01", 0, 4800, 3), ("P02_01", 0, 4800, 5), ("P02_01", 4800, 9600, 6),
            ("P01_01", 9600, 14400, 7)]
    _epic_csv(tmp_path / "EPIC_Sounds_train.csv", rows)
    _epic_csv(tmp_path / "EPIC_Sounds_validation.csv", rows[:1])
    check_epic_sounds(tmp_path)
    bad = tmp_path / "audio" / "P02_01.wav"
    _garbage(bad)
    with pytest.warns(UserWarning, match=r"1 of 2 audio files annotated in"):
        check_epic_sounds(tmp_path)
    with pytest.warns(UserWarning, match=r"epic-sounds/train: skipped 2 of 4 clips whose audio "
                                         r"file cannot be decoded \(1 file,"):
        train = load_epic_sounds(tmp_path, "train", sample_rate=rate, duration=0.2)
    assert train.skipped == (str(bad),)
    assert train.labels.tolist() == [3, 7] and train.groups.tolist() == [1, 1]
    assert np.allclose(train.waveforms, 0.25, atol=1e-3)


# ---------------------------------------------------------------- a federation over it


def test_a_federation_over_esc50_with_a_corrupt_file_completes(tmp_path: Path) -> None:
    """The acceptance case: the ServerApp round loop with the real ClientApp in process, on
    ESC-50 with one garbage file; the run completes and the split reports the file."""
    from flower_fakes import InProcessGrid, set_task_identity

    from fedssl.clients.audio_data import AUDIO_DATA
    from fedssl.config import RunConfig, load_defaults
    from fedssl.datasets.audio_loader import clear_audio_cache
    from fedssl.flwr_app.server_app import run_federated

    root = tmp_path / "esc50"
    make_esc50(root)
    bad = root / "audio" / _esc_name(2)
    _garbage(bad)
    cfg = RunConfig.from_run_config(load_defaults() | {
        "task": "audio-ssl", "dataset": "esc50", "data-dir": str(root),
        "model": "audio-inceptionnext-tiny", "ssl-method": "simclr",
        "num-server-rounds": 1, "max-local-steps": 1, "batch-size": 2, "eval-every": 0,
        "linear-probe": False, "partitioner": "iid", "min-train-nodes": 2,
        "min-available-nodes": 2, "wandb-mode": "disabled", "keep-round-models": False,
        "output-dir": str(tmp_path / "run")})
    set_task_identity()
    clear_audio_cache()
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            summary = run_federated(InProcessGrid(cfg, 2), cfg)
        train = AUDIO_DATA.split(cfg, "train")
    finally:
        clear_audio_cache()
    assert summary["total-failures"] == 0 and summary["rounds"] == 1
    assert train.skipped == (str(bad),) and len(train) == 7
    messages = [str(w.message) for w in record]
    # The config check (before Ray would start) named it first...
    assert any(m.startswith("dataset 'esc50': 1 of 10 audio files") and str(bad) in m
               for m in messages)
    # ...and the load skipped it.
    skips = [m for m in messages if "esc50/train: skipped" in m]
    # Loaded once per process (memoised), so one warning, naming the file and the count.
    assert len(skips) == 1 and "skipped 1 of 8 clips" in skips[0] and str(bad) in skips[0]
    # What a run summary reports (images have no `skipped`: they fail instead).
    assert skipped_files(train, train.subset(np.arange(3)), object()) == [str(bad)]
    assert summary["skipped-files-count"] == 1
    assert (tmp_path / "run" / "skipped-files.txt").read_text().split() == [str(bad)]


def test_hyper_search_on_a_truncated_cifar_names_the_batches(tmp_path, capsys):
    from fedssl.cli import main

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta"):
        (folder / name).write_bytes(b"\x80\x04truncat")
    code = main(["hyper-search", "--model", "repopt-vgg-tiny", "--out", str(tmp_path / "s.pt"),
                 "--dataset", "cifar10", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "batch files are corrupt" in err and str(folder / "data_batch_1") in err
    assert not (tmp_path / "s.pt").exists()
