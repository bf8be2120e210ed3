"""3D-CNN video backbones: clips ``(B, 3, T, H, W)`` in, a feature map or pooled features out.

>>> backbone = r3d_tiny(ctp_geometry=True)        # CPU default: 32x32 clips of 8-16 frames
>>> backbone.forward_features(clips).shape        # (B, 128, T/8, 8, 8) for 16x32x32 clips
>>> backbone(clips).shape                         # (B, 128): global average pool

Two families, both :class:`VideoBackbone` (a stem, four stages ``layer1``..``layer4``, and the
geometry needed to place boxes on the feature map):

* :func:`r3d_18`: R3D-18 of Tran et al., "A Closer Look at Spatiotemporal Convolutions for
  Action Recognition" (CVPR 2018, arXiv 1711.11248), built from
  :func:`torchvision.models.video.r3d_18` (never downloading weights). With
  ``ctp_geometry=True`` it is the backbone Catch-the-Patch pretrains (Wang et al.,
  "Unsupervised Visual Representation Learning by Tracking Patches in Video", CVPR 2021,
  arXiv 2105.02545; code ``microsoft/CtP:pyvrl/models/backbones/r3d.py``), the backbone of
  FedVSSL (arXiv 2207.01975): ``layer4`` strides ``(2, 1, 1)`` instead of ``(2, 2, 2)`` (total
  spatial stride 8, so 16x112x112 clips give ``[512, 2, 14, 14]``) and BatchNorm ``eps`` is
  1e-3. Stride and ``eps`` are not parameters, so weights load across the geometries
  unchanged: the CtP fine-tuning configs load CtP-pretrained weights into the standard
  geometry. The parameter names are torchvision's (``stem.0``, ``layer1.0.conv1.0``, ...),
  without ``fc``.
* :func:`r3d_tiny`: a CPU-sized R3D (our design, next-systems §0.3): the same
  ``(3, 7, 7)`` stride-``(1, 2, 2)`` stem, then widths 16-32-64-128 with one plain pair of
  3x3x3 convolutions per stage and no residual (0.89 M parameters), for 32x32 clips of 8-16
  frames. Its CtP geometry (next-systems §1.8) keeps the spatial resolution after ``layer2``
  (``layer3`` and ``layer4`` stride ``(2, 1, 1)``): total spatial stride 4, an 8x8 map for
  32x32 clips.

The attribute ``feature_dim`` (the channels of the feature map, the width of the pooled
features) is what every backbone of :mod:`fedssl.models` declares. Kept under an SSL model's
``backbone.`` prefix, these are what FedVSSL's partial update exchanges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.video import r3d_18 as tv_r3d_18

__all__ = [
    "CTP_BN_EPS",
    "R3D_TINY_WIDTHS",
    "VideoBackbone",
    "VideoGeometry",
    "r3d_18",
    "r3d_18_backbone",
    "r3d_tiny",
    "r3d_tiny_backbone",
]

Stride3d = tuple[int, int, int]

#: BatchNorm epsilon of the CtP code base's R3D (mmcv's ``BN3d`` setting in its configs).
CTP_BN_EPS = 1e-3
#: Stage widths of :func:`r3d_tiny` (next-systems §0.3).
R3D_TINY_WIDTHS: tuple[int, int, int, int] = (16, 32, 64, 128)

_STEM_STRIDE: Stride3d = (1, 2, 2)


@dataclass(frozen=True)
class VideoGeometry:
    """The strides of an R3D-style network (every stage starts with a 3x3x3, padding-1 conv).

    Attributes
    ----------
    stage_strides
        ``(t, h, w)`` stride of the first convolution of ``layer1``..``layer4``.
    stem_stride
        ``(t, h, w)`` stride of the ``(3, 7, 7)``, padding ``(1, 3, 3)`` stem convolution.
    """

    stage_strides: tuple[Stride3d, Stride3d, Stride3d, Stride3d]
    stem_stride: Stride3d = _STEM_STRIDE

    @property
    def spatial_stride(self) -> int:
        """Total spatial stride (input pixels per feature-map cell): 16 standard, 8 or 4 CtP."""
        stride = self.stem_stride[1]
        for s in self.stage_strides:
            stride *= s[1]
        return stride

    def feature_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """``(T', H', W')`` of the feature map for a ``frames x height x width`` clip."""
        size = [frames, height, width]
        # Stem: kernel (3, 7, 7), padding (1, 3, 3); stages: kernel 3, padding 1.
        size = [(n + 2 * p - k) // s + 1
                for n, k, p, s in zip(size, (3, 7, 7), (1, 3, 3), self.stem_stride, strict=True)]
        for strides in self.stage_strides:
            size = [(n - 1) // s + 1 for n, s in zip(size, strides, strict=True)]
        return size[0], size[1], size[2]


STANDARD_GEOMETRY = VideoGeometry(((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)))
R3D18_CTP_GEOMETRY = VideoGeometry(((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 1, 1)))
TINY_CTP_GEOMETRY = VideoGeometry(((1, 1, 1), (2, 2, 2), (2, 1, 1), (2, 1, 1)))


class VideoBackbone(nn.Module):
    """A stem and four stages; ``forward_features`` gives the map, ``forward`` pools it.

    Parameters
    ----------
    stem
        Module applied first (conv-BN-ReLU).
    layers
        The four stages, kept as ``layer1``..``layer4`` (torchvision's names).
    feature_dim
        Output channels of ``layer4``.
    geometry
        The strides the stem and stages were built with (used by :meth:`feature_shape` and
        by heads that pool boxes from the map, such as CtP's).
    """

    def __init__(self, stem: nn.Module, layers: Sequence[nn.Module], *, feature_dim: int,
                 geometry: VideoGeometry) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"expected 4 stages (layer1..layer4), got {len(layers)}")
        self.stem = stem
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_dim: int = feature_dim
        self.geometry = geometry

    @property
    def spatial_stride(self) -> int:
        """Input pixels per feature-map cell (RoIAlign's ``spatial_scale`` is its inverse)."""
        return self.geometry.spatial_stride

    def feature_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """``(T', H', W')`` of :meth:`forward_features` for ``frames x height x width`` clips."""
        return self.geometry.feature_shape(frames, height, width)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map clips ``(B, 3, T, H, W)`` to the feature map ``(B, feature_dim, T', H', W')``."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(
                f"expected clips (B, 3, T, H, W), got shape {tuple(x.shape)}; "
                "a (B, T, 3, H, W) batch needs x.transpose(1, 2)"
            )
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map clips ``(B, 3, T, H, W)`` to features ``(B, feature_dim)`` (global average)."""
        return self.forward_features(x).mean(dim=(2, 3, 4))


def _set_bn_eps(module: nn.Module, eps: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = eps


def r3d_18(*, ctp_geometry: bool = False, bn_eps: float | None = None) -> VideoBackbone:
    """R3D-18 (torchvision's, randomly initialised), standard or CtP pretraining geometry.

    Parameters
    ----------
    ctp_geometry
        ``True``: Catch-the-Patch's pretraining geometry, ``layer4`` (its first convolution
        and its shortcut) strides ``(2, 1, 1)``: total spatial stride 8, feature map
        ``[512, 2, 14, 14]`` for 16x112x112 clips. ``False``: torchvision's, stride 16,
        ``[512, 2, 7, 7]`` (the geometry of CtP's VCOP, Speed and fine-tuning configs).
    bn_eps
        BatchNorm epsilon. ``None``: 1e-3 (:data:`CTP_BN_EPS`, as in the CtP code base) when
        ``ctp_geometry``, else torchvision's 1e-5. Pass 1e-3 with the standard geometry to
        fine-tune exactly as CtP does.

    Returns
    -------
    VideoBackbone
        ``feature_dim`` 512; the state_dict keys are torchvision ``r3d_18``'s without ``fc``
        and do not depend on the geometry or ``bn_eps``.
    """
    net = tv_r3d_18(weights=None)  # never download weights
    geometry = STANDARD_GEOMETRY
    if ctp_geometry:
        geometry = R3D18_CTP_GEOMETRY
        first = net.layer4[0]
        first.conv1[0].stride = geometry.stage_strides[3]
        first.downsample[0].stride = geometry.stage_strides[3]
    eps = bn_eps if bn_eps is not None else (CTP_BN_EPS if ctp_geometry else 1e-5)
    _set_bn_eps(net, eps)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    return VideoBackbone(net.stem, layers, feature_dim=512, geometry=geometry)


def _conv_bn_relu(in_ch: int, out_ch: int, stride: Stride3d, eps: float) -> list[nn.Module]:
    # bias=False: the following BatchNorm has its own shift.
    return [
        nn.Conv3d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(out_ch, eps=eps),
        nn.ReLU(inplace=True),
    ]


def r3d_tiny(*, ctp_geometry: bool = False, bn_eps: float | None = None,
             widths: tuple[int, int, int, int] = R3D_TINY_WIDTHS) -> VideoBackbone:
    """A CPU-sized R3D for 32x32 clips of 8-16 frames (our design, next-systems §0.3, §1.8).

    Stem: Conv3d ``3 -> widths[0]``, kernel ``(3, 7, 7)``, stride ``(1, 2, 2)``, padding
    ``(1, 3, 3)``, BN, ReLU (R3D-18's stem, narrower). Stage ``i``: two conv3x3x3-BN-ReLU,
    the first with the stage's stride, no residual. Standard geometry: stages 2-4 stride
    ``(2, 2, 2)``, a ``2x2`` map for 32x32 clips. Initialisation as R3D-18's (Kaiming normal,
    fan-out; BN weight 1, bias 0). Measured forward+backward of a 16x3x16x32x32 batch on one
    thread of a shared 2-core VM (load ~5): ~0.24 s standard, ~0.44 s CtP geometry (R3D-18 on
    2x3x8x32x32: ~0.7 s; on 1x3x16x112x112 in CtP geometry with the CtP head: ~5 s).

    Parameters
    ----------
    ctp_geometry
        ``True``: ``layer3`` and ``layer4`` stride ``(2, 1, 1)``, total spatial stride 4, an
        8x8 map for 32x32 clips, as Catch-the-Patch's scaled head needs (RoIAlign 3x3,
        ``spatial_scale`` 1/4). Time is still halved by every stage after ``layer1``.
    bn_eps
        BatchNorm epsilon; ``None``: 1e-3 with ``ctp_geometry`` (as CtP's R3D), else 1e-5.
    widths
        Output channels of the stem/``layer1`` and of ``layer2``..``layer4``; the last is
        ``feature_dim``.

    Returns
    -------
    VideoBackbone
        ``feature_dim == widths[-1]`` (128 by default); the state_dict does not depend on
        the geometry or ``bn_eps``.
    """
    if len(widths) != 4 or any(w < 1 for w in widths):
        raise ValueError(f"widths must be 4 positive ints, got {widths!r}")
    geometry = TINY_CTP_GEOMETRY if ctp_geometry else STANDARD_GEOMETRY
    eps = bn_eps if bn_eps is not None else (CTP_BN_EPS if ctp_geometry else 1e-5)
    stem = nn.Sequential(
        nn.Conv3d(3, widths[0], kernel_size=(3, 7, 7), stride=geometry.stem_stride,
                  padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(widths[0], eps=eps),
        nn.ReLU(inplace=True),
    )
    layers = []
    in_ch = widths[0]
    for width, stride in zip(widths, geometry.stage_strides, strict=True):
        layers.append(nn.Sequential(*_conv_bn_relu(in_ch, width, stride, eps),
                                    *_conv_bn_relu(width, width, (1, 1, 1), eps)))
        in_ch = width
    backbone = VideoBackbone(stem, layers, feature_dim=widths[-1], geometry=geometry)
    for m in backbone.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return backbone


def r3d_tiny_backbone(ctp_geometry: bool) -> VideoBackbone:
    """The registry's ``r3d-tiny`` (``False``) and ``r3d-tiny-ctp`` (``True``): :func:`r3d_tiny`
    with its defaults, in the standard or CtP geometry."""
    return r3d_tiny(ctp_geometry=ctp_geometry)


def r3d_18_backbone(ctp_geometry: bool) -> VideoBackbone:
    """The registry's ``r3d-18`` (``False``) and ``r3d-18-ctp`` (``True``): :func:`r3d_18` in
    the standard or CtP geometry."""
    return r3d_18(ctp_geometry=ctp_geometry)
