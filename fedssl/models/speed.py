"""Speed (playback-rate) prediction, a predictive self-supervised pretext for video encoders.

As configured in microsoft/CtP (``pyvrl/models/pretraining/speednet``, ``configs/speednet``),
the code base FedVSSL builds on (``next-systems.md`` §1.1). CtP's implementation cites three
papers for the idea:

* Benaim et al., "SpeedNet: Learning the Speediness in Videos", CVPR 2020
  (arXiv 2004.06130);
* Cho et al., "Self-Supervised Spatio-Temporal Representation Learning Using Variable Playback
  Speed Prediction", arXiv 2003.02692, 2020;
* Yao et al., "Video Playback Rate Perception for Self-supervised Spatio-Temporal
  Representation Learning", CVPR 2020 (arXiv 2006.11476).

A clip of ``clip_len`` frames is read from a longer video at a frame stride drawn uniformly
from **{−4, −2, −1, 0, 1, 2, 4}** (:data:`SPEED_STRIDES`, 7 classes): stride 0 repeats one
frame (a static clip), a negative stride plays time backwards, and frames past the end are
clamped to the last one (:func:`sample_speed_clip`). A linear head on the pooled backbone
feature predicts the stride's class (:class:`SpeedPrediction`, cross-entropy).

Defaults are the paper's 16-frame clips; the CPU setting of ``next-systems.md`` §1.8 is
``clip_len=8`` with the same strides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from fedssl.models.base import SSLOptions, feature_dim_of

__all__ = ["SPEED_STRIDES", "SpeedPrediction", "sample_speed_clip", "speed_indices"]

# CtP's speednet configs: clip strides, in label order.
SPEED_STRIDES: tuple[int, ...] = (-4, -2, -1, 0, 1, 2, 4)

Frames = TypeVar("Frames", np.ndarray, torch.Tensor)


def _check_strides(strides: Sequence[int]) -> tuple[int, ...]:
    strides = tuple(int(s) for s in strides)
    if len(strides) < 2 or len(set(strides)) != len(strides):
        raise ValueError(f"strides must be at least 2 distinct integers; got {strides}")
    return strides


def speed_indices(num_frames: int, *, clip_len: int = 16,
                  strides: Sequence[int] = SPEED_STRIDES,
                  seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """Frame indices of one speed clip and its class (the index of the stride drawn).

    With stride ``s`` the clip covers ``|s|·(clip_len − 1) + 1`` frames from a uniform start
    (start 0 when the video is not longer than that); indices past the end are clamped to the
    last frame, and for ``s < 0`` the clip is read backwards (the clamped repeats then come
    first). ``s = 0`` repeats the frame at a uniform start.

    Parameters
    ----------
    num_frames
        Frames in the video (>= 1).
    clip_len
        Frames per clip (paper: 16; CPU setting: 8).
    strides
        The playback strides, in label order (default :data:`SPEED_STRIDES`).
    seed
        Seed or generator of the draw (``np.random.default_rng(seed)``).

    Returns
    -------
    tuple
        ``(indices, label)``: ``(clip_len,)`` int64 frame indices and the stride's index.
    """
    strides = _check_strides(strides)
    if num_frames < 1 or clip_len < 1:
        raise ValueError(f"num_frames and clip_len must be >= 1; got {num_frames}, {clip_len}")
    rng = np.random.default_rng(seed)
    label = int(rng.integers(len(strides)))
    stride = strides[label]
    span = abs(stride) * (clip_len - 1) + 1
    start = int(rng.integers(0, num_frames - span + 1)) if span < num_frames else 0
    indices = np.minimum(start + abs(stride) * np.arange(clip_len), num_frames - 1)
    if stride < 0:
        indices = indices[::-1].copy()
    return indices.astype(np.int64), label


def sample_speed_clip(frames: Frames, *, clip_len: int = 16,
                      strides: Sequence[int] = SPEED_STRIDES,
                      seed: int | np.random.Generator | None = None) -> tuple[Frames, int]:
    """Read one clip of ``frames`` at a uniformly drawn playback stride.

    Parameters
    ----------
    frames
        A video, time first: ``(T, ...)`` array or tensor (e.g. ``(T, H, W, 3)`` uint8 or
        ``(T, C, H, W)``).
    clip_len, strides, seed
        As in :func:`speed_indices`.

    Returns
    -------
    tuple
        ``(clip, label)``: ``(clip_len, ...)`` frames of ``frames``' type, and the index of
        the stride in ``strides``. The model wants ``(B, C, T, H, W)``: the caller's transform
        moves the channel axis.
    """
    indices, label = speed_indices(len(frames), clip_len=clip_len, strides=strides, seed=seed)
    if isinstance(frames, torch.Tensor):
        return frames[torch.from_numpy(indices)], label
    return frames[indices], label


class SpeedPrediction(nn.Module):
    """Backbone + a linear playback-rate classifier with a cross-entropy loss.

    Head (CtP's speednet config, a TSN head): the pooled backbone feature → dropout → FC →
    one logit per stride, FC init normal with std 0.001 (bias 0). The encoder stays under
    ``backbone.`` (FedVSSL's partial update keys on that prefix).

    Parameters
    ----------
    backbone
        Encoder of ``(B, C, T, H, W)`` clips into pooled ``(B, feature_dim)`` features with an
        int ``feature_dim`` (512 for R3D-18).
    strides
        The playback strides the sampler draws from, in label order (default
        :data:`SPEED_STRIDES`, 7 classes).
    dropout
        Dropout before the classifier (paper config: 0.5).
    """

    def __init__(self, backbone: nn.Module, *, strides: Sequence[int] = SPEED_STRIDES,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.feature_dim = feature_dim_of(backbone)
        self.backbone = backbone
        self.strides = _check_strides(strides)
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  nn.Linear(self.feature_dim, len(self.strides)))
        nn.init.normal_(self.head[1].weight, std=0.001)
        nn.init.zeros_(self.head[1].bias)
        self.criterion = nn.CrossEntropyLoss()

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> SpeedPrediction:
        """Build from the shared SSL options (none applies: the paper's strides and dropout)."""
        del options
        return cls(backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of clips ``(B, feature_dim)`` (what evaluation uses)."""
        return self.backbone(x)

    def on_step_start(self, progress: float) -> None:
        """Nothing to schedule (the hook every SSL model offers)."""
        del progress

    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Stride logits ``(B, len(strides))`` of clips ``(B, C, T, H, W)``."""
        return self.head(self.backbone(clips))

    def loss(self, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the applied strides' classes ``labels`` ``(B,)``."""
        return self.criterion(self.logits(clips), labels)

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """``views = [clips (B, C, T, H, W), labels (B,)]``, as a batch of the sampler's."""
        clips, labels = views
        return self.loss(clips, labels)
