"""Video I/O (fedssl.datasets.video): every backend reads the frames that were encoded, by
index and in any order; corrupt files raise one typed error naming them; datasets skip them
with one warning; ``convert_tree`` / ``fedssl video-to-zip`` mirror a tree into frame zips.

The videos are written in the test with PyAV: 20 frames of 32x32 with a square moving one
pixel per frame and a background brightening with time, so every frame differs from the
others by far more than the codecs' error.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fedssl.cli import main
from fedssl.datasets.base import CorruptDataError, DatasetNotFoundError
from fedssl.datasets.video import (
    VIDEO_BACKENDS,
    CorruptVideoError,
    FrameZipSource,
    convert_tree,
    open_video,
    parse_size,
    probe_videos,
    torchcodec_available,
    write_frame_zip,
)
from fedssl.datasets.video.frame_zip import FRAME_NAME, META_NAME
from fedssl.datasets.video.pyav_source import PyAVSource

NUM_FRAMES, SIDE, FPS = 20, 32, 25
# Mean absolute error (0..255) a decoded frame may have against the frame encoded, and a
# JPEG of a decoded frame (a converted zip, both errors added); the nearest other frame is
# further than either (checked in test_the_test_frames_are_far_apart).
TOLERANCE = 6.5
TWICE_ENCODED_TOLERANCE = 9.5
# (suffix, codec, options): MPEG-4 Part 2 in AVI, H.264 (with B-frames) in MP4 and MKV.
FORMATS = [(".avi", "mpeg4", {}), (".mp4", "libx264", {"g": "6", "bf": "2"}),
           (".mkv", "libx264", {"g": "6", "bf": "2"})]
OUT_OF_ORDER = [13, 2, 19, 0, 7, 7, 18, 5, 12, 1]


def clip_frames(n: int = NUM_FRAMES) -> np.ndarray:
    frames = np.empty((n, SIDE, SIDE, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = (20 + 11 * i, 220 - 9 * i, 40 + 8 * i)
        frames[i, 10:18, i:i + 8] = (250, 230, 20)
    return frames


def write_video(path: Path, codec: str = "mpeg4", options: dict | None = None,
                n: int = NUM_FRAMES) -> np.ndarray:
    frames = clip_frames(n)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.gop_size, stream.bit_rate = 6, 2_000_000
        stream.options = {**(options or {})}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return frames


def _re(path: Path) -> str:
    """``path`` as a regular expression matching it literally."""
    return re.escape(str(path))


def assert_frames(got: np.ndarray, indices: list[int], encoded: np.ndarray,
                  tolerance: float = TOLERANCE) -> None:
    """Each returned frame is closest to the frame asked for, and within ``tolerance``."""
    assert got.shape == (len(indices), SIDE, SIDE, 3) and got.dtype == np.uint8
    for frame, i in zip(got, indices, strict=True):
        errors = np.abs(encoded.astype(np.int16) - frame.astype(np.int16)).mean(axis=(1, 2, 3))
        assert int(errors.argmin()) == i, (i, errors.round(1))
        assert errors[i] < tolerance, (i, errors[i])


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    for suffix, codec, options in FORMATS:
        paths[suffix] = root / f"clip{suffix}"
        write_video(paths[suffix], codec, options)
    return paths


def test_the_test_frames_are_far_apart():
    frames = clip_frames().astype(np.int16)
    gaps = [np.abs(frames[i] - frames[j]).mean() for i in range(NUM_FRAMES)
            for j in range(NUM_FRAMES) if i != j]
    assert min(gaps) > TWICE_ENCODED_TOLERANCE


# --- PyAV -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [f[0] for f in FORMATS])
def test_pyav_reads_frames_by_index_in_any_order(videos, suffix):
    encoded = clip_frames()
    with open_video(videos[suffix]) as video:
        assert isinstance(video, PyAVSource) and video.backend == "pyav"
        assert (video.num_frames, len(video), video.fps) == (NUM_FRAMES, NUM_FRAMES, FPS)
        assert_frames(video.read(OUT_OF_ORDER), OUT_OF_ORDER, encoded)
        # Again, backwards one at a time (every read seeks back), then a sequential pass.
        for i in reversed(range(NUM_FRAMES)):
            assert_frames(video.read([i]), [i], encoded)
        assert_frames(np.stack(list(video.frames())), list(range(NUM_FRAMES)), encoded)
        assert video.read([]).shape == (0, SIDE, SIDE, 3)


def test_pyav_cache_returns_the_same_frames(videos):
    with open_video(videos[".mp4"]) as video:
        first = video.read([4, 11])
        assert set(video._cache) >= {4, 11}
        np.testing.assert_array_equal(video.read([11, 4]), first[::-1])
    small = PyAVSource(videos[".mp4"], cache_bytes=1)  # keeps one frame
    small.read([3, 9, 15])
    assert list(small._cache) == [15]
    small.close()


def test_a_pickled_source_reopens_its_file(videos):
    for path in (videos[".avi"], videos[".mp4"]):
        with open_video(path) as video:
            video.read([3])
            copy = pickle.loads(pickle.dumps(video))
        assert_frames(copy.read([17, 3]), [17, 3], clip_frames())
        copy.close()


def test_out_of_range_indices_name_the_range(videos):
    with open_video(videos[".avi"]) as video:
        with pytest.raises(IndexError, match=r"\[0, 20\).*\[20\]"):
            video.read([0, 20])
        with pytest.raises(IndexError, match=r"\[-1\]"):
            video.read([-1])
        with pytest.raises(TypeError, match="integers"):
            video.read([1.5])


# --- frame zips -----------------------------------------------------------------------------


def test_frame_zip_round_trip(tmp_path):
    encoded = clip_frames()
    path = tmp_path / "clip.zip"
    assert write_frame_zip(encoded, path, quality=95, fps=FPS) == NUM_FRAMES
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    assert names[:2] == ["img_00001.jpg", "img_00002.jpg"] and META_NAME in names
    with open_video(path) as video:
        assert isinstance(video, FrameZipSource)
        assert (video.num_frames, video.fps) == (NUM_FRAMES, FPS)
        assert_frames(video.read(OUT_OF_ORDER), OUT_OF_ORDER, encoded)
        copy = pickle.loads(pickle.dumps(video))
    assert_frames(copy.read([19, 0]), [19, 0], encoded)
    assert not list(tmp_path.glob("*.partial"))


def test_frame_zip_in_ctp_layout_without_metadata(tmp_path):
    """A zip as CtP's scripts write it (no video.json): frames count, fps is unknown."""
    encoded = clip_frames(5)
    path = tmp_path / "RGB_frames.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, frame in enumerate(encoded):
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="JPEG", quality=95)
            zf.writestr(FRAME_NAME.format(i + 1), buf.getvalue())
    video = open_video(path, "frame-zip")
    assert (video.num_frames, video.fps) == (5, None)
    assert np.abs(video.read([4]).astype(int) - encoded[4]).mean() < TOLERANCE


def test_frame_zip_resizes_to_width_by_height(tmp_path):
    path = tmp_path / "small.zip"
    write_frame_zip(clip_frames(3), path, quality=90, size=(16, 8))
    assert open_video(path).read([0, 2]).shape == (2, 8, 16, 3)
    with pytest.raises(ValueError, match=r"quality must be a JPEG quality in 1..100; got 0"):
        write_frame_zip(clip_frames(1), tmp_path / "q.zip", quality=0)


# --- corrupt files --------------------------------------------------------------------------


def _truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("fraction", [0.5, 0.9])
@pytest.mark.parametrize("suffix", [f[0] for f in FORMATS])
def test_a_truncated_video_is_a_corrupt_video_error_naming_it(videos, tmp_path, suffix,
                                                               fraction):
    bad = _truncate(videos[suffix], tmp_path / f"cut{suffix}", fraction)
    with pytest.raises(CorruptVideoError, match=f"cannot decode video {_re(bad)}: .+") as err:
        open_video(bad)
    assert err.value.path == str(bad) and err.value.reason
    assert isinstance(err.value, ValueError) and isinstance(err.value, CorruptDataError)


@pytest.mark.parametrize("name", ["garbage.mp4", "garbage.avi", "garbage.zip", "empty.mkv"])
def test_a_garbage_or_empty_file_is_a_corrupt_video_error(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(b"" if name.startswith("empty") else
                    np.random.default_rng(0).bytes(4000))
    with pytest.raises(CorruptVideoError, match=f"cannot decode video {_re(bad)}: "):
        open_video(bad)


def test_a_broken_frame_zip_names_the_member(tmp_path):
    path = tmp_path / "gap.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(FRAME_NAME.format(1), b"not a jpeg")
        zf.writestr(FRAME_NAME.format(3), b"not a jpeg")
    with pytest.raises(CorruptVideoError, match=r"img_00002.jpg is missing"):
        open_video(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(FRAME_NAME.format(1), b"not a jpeg")
    with pytest.raises(CorruptVideoError, match=r"gap.zip: member img_00001.jpg is not a "):
        open_video(path).read([0])
    truncated = _truncate(path, tmp_path / "cut.zip", 0.7)
    with pytest.raises(CorruptVideoError, match="not a readable zip"):
        open_video(truncated)


def test_open_video_errors_name_the_backends_and_the_file(videos, tmp_path):
    with pytest.raises(ValueError, match="one of 'auto', 'pyav', 'frame-zip', 'torchcodec'; "
                                         "got 'decord'"):
        open_video(videos[".avi"], "decord")
    with pytest.raises(DatasetNotFoundError, match=r"nope.avi does not exist"):
        open_video(tmp_path / "nope.avi")
    with pytest.raises(CorruptVideoError, match="not a readable zip"):
        open_video(videos[".avi"], "frame-zip")
    assert set(VIDEO_BACKENDS) == {"pyav", "frame-zip", "torchcodec"}


def test_probe_skips_bad_files_with_one_warning(videos, tmp_path):
    bad = [_truncate(videos[".mp4"], tmp_path / "cut.mp4"), tmp_path / "junk.avi"]
    bad[1].write_bytes(b"RIFF....AVI junk")
    paths = [videos[".avi"], bad[0], videos[".mkv"], bad[1]]
    with pytest.warns(UserWarning) as record:
        infos, skipped = probe_videos(paths, where=tmp_path)
    assert len(record) == 1
    message = str(record[0].message)
    assert f"{tmp_path}: skipped 2 of 4 video files that cannot be decoded" in message
    assert str(bad[0]) in message and str(bad[1]) in message
    assert skipped == tuple(str(p) for p in bad)
    assert [(i.path, i.num_frames, i.fps) for i in infos] == [
        (videos[".avi"], NUM_FRAMES, FPS), (videos[".mkv"], NUM_FRAMES, FPS)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(probe_videos([videos[".mp4"]], where=tmp_path)[0]) == 1


def test_probe_raises_where_it_looked_when_every_file_is_bad(tmp_path):
    for name in ("a.mp4", "b.avi"):
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(CorruptDataError, match=f"none of the 2 video files in {_re(tmp_path)} "
                                               r"can be decoded: .*a.mp4 \("):
        probe_videos(sorted(tmp_path.iterdir()), where=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=f"no video files found in {_re(tmp_path)}"):
        probe_videos([], where=tmp_path)


# --- conversion -----------------------------------------------------------------------------


@pytest.fixture
def tree(videos, tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "Jump").mkdir(parents=True)
    (src / "Run" / "deep").mkdir(parents=True)
    (src / "Jump" / "v_Jump_g01_c01.avi").write_bytes(videos[".avi"].read_bytes())
    (src / "Run" / "v_Run_g01_c01.mp4").write_bytes(videos[".mp4"].read_bytes())
    (src / "Run" / "deep" / "clip.mkv").write_bytes(videos[".mkv"].read_bytes())
    _truncate(videos[".mp4"], src / "Run" / "broken.mp4")
    (src / "notes.txt").write_text("not a video")
    return src


def test_convert_tree_mirrors_skips_the_corrupt_one_and_is_idempotent(tree, tmp_path):
    dst = tmp_path / "zips"
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 video files .*broken.mp4") as record:
        report = convert_tree(tree, dst, quality=95, workers=1, progress=False)
    assert len(record) == 1
    zips = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    assert zips == ["Jump/v_Jump_g01_c01.zip", "Run/deep/clip.zip", "Run/v_Run_g01_c01.zip"]
    assert sorted(report.converted) == ["Jump/v_Jump_g01_c01.avi", "Run/deep/clip.mkv",
                                        "Run/v_Run_g01_c01.mp4"]
    assert list(report.skipped) == [str(tree / "Run" / "broken.mp4")]
    assert report.frames == 3 * NUM_FRAMES and report.up_to_date == ()
    with open_video(dst / "Run" / "v_Run_g01_c01.zip") as video:
        assert (video.num_frames, video.fps) == (NUM_FRAMES, FPS)
        # A JPEG of a decoded frame: both errors add up, still far from the next frame.
        assert_frames(video.read(OUT_OF_ORDER), OUT_OF_ORDER, clip_frames(),
                      TWICE_ENCODED_TOLERANCE)
    # Again: nothing is rewritten.
    stamp = {p: p.stat().st_mtime_ns for p in dst.rglob("*.zip")}
    with pytest.warns(UserWarning, match="broken.mp4"):
        again = convert_tree(tree, dst, quality=95, progress=False)
    assert again.converted == () and len(again.up_to_date) == 3 and again.frames == 0
    assert stamp == {p: p.stat().st_mtime_ns for p in dst.rglob("*.zip")}
    # A zip cut short is made again, and so are zips of other settings.
    _truncate(dst / "Jump" / "v_Jump_g01_c01.zip", dst / "Jump" / "v_Jump_g01_c01.zip", 0.6)
    with pytest.warns(UserWarning):
        third = convert_tree(tree, dst, quality=95, progress=False)
    assert third.converted == ("Jump/v_Jump_g01_c01.avi",)
    with pytest.warns(UserWarning):
        resized = convert_tree(tree, dst, quality=80, size=(16, 16), workers=2, progress=False)
    assert len(resized.converted) == 3
    assert open_video(dst / "Run" / "deep" / "clip.zip").read([0]).shape == (1, 16, 16, 3)


def test_convert_tree_errors(tree, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"video folder .*missing does not exist"):
        convert_tree(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"no video files \(.avi, .mp4"):
        convert_tree(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match=r"quality must be a JPEG quality in 1..100; got 101"):
        convert_tree(tree, tmp_path / "out", quality=101)
    (tree / "Jump" / "v_Jump_g01_c01.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match=r"would both be converted to .*v_Jump_g01_c01.zip"):
        convert_tree(tree, tmp_path / "out")
    bad = (tmp_path / "bad").resolve()
    bad.mkdir()
    (bad / "x.avi").write_bytes(b"junk")
    with pytest.raises(CorruptDataError, match=f"none of the 1 video files in {_re(bad)}"):
        convert_tree(bad, tmp_path / "out", progress=False)
    assert parse_size("171x128") == (171, 128)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("128")


# --- the CLI --------------------------------------------------------------------------------


def test_cli_video_to_zip(tree, tmp_path, capsys):
    dst = tmp_path / "cli-zips"
    assert main(["video-to-zip", str(tree), str(dst), "--quality", "85", "--size", "24x16",
                 "-q"]) == 0
    out, err = capsys.readouterr()
    assert "3 videos converted (60 frames" in out and "1 skipped as corrupt" in out
    assert "warning: " in err and "broken.mp4" in err
    assert open_video(dst / "Jump" / "v_Jump_g01_c01.zip").read([1]).shape == (1, 16, 24, 3)
    assert main(["video-to-zip", str(tree), str(dst), "--quality", "85", "--size", "24x16",
                 "-q"]) == 0
    assert "0 videos converted" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "says"), [
    (["{tmp}/nope", "{tmp}/out"], "video folder {tmp}/nope does not exist"),
    (["{tmp}", "{tmp}/out", "--size", "big"], "size must be WIDTHxHEIGHT"),
    (["{tmp}", "{tmp}/out", "--quality", "0"], "quality must be a JPEG quality"),
    (["{tmp}", "{tmp}/out"], "no video files"),
])
def test_cli_video_to_zip_errors_exit_2_without_traceback(tmp_path, capsys, args, says):
    assert main(["video-to-zip", *(a.format(tmp=tmp_path) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedssl: video-to-zip: ") and says.format(tmp=tmp_path) in err
    assert "Traceback" not in err


def test_the_cli_and_a_config_error_import_no_pyav():
    probe = textwrap.dedent("""
        import contextlib, io, json, sys
        import fedssl.cli
        with contextlib.redirect_stderr(io.StringIO()):
            rc = fedssl.cli.main(["run", "lr=banana"])
        print(json.dumps({"rc": rc, "av": "av" in sys.modules}))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"rc": 2, "av": False}


# --- torchcodec (optional) ------------------------------------------------------------------

TORCHCODEC = torchcodec_available()


def test_torchcodec_capability_says_why_not():
    assert isinstance(TORCHCODEC.available, bool)
    assert bool(TORCHCODEC) == TORCHCODEC.available
    assert TORCHCODEC.available or "torchcodec" in TORCHCODEC.reason


def test_torchcodec_backend_refuses_clearly_when_unavailable(videos):
    if TORCHCODEC:
        pytest.skip("torchcodec works here")
    with pytest.raises(RuntimeError, match=r"video backend 'torchcodec' is unavailable: .*pyav"):
        open_video(videos[".mp4"], "torchcodec")


@pytest.mark.skipif(not TORCHCODEC, reason=f"torchcodec unavailable: {TORCHCODEC.reason}")
@pytest.mark.parametrize("suffix", [f[0] for f in FORMATS])
def test_torchcodec_reads_frames_by_index(videos, suffix):
    with open_video(videos[suffix], "torchcodec") as video:
        assert (video.num_frames, video.fps) == (NUM_FRAMES, FPS)
        assert_frames(video.read(OUT_OF_ORDER), OUT_OF_ORDER, clip_frames())


def test_importing_the_package_imports_no_decoder():
    probe = ("import sys, fedssl.datasets.video; "
             "print(sorted(m for m in ('av', 'torch', 'torchcodec') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
