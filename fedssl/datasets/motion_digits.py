"""``motion-digits``: an embedded video dataset where the class is a motion, not an appearance.

Design: ``next-systems.md`` §1.8. Each video is ``num_frames`` RGB frames of ``canvas`` x
``canvas`` pixels (64 x 32 x 32 by default) showing one real handwritten digit (the *actor*,
from scikit-learn's bundled ``load_digits``) moving over a still photo background. The label
is the actor's motion; everything else is a nuisance drawn at random per video:

====  =====================  ============================================================
 id   name                   motion
====  =====================  ============================================================
 0    TranslateRight         constant speed 0.5-1.5 px/frame, wrapping around the canvas
 1    TranslateLeft          time reversal of 0
 2    TranslateDown          as 0, vertically
 3    TranslateUp            time reversal of 2
 4    CircleClockwise        radius 5-9 px, 0.08-0.2 rad/frame, random phase
 5    CircleAnticlockwise    time reversal of 4
 6    ZoomIn                 scale 0.7 -> 1.4 of the actor's size, geometric in time
 7    ZoomOut                time reversal of 6
 8    OscillateHorizontal    sine, period 16-32 frames, amplitude 5-9 px, random phase
 9    OscillateVertical      as 8, vertically
====  =====================  ============================================================

Classes 1, 3, 5 and 7 are built as the time reversal of their even partner: the same
parameter draws, the trajectory read backwards. So a bag of frames cannot tell a pair apart.

Nuisances: the digit image and its colour (each channel in [0.5, 1]) and side (10-14 px);
the actor's position (uniform on the canvas at every frame: positions wrap around the
edges, as OpenCV's ``BORDER_WRAP``, for every class); the background (one of a bank of 16
random crops of scikit-learn's two sample photographs, shared by all classes, times a gain
in [0.4, 0.8]); a global brightness flicker of +-5 % at a low random frequency; Gaussian
noise of sigma 0.03; and a *distractor*, a smaller (8 px) dimmer digit on a damped random
walk, a motion that belongs to no class. Lengths are given for the 32-pixel canvas and
scale with ``canvas``.

Train and test use disjoint digit images (actor and distractor alike): the fixed split of
``embedded-digits`` (1437 train / 360 test images). Every actor image is used once per
split. Videos are in class-interleaved order (video ``i`` has label ``i % 10``).

Nothing ships: both splits are rendered on first use (about 10 ms per video) into
:func:`fedssl.datasets.base.default_cache_dir` and read back (memory-mapped) afterwards. The
cache name holds :data:`VERSION` and a hash of the configuration and the rendering
constants, so a changed generator never reads a stale cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fedssl.datasets import embedded
from fedssl.datasets.base import default_cache_dir

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "REVERSED_PAIR",
    "SPLITS",
    "VERSION",
    "MotionDigits",
    "MotionDigitsConfig",
    "actor_trajectory",
    "build_motion_digits",
    "export_ucf_layout",
    "load_motion_digits",
    "motion_digits_cache_dir",
    "render_video",
    "ucf_class_index",
]

# Bump when the rendering code changes (the constants below are hashed in automatically).
VERSION = 1
CLASS_NAMES = (
    "TranslateRight",
    "TranslateLeft",
    "TranslateDown",
    "TranslateUp",
    "CircleClockwise",
    "CircleAnticlockwise",
    "ZoomIn",
    "ZoomOut",
    "OscillateHorizontal",
    "OscillateVertical",
)
NUM_CLASSES = len(CLASS_NAMES)
# Each class of a time-reversed pair maps to the other; the oscillations have no pair.
REVERSED_PAIR = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6}
SPLITS = ("train", "test")

# Rendering constants, in pixels of a 32-pixel canvas (scaled by canvas / 32) and frames.
_GEOMETRY: dict[str, tuple[float, float] | float] = {
    "actor_size": (10.0, 14.0),
    "actor_colour": (0.5, 1.0),
    "distractor_size": 8.0,
    "distractor_colour": (0.2, 0.45),
    "distractor_damping": 0.9,  # velocity kept per frame
    "distractor_kick": 0.3,  # sigma of the per-frame velocity change, px/frame
    "background_gain": (0.4, 0.8),
    "flicker": 0.05,  # relative amplitude of the global brightness flicker
    "flicker_frequency": (0.005, 0.03),  # cycles per frame
    "noise_sigma": 0.03,  # on the 0..1 scale
    "speed": (0.5, 1.5),  # px/frame
    "radius": (5.0, 9.0),
    "angular_speed": (0.08, 0.2),  # rad/frame
    "zoom": (0.7, 1.4),
    "period": (16.0, 32.0),  # frames
    "amplitude": (5.0, 9.0),
}
_DIGIT_SIDE = 8  # scikit-learn's digits are 8x8 with values 0..16
_REFERENCE_CANVAS = 32


@dataclass(frozen=True)
class MotionDigitsConfig:
    """What to render; the defaults are the dataset of ``next-systems.md`` §1.8.

    Parameters
    ----------
    canvas : int
        Frame side in pixels (32 by default; 48 and 64 are the designed options).
    num_frames : int
        Frames per video; 64 leaves room for VCOP (3 x 16 + 2 x 8) and Speed at stride 4.
    train_per_class, test_per_class : int
        Videos per class in each split (100 and 30: 1000 train, 300 test videos). Each video
        has its own actor image, so at most 143 and 36 (the split's 1437 and 360 images).
    seed : int
        Seed of every random choice; the digit split itself is the fixed one of
        ``embedded-digits``.
    """

    canvas: int = 32
    num_frames: int = 64
    train_per_class: int = 100
    test_per_class: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if self.canvas < 16 or self.canvas % 2:
            raise ValueError(f"canvas must be an even number >= 16 pixels; got {self.canvas}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2; got {self.num_frames}")
        pools = _pool_sizes()
        for split in SPLITS:
            count = getattr(self, f"{split}_per_class")
            most = pools[split] // NUM_CLASSES
            if not 1 <= count <= most:
                raise ValueError(
                    f"{split}_per_class must be in 1..{most} (each video gets its own of the "
                    f"{pools[split]} {split} digit images); got {count}"
                )

    def per_class(self, split: str) -> int:
        """Videos per class in ``split``."""
        return int(getattr(self, f"{_check_split(split)}_per_class"))

    def key(self) -> str:
        """Short hash of this configuration, :data:`VERSION` and the rendering constants."""
        text = json.dumps(
            {"version": VERSION, "config": dataclasses.asdict(self), "geometry": _GEOMETRY},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# eq=False: field-wise == / hash on numpy arrays is ambiguous; compare by identity instead.
@dataclass(frozen=True, eq=False)
class MotionDigits:
    """One split of ``motion-digits``.

    Attributes
    ----------
    clips : np.ndarray
        ``uint8 [N, T, H, W, 3]`` RGB videos (read-only and memory-mapped when loaded
        from the cache).
    labels : np.ndarray
        ``int64 [N]`` motion classes, ``CLASS_NAMES[label]``.
    digit_ids : np.ndarray
        ``int64 [N]`` the actor's image: an index into ``sklearn.datasets.load_digits()``.
    distractor_ids : np.ndarray
        ``int64 [N]`` the distractor's image, likewise.
    actor_xy : np.ndarray
        ``float32 [N, T, 2]`` the actor's centre (x, y) in pixels, wrapped into
        ``[0, canvas)``; pixel ``i`` covers ``[i, i + 1)``.
    actor_size : np.ndarray
        ``float32 [N, T]`` the actor's side in pixels.
    num_classes : int
        10.
    class_names : tuple of str
        The motion names, indexed by label.
    name : str
        ``"motion-digits/<split>"``.
    """

    clips: np.ndarray
    labels: np.ndarray
    digit_ids: np.ndarray
    distractor_ids: np.ndarray
    actor_xy: np.ndarray
    actor_size: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.clips.ndim != 5 or self.clips.shape[0] != n or self.clips.shape[-1] != 3:
            raise ValueError(
                f"clips must be uint8 [N, T, H, W, 3] with N = {n} labels; "
                f"got {self.clips.dtype} {self.clips.shape}"
            )
        if self.clips.dtype != np.uint8:
            raise ValueError(f"clips must be uint8; got {self.clips.dtype}")
        t = self.clips.shape[1]
        shapes = {
            "digit_ids": (n,), "distractor_ids": (n,), "actor_xy": (n, t, 2), "actor_size": (n, t)
        }
        for field, shape in shapes.items():
            if getattr(self, field).shape != shape:
                raise ValueError(
                    f"{field} must have shape {shape}; got {getattr(self, field).shape}"
                )

    def __len__(self) -> int:
        return len(self.labels)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    return split


def _pool_sizes() -> dict[str, int]:
    total = 1797  # len(load_digits().target); fixed by scikit-learn
    return {"train": embedded.NUM_TRAIN_DIGITS, "test": total - embedded.NUM_TRAIN_DIGITS}


def _digit_pools(num_digits: int) -> dict[str, np.ndarray]:
    """The digit images of each split: the fixed split of ``embedded-digits``."""
    order = np.random.default_rng(embedded.SEED).permutation(num_digits)
    return {"train": order[: embedded.NUM_TRAIN_DIGITS], "test": order[embedded.NUM_TRAIN_DIGITS :]}


def _background_bank(canvas: int, rng: np.random.Generator) -> np.ndarray:
    """``float32 [16, canvas, canvas, 3]`` in 0..1: random square crops of the sample photos.

    The crop sizes and count are those of ``embedded-digits``; only the output side differs.
    """
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in load_sample_images().images]
    bank = []
    for _ in range(embedded.NUM_BACKGROUNDS):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(embedded.CROP_SIDE[0], embedded.CROP_SIDE[1] + 1))
        top = int(rng.integers(0, photo.height - side + 1))
        left = int(rng.integers(0, photo.width - side + 1))
        box = (left, top, left + side, top + side)
        crop = photo.resize((canvas, canvas), Image.Resampling.BILINEAR, box=box)
        bank.append(np.asarray(crop, dtype=np.float32) / 255.0)
    return np.stack(bank)


def _uniform(rng: np.random.Generator, name: str, scale: float = 1.0) -> float:
    low, high = _GEOMETRY[name]  # type: ignore[misc]
    return float(rng.uniform(low, high)) * scale


def actor_trajectory(
    label: int, num_frames: int, canvas: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The actor's centre ``float32 [T, 2]`` (x, y, wrapped) and side ``float32 [T]``.

    A class of a reversed pair draws exactly what its even partner draws and reads the
    trajectory backwards, so the two have the same distribution of appearances and speeds.
    Screen coordinates: x to the right, y down (so "clockwise" is clockwise on screen).
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in 0..{NUM_CLASSES - 1}; got {label}")
    k = canvas / _REFERENCE_CANVAS
    t = np.arange(num_frames, dtype=np.float64)
    base = label - label % 2 if label in REVERSED_PAIR else label
    size = np.full(num_frames, _uniform(rng, "actor_size", k))
    centre = rng.uniform(0, canvas, size=2)
    xy = np.tile(centre, (num_frames, 1))
    if base in (0, 2):  # translate right / down
        xy[:, base // 2] += _uniform(rng, "speed", k) * t
    elif base == 4:  # clockwise circle (y down)
        radius = _uniform(rng, "radius", k)
        angle = rng.uniform(0, 2 * np.pi) + _uniform(rng, "angular_speed") * t
        xy += radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    elif base == 6:  # zoom in, geometric so the rate is constant
        low, high = _GEOMETRY["zoom"]  # type: ignore[misc]
        size *= low * (high / low) ** (t / (num_frames - 1))
    else:  # 8, 9: horizontal / vertical oscillation
        period = _uniform(rng, "period")
        amplitude = _uniform(rng, "amplitude", k)
        phase = rng.uniform(0, 2 * np.pi)
        xy[:, base - 8] += amplitude * np.sin(2 * np.pi * t / period + phase)
    if base != label:
        xy, size = xy[::-1], size[::-1]
    return np.mod(xy, canvas).astype(np.float32), size.astype(np.float32)


def _tent_weights(offset: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Bilinear weights ``[T, canvas, 8]`` of the digit's rows (or columns) for each pixel.

    ``offset`` is ``[T, canvas]``: each pixel centre's wrapped distance to the sprite centre.
    """
    coord = offset / size[:, None] * _DIGIT_SIDE + (_DIGIT_SIDE - 1) / 2
    taps = np.arange(_DIGIT_SIDE, dtype=np.float32)
    return np.maximum(0.0, 1.0 - np.abs(coord[..., None] - taps)).astype(np.float32)


def _sprite_mask(digit: np.ndarray, xy: np.ndarray, size: np.ndarray, canvas: int) -> np.ndarray:
    """``float32 [T, canvas, canvas]`` coverage (0..1) of an 8x8 digit drawn at ``xy``/``size``.

    Bilinear sampling is separable, so the sprite is ``rows @ digit @ cols.T`` per frame; the
    offsets wrap, so a sprite leaving one edge re-enters at the other.
    """
    centres = np.arange(canvas, dtype=np.float32) + 0.5
    half = canvas / 2
    dx = np.mod(centres[None, :] - xy[:, :1] + half, canvas) - half
    dy = np.mod(centres[None, :] - xy[:, 1:] + half, canvas) - half
    rows, cols = _tent_weights(dy, size), _tent_weights(dx, size)
    return np.clip((rows @ digit) @ cols.transpose(0, 2, 1), 0.0, 1.0)


def _distractor_path(num_frames: int, canvas: int, rng: np.random.Generator) -> np.ndarray:
    """A damped random walk ``[T, 2]``: velocity ``v <- damping * v + kick * N(0, 1)``."""
    k = canvas / _REFERENCE_CANVAS
    damping = float(_GEOMETRY["distractor_damping"])  # type: ignore[arg-type]
    kick = float(_GEOMETRY["distractor_kick"]) * k  # type: ignore[arg-type]
    velocity = np.zeros(2)
    steps = np.empty((num_frames, 2))
    for i, noise in enumerate(rng.standard_normal((num_frames, 2))):
        velocity = damping * velocity + kick * noise
        steps[i] = velocity
    steps[0] = 0.0
    return np.mod(rng.uniform(0, canvas, size=2) + np.cumsum(steps, axis=0), canvas)


def render_video(
    label: int,
    actor: np.ndarray,
    distractor: np.ndarray,
    backgrounds: np.ndarray,
    rng: np.random.Generator,
    *,
    num_frames: int,
    nuisances: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one video; returns ``(uint8 [T, H, W, 3], actor_xy [T, 2], actor_size [T])``.

    Parameters
    ----------
    label
        Motion class.
    actor, distractor
        8x8 digit images with values 0..16 (``load_digits().images``).
    backgrounds
        The background bank, ``float32 [B, H, W, 3]`` in 0..1.
    rng
        The video's generator; every draw comes from it, in a fixed order.
    num_frames
        Frames to render.
    nuisances
        False renders the actor alone in white on black (the same draws are made, so the
        trajectory equals the full video's): used to check the motion from pixels.
    """
    canvas = backgrounds.shape[1]
    k = canvas / _REFERENCE_CANVAS
    xy, size = actor_trajectory(label, num_frames, canvas, rng)
    colour = rng.uniform(*_GEOMETRY["actor_colour"], size=3).astype(np.float32)  # type: ignore[misc]
    background = backgrounds[rng.integers(len(backgrounds))] * _uniform(rng, "background_gain")
    d_xy = _distractor_path(num_frames, canvas, rng).astype(np.float32)
    d_size = np.full(num_frames, float(_GEOMETRY["distractor_size"]) * k, dtype=np.float32)  # type: ignore[arg-type]
    d_colour = rng.uniform(*_GEOMETRY["distractor_colour"], size=3).astype(np.float32)  # type: ignore[misc]
    flicker_frequency = _uniform(rng, "flicker_frequency")
    flicker_phase = rng.uniform(0, 2 * np.pi)
    noise = rng.standard_normal((num_frames, canvas, canvas, 3), dtype=np.float32)

    actor_mask = _sprite_mask(actor.astype(np.float32) / 16.0, xy, size, canvas)[..., None]
    if not nuisances:
        frames = np.broadcast_to(actor_mask, (*actor_mask.shape[:3], 3))
        return np.rint(frames * 255).astype(np.uint8), xy, size

    frames = np.broadcast_to(background, (num_frames, canvas, canvas, 3)).astype(np.float32)
    d_mask = _sprite_mask(distractor.astype(np.float32) / 16.0, d_xy, d_size, canvas)[..., None]
    frames += d_mask * (d_colour - frames)  # "over" compositing: distractor, then actor
    frames += actor_mask * (colour - frames)
    t = np.arange(num_frames, dtype=np.float32)
    gain = 1 + float(_GEOMETRY["flicker"]) * np.sin(  # type: ignore[arg-type]
        2 * np.pi * flicker_frequency * t + flicker_phase
    )
    frames *= gain[:, None, None, None].astype(np.float32)
    frames += float(_GEOMETRY["noise_sigma"]) * noise  # type: ignore[arg-type]
    return np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8), xy, size


def build_motion_digits(
    config: MotionDigitsConfig | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Render both splits; returns ``{split: {clips, labels, digit_ids, ...}}`` arrays.

    Video ``i`` of a split has label ``i % 10`` and is rendered from its own generator,
    ``default_rng([seed, split_index, i])``; the actor images are a draw without replacement
    from the split's images, the distractors a draw with replacement from them.
    """
    from sklearn.datasets import load_digits

    config = config or MotionDigitsConfig()
    images = load_digits().images
    pools = _digit_pools(len(images))
    backgrounds = _background_bank(config.canvas, np.random.default_rng([config.seed, 99]))
    out: dict[str, dict[str, np.ndarray]] = {}
    for split_index, split in enumerate(SPLITS):
        n = config.per_class(split) * NUM_CLASSES
        split_rng = np.random.default_rng([config.seed, split_index, 2**32 - 1])
        actors = split_rng.choice(pools[split], size=n, replace=False)
        distractors = split_rng.choice(pools[split], size=n, replace=True)
        labels = np.arange(n, dtype=np.int64) % NUM_CLASSES
        clips = np.empty((n, config.num_frames, config.canvas, config.canvas, 3), dtype=np.uint8)
        xys = np.empty((n, config.num_frames, 2), dtype=np.float32)
        sizes = np.empty((n, config.num_frames), dtype=np.float32)
        for i in range(n):
            rng = np.random.default_rng([config.seed, split_index, i])
            clips[i], xys[i], sizes[i] = render_video(
                int(labels[i]), images[actors[i]], images[distractors[i]], backgrounds, rng,
                num_frames=config.num_frames,
            )
        out[split] = {
            "clips": clips,
            "labels": labels,
            "digit_ids": actors.astype(np.int64),
            "distractor_ids": distractors.astype(np.int64),
            "actor_xy": xys,
            "actor_size": sizes,
        }
    return out


def motion_digits_cache_dir(
    config: MotionDigitsConfig | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The cache folder of ``config``: ``<cache_dir>/motion-digits-v<VERSION>-<hash>``."""
    config = config or MotionDigitsConfig()
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / f"motion-digits-v{VERSION}-{config.key()}"


def _cache_files(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"{split}_clips.npy", folder / f"{split}_meta.npz"


def _write_cache(folder: Path, arrays: dict[str, dict[str, np.ndarray]]) -> None:
    """Write every split into a temporary folder, then rename it into place in one step, so
    concurrent processes (simulated clients) never see a half-written cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name, suffix=".tmp", dir=folder.parent))
    try:
        for split, split_arrays in arrays.items():
            clips_path, meta_path = _cache_files(tmp, split)
            np.save(clips_path, split_arrays["clips"])
            np.savez(meta_path, **{k: v for k, v in split_arrays.items() if k != "clips"})
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700; the cache is meant to be shared
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not another process that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(folder: Path, split: str, mmap: bool) -> dict[str, np.ndarray] | None:
    clips_path, meta_path = _cache_files(folder, split)
    try:
        with np.load(meta_path) as meta:
            arrays = {k: meta[k] for k in meta.files}
        arrays["clips"] = np.load(clips_path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError):
        return None  # missing, partial or unreadable: rebuild
    return arrays


def load_motion_digits(
    split: str,
    *,
    cache_dir: str | Path | None = None,
    config: MotionDigitsConfig | None = None,
    mmap: bool = True,
) -> MotionDigits:
    """Load one split of ``motion-digits``, rendering and caching both splits on first use.

    Parameters
    ----------
    split : str
        ``"train"`` (1000 videos by default) or ``"test"`` (300).
    cache_dir : str or Path, optional
        Directory holding the cache folder; defaults to
        :func:`fedssl.datasets.base.default_cache_dir` (``$FEDSSL_CACHE_DIR`` or
        ``~/.cache/fedssl``).
    config : MotionDigitsConfig, optional
        What to render; defaults to ``MotionDigitsConfig()``.
    mmap : bool
        Memory-map the clips read-only (the default: processes on one machine share the
        pages); False reads them into memory.
    """
    _check_split(split)
    config = config or MotionDigitsConfig()
    folder = motion_digits_cache_dir(config, cache_dir)
    arrays = _read_cache(folder, split, mmap)
    if arrays is None:
        shutil.rmtree(folder, ignore_errors=True)  # a damaged cache is rebuilt
        _write_cache(folder, build_motion_digits(config))
        arrays = _read_cache(folder, split, mmap)
        if arrays is None:
            raise OSError(f"motion-digits: could not read back the cache just written in {folder}")
    return MotionDigits(
        clips=arrays["clips"],
        labels=arrays["labels"].astype(np.int64, copy=False),
        digit_ids=arrays["digit_ids"],
        distractor_ids=arrays["distractor_ids"],
        actor_xy=arrays["actor_xy"],
        actor_size=arrays["actor_size"],
        num_classes=NUM_CLASSES,
        class_names=CLASS_NAMES,
        name=f"motion-digits/{split}",
    )


# --------------------------------------------------------------------------- UCF-101 layout

# Split 1 of UCF-101 tests on groups 1-7 and trains on groups 8-25.
_UCF_TEST_GROUPS = range(1, 8)
_UCF_TRAIN_GROUPS = range(8, 26)


def ucf_class_index() -> dict[str, int]:
    """``classInd.txt`` of the export: class name -> 1-based index, in sorted name order.

    As in UCF-101 (and as torchvision's ``UCF101`` assumes, which numbers the sorted folder
    names), the index follows the sorted names, so it is *not* ``label + 1``: use
    ``CLASS_NAMES.index(name)`` to get back to the motion label.
    """
    return {name: i + 1 for i, name in enumerate(sorted(CLASS_NAMES))}


def _ucf_names(labels: np.ndarray, split: str) -> list[str]:
    """``<Class>/v_<Class>_gGG_cCC.avi`` per video: a class's videos are dealt round-robin to
    the split's groups (so groups hold equal counts, +-1), ``cCC`` numbering within a group."""
    groups = _UCF_TEST_GROUPS if split == "test" else _UCF_TRAIN_GROUPS
    seen = dict.fromkeys(range(NUM_CLASSES), 0)
    names = []
    for label in labels.tolist():
        j = seen[label]
        seen[label] += 1
        name = CLASS_NAMES[label]
        group, clip = groups[j % len(groups)], j // len(groups) + 1
        names.append(f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi")
    return names


def _write_avi(av, path: Path, clip: np.ndarray, *, fps: int, codec: str, bit_rate: int) -> None:
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)


def export_ucf_layout(
    root: str | Path,
    *,
    cache_dir: str | Path | None = None,
    config: MotionDigitsConfig | None = None,
    fps: int = 25,
    codec: str = "mpeg4",
    bit_rate: int = 1_000_000,
) -> Path:
    """Write ``motion-digits`` in the UCF-101 layout (split 1) and return ``root``.

    Writes ``root/<Class>/v_<Class>_gGG_cCC.avi`` (MPEG-4 part 2 in AVI, as UCF-101's XviD
    files, through PyAV) and ``root/ucfTrainTestlist/`` with ``classInd.txt`` (``1
    CircleAnticlockwise``), ``trainlist01.txt`` (``<Class>/v_..._g08_c01.avi 2``) and
    ``testlist01.txt`` (``<Class>/v_..._g01_c01.avi``, no label). Test videos are in groups
    1-7 and train videos in groups 8-25, as UCF-101's split 1. Class numbers follow
    :func:`ucf_class_index` (sorted names), not the motion labels.

    Parameters
    ----------
    root : str or Path
        Output folder; must not exist or be empty.
    cache_dir, config
        As for :func:`load_motion_digits`.
    fps : int
        Frame rate written in the files (UCF-101 is 25).
    codec : str
        FFmpeg encoder name; ``"mpeg4"`` by default.
    bit_rate : int
        Target bit rate. Encoding is lossy (and yuv420p halves the colour resolution): at
        the default, decoded 32x32 frames differ from the arrays by about 6/255 on average,
        mostly the noise.

    Raises
    ------
    ImportError
        PyAV (``av``) is not installed.
    FileExistsError
        ``root`` exists and is not empty.
    """
    try:
        import av
    except ImportError as error:
        raise ImportError(
            "export_ucf_layout writes .avi files with PyAV, which is not installed; "
            "install it with `pip install av` (the wheel bundles FFmpeg)"
        ) from error
    root = Path(root).expanduser()
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"export_ucf_layout: {root} exists and is not empty; give a new or empty folder"
        )
    config = config or MotionDigitsConfig()
    index = ucf_class_index()
    for name in CLASS_NAMES:
        (root / name).mkdir(parents=True, exist_ok=True)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {name}\n" for name, i in index.items()))
    for split in SPLITS:
        data = load_motion_digits(split, cache_dir=cache_dir, config=config)
        names = _ucf_names(data.labels, split)
        for clip, name in zip(data.clips, names, strict=True):
            _write_avi(av, root / name, np.asarray(clip), fps=fps, codec=codec, bit_rate=bit_rate)
        if split == "train":
            lines = [
                f"{name} {index[CLASS_NAMES[label]]}\n"
                for name, label in zip(names, data.labels.tolist(), strict=True)
            ]
        else:
            lines = [f"{name}\n" for name in names]
        # UCF-101 lists a class's videos together, in group then clip order.
        (lists / f"{split}list01.txt").write_text("".join(sorted(lines)))
    return root
