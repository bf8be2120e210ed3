"""VCOP: video clip order prediction, a predictive self-supervised pretext for video encoders.

Xu et al., "Self-supervised Spatiotemporal Learning via Video Clip Order Prediction", CVPR 2019
(https://github.com/xudejing/video-clip-order-prediction), as configured in microsoft/CtP
(``pyvrl/models/pretraining/vcop``, ``configs/vcop``), the code base FedVSSL builds on
(``next-systems.md`` §1.1). A tuple of ``n = 3`` clips of consecutive frames, separated by a
fixed interval, is cut from one video and shuffled by one of the ``n! = 6`` permutations
(:func:`sample_vcop_tuple`); the shared backbone encodes each clip, every pair of clip features
in shuffled order goes through a shared layer, and a linear classifier over the concatenated
pair features predicts the permutation (:class:`VCOP`, cross-entropy).

The head is audio clip-order prediction's (:class:`~fedssl.models.clip_order.ClipOrder`):
VCOP differs only in where the clips come from (a sampler with gaps between clips, run by the
data pipeline, instead of adjacent segments shuffled inside the model) and in the head's
initialisation.

Defaults are the paper's K400 settings (16-frame clips, interval 8); the CPU setting of
``next-systems.md`` §1.8 is ``clip_len=8, interval=4``.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from fedssl.models.base import SSLOptions
from fedssl.models.clip_order import ClipOrder

__all__ = ["VCOP", "sample_vcop_tuple", "vcop_orders", "vcop_tuple_indices"]

Frames = TypeVar("Frames", np.ndarray, torch.Tensor)


def vcop_orders(num_clips: int = 3) -> list[tuple[int, ...]]:
    """The ``num_clips!`` permutations in label order (``itertools.permutations``, identity first).

    Label ``i`` means: position ``j`` of the shuffled tuple shows clip ``orders[i][j]`` (clips
    numbered in time order). :class:`VCOP` and :class:`ClipOrder` use the same table.
    """
    return list(itertools.permutations(range(num_clips)))


def vcop_tuple_indices(num_frames: int, *, clip_len: int = 16, interval: int = 8,
                       num_clips: int = 3,
                       seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Frame indices of one VCOP tuple, clips in time order.

    The clips are ``clip_len`` consecutive frames with ``interval`` frames between neighbours,
    and the tuple starts at a uniform frame. A video too short for that interval uses the
    largest interval that fits (as CtP does); one shorter than ``num_clips · clip_len`` gets
    evenly spaced, possibly overlapping clips (TSN-style offsets), with indices past the end
    clamped to the last frame. At exactly ``num_clips · clip_len`` frames we keep adjacent
    clips (interval 0) where CtP switches to the overlapping offsets (our choice).

    Parameters
    ----------
    num_frames
        Frames in the video (>= 1).
    clip_len
        Consecutive frames per clip (paper: 16; CPU setting: 8).
    interval
        Frames skipped between neighbouring clips (paper: 8; CPU setting: 4).
    num_clips
        Clips per tuple (paper: 3, giving 6 orders).
    seed
        Seed or generator of the draw (``np.random.default_rng(seed)``).

    Returns
    -------
    np.ndarray
        ``(num_clips, clip_len)`` int64 frame indices.
    """
    if num_frames < 1 or clip_len < 1 or num_clips < 2 or interval < 0:
        raise ValueError(
            f"need num_frames >= 1, clip_len >= 1, num_clips >= 2 and interval >= 0; got "
            f"{num_frames}, {clip_len}, {num_clips}, {interval}"
        )
    rng = np.random.default_rng(seed)
    spare = num_frames - num_clips * clip_len
    if spare >= 0:
        gap = min(interval, spare // (num_clips - 1))
        start = int(rng.integers(0, spare - (num_clips - 1) * gap + 1))
        offsets = start + (clip_len + gap) * np.arange(num_clips)
    else:
        tick = max(num_frames - clip_len + 1, 0) / num_clips
        offsets = (tick / 2 + tick * np.arange(num_clips)).astype(np.int64)
    indices = offsets[:, None] + np.arange(clip_len)[None, :]
    return np.minimum(indices, num_frames - 1).astype(np.int64)


def sample_vcop_tuple(frames: Frames, *, clip_len: int = 16, interval: int = 8,
                      num_clips: int = 3,
                      seed: int | np.random.Generator | None = None) -> tuple[Frames, int]:
    """Cut a VCOP tuple from ``frames`` and shuffle it by a uniformly drawn permutation.

    Parameters
    ----------
    frames
        A video, time first: ``(T, ...)`` array or tensor (e.g. ``(T, H, W, 3)`` uint8 or
        ``(T, C, H, W)``).
    clip_len, interval, num_clips
        As in :func:`vcop_tuple_indices`.
    seed
        Seed or generator of the whole draw (tuple position, then permutation).

    Returns
    -------
    tuple
        ``(clips, label)``: ``clips`` of shape ``(num_clips, clip_len, ...)`` in shuffled order
        (position ``j`` holds clip ``vcop_orders(num_clips)[label][j]``) and of ``frames``'
        type; ``label`` in ``[0, num_clips!)``. The model wants ``(B, n, C, T, H, W)``: the
        caller's transform moves the channel axis.
    """
    rng = np.random.default_rng(seed)
    indices = vcop_tuple_indices(len(frames), clip_len=clip_len, interval=interval,
                                 num_clips=num_clips, seed=rng)
    orders = vcop_orders(num_clips)
    label = int(rng.integers(len(orders)))
    shuffled = indices[list(orders[label])]
    if isinstance(frames, torch.Tensor):
        return frames[torch.from_numpy(shuffled)], label
    return frames[shuffled], label


class VCOP(ClipOrder):
    """Backbone + VCOP's pairwise order head over clips the sampler already shuffled.

    Head (CtP's VCOP config): each clip's backbone feature; for every pair ``i < j`` in
    shuffled order, ``[f_i, f_j]`` → FC ``hidden_dim`` → ReLU; the ``C(n, 2)`` pair outputs
    concatenated → dropout → FC → ``n!`` logits. ``fc1`` gets Kaiming init and ``fc2`` a normal
    init with std 0.001 (biases 0). The encoder stays under ``backbone.`` (FedVSSL's partial
    update keys on that prefix).

    Parameters
    ----------
    backbone
        Encoder of ``(B, C, T, H, W)`` clips into ``(B, feature_dim)`` with an int
        ``feature_dim`` (512 for R3D-18, pooled).
    num_clips
        ``n``: clips per tuple (paper: 3, so 6 orders); 2..5.
    hidden_dim
        Width of the pairwise layer (paper: 512).
    dropout
        Dropout before the order classifier (paper config: 0.5).
    """

    def __init__(self, backbone: nn.Module, *, num_clips: int = 3, hidden_dim: int = 512,
                 dropout: float = 0.5) -> None:
        super().__init__(backbone, num_segments=num_clips, hidden_dim=hidden_dim,
                         dropout=dropout)
        # Order 0 is the identity (vcop_orders): logits() relies on it.
        assert torch.equal(self.orders[0], torch.arange(num_clips))
        fc1, fc2 = self.pair[0], self.classifier[1]
        nn.init.kaiming_normal_(fc1.weight, nonlinearity="relu")
        nn.init.zeros_(fc1.bias)
        nn.init.normal_(fc2.weight, std=0.001)
        nn.init.zeros_(fc2.bias)

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> VCOP:
        """Build from the shared SSL options (``num_segments`` → clips, ``hidden_dim``)."""
        return cls(backbone, num_clips=options.num_segments, hidden_dim=options.hidden_dim)

    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Order logits ``(B, n!)`` of shuffled tuples ``(B, n, C, T, H, W)``.

        The clips, laid end to end in time, are ``n`` equal segments of one ``(B, C, n·T, H,
        W)`` clip, which :meth:`ClipOrder.order_logits` reads under the identity order: the
        clip-order head, unchanged, over the order the sampler produced.
        """
        if clips.dim() != 6 or clips.shape[1] != self.num_segments:
            raise ValueError(
                f"clips must be (B, {self.num_segments}, C, T, H, W); got shape "
                f"{tuple(clips.shape)}"
            )
        joined = clips.movedim(1, 2).flatten(2, 3)
        identity = torch.zeros(clips.shape[0], dtype=torch.long, device=clips.device)
        return self.order_logits(joined, identity)

    def loss(self, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the applied permutations ``labels`` ``(B,)`` given the clips."""
        return self.criterion(self.logits(clips), labels)

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """``views = [clips (B, n, C, T, H, W), labels (B,)]``, as a batch of the sampler's."""
        clips, labels = views
        return self.loss(clips, labels)
