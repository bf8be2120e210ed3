"""motion-digits has the properties its design wants (next-systems.md §1.8).

The class is the motion: single frames are uninformative, motion features from frame
differences are not; pairs are time reversals; test digits are never seen in training; the
cache is reused; the UCF-101 export reads back. Small configurations keep this fast.
"""

from __future__ import annotations

import dataclasses
import re
import sys

import numpy as np
import pytest

from fedssl.datasets import embedded
from fedssl.datasets import motion_digits as md

# 16 frames, 30 + 15 videos per class: renders in about 2 s.
SMALL = md.MotionDigitsConfig(num_frames=16, train_per_class=30, test_per_class=15)
TINY = md.MotionDigitsConfig(num_frames=8, train_per_class=2, test_per_class=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cache = tmp_path_factory.mktemp("motion-digits-cache")
    return {s: md.load_motion_digits(s, cache_dir=cache, config=SMALL) for s in md.SPLITS}


# ------------------------------------------------------------------ motion features


def _circular_centroid(weights: np.ndarray) -> np.ndarray:
    """``[..., 2]`` (x, y) centroid of ``[..., H, W]`` weights on a canvas that wraps."""
    side = weights.shape[-1]
    phase = np.exp(2j * np.pi * (np.arange(side) + 0.5) / side)
    x = np.angle((weights.sum(-2) * phase).sum(-1))
    y = np.angle((weights.sum(-1) * phase).sum(-1))
    return np.mod(np.stack([x, y], axis=-1) * side / (2 * np.pi), side)


def _wrapped(delta: np.ndarray, side: int) -> np.ndarray:
    return np.mod(delta + side / 2, side) - side / 2


def _trajectory_features(xy: np.ndarray, mass: np.ndarray, side: int) -> np.ndarray:
    """Mean and median velocity, turning (cross product of successive steps), relative growth
    of the mass, and velocity spread per axis: the statistics that separate the ten motions."""
    v = _wrapped(np.diff(xy, axis=0), side)
    cross = v[:-1, 0] * v[1:, 1] - v[:-1, 1] * v[1:, 0]
    growth = np.polyfit(np.arange(len(mass)), mass / (mass.mean() + 1e-6), 1)[0]
    return np.array([
        *v.mean(0), *np.median(v, 0), cross.mean(), np.median(cross), growth, *v.std(0),
        *np.abs(v).mean(0),
    ])


def _difference_features(clip: np.ndarray) -> np.ndarray:
    """Motion features from frame differences only: the moving parts are where consecutive
    frames differ, so the static background cancels."""
    grey = clip.astype(np.float32).mean(-1)
    energy = np.abs(np.diff(grey, axis=0))
    energy = np.maximum(energy - np.percentile(energy, 90, axis=(1, 2), keepdims=True), 0)
    return _trajectory_features(_circular_centroid(energy), energy.sum((1, 2)), clip.shape[2])


def _probe(train_x, train_y, test_x, test_y) -> float:
    """Test accuracy of a linear classifier (ridge: logistic regression on 3072 pixels takes
    ten times longer and scores the same)."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    model.fit(train_x, train_y)
    return float((model.predict(test_x) == test_y).mean())


def _actor_only(data: md.MotionDigits, split: str, config: md.MotionDigitsConfig) -> np.ndarray:
    """Re-render each video's actor alone (same generator, so the same trajectory)."""
    from sklearn.datasets import load_digits

    images = load_digits().images
    blank = np.zeros((16, config.canvas, config.canvas, 3), dtype=np.float32)
    split_index = md.SPLITS.index(split)
    return np.stack([
        md.render_video(
            int(label), images[actor], images[distractor], blank,
            np.random.default_rng([config.seed, split_index, i]),
            num_frames=config.num_frames, nuisances=False,
        )[0]
        for i, (label, actor, distractor) in enumerate(
            zip(data.labels, data.digit_ids, data.distractor_ids, strict=True)
        )
    ])


# ------------------------------------------------------------------ configuration and counts


def test_default_config_is_the_designed_dataset():
    config = md.MotionDigitsConfig()
    assert (config.canvas, config.num_frames) == (32, 64)
    assert (config.per_class("train"), config.per_class("test")) == (100, 30)
    assert md.NUM_CLASSES == len(md.CLASS_NAMES) == 10
    assert md.REVERSED_PAIR == {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("canvas", 15, "canvas must be an even number"),
        ("canvas", 33, "canvas must be an even number"),
        ("num_frames", 1, "num_frames must be >= 2"),
        ("train_per_class", 0, r"train_per_class must be in 1\.\.143"),
        ("test_per_class", 37, r"test_per_class must be in 1\.\.36"),
    ],
)
def test_bad_config_names_the_field_and_the_allowed_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        md.MotionDigitsConfig(**{field: value})


def test_bad_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'; got 'val'"):
        md.load_motion_digits("val", cache_dir=tmp_path, config=TINY)


def test_counts_shapes_and_class_balance(small):
    for split, data in small.items():
        n = SMALL.per_class(split) * md.NUM_CLASSES
        assert data.clips.shape == (n, 16, 32, 32, 3) and data.clips.dtype == np.uint8
        assert data.labels.dtype == np.int64
        np.testing.assert_array_equal(data.labels, np.arange(n) % md.NUM_CLASSES)
        assert np.bincount(data.labels).tolist() == [SMALL.per_class(split)] * md.NUM_CLASSES
        assert data.actor_xy.shape == (n, 16, 2) and data.actor_size.shape == (n, 16)
        assert data.name == f"motion-digits/{split}" and data.class_names == md.CLASS_NAMES
        assert ((data.actor_xy >= 0) & (data.actor_xy < 32)).all()


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_bytes_and_another_seed_does_not():
    first, again = md.build_motion_digits(TINY), md.build_motion_digits(TINY)
    other = md.build_motion_digits(dataclasses.replace(TINY, seed=1))
    for split in md.SPLITS:
        for key, array in first[split].items():
            assert array.tobytes() == again[split][key].tobytes(), (split, key)
        assert first[split]["clips"].tobytes() != other[split]["clips"].tobytes()
        assert not np.array_equal(first[split]["digit_ids"], other[split]["digit_ids"])


# ------------------------------------------------------------------ digit images


def test_train_and_test_digit_images_are_disjoint(small):
    train, test = small["train"], small["test"]
    seen_in_training = set(train.digit_ids) | set(train.distractor_ids)
    assert seen_in_training.isdisjoint(set(test.digit_ids) | set(test.distractor_ids))
    # Each actor image is used once per split, and comes from embedded-digits' split.
    for data in (train, test):
        assert len(set(data.digit_ids)) == len(data)
    pools = md._digit_pools(1797)
    assert set(train.digit_ids) <= set(pools["train"]) and set(test.digit_ids) <= set(pools["test"])
    assert len(pools["train"]) == embedded.NUM_TRAIN_DIGITS


# ------------------------------------------------------------------ time-reversed pairs


@pytest.mark.parametrize("label", [0, 2, 4, 6])
def test_odd_class_trajectory_is_the_even_one_read_backwards(label):
    for seed in range(5):
        xy, size = md.actor_trajectory(label, 64, 32, np.random.default_rng(seed))
        back_xy, back_size = md.actor_trajectory(label + 1, 64, 32, np.random.default_rng(seed))
        np.testing.assert_array_equal(back_xy, xy[::-1])
        np.testing.assert_array_equal(back_size, size[::-1])


def test_pixels_follow_the_recorded_trajectory(small):
    data = small["test"]
    actor = _actor_only(data, "test", SMALL)
    weights = actor[..., 0].astype(np.float64)
    estimated = _circular_centroid(weights)
    error = np.abs(_wrapped(estimated - data.actor_xy, 32))
    # The digit's ink is not centred in its 8x8 box, so allow a small constant offset.
    assert np.median(error) < 1.0, np.median(error)


def test_a_reversed_clip_moves_like_its_pair_class(small):
    """Nearest class centroid of pixel motion features, fitted on forward clips: a clip of
    class c played backwards is classified as its pair (oscillations stay themselves)."""
    train, test = small["train"], small["test"]

    def features(clips):
        weights = clips[..., 0].astype(np.float64)
        return np.stack([
            _trajectory_features(_circular_centroid(w), w.sum((1, 2)), 32) for w in weights
        ])

    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), NearestCentroid())
    model.fit(features(_actor_only(train, "train", SMALL)), train.labels)
    test_clips = _actor_only(test, "test", SMALL)
    forward = model.predict(features(test_clips))
    backward = model.predict(features(test_clips[:, ::-1]))
    expected = np.array([md.REVERSED_PAIR.get(int(c), int(c)) for c in test.labels])
    assert (forward == test.labels).mean() > 0.8, (forward == test.labels).mean()
    assert (backward == expected).mean() > 0.8, (backward == expected).mean()
    # Per class: mostly the pair, (almost) never itself. Over 16 frames a slow circle can
    # pass for a curved translation, so circles reach about 0.6, the others 1.0.
    for c in md.REVERSED_PAIR:
        rows = test.labels == c
        assert (backward[rows] == md.REVERSED_PAIR[c]).mean() >= 0.5, md.CLASS_NAMES[c]
        assert (backward[rows] == c).mean() <= 0.1, md.CLASS_NAMES[c]


# ------------------------------------------------------------------ appearance vs motion


def test_single_frames_are_near_chance_and_frame_differences_are_not(small):
    train, test = small["train"], small["test"]
    middle = SMALL.num_frames // 2

    def frame(data):
        return data.clips[:, middle].reshape(len(data), -1) / 255.0

    single = _probe(frame(train), train.labels, frame(test), test.labels)

    def motion(data):
        return np.stack([_difference_features(np.asarray(clip)) for clip in data.clips])

    moving = _probe(motion(train), train.labels, motion(test), test.labels)
    # 150 test clips, chance 0.1: 0.25 is six standard errors above chance.
    assert single < 0.25, single
    assert moving > 0.4, moving
    assert moving > single + 0.2


# ------------------------------------------------------------------ cache


def test_second_load_reads_the_cache_without_rendering(tmp_path, monkeypatch):
    first = md.load_motion_digits("train", cache_dir=tmp_path, config=TINY)
    folder = md.motion_digits_cache_dir(TINY, tmp_path)
    assert folder.name.startswith(f"motion-digits-v{md.VERSION}-")
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert sorted(mtimes) == [
        "test_clips.npy", "test_meta.npz", "train_clips.npy", "train_meta.npz"
    ]

    def refuse(*_args, **_kwargs):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(md, "build_motion_digits", refuse)
    again = md.load_motion_digits("train", cache_dir=tmp_path, config=TINY)
    test = md.load_motion_digits("test", cache_dir=tmp_path, config=TINY)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    assert isinstance(again.clips, np.memmap) and not again.clips.flags.writeable
    np.testing.assert_array_equal(again.clips, first.clips)
    assert len(test) == TINY.per_class("test") * md.NUM_CLASSES
    assert not list(tmp_path.glob("*.tmp"))  # no temporary folder left behind


def test_another_config_or_version_uses_another_cache(monkeypatch):
    key = TINY.key()
    assert dataclasses.replace(TINY, seed=1).key() != key
    monkeypatch.setattr(md, "VERSION", md.VERSION + 1)
    assert TINY.key() != key
    monkeypatch.setitem(md._GEOMETRY, "noise_sigma", 0.0)
    monkeypatch.setattr(md, "VERSION", md.VERSION - 1)
    assert TINY.key() != key  # a changed rendering constant, same version


def test_a_damaged_cache_is_rebuilt(tmp_path):
    md.load_motion_digits("test", cache_dir=tmp_path, config=TINY)
    folder = md.motion_digits_cache_dir(TINY, tmp_path)
    (folder / "test_clips.npy").write_bytes(b"garbage")
    data = md.load_motion_digits("test", cache_dir=tmp_path, config=TINY)
    assert data.clips.shape == (10, 8, 32, 32, 3)


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSSL_CACHE_DIR", str(tmp_path))
    assert md.motion_digits_cache_dir(TINY).parent == tmp_path


# ------------------------------------------------------------------ UCF-101 export


def test_ucf_export_has_the_ucf_layout_and_reads_back(tmp_path):
    root = md.export_ucf_layout(tmp_path / "ucf", cache_dir=tmp_path / "cache", config=TINY)
    lists = root / "ucfTrainTestlist"

    class_ind = [line.split(" ") for line in (lists / "classInd.txt").read_text().splitlines()]
    assert [int(i) for i, _ in class_ind] == list(range(1, 11))
    assert [name for _, name in class_ind] == sorted(md.CLASS_NAMES)  # sorted, as torchvision
    index = {name: int(i) for i, name in class_ind}
    assert index == md.ucf_class_index()

    name = r"(?P<cls>[A-Za-z]+)/v_(?P=cls)_g(?P<g>\d\d)_c(?P<c>\d\d)\.avi"
    train = (lists / "trainlist01.txt").read_text().splitlines()
    test = (lists / "testlist01.txt").read_text().splitlines()
    assert len(train) == 20 and len(test) == 10
    for line in train:
        match = re.fullmatch(name + r" (?P<label>\d+)", line)
        assert match, line
        assert int(match["label"]) == index[match["cls"]]
        assert 8 <= int(match["g"]) <= 25
    for line in test:
        match = re.fullmatch(name, line)  # no label column
        assert match, line
        assert 1 <= int(match["g"]) <= 7
    listed = {line.split(" ")[0] for line in train + test}
    on_disk = {p.relative_to(root).as_posix() for p in root.glob("*/*.avi")}
    assert listed == on_disk and len(on_disk) == 30
    assert sorted(p.name for p in root.iterdir()) == sorted([*md.CLASS_NAMES, "ucfTrainTestlist"])

    av = pytest.importorskip("av")
    data = md.load_motion_digits("train", cache_dir=tmp_path / "cache", config=TINY)
    first = train[0].split(" ")[0]
    with av.open(str(root / first)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    label = md.CLASS_NAMES.index(first.split("/")[0])
    original = data.clips[np.flatnonzero(data.labels == label)[0]]
    assert frames.shape == original.shape == (8, 32, 32, 3)
    assert np.abs(frames.astype(float) - original).mean() < 12  # lossy, but the same video


def test_ucf_export_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        md.export_ucf_layout(tmp_path, cache_dir=tmp_path / "cache", config=TINY)


def test_ucf_export_without_pyav_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(ImportError, match="pip install av"):
        md.export_ucf_layout(tmp_path / "ucf", cache_dir=tmp_path / "cache", config=TINY)
