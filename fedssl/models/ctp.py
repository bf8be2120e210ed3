"""Catch-the-Patch (CtP): predictive video self-supervision by tracking pasted patches.

Implementation based on Wang et al., "Unsupervised Visual Representation Learning by Tracking
Patches in Video" (CVPR 2021, arXiv 2105.02545), the pretext FedVSSL (arXiv 2207.01975) trains
federatedly; the details follow the authors' code ``microsoft/CtP`` (``pyvrl/models/
pretraining/ctp/``, ``pyvrl/datasets/transforms/dynamic_utils.py``, ``configs/ctp/``), as
summarised in next-systems §1.1. Nothing was copied.

The pretext sample (:func:`catch_the_patch`, pure and seeded): three patches are cut from the
clip itself (each from one random *source* frame, under its own box there), moved along
key-framed box trajectories, shaped by a rectangle/ellipse/rhombus alpha mask with optional
soft edges and a key-framed opacity, and pasted over the clip (largest first); a patch is
always visible on frame 0 and on its source frame, and on each other frame with p 0.8. Given
the frame-0 box of each patch, the model predicts the box on every frame, visible or not.

The model (:class:`CtPModel`): backbone feature map -> temporal conv (kernel = the map's
length) + ReLU -> ``torchvision.ops.roi_align`` of the frame-0 box -> FC + ReLU -> FC to
``T x 4`` deltas ``(dcx, dcy, dlog w, dlog h)`` relative to the frame-0 box, trained with a
smooth-L1 loss on targets divided by ``(0.8, 0.8, 0.04, 0.04)``.

Departures, all outside the network and the loss: the clip sampling, the scale/crop/flip
before pasting and the colour augmentation and normalisation after it are the data
pipeline's; here patches are pasted on the clips the model is given (pasting commutes with a
per-channel affine normalisation, so pasting normalised clips is the same as normalising
pasted ones, but CtP's colour jitter after pasting is not applied). Patches and masks are
resized bilinearly with torch (``align_corners=False``, no antialias), as ``cv2.resize``
does. Key-frame jitter is drawn from the closed ``[-spacing/3, +spacing/3]`` (the CtP code's
``randint`` leaves out the upper end).

>>> model = CtPModel(r3d_tiny(ctp_geometry=True), image_size=32)
>>> loss = model.training_loss([clips])          # clips (B, 3, 16, 32, 32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from fedssl.models.base import SSLOptions, feature_dim_of

__all__ = [
    "CTP_CONFIGS",
    "CtPConfig",
    "CtPHead",
    "CtPModel",
    "PatchedClip",
    "catch_the_patch",
    "catch_the_patch_batch",
    "ctp_config",
    "ctp_loss",
    "interpolate_key_frames",
    "patch_alpha",
    "sample_key_frames",
    "sample_trajectories",
    "trajectory_targets",
]

Seed = int | np.random.Generator

# Interpolation between two key frames: 0 linear, 1 constant acceleration, 2 deceleration.
_INTERPOLATIONS = 3
# Alpha-mask shapes: 0 rectangle, 1 ellipse, 2 rhombus.
_MASK_SHAPES = 3


@dataclass(frozen=True)
class CtPConfig:
    """Everything that defines the CtP pretext and head for one clip size.

    The defaults are CtP's for 112x112 clips (``configs/ctp/pretraining_runtime_ucf.py`` and
    the head config); :data:`CTP_CONFIGS` also holds the scaled setting for 32x32 clips.
    Pixel quantities are in input pixels.

    Attributes
    ----------
    num_patches
        Patches (trajectories) per clip.
    scales, ratios
        Initial box side ``s`` and aspect ratio ``r`` (one pair drawn per patch):
        ``w = s * sqrt(r)``, ``h = s / sqrt(r)``.
    scale_jitter
        Each side of the initial box is multiplied by ``exp(U(-j, j))``.
    key_frame_probs
        Probability of 0, 1, 2, ... inner key frames (the first and last frame always are).
    loc_velocity
        Largest centre shift per frame (px): between key frames ``g`` frames apart each
        coordinate moves by ``U(-v g, v g)``, clipped so the box stays inside.
    size_velocity
        Largest log-size change per frame: each side is multiplied by ``exp(U(-v g, v g))``
        between size key frames ``g`` frames apart.
    interpolation_probs
        Probabilities of linear, constant-acceleration and deceleration motion between two
        key frames (drawn per key-frame interval).
    mask_probs
        Probabilities of a rectangle, ellipse and rhombus alpha mask.
    soft_edge_prob
        Probability that the mask gets a linear ramp to 0 at its edge.
    turning_point
        Range of the (normalised) distance from the centre where the ramp starts.
    opacity
        Range of the opacity drawn per opacity key frame (linear in between).
    visible_prob
        Probability that a patch is pasted on a frame other than frame 0 and its source frame.
    roi_size
        RoIAlign output side.
    target_stds
        Divisors of the ``(dcx, dcy, dlog w, dlog h)`` targets (their means are 0).
    """

    num_patches: int = 3
    scales: tuple[float, ...] = (16, 24, 28, 32, 48, 64)
    ratios: tuple[float, ...] = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)
    scale_jitter: float = 0.18
    key_frame_probs: tuple[float, ...] = (0.5, 0.3, 0.2)
    loc_velocity: float = 3.0
    size_velocity: float = 0.025
    interpolation_probs: tuple[float, float, float] = (0.7, 0.15, 0.15)
    mask_probs: tuple[float, float, float] = (0.5, 0.35, 0.15)
    soft_edge_prob: float = 0.5
    turning_point: tuple[float, float] = (0.30, 0.45)
    opacity: tuple[float, float] = (0.8, 1.0)
    visible_prob: float = 0.8
    roi_size: int = 5
    target_stds: tuple[float, float, float, float] = (0.8, 0.8, 0.04, 0.04)

    def __post_init__(self) -> None:
        if self.num_patches < 1:
            raise ValueError(f"num_patches must be >= 1, got {self.num_patches}")
        if not self.scales or min(self.scales) <= 0 or not self.ratios or min(self.ratios) <= 0:
            raise ValueError(f"scales and ratios must be positive, got {self.scales}, "
                             f"{self.ratios}")
        for name in ("key_frame_probs", "interpolation_probs", "mask_probs"):
            probs = getattr(self, name)
            if min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
                raise ValueError(f"{name} must be probabilities summing to 1, got {probs}")
        if len(self.interpolation_probs) != _INTERPOLATIONS or len(self.mask_probs) != \
                _MASK_SHAPES:
            raise ValueError("interpolation_probs and mask_probs need 3 entries each, got "
                             f"{self.interpolation_probs}, {self.mask_probs}")
        if min(self.scale_jitter, self.loc_velocity, self.size_velocity) < 0:
            raise ValueError("scale_jitter, loc_velocity and size_velocity must be >= 0")
        if not 0 <= self.turning_point[0] <= self.turning_point[1] < 0.5:
            raise ValueError(f"turning_point must satisfy 0 <= lo <= hi < 0.5, got "
                             f"{self.turning_point}")
        if not 0 <= self.opacity[0] <= self.opacity[1] <= 1:
            raise ValueError(f"opacity must be a range in [0, 1], got {self.opacity}")
        for name in ("soft_edge_prob", "visible_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.roi_size < 1 or len(self.target_stds) != 4 or min(self.target_stds) <= 0:
            raise ValueError(f"roi_size must be >= 1 and target_stds 4 positive numbers, got "
                             f"{self.roi_size}, {self.target_stds}")


_PAPER = CtPConfig()
_SCALE_32 = 32 / 112

#: CtP settings by clip side: 112 is the paper's; 32 is next-systems §1.8's scaled geometry
#: (box scales and centre speed times 32/112, so about {5, 7, 8, 9, 14, 18} px and 0.86 px
#: per frame; RoIAlign 3x3 on the stride-4 map of ``r3d_tiny(ctp_geometry=True)``). Sizes
#: change in log space, so ``size_velocity`` and ``scale_jitter`` do not scale; the target
#: stds are the paper's in both.
CTP_CONFIGS: dict[int, CtPConfig] = {
    112: _PAPER,
    32: replace(_PAPER, scales=tuple(s * _SCALE_32 for s in _PAPER.scales),
                loc_velocity=_PAPER.loc_velocity * _SCALE_32, roi_size=3),
}


def ctp_config(image_size: int) -> CtPConfig:
    """The :data:`CTP_CONFIGS` entry for ``image_size``.

    Raises
    ------
    ValueError
        No preset for that size; the message lists the sizes and how to pass one.
    """
    if image_size not in CTP_CONFIGS:
        raise ValueError(f"no CtP preset for image_size={image_size}; presets exist for "
                         f"{sorted(CTP_CONFIGS)}; pass config=CtPConfig(...) instead")
    return CTP_CONFIGS[image_size]


class PatchedClip(NamedTuple):
    """One CtP pretext sample.

    Attributes
    ----------
    clip
        ``(C, T, H, W)``: the input clip with the patches pasted.
    boxes
        ``(N, T, 4)`` int64 ``(x1, y1, x2, y2)`` pixel boxes of each patch on every frame
        (pixels ``x1 <= x < x2``), inside the frame and at least 1 px wide and high.
    visible
        ``(N, T)`` bool: whether the patch was pasted on that frame.
    source_frames
        ``(N,)`` int64: the frame each patch's texture was cut from.
    """

    clip: torch.Tensor
    boxes: torch.Tensor
    visible: torch.Tensor
    source_frames: torch.Tensor


# ---------------------------------------------------------------------------- key frames
def sample_key_frames(rng: np.random.Generator, num_frames: int,
                      key_frame_probs: tuple[float, ...]) -> np.ndarray:
    """Sorted key-frame indices: 0, ``k`` inner ones, ``num_frames - 1``.

    ``k`` is drawn with ``key_frame_probs`` (index = count); the inner key frames sit at
    ``int(i * spacing)``, ``spacing = num_frames / (k + 1)``, each moved by an integer jitter
    in ``[-int(spacing / 3), int(spacing / 3)]``. Coinciding indices are merged, which can
    only happen for short clips (not for 16 frames and ``k <= 2``).

    Raises
    ------
    ValueError
        If ``num_frames < 2``.
    """
    if num_frames < 2:
        raise ValueError(f"CtP needs clips of at least 2 frames, got {num_frames}")
    k = int(rng.choice(len(key_frame_probs), p=key_frame_probs))
    ticks = [0, num_frames - 1]
    if k:
        spacing = num_frames / (k + 1)
        jitter = int(spacing / 3)
        inner = np.array([int(spacing * i) for i in range(1, k + 1)])
        if jitter:
            inner = inner + rng.integers(-jitter, jitter + 1, size=k)
        ticks += inner.tolist()
    return np.unique(np.clip(ticks, 0, num_frames - 1))


def interpolate_key_frames(values: np.ndarray, keys: np.ndarray,
                           modes: np.ndarray | None = None) -> np.ndarray:
    """Fill every frame from key-frame values.

    Parameters
    ----------
    values
        ``(K, ...)``: the values on the ``K`` key frames.
    keys
        ``(K,)`` increasing frame indices, ``keys[0] == 0``; the result has ``keys[-1] + 1``
        frames.
    modes
        ``(K - 1,)`` per interval: 0 linear ``a + (b - a) u``, 1 constant acceleration
        ``a + (b - a) u^2``, 2 deceleration ``b - (b - a) (1 - u)^2``, where ``u`` is the
        fraction of the interval elapsed. ``None``: all linear.

    Returns
    -------
    np.ndarray
        ``(keys[-1] + 1, ...)``, equal to ``values`` on the key frames.
    """
    keys = np.asarray(keys)
    if keys[0] != 0 or len(keys) != len(values) or np.any(np.diff(keys) <= 0):
        raise ValueError(f"keys must increase from 0 and match values, got {keys.tolist()} "
                         f"for {len(values)} values")
    modes = np.zeros(len(keys) - 1, dtype=int) if modes is None else np.asarray(modes)
    frames = np.arange(keys[-1] + 1)
    seg = np.clip(np.searchsorted(keys, frames, side="right") - 1, 0, len(keys) - 2)
    u = (frames - keys[seg]) / (keys[seg + 1] - keys[seg])
    mode = modes[seg]
    weight = np.where(mode == 1, u**2, np.where(mode == 2, 1 - (1 - u) ** 2, u))
    weight = weight.reshape((-1,) + (1,) * (values.ndim - 1))
    return values[seg] + (values[seg + 1] - values[seg]) * weight


def _key_framed(rng: np.random.Generator, start: np.ndarray, num_frames: int,
                config: CtPConfig, step) -> np.ndarray:
    # Key frames, a value on each (step(value, gap) gives the next), a random motion per
    # interval; shared by all patches of the clip, as in CtP.
    keys = sample_key_frames(rng, num_frames, config.key_frame_probs)
    values = [start]
    for gap in np.diff(keys):
        values.append(step(values[-1], gap))
    modes = rng.choice(_INTERPOLATIONS, size=len(keys) - 1, p=config.interpolation_probs)
    return interpolate_key_frames(np.stack(values), keys, modes)


# ---------------------------------------------------------------------------- trajectories
def sample_trajectories(rng: np.random.Generator, num_frames: int, height: int, width: int,
                        config: CtPConfig) -> np.ndarray:
    """Integer box trajectories ``(N, T, 4)`` as ``(x1, y1, x2, y2)``.

    Initial boxes: an anchor from ``scales x ratios`` with ``scale_jitter`` per side (sides
    clipped to ``[1, side - 1]``), top-left corner uniform inside the frame. Centres move on
    their key frames by ``U(+-loc_velocity * gap)`` and are clipped to keep the initial box
    inside; sizes change on their own key frames by ``exp(U(+-size_velocity * gap))``; both
    are interpolated with a random motion per interval. Boxes are clipped to the frame,
    rounded, and widened to at least 1 px where rounding emptied them.
    """
    n = config.num_patches
    scales = np.asarray(config.scales, dtype=float)
    ratios = np.sqrt(np.asarray(config.ratios, dtype=float))
    anchors = np.stack([np.outer(ratios, scales).ravel(), np.outer(1 / ratios, scales).ravel()],
                       axis=1)
    frame = np.array([width, height], dtype=float)
    sizes = anchors[rng.integers(len(anchors), size=n)]
    sizes = sizes * np.exp(rng.uniform(-config.scale_jitter, config.scale_jitter, size=(n, 2)))
    sizes = np.clip(sizes, 1, np.maximum(frame - 1, 1))
    corners = rng.uniform(0, 1, size=(n, 2)) * (frame - sizes)
    centres = corners + sizes / 2
    lo, hi = sizes / 2, frame - sizes / 2

    def move(centre: np.ndarray, gap: int) -> np.ndarray:
        shift = rng.uniform(-config.loc_velocity * gap, config.loc_velocity * gap, size=(n, 2))
        return np.clip(centre + shift, lo, hi)

    def resize(size: np.ndarray, gap: int) -> np.ndarray:
        v = config.size_velocity * gap
        return size * np.exp(rng.uniform(-v, v, size=(n, 2)))

    centre_t = _key_framed(rng, centres, num_frames, config, move)  # (T, N, 2)
    size_t = _key_framed(rng, sizes, num_frames, config, resize)
    boxes = np.concatenate([centre_t - size_t / 2, centre_t + size_t / 2], axis=-1)
    bound = np.tile(frame, 2)
    boxes = np.clip(np.round(np.clip(boxes, 0, bound)), 0, bound).astype(np.int64)
    # A box that rounding left empty gets one pixel, inside the frame.
    boxes[..., 0:2] = np.minimum(boxes[..., 0:2], frame.astype(np.int64) - 1)
    boxes[..., 2:4] = np.maximum(boxes[..., 2:4], boxes[..., 0:2] + 1)
    return boxes.transpose(1, 0, 2)


def patch_alpha(rng: np.random.Generator, height: int, width: int,
                config: CtPConfig) -> np.ndarray:
    """A ``(height, width)`` alpha mask in [0, 1]: rectangle, ellipse or rhombus, maybe soft.

    With ``d`` the distance from the centre pixel ``((w - 1) // 2, (h - 1) // 2)`` in units of
    the side (Chebyshev for the rectangle, Euclidean for the ellipse, L1 for the rhombus),
    the mask is 1 where ``d < 0.5`` (everywhere for the rectangle); a soft edge multiplies it
    by ``clip((0.5 - d) / (0.5 - p), 0, 1)`` with the turning point ``p`` drawn from
    ``turning_point``.
    """
    xs = np.abs(np.arange(width) - (width - 1) // 2) / width
    ys = np.abs(np.arange(height) - (height - 1) // 2) / height
    dx, dy = np.meshgrid(xs, ys)
    shape = int(rng.choice(_MASK_SHAPES, p=config.mask_probs))
    if shape == 0:
        dist = np.maximum(dx, dy)
        alpha = np.ones((height, width))
    else:
        dist = np.sqrt(dx**2 + dy**2) if shape == 1 else dx + dy
        alpha = (dist < 0.5).astype(float)
    if rng.uniform() < config.soft_edge_prob:
        turning = rng.uniform(*config.turning_point)
        alpha = alpha * np.clip((0.5 - dist) / (0.5 - turning), 0, 1)
    return alpha


def _resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of ``(C, h, w)`` to ``(C, height, width)`` (cv2.resize's sampling)."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image.unsqueeze(0), size=(height, width), mode="bilinear",
                         align_corners=False).squeeze(0)


# ---------------------------------------------------------------------------- pasting
@torch.no_grad()
def catch_the_patch(clip: torch.Tensor, seed: Seed, config: CtPConfig = _PAPER) -> PatchedClip:
    """Paste ``config.num_patches`` moving patches cut from ``clip`` itself over it.

    Pure: the result depends only on ``clip``, ``seed`` and ``config``; ``clip`` is not
    modified. Per patch: a trajectory (:func:`sample_trajectories`, shared key frames for
    all patches), a source frame drawn uniformly, whose pixels under the patch's box there
    (taken from the unpasted clip) are resized to the box of every frame; an alpha mask
    (:func:`patch_alpha`) at the source box size, resized likewise and multiplied by an
    opacity drawn per key frame (the patch's own key frames) from ``config.opacity``;
    visibility: frame 0 and the source frame always, others with ``config.visible_prob``.
    Frames are composited ``frame * (1 - alpha) + patch * alpha``, the patch with the
    largest mean box area first.

    Parameters
    ----------
    clip
        ``(C, T, H, W)`` floating-point clip, in any value range (raw or normalised).
    seed
        An int or a ``numpy.random.Generator`` (which is advanced).
    config
        The pretext settings (:data:`CTP_CONFIGS`); the paper's by default.

    Returns
    -------
    PatchedClip
    """
    if clip.dim() != 4 or not clip.is_floating_point():
        raise ValueError(f"expected a floating-point clip (C, T, H, W), got {clip.dtype} "
                         f"{tuple(clip.shape)}; convert frames with clip.float() first")
    rng = np.random.default_rng(seed)
    _, frames, height, width = clip.shape
    boxes = sample_trajectories(rng, frames, height, width, config)
    sources = rng.integers(frames, size=config.num_patches)
    out = clip.clone()
    visible = np.zeros((config.num_patches, frames), dtype=bool)
    sizes = boxes[..., 2:4] - boxes[..., 0:2]  # (N, T, 2) as (w, h)
    order = np.argsort(-sizes.mean(axis=1).prod(axis=1), kind="stable")
    for n in order:
        src = sources[n]
        x1, y1, x2, y2 = boxes[n, src]
        texture = clip[:, src, y1:y2, x1:x2]
        base = torch.as_tensor(patch_alpha(rng, y2 - y1, x2 - x1, config), dtype=clip.dtype,
                               device=clip.device).unsqueeze(0)
        keys = sample_key_frames(rng, frames, config.key_frame_probs)
        opacity = interpolate_key_frames(rng.uniform(*config.opacity, size=len(keys)), keys)
        shown = rng.uniform(size=frames) < config.visible_prob
        shown[0] = shown[src] = True
        visible[n] = shown
        for t in np.flatnonzero(shown):
            bx1, by1, bx2, by2 = boxes[n, t]
            h, w = by2 - by1, bx2 - bx1
            alpha = _resize(base, h, w) * float(opacity[t])
            region = out[:, t, by1:by2, bx1:bx2]
            out[:, t, by1:by2, bx1:bx2] = region * (1 - alpha) + _resize(texture, h, w) * alpha
    return PatchedClip(out, torch.from_numpy(boxes), torch.from_numpy(visible),
                       torch.from_numpy(sources.astype(np.int64)))


def catch_the_patch_batch(clips: torch.Tensor, seed: Seed,
                          config: CtPConfig = _PAPER) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`catch_the_patch` on each clip of ``(B, C, T, H, W)``, all drawn from ``seed``.

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        The patched clips ``(B, C, T, H, W)`` and the boxes ``(B, N, T, 4)`` (on the clips'
        device).
    """
    if clips.dim() != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    rng = np.random.default_rng(seed)
    samples = [catch_the_patch(clip, rng, config) for clip in clips]
    return (torch.stack([s.clip for s in samples]),
            torch.stack([s.boxes for s in samples]).to(clips.device))


# ---------------------------------------------------------------------------- targets, loss
def trajectory_targets(boxes: torch.Tensor,
                       stds: tuple[float, ...] = _PAPER.target_stds) -> torch.Tensor:
    """Normalised regression targets ``(..., T, 4)`` from boxes ``(..., T, 4)``.

    Per frame ``t``: ``(cx_t - cx_0, cy_t - cy_0, log w_t - log w_0, log h_t - log h_0)``
    (centres in pixels, sides clamped to >= 1 px), divided by ``stds``; zero on frame 0.
    """
    boxes = boxes.float()
    centres = (boxes[..., 0:2] + boxes[..., 2:4]) / 2
    log_sizes = torch.log(torch.clamp(boxes[..., 2:4] - boxes[..., 0:2], min=1))
    deltas = torch.cat([centres - centres[..., :1, :], log_sizes - log_sizes[..., :1, :]], -1)
    return deltas / deltas.new_tensor(stds)


def ctp_loss(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (beta 1) summed over all coordinates, divided by the number of boxes.

    ``preds`` and ``targets`` are ``(..., 4)``; the result is CtP's
    ``loss_ctr + loss_size`` with all weights 1 (the count is trajectories x frames).
    """
    if preds.shape != targets.shape or preds.shape[-1] != 4:
        raise ValueError(f"preds and targets must share a (..., 4) shape, got "
                         f"{tuple(preds.shape)} and {tuple(targets.shape)}")
    count = max(targets[..., 0].numel(), 1)
    return F.smooth_l1_loss(preds, targets, reduction="sum", beta=1.0) / count


# ---------------------------------------------------------------------------- network
class CtPHead(nn.Module):
    """CtP's trajectory head: temporal conv, RoIAlign on the query box, two-layer MLP.

    Parameters
    ----------
    in_channels
        Channels of the backbone's feature map.
    in_frames
        Length ``T'`` of the feature map; the temporal conv's kernel ``(T', 1, 1)`` squeezes
        it to 1.
    num_frames
        Frames of the clip, each of which gets 4 predicted deltas.
    hidden_dim
        Output channels of the temporal conv and width of the hidden FC (CtP: 512, equal to
        the backbone's width).
    roi_size
        RoIAlign output side (CtP: 5 on R3D-18's 14x14 map).
    spatial_scale
        Feature-map cells per input pixel, ``1 / spatial_stride`` (CtP: 1/8).
    sampling_ratio
        RoIAlign sampling points per bin side (CtP: 2); RoIAlign is ``aligned=True``.

    Initialisation as CtP's: Kaiming normal (fan-out) for the temporal conv, normal with std
    0.001 for both FCs, zero biases.
    """

    def __init__(self, in_channels: int, *, in_frames: int, num_frames: int,
                 hidden_dim: int = 512, roi_size: int = 5, spatial_scale: float = 1 / 8,
                 sampling_ratio: int = 2) -> None:
        super().__init__()
        if min(in_channels, in_frames, num_frames, hidden_dim, roi_size) < 1:
            raise ValueError("in_channels, in_frames, num_frames, hidden_dim and roi_size must "
                             "be >= 1")
        self.num_frames = num_frames
        self.roi_size = roi_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.temporal_conv = nn.Conv3d(in_channels, hidden_dim, kernel_size=(in_frames, 1, 1))
        self.fc = nn.Linear(hidden_dim * roi_size**2, hidden_dim)
        self.pred = nn.Linear(hidden_dim, num_frames * 4)
        nn.init.kaiming_normal_(self.temporal_conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.temporal_conv.bias)
        for fc in (self.fc, self.pred):
            nn.init.normal_(fc.weight, std=0.001)
            nn.init.zeros_(fc.bias)

    def forward(self, features: torch.Tensor, query_boxes: torch.Tensor) -> torch.Tensor:
        """Predict normalised deltas ``(B, N, num_frames, 4)``.

        Parameters
        ----------
        features
            ``(B, C, T', H', W')`` backbone feature map.
        query_boxes
            ``(B, N, 4)`` frame-0 boxes ``(x1, y1, x2, y2)`` in input pixels.
        """
        batch, num = query_boxes.shape[:2]
        if features.shape[2] != self.temporal_conv.kernel_size[0]:
            raise ValueError(f"feature map has {features.shape[2]} frames, the head was built "
                             f"for {self.temporal_conv.kernel_size[0]}; build CtPModel with "
                             "the clips' num_frames and image_size")
        maps = F.relu(self.temporal_conv(features).squeeze(2))
        index = torch.arange(batch, device=maps.device, dtype=maps.dtype).repeat_interleave(num)
        rois = torch.cat([index[:, None], query_boxes.reshape(-1, 4).to(maps.dtype)], dim=1)
        pooled = roi_align(maps, rois, output_size=self.roi_size,
                           spatial_scale=self.spatial_scale,
                           sampling_ratio=self.sampling_ratio, aligned=True)
        hidden = F.relu(self.fc(pooled.flatten(1)))
        return self.pred(hidden).view(batch, num, self.num_frames, 4)


class CtPModel(nn.Module):
    """Backbone + :class:`CtPHead`, trained to track the patches of :func:`catch_the_patch`.

    Implementation based on arXiv 2105.02545 (Catch-the-Patch), as FedVSSL (arXiv
    2207.01975) uses it. Everything trained is under ``backbone.`` or ``head.``, so FedVSSL's
    partial update (``backbone.`` keys only) applies. :meth:`training_loss` pastes the
    patches itself (about 15 ms per 16x32x32 clip on one CPU thread, a third of a
    ``r3d_tiny`` step of 16 clips); a data pipeline can instead call
    :func:`catch_the_patch` in its workers and train on :meth:`loss`.

    Parameters
    ----------
    backbone
        A video backbone of :mod:`fedssl.models.video_backbones` (``forward_features``,
        ``feature_shape``, ``spatial_stride`` and int ``feature_dim``); kept as
        ``self.backbone``. Use the CtP geometry: ``r3d_18(ctp_geometry=True)`` at 112x112,
        ``r3d_tiny(ctp_geometry=True)`` at 32x32.
    num_frames
        Frames per training clip (16 in CtP); the head predicts a box on each.
    image_size
        Side of the (square) training clips; selects :func:`ctp_config` unless ``config`` is
        given, and sizes the temporal conv.
    config
        The pretext and head settings; ``None``: ``ctp_config(image_size)``.
    hidden_dim
        Head width; ``None``: the backbone's ``feature_dim`` (CtP: 512 on R3D-18).

    Raises
    ------
    ValueError
        If the backbone lacks the video-backbone interface or ``image_size`` has no preset
        and no ``config`` is given.
    """

    def __init__(self, backbone: nn.Module, *, num_frames: int = 16, image_size: int = 32,
                 config: CtPConfig | None = None, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.feature_dim = feature_dim_of(backbone)
        missing = [a for a in ("forward_features", "feature_shape", "spatial_stride")
                   if not hasattr(backbone, a)]
        if missing:
            raise ValueError(f"backbone {type(backbone).__name__} lacks {missing}; use a "
                             "fedssl.models.video_backbones builder (r3d_tiny, r3d_18)")
        self.backbone = backbone
        self.config = config if config is not None else ctp_config(image_size)
        self.num_frames = num_frames
        self.image_size = image_size
        in_frames = backbone.feature_shape(num_frames, image_size, image_size)[0]
        self.head = CtPHead(
            self.feature_dim, in_frames=in_frames, num_frames=num_frames,
            hidden_dim=hidden_dim or self.feature_dim, roi_size=self.config.roi_size,
            spatial_scale=1.0 / backbone.spatial_stride,
        )

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> CtPModel:
        """Build with the defaults (16 frames, 32x32); the shared options do not apply.

        CtP's head width equals the backbone's, so ``options.hidden_dim`` (the projection
        heads' width) is not used.
        """
        del options
        return cls(backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, feature_dim)`` of clips (what evaluation uses)."""
        return self.backbone(x)

    def on_step_start(self, progress: float) -> None:
        """Nothing to schedule (the hook every SSL model offers)."""
        del progress

    def _check(self, clips: torch.Tensor) -> None:
        expected = (3, self.num_frames, self.image_size, self.image_size)
        if clips.dim() != 5 or tuple(clips.shape[1:]) != expected:
            raise ValueError(f"expected clips (B, {', '.join(map(str, expected))}), got "
                             f"{tuple(clips.shape)}; build CtPModel with the clips' "
                             "num_frames and image_size")

    def pretext(self, clips: torch.Tensor, seed: Seed | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patched clips and boxes ``(B, N, T, 4)`` (:func:`catch_the_patch_batch`).

        ``seed`` ``None`` draws one from torch's global RNG, so ``torch.manual_seed`` makes
        training reproducible.
        """
        self._check(clips)
        if seed is None:
            seed = int(torch.randint(2**62, (1,)).item())
        return catch_the_patch_batch(clips, seed, self.config)

    def predict(self, clips: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Normalised deltas ``(B, N, T, 4)`` for patched clips given their boxes."""
        self._check(clips)
        return self.head(self.backbone.forward_features(clips), boxes[:, :, 0])

    def loss(self, clips: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """CtP's loss on patched clips ``(B, 3, T, H, W)`` with their boxes ``(B, N, T, 4)``."""
        targets = trajectory_targets(boxes, self.config.target_stds).to(clips.dtype)
        return ctp_loss(self.predict(clips, boxes), targets)

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Paste patches on the first view's clips (fresh draws per call) and score them."""
        clips, boxes = self.pretext(views[0])
        return self.loss(clips, boxes)
