"""The in-memory video container every video dataset loads into: :class:`VideoArrays`.

Its own module (as :mod:`fedssl.datasets.audio_base` for audio) so that the real-data sources
(:mod:`fedssl.datasets.video_sources`) and the loader's entry point
(:mod:`fedssl.datasets.video_loader`, which re-exports it) can both build it without importing
each other. Imports only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VideoArrays"]


# eq=False: field-wise == / hash on numpy arrays is ambiguous; compare by identity instead.
@dataclass(frozen=True, eq=False)
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
    names : tuple of str
        Empty, or one name per video: its path in the dataset without the file suffix
        (``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"``, Kinetics'
        ``"tying_tie/TXm5CWjF2SA_000459_000469"``), what FedVSSL's client lists name
        (the ``fedvssl-clients`` partitioner).
    class_names : tuple of str
        Empty, or the class names by label.
    skipped : tuple of str
        Files the loader left out because they cannot be decoded
        (:func:`fedssl.datasets.base.skipped_files` reads it).
    """

    clips: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str
    names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.clips.ndim != 5 or self.clips.shape[-1] != 3 or self.clips.dtype != np.uint8:
            raise ValueError(f"clips must be uint8 [N, T, H, W, 3]; got {self.clips.dtype} "
                             f"{self.clips.shape}")
        if len(self.clips) != len(self.labels):
            raise ValueError(f"{len(self.clips)} clips but {len(self.labels)} labels")
        if self.names and len(self.names) != len(self.labels):
            raise ValueError(f"{len(self.names)} names but {len(self.labels)} videos; give one "
                             "name per video or none")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_frames(self) -> int:
        return int(self.clips.shape[1])

    def subset(self, indices: np.ndarray) -> VideoArrays:
        """The videos at ``indices`` (copied out of a memory map), with their names."""
        indices = np.asarray(indices, dtype=np.int64)
        names = tuple(self.names[i] for i in indices.tolist()) if self.names else ()
        return VideoArrays(np.ascontiguousarray(self.clips[indices]), self.labels[indices],
                           self.num_classes, self.name, names, self.class_names, self.skipped)
