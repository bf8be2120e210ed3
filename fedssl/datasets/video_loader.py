"""Single entry point for video datasets: name -> a split as :class:`VideoArrays`.

Today the embedded ``motion-digits`` (:mod:`fedssl.datasets.motion_digits`, rendered on first
use into the cache, read back memory-mapped). The real layouts (UCF-101, HMDB-51, Kinetics)
read their files through :mod:`fedssl.datasets.video` and give the same :class:`VideoArrays`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["VIDEO_DATASETS", "VideoArrays", "check_video_dataset", "load_video_dataset"]

# The registered video datasets; each loads through _LOADERS.
VIDEO_DATASETS: tuple[str, ...] = ("motion-digits",)


@dataclass(frozen=True)
class VideoArrays:
    """One split of a video dataset: whole videos, labels and a name.

    Attributes
    ----------
    clips : np.ndarray
        ``uint8 [N, T, H, W, 3]`` RGB videos (possibly a read-only memory map).
    labels : np.ndarray
        ``int64 [N]`` classes.
    num_classes : int
        Number of classes.
    name : str
        ``"<dataset>/<split>"``.
    """

    clips: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.clips.ndim != 5 or self.clips.shape[-1] != 3 or self.clips.dtype != np.uint8:
            raise ValueError(f"clips must be uint8 [N, T, H, W, 3]; got {self.clips.dtype} "
                             f"{self.clips.shape}")
        if len(self.clips) != len(self.labels):
            raise ValueError(f"{len(self.clips)} clips but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_frames(self) -> int:
        return int(self.clips.shape[1])

    def subset(self, indices: np.ndarray) -> VideoArrays:
        """The videos at ``indices`` (copied out of a memory map)."""
        indices = np.asarray(indices, dtype=np.int64)
        return VideoArrays(np.ascontiguousarray(self.clips[indices]), self.labels[indices],
                           self.num_classes, self.name)


def check_video_dataset(name: str, *, data_dir: str = "", hf_dataset: str = "") -> None:
    """The registry's cheap check: ``name`` is a video dataset (the embedded ones need no
    files; ``data_dir`` and ``hf_dataset`` are not used by them)."""
    if name not in VIDEO_DATASETS:
        raise ValueError(f"unknown video dataset {name!r}; valid: {', '.join(VIDEO_DATASETS)}")


def load_video_dataset(name: str, split: str, *, data_dir: str = "") -> VideoArrays:
    """One split (``"train"`` or ``"test"``) of a video dataset, memoised per process."""
    check_video_dataset(name, data_dir=data_dir)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    return _load_cached(name, split, str(data_dir))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, split: str, data_dir: str) -> VideoArrays:
    from fedssl.datasets.motion_digits import load_motion_digits

    data = load_motion_digits(split)
    return VideoArrays(data.clips, np.asarray(data.labels, dtype=np.int64), data.num_classes,
                       data.name)
