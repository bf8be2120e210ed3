"""The real video datasets (UCF-101, HMDB-51, Kinetics-400) on tiny trees of real encoded
videos written here with PyAV (MPEG-4 ``.avi``, H.264 ``.mp4``), their decode cache, their
frame-zip form, their cheap checks, and the ``fedvssl-clients`` partitioner.

Every test video is 12 frames of 40x32: frame ``i`` is a flat colour ``(20 + 16 i, tone,
100)`` (``tone`` tells the videos apart) between two white 4-pixel bands that the centre crop
removes, so the decoded frames can be told apart and checked for order, crop and padding.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from fedssl.catalogue import DATASET_REGISTRY
from fedssl.catalogue.tasks import check_video_ssl
from fedssl.clients.data import PartitionedData
from fedssl.compose import validate
from fedssl.config import ConfigError, RunConfig
from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError
from fedssl.datasets.partitioners import partition_with
from fedssl.datasets.partitioners.fedvssl_clients import read_client_dist
from fedssl.datasets.video import convert_tree
from fedssl.datasets.video_base import VideoArrays
from fedssl.datasets.video_loader import VIDEO_DATASETS, check_video_dataset, load_video_dataset
from fedssl.datasets.video_sources import (
    check_hmdb51,
    check_kinetics400,
    check_ucf101,
    decode,
    index_hmdb51,
    index_ucf101,
    label_dir,
    load_hmdb51,
    load_kinetics400,
    load_ucf101,
)

FRAMES, WIDTH, HEIGHT, FPS = 12, 40, 32, 25
TOLERANCE = 8.0  # mean absolute error (0..255) of a decoded flat frame against its colour


def colour(i: int, tone: int) -> np.ndarray:
    return np.array([20 + 16 * i, tone, 100], dtype=np.float64)


def write_video(path: Path, tone: int, *, codec: str = "mpeg4", frames: int = FRAMES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 2_000_000
        for i in range(frames):
            frame = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
            frame[:, 4:-4] = colour(i, tone)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def corrupt(path: Path, how: str = "garbage") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "garbage":
        path.write_bytes(b"not a video at all " * 40)
    else:  # a real video cut in half
        write_video(path, 0)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def assert_video(clip: np.ndarray, tone: int, indices: list[int]) -> None:
    """``clip`` (``[T, S, S, 3]``) shows frames ``indices`` of the video of ``tone``, with no
    trace of the white bands."""
    assert len(clip) == len(indices)
    for frame, i in zip(clip, indices, strict=True):
        error = np.abs(frame.astype(np.float64) - colour(i, tone)).mean()
        assert error < TOLERANCE, (i, tone, error, frame.reshape(-1, 3).mean(axis=0))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSSL_CACHE_DIR", str(tmp_path / "cache"))


# --- UCF-101 --------------------------------------------------------------------------------

UCF_CLASSES = ("ApplyEyeMakeup", "Biking")  # classInd numbers the sorted names


def ucf_tree(root: Path) -> dict[str, int]:
    """Two classes, groups 1-3 each (split N tests on group N), plus a garbage group-4 video
    listed for training in every split. Returns name -> tone."""
    tones = {}
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text(
        "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)))
    for label, cls in enumerate(UCF_CLASSES):
        for group in (1, 2, 3):
            name = f"{cls}/v_{cls}_g{group:02d}_c01"
            tones[name] = 40 + 60 * label + 15 * group
            write_video(root / f"{name}.avi", tones[name])
    corrupt(root / "Biking/v_Biking_g04_c01.avi")
    for fold in (1, 2, 3):
        train = [f"{c}/v_{c}_g{g:02d}_c01.avi {i}\r\n" for i, c in enumerate(UCF_CLASSES, 1)
                 for g in (1, 2, 3, 4) if g != fold and (g < 4 or c == "Biking")]
        test = [f"{c}/v_{c}_g{fold:02d}_c01.avi\r\n" for c in UCF_CLASSES]
        (lists / f"trainlist0{fold}.txt").write_text("".join(train))
        (lists / f"testlist0{fold}.txt").write_text("".join(test))
    return tones


@pytest.fixture
def ucf(tmp_path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "UCF101"
    return root, ucf_tree(root)


def test_ucf101_reads_every_official_split_and_skips_the_corrupt_video(ucf):
    root, tones = ucf
    check_ucf101(root)
    for fold in (1, 2, 3):
        with pytest.warns(UserWarning, match=r"ucf101/train: skipped 1 of 5 videos .*"
                          r"v_Biking_g04_c01\.avi \(Invalid data"):
            train = load_ucf101(root, "train", fold=fold, frames=8, size=16, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            test = load_ucf101(root, "test", fold=fold, frames=8, size=16, progress=False)
        assert test.names == (f"ApplyEyeMakeup/v_ApplyEyeMakeup_g0{fold}_c01",
                              f"Biking/v_Biking_g0{fold}_c01")
        assert test.labels.tolist() == [0, 1]
        assert set(train.names) == set(tones) - set(test.names)
        assert [int(n.startswith("Biking")) for n in train.names] == train.labels.tolist()
        assert train.skipped == (str(root / "Biking/v_Biking_g04_c01.avi"),)
        assert (train.name, train.num_classes, train.class_names) == (
            "ucf101/train", 2, UCF_CLASSES)
        assert train.clips.shape == (4, 8, 16, 16, 3) and not train.clips.flags.writeable
        for clip, name in zip(train.clips, train.names, strict=True):
            assert_video(clip, tones[name], list(range(8)))


def test_decoding_pads_short_videos_crops_the_centre_and_caches(ucf, tmp_path, monkeypatch):
    root, tones = ucf
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        data = load_ucf101(root, "train", frames=16, size=8, progress=False)
    assert data.clips.shape == (4, 16, 8, 8, 3)
    for clip, name in zip(data.clips, data.names, strict=True):
        # 12 frames, then the last repeated; no white from the cropped bands
        assert_video(clip, tones[name], [*range(FRAMES), *[FRAMES - 1] * 4])
    folders = sorted(p.name for p in (tmp_path / "cache" / "videos").iterdir() if p.is_dir())
    assert len(folders) == 1 and folders[0].startswith("ucf101-train-16f-8px-")

    # Read back from the cache: nothing is decoded, the skipped file is still reported.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    with monkeypatch.context() as patch:
        patch.setattr(decode, "decode_video", no_decoding)
        with pytest.warns(UserWarning, match="skipped 1 of 5"):
            again = load_ucf101(root, "train", frames=16, size=8, progress=False)
    np.testing.assert_array_equal(again.clips, data.clips)
    assert again.names == data.names

    # A touched video changes the hash: the split is decoded again into a new folder.
    video = root / "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi"
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        load_ucf101(root, "train", frames=16, size=8, progress=False)
    assert len([p for p in (tmp_path / "cache" / "videos").iterdir() if p.is_dir()]) == 2


def test_concurrent_loaders_decode_a_split_once(ucf, monkeypatch):
    root, _ = ucf
    index = index_ucf101(root, "test")
    calls = []
    real = decode.decode_video

    def counted(path, **kwargs):
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(decode, "decode_video", counted)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        decode.decode_index(index, frames=4, size=8, progress=False))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(calls) == len(index) == 2
    for data in results[1:]:
        np.testing.assert_array_equal(data.clips, results[0].clips)


def test_ucf101_layout_errors(ucf, tmp_path):
    root, _ = ucf
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"ucfTrainTestlist is missing; "
                       r"expected layout: <root>/<Class>/v_<Class>_gGG_cCC\.avi"):
        check_ucf101(tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match="needs data-dir"):
        check_video_dataset("ucf101", data_dir="")
    with pytest.raises(ValueError, match=r"official splits 1\.\.3 \(run-config key video-split"):
        index_ucf101(root, "train", fold=4)
    (root / "Biking/v_Biking_g02_c01.avi").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 5 videos listed in .*trainlist01"
                       r"\.txt have no file under .*v_Biking_g02_c01\.avi.*expected layout"):
        check_ucf101(root)
    lists = root / "ucfTrainTestlist"
    (lists / "trainlist01.txt").write_text("Biking/v_Biking_g03_c01.avi 1\n")
    with pytest.raises(ValueError, match=r"line 1 labels 'Biking/v_Biking_g03_c01\.avi' 1, "
                       r"but classInd\.txt numbers 'Biking' 2"):
        index_ucf101(root, "train")


def test_every_video_corrupt_is_an_error_saying_where(tmp_path):
    root = tmp_path / "bad"
    ucf_tree(root)
    for video in root.glob("*/*.avi"):
        corrupt(video, "truncated")
    with pytest.raises(CorruptDataError, match=rf"ucf101/test: none of the 2 videos in "
                       rf"{root} can be decoded: .*v_Biking_g0._c01\.avi \("):
        load_ucf101(root, "test", frames=4, size=8, progress=False)


def test_the_frame_zip_form_loads_the_same_videos(ucf, tmp_path):
    root, tones = ucf
    zips = tmp_path / "zips"
    with pytest.warns(UserWarning, match="skipped 1 of 7 video files"):
        convert_tree(root, zips, progress=False)
    shutil.copytree(root / "ucfTrainTestlist", zips / "ucfTrainTestlist")
    # the corrupt video has no zip: a garbage one stands in for it
    corrupt(zips / "Biking/v_Biking_g04_c01.zip")
    check_ucf101(zips)
    with pytest.warns(UserWarning, match=r"skipped 1 of 5 .*v_Biking_g04_c01\.zip"):
        data = load_ucf101(zips, "train", frames=8, size=16, progress=False)
    assert sorted(data.names) == sorted(set(tones) - {"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01",
                                                      "Biking/v_Biking_g01_c01"})
    for clip, name in zip(data.clips, data.names, strict=True):
        assert_video(clip, tones[name], list(range(8)))


# --- HMDB-51 --------------------------------------------------------------------------------

HMDB_CLASSES = ("wave", "brush_hair", "cartwheel")  # sorted: brush_hair, cartwheel, wave
# Per split, the tag of clips 0..3 of every class (1 train, 2 test, 0 unused).
HMDB_TAGS = {1: "1120", 2: "2011", 3: "0112"}


@pytest.fixture
def hmdb(tmp_path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    tones = {}
    for k, cls in enumerate(HMDB_CLASSES):
        for j in range(4):
            name = f"{cls}/{cls}_clip[{j}]_u_nm"
            if (cls, j) == ("cartwheel", 0):
                corrupt(root / f"{name}.avi", "truncated")  # train in split 1 only
            else:
                tones[name] = 30 + 50 * k + 10 * j
                write_video(root / f"{name}.avi", tones[name])
        for fold, tags in HMDB_TAGS.items():
            (splits / f"{cls}_test_split{fold}.txt").write_text(
                "".join(f"{cls}_clip[{j}]_u_nm.avi {tags[j]} \n" for j in range(4)))
    return root, tones


def test_hmdb51_tags_and_sorted_classes(hmdb):
    root, tones = hmdb
    check_hmdb51(root)
    for fold, tags in HMDB_TAGS.items():
        for split, tag in (("train", "1"), ("test", "2")):
            index = index_hmdb51(root, split, fold=fold)
            assert index.class_names == ("brush_hair", "cartwheel", "wave")
            expected = [f"{c}/{c}_clip[{j}]_u_nm" for c in index.class_names
                        for j in range(4) if tags[j] == tag]
            assert list(index.names) == expected
            assert index.labels.tolist() == [index.class_names.index(n.split("/")[0])
                                             for n in expected]
    with pytest.warns(UserWarning, match=r"hmdb51/train: skipped 1 of 6 videos .*"
                      r"cartwheel_clip\[0\]_u_nm\.avi \("):
        train = load_hmdb51(root, "train", fold=1, frames=6, size=8, progress=False)
    assert len(train) == 5 and train.labels.tolist() == [0, 0, 1, 2, 2]
    for clip, name in zip(train.clips, train.names, strict=True):
        assert_video(clip, tones[name], list(range(6)))


def test_hmdb51_layout_errors(hmdb, tmp_path):
    root, _ = hmdb
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"testTrainMulti_7030_splits is missing; "
                       r"expected layout: .*tag 1 = train, 2 = test, 0 = unused"):
        check_hmdb51(tmp_path / "empty")
    (root / "testTrainMulti_7030_splits" / "wave_test_split2.txt").write_text("a.avi 3\n")
    with pytest.raises(ValueError, match=r"wave_test_split2\.txt line 1 is not '<clip>\.avi "
                       r"<tag>' with tag 0, 1 or 2"):
        check_hmdb51(root)


# --- Kinetics-400 ---------------------------------------------------------------------------

K400_LABELS = ("tying tie", "passing American football (in game)", 'dancing "gangnam" style')


@pytest.fixture
def k400(tmp_path) -> tuple[Path, dict[str, int]]:
    """Three labels; per label three train clips (one missing, and one garbage for the
    first label) and one val clip, as H.264 .mp4. CSVs with an extra column."""
    root = tmp_path / "kinetics400"
    tones: dict[str, int] = {}
    rows = {"train": [], "val": []}
    for k, label in enumerate(K400_LABELS):
        for j, split in enumerate(("train", "train", "train", "val")):
            ytid, start = f"yt{k}{j}-_x", 10 * j
            rows[split].append(f'"{label.replace(chr(34), chr(34) * 2)}",{ytid},{start},'
                               f"{start + 10},{split},0\n")
            name = f"{label_dir(label)}/{ytid}_{start:06d}_{start + 10:06d}"
            path = root / split / f"{name}.mp4"
            if j == 2:
                continue  # not downloaded
            if (k, j) == (0, 1):
                corrupt(path)
                continue
            tones[name] = 30 + 60 * k + 10 * j
            write_video(path, tones[name], codec="libx264")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text(
            "label,youtube_id,time_start,time_end,split,is_cc\n" + "".join(lines))
    return root, tones


def test_kinetics_label_folders():
    assert label_dir("tying tie") == "tying_tie"
    assert label_dir("passing American football (in game)") == \
        "passing_American_football_in_game"
    assert label_dir('dancing "gangnam" style') == "dancing_gangnam_style"
    assert label_dir("massaging person's head") == "massaging_persons_head"


def test_kinetics400_skips_missing_and_corrupt_clips(k400):
    root, tones = k400
    check_kinetics400(root)
    with pytest.warns(UserWarning) as caught:
        train = load_kinetics400(root, "train", frames=8, size=16, progress=False)
    messages = [str(w.message) for w in caught]
    assert any("kinetics400/train: 3 of 9 clips listed in" in m and "have no file" in m
               for m in messages), messages
    assert any("skipped 1 of 6 videos" in m and "yt01-_x_000010_000020.mp4" in m
               for m in messages), messages
    assert train.class_names == ("dancing_gangnam_style", "passing_American_football_in_game",
                                 "tying_tie")
    assert set(train.names) == {n for n in tones if "_000030_" not in n}
    assert "tying_tie/yt00-_x_000000_000010" in train.names
    for clip, name, label in zip(train.clips, train.names, train.labels, strict=True):
        assert train.class_names[label] == name.split("/")[0]
        assert_video(clip, tones[name], list(range(8)))
    test = load_kinetics400(root, "test", frames=8, size=16, progress=False)
    assert test.name == "kinetics400/test" and len(test) == 3  # the val clips


def test_kinetics400_layout_errors(k400, tmp_path):
    root, _ = k400
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"no annotation file train\.csv in .*; "
                       r"expected layout: <root>/train\.csv and <root>/val\.csv"):
        check_kinetics400(tmp_path / "empty")
    shutil.rmtree(root / "val")
    with pytest.raises(DatasetNotFoundError, match=r"val is missing"):
        check_kinetics400(root)
    (root / "val").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"3 of 3 videos listed in .*val\.csv have no "
                       r"file"):
        check_kinetics400(root)
    (root / "train.csv").write_text("label,youtube_id,start\n")
    with pytest.raises(DatasetNotFoundError, match=r"lacks columns \['time_start', 'time_end'\]"):
        check_kinetics400(root)


# --- fedvssl-clients ------------------------------------------------------------------------


def write_clients(folder: Path, clients: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, names in enumerate(clients, 1):
        (folder / f"client_dist{i}.json").write_text(json.dumps(
            [{"name": n, "label": 7} for n in names]))
    return folder


NAMES = ("tying_tie/a_000000_000010", "tying_tie/b_000010_000020", "juggling/c_000000_000010",
         "juggling/d_000005_000015", "surfing/e_000001_000011")


def test_fedvssl_clients_gives_each_client_exactly_its_file(tmp_path):
    labels = np.array([0, 0, 1, 1, 2])
    folder = write_clients(tmp_path / "dist", [
        [NAMES[4], NAMES[0]], [NAMES[2]], [NAMES[1], f"{NAMES[3]}.mp4", "gone/x_000000_000010"]])
    config = {"client-dist-dir": str(folder)}
    with pytest.warns(UserWarning, match=r"fedvssl-clients: 1 of the 6 samples named in the 3 "
                      r"client files .* left out: e\.g\. \['gone/x_000000_000010'\]"):
        parts = partition_with("fedvssl-clients", labels, 3, seed=0, names=NAMES,
                               run_config=config)
    assert [p.tolist() for p in parts] == [[0, 4], [2], [1, 3]]
    assert all(p.dtype == np.int64 for p in parts)
    with pytest.raises(ValueError, match=r"holds 3 client files \(client_dist1\.json \.\. "
                       r"client_dist3\.json\), so the fedvssl-clients partitioner needs 3 "
                       r"clients; got 4 \(run with --num-supernodes 3\)"):
        partition_with("fedvssl-clients", labels, 4, seed=0, names=NAMES, run_config=config)
    with pytest.raises(ValueError, match="needs a name per sample"):
        partition_with("fedvssl-clients", labels, 3, seed=0, run_config=config)
    # the other partitioners never see names
    assert len(partition_with("iid", labels, 2, seed=0, names=NAMES, run_config={})) == 2


def test_fedvssl_clients_file_errors(tmp_path):
    labels = np.zeros(len(NAMES), dtype=np.int64)
    folder = write_clients(tmp_path / "gap", [[NAMES[0]], [NAMES[1]]])
    (folder / "client_dist2.json").rename(folder / "client_dist3.json")
    for directory, says in [
        ("", "client-dist-dir, which is empty"),
        (str(tmp_path / "nowhere"), "is not a directory"),
        (str(folder), "holds 2 client files but not client_dist2.json"),
    ]:
        with pytest.raises(ValueError, match=says):
            partition_with("fedvssl-clients", labels, 2, seed=0, names=NAMES,
                           run_config={"client-dist-dir": directory})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"label": 3}]))
    with pytest.raises(ValueError, match=r"entry 0 is not an object with a string \"name\""):
        read_client_dist(bad)


def test_the_video_data_hands_the_names_to_the_partitioner(tmp_path):
    data = VideoArrays(np.zeros((5, 4, 8, 8, 3), dtype=np.uint8), np.array([0, 0, 1, 1, 2]), 3,
                       "toy/train", names=NAMES)
    folder = write_clients(tmp_path / "dist", [[NAMES[1], NAMES[2]], [NAMES[4]]])
    cfg = RunConfig(task="video-ssl", dataset="kinetics400", partitioner="fedvssl-clients",
                    client_dist_dir=str(folder))
    shared = PartitionedData(lambda c: (c.dataset,), lambda key, split: data)
    assert [p.tolist() for p in shared.partition_indices(cfg, 2)] == [[1, 2], [4]]
    assert shared.partition(cfg, 0, 2).names == (NAMES[1], NAMES[2])


def test_the_config_check_knows_the_video_datasets(k400, tmp_path):
    root, _ = k400
    base = {"task": "video-ssl", "model": "r3d-tiny", "ssl-method": "vcop"}
    for name in ("ucf101", "hmdb51", "kinetics400"):
        tags = DATASET_REGISTRY.tags(name)
        assert (tags["modality"], tags["local_files"], tags["names"], tags["frames"]) == (
            "video", True, True, "video-frames")
    assert DATASET_REGISTRY.names(modality="video") == VIDEO_DATASETS
    with pytest.raises(ConfigError, match="partitioner='fedvssl-clients' assigns samples by "
                       "name, which only the datasets ucf101, hmdb51, kinetics400 carry"):
        validate(RunConfig.from_run_config({**base, "dataset": "motion-digits",
                                            "partitioner": "fedvssl-clients"}))
    with pytest.raises(ConfigError, match="client-dist-dir, which is empty"):
        validate(RunConfig.from_run_config({**base, "dataset": "kinetics400",
                                            "data-dir": str(root),
                                            "partitioner": "fedvssl-clients"}))
    folder = write_clients(tmp_path / "dist", [[NAMES[0]], [NAMES[1]]])
    validate(RunConfig.from_run_config({**base, "dataset": "kinetics400", "data-dir": str(root),
                                        "partitioner": "fedvssl-clients",
                                        "client-dist-dir": str(folder)}))
    cfg = RunConfig.from_run_config({**base, "dataset": "ucf101", "clip-frames": 32,
                                     "video-frames": 16})
    assert check_video_ssl(cfg) == ["clip-frames=32 is longer than the 16-frame videos of "
                                    "dataset='ucf101' (decoded with video-frames=16; raise it)"]


def test_the_loader_entry_point_and_the_cheap_check(ucf, k400):
    root, _ = ucf
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        data = load_video_dataset("ucf101", "train", data_dir=str(root), fold=2, frames=4,
                                  size=8)
    assert data.clips.shape == (4, 4, 8, 8, 3)
    assert load_video_dataset("ucf101", "train", data_dir=str(root), fold=2, frames=4,
                              size=8) is data  # memoised
    # A fresh interpreter: the checks (and the config check that calls them) decode nothing
    # and import no decoder, pandas or torch.
    probe = textwrap.dedent("""
        import json, sys
        from fedssl.compose import validate
        from fedssl.config import RunConfig
        from fedssl.datasets.video_loader import check_video_dataset
        check_video_dataset("ucf101", data_dir=sys.argv[1])
        validate(RunConfig(task="video-ssl", model="r3d-tiny", ssl_method="vcop",
                           dataset="kinetics400", data_dir=sys.argv[2]))
        heavy = ("torch", "pandas", "av", "sklearn", "torchvision", "cv2", "flwr")
        print(json.dumps([m for m in heavy if m in sys.modules]))
    """)
    done = subprocess.run([sys.executable, "-c", probe, str(root), str(k400[0])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
