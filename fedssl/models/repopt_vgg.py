"""RepOpt-VGG: a VGG-style plain network trained as if it had RepVGG branches.

Ding et al., "Re-parameterizing Your Optimizers rather than Architectures", ICLR 2023
(RepOpt-VGG), used by Lau et al., "FedRepOpt: Gradient Re-parametrized Optimizers in Federated
Learning", ACCV 2024. The block of each mode (post-sum BN and ReLU in all of them):

* ``rep`` (RepVGG's training-time block, Ding et al., CVPR 2021; FedRepOpt's "-Tr" baseline):
  ``relu(bn(bn_3x3(conv_3x3(x)) + bn_1x1(conv_1x1(x)) [+ bn_identity(x)]))``;
* ``csla``: ``relu(bn(s3 ⊙ conv_3x3(x) + s1 ⊙ conv_1x1(x) [+ s_id ⊙ x]))`` with constant
  ``s3``, ``s1`` (frozen, still in the ``state_dict``) and a trainable ``s_id``, as in the
  authors' code;
* ``hs`` (hyper-search): the same with all scales trainable;
* ``target``: ``relu(bn(conv(x)))``, the plain model.

A block has an identity branch only when its input and output widths match and its stride is
1. The network is ``stage0`` (one stride-2 block, 3 -> stem width), ``stage1..stage4`` (the
first block of each stride 2) and global average pooling into ``linear``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fedssl.models.repopt_blocks import (
    RepOptBlock,
    ScaleLayer,
    as_channel_scale,
    check_mode,
    fuse_bn,
    vgg_grad_mask,
)

__all__ = [
    "REPOPT_VGG_CONFIGS",
    "RepOptVGG",
    "RepOptVGGBlock",
    "RepOptVGGConfig",
    "build_repopt_vgg",
    "repopt_vgg_b1",
    "repopt_vgg_default_scales",
    "repopt_vgg_tiny",
    "vgg_scale_init",
]


@dataclass(frozen=True)
class RepOptVGGConfig:
    """Widths and depths of a RepOpt-VGG.

    Attributes
    ----------
    num_blocks : tuple of 4 ints
        Blocks in ``stage1`` .. ``stage4`` (``stage0`` always has one).
    stem_width : int
        Output channels of ``stage0``.
    widths : tuple of 4 ints
        Output channels of ``stage1`` .. ``stage4``; the last is the feature size.
    """

    num_blocks: tuple[int, int, int, int]
    stem_width: int
    widths: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        if len(self.num_blocks) != 4 or any(n < 1 for n in self.num_blocks):
            raise ValueError(f"num_blocks must be 4 positive ints, got {self.num_blocks}")
        if len(self.widths) != 4 or min(self.widths) < 1 or self.stem_width < 1:
            raise ValueError(f"stem_width and the 4 widths must be positive, got "
                             f"{self.stem_width} and {self.widths}")


REPOPT_VGG_CONFIGS: dict[str, RepOptVGGConfig] = {
    # RepOpt-VGG-B1 (Ding et al., ICLR 2023, Table 1; FedRepOpt's VGG): width multipliers
    # [2, 2, 2, 4] on 64/128/256/512, stem min(64, 64·2).
    "repopt-vgg-b1": RepOptVGGConfig(
        num_blocks=(4, 6, 16, 1), stem_width=64, widths=(128, 256, 512, 2048)
    ),
    # Ours, for CPU runs on 32x32 images: identity branches in stage2 and stage3 only.
    "repopt-vgg-tiny": RepOptVGGConfig(
        num_blocks=(1, 2, 2, 1), stem_width=16, widths=(16, 32, 64, 128)
    ),
}


def vgg_scale_init(index: int) -> float:
    """Hyper-search init of ``scale_3x3`` and ``scale_1x1``: 1 for block 0 of a stage, else
    ``sqrt(2/index)`` (Ding et al., ICLR 2023)."""
    return 1.0 if index == 0 else math.sqrt(2.0 / index)


@dataclass(frozen=True)
class _BlockPlan:
    path: str
    in_channels: int
    out_channels: int
    stride: int
    scale_init: float

    @property
    def identity(self) -> bool:
        return self.in_channels == self.out_channels and self.stride == 1


def _plan(config: RepOptVGGConfig) -> list[list[_BlockPlan]]:
    """Per stage (``stage0`` first), the blocks with their module paths."""
    stages = [[_BlockPlan("stage0", 3, config.stem_width, 2, vgg_scale_init(0))]]
    in_channels = config.stem_width
    for s, (n, width) in enumerate(zip(config.num_blocks, config.widths, strict=True), start=1):
        blocks = []
        for i in range(n):
            blocks.append(_BlockPlan(f"stage{s}.{i}", in_channels, width, 2 if i == 0 else 1,
                                     vgg_scale_init(i)))
            in_channels = width
        stages.append(blocks)
    return stages


class RepOptVGGBlock(RepOptBlock):
    """One RepOpt-VGG block in one of the modes ``rep``, ``csla``, ``hs``, ``target``.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output widths.
    stride : int (default: 1)
        Stride of the 3x3 (and 1x1) convolution.
    mode : str (default: "target")
        One of :data:`fedssl.models.repopt.REPOPT_MODES` (see the module docstring).
    scale_init : float (default: 1.0)
        Initial ``scale_3x3`` and ``scale_1x1`` (csla/hs); ``scale_identity`` starts at 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        mode: str = "target",
        scale_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.has_identity = in_channels == out_channels and stride == 1
        if mode == "target":
            self.conv = self._conv(3)
        else:
            self.conv_3x3 = self._conv(3)
            self.conv_1x1 = self._conv(1)
            if mode == "rep":
                self.bn_3x3 = nn.BatchNorm2d(out_channels)
                self.bn_1x1 = nn.BatchNorm2d(out_channels)
                if self.has_identity:
                    self.bn_identity = nn.BatchNorm2d(out_channels)
            else:
                self.scale_3x3 = ScaleLayer(out_channels, init=scale_init)
                self.scale_1x1 = ScaleLayer(out_channels, init=scale_init)
                if self.has_identity:
                    self.scale_identity = ScaleLayer(out_channels, init=1.0)
                if mode == "csla":  # constants, but kept in the state_dict
                    self.scale_3x3.requires_grad_(False)
                    self.scale_1x1.requires_grad_(False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()

    def _conv(self, kernel_size: int) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, kernel_size, stride=self.stride,
                         padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "target":
            out = self.conv(x)
        elif self.mode == "rep":
            out = self.bn_3x3(self.conv_3x3(x)) + self.bn_1x1(self.conv_1x1(x))
            if self.has_identity:
                out = out + self.bn_identity(x)
        else:
            out = self.scale_3x3(self.conv_3x3(x)) + self.scale_1x1(self.conv_1x1(x))
            if self.has_identity:
                out = out + self.scale_identity(x)
        return self.act(self.bn(out))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, "
                f"mode={self.mode!r}, identity={self.has_identity}")

    # -- RepOptBlock hooks ---------------------------------------------------------------------

    def scale_shapes(self) -> dict[str, tuple[int, ...]]:
        names = ["scale_3x3", "scale_1x1"] + (["scale_identity"] if self.has_identity else [])
        return {name: (self.out_channels,) for name in names}

    def scales(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).weight.detach().clone() for name in self.scale_shapes()}

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The single 3x3 kernel (and, for ``rep``, the bias before ``bn``) of this block.

        ``rep``: BN-folded branches summed; ``csla``/``hs``:
        ``s3·W3 + s1·pad(W1) [+ s_id·I]`` with no bias; ``target``: the kernel itself.
        """
        if self.mode == "target":
            return self.conv.weight.detach().clone(), None
        # Add the 1x1 and identity terms at the centre tap in place: B1's kernels are large.
        w3, w1 = self.conv_3x3.weight, self.conv_1x1.weight
        diagonal = torch.arange(self.out_channels, device=w3.device)
        if self.mode == "rep":
            kernel, bias = fuse_bn(w3, self.bn_3x3)
            k1, b1 = fuse_bn(w1, self.bn_1x1)
            kernel[:, :, 1, 1] += k1[:, :, 0, 0]
            bias = bias + b1
            if self.has_identity:
                k_id, b_id = fuse_bn(torch.ones_like(w3[:, :1, :1, :1]), self.bn_identity)
                kernel[diagonal, diagonal, 1, 1] += k_id.flatten()
                bias = bias + b_id
            return kernel, bias
        kernel = as_channel_scale(self.scale_3x3.weight, w3) * w3
        kernel[:, :, 1, 1] += self.scale_1x1.weight.to(w1.dtype)[:, None] * w1[:, :, 0, 0]
        if self.has_identity:
            kernel[diagonal, diagonal, 1, 1] += self.scale_identity.weight.to(w3.dtype)
        return kernel, None

    @torch.no_grad()
    def reparameterized(self) -> RepOptVGGBlock:
        reference = self.bn.weight
        target = RepOptVGGBlock(self.in_channels, self.out_channels, stride=self.stride,
                                mode="target").to(device=reference.device, dtype=reference.dtype)
        kernel, bias = self.merged_kernel()
        target.conv.weight.copy_(kernel)
        target.bn.load_state_dict(self.bn.state_dict())
        if bias is not None:  # bn(z + b) is bn with running_mean - b applied to z
            target.bn.running_mean.sub_(bias)
        return target.train(self.training)

    def _require_target(self, caller: str) -> None:
        if self.mode != "target":
            raise ValueError(f"{caller} needs a target-mode block, got mode {self.mode!r}")

    @torch.no_grad()
    def init_from_scales(self, scales: Mapping[str, torch.Tensor]) -> None:
        self._require_target("init_from_scales")
        weight = self.conv.weight
        fresh = nn.Conv2d(self.in_channels, self.out_channels, 1, stride=self.stride,
                          bias=False).weight.to(device=weight.device, dtype=weight.dtype)
        s1 = as_channel_scale(scales["scale_1x1"], weight).flatten()
        kernel = as_channel_scale(scales["scale_3x3"], weight) * weight
        kernel[:, :, 1, 1] += s1[:, None] * fresh[:, :, 0, 0]  # s1·pad(W1): the centre tap
        if self.has_identity:  # s_id at the centre tap of channel c -> c
            diagonal = torch.arange(self.out_channels, device=weight.device)
            kernel[diagonal, diagonal, 1, 1] += as_channel_scale(
                scales["scale_identity"], weight).flatten()
        weight.copy_(kernel)

    def grad_masks(self, scales: Mapping[str, torch.Tensor]) -> dict[nn.Parameter, torch.Tensor]:
        self._require_target("grad_masks")
        weight = self.conv.weight
        mask = vgg_grad_mask(torch.as_tensor(scales["scale_3x3"]).detach().cpu(),
                             torch.as_tensor(scales["scale_1x1"]).detach().cpu(),
                             self.in_channels, identity=self.has_identity)
        return {weight: mask.to(device=weight.device, dtype=weight.dtype)}


class RepOptVGG(nn.Module):
    """RepOpt-VGG classifier (Ding et al., ICLR 2023).

    Parameters
    ----------
    config : RepOptVGGConfig
        Depths and widths, e.g. ``REPOPT_VGG_CONFIGS["repopt-vgg-b1"]``.
    mode : str
        Block mode, one of :data:`fedssl.models.repopt.REPOPT_MODES`.
    num_classes : int
        Outputs of ``linear``.
    arch : str (default: "custom")
        Name stored as ``self.arch``.
    """

    def __init__(
        self, config: RepOptVGGConfig, *, mode: str, num_classes: int, arch: str = "custom"
    ) -> None:
        super().__init__()
        self.arch, self.mode, self.num_classes = arch, check_mode(mode), num_classes
        plan = _plan(config)

        def block(p: _BlockPlan) -> RepOptVGGBlock:
            return RepOptVGGBlock(p.in_channels, p.out_channels, stride=p.stride, mode=mode,
                                  scale_init=p.scale_init)

        self.stage0 = block(plan[0][0])
        self.stage1 = nn.Sequential(*map(block, plan[1]))
        self.stage2 = nn.Sequential(*map(block, plan[2]))
        self.stage3 = nn.Sequential(*map(block, plan[3]))
        self.stage4 = nn.Sequential(*map(block, plan[4]))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(config.widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage0(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return self.linear(torch.flatten(self.gap(x), 1))


def _config(name: str) -> RepOptVGGConfig:
    if name not in REPOPT_VGG_CONFIGS:
        raise ValueError(f"unknown RepOpt-VGG name {name!r}; valid names: "
                         f"{', '.join(REPOPT_VGG_CONFIGS)}")
    return REPOPT_VGG_CONFIGS[name]


def build_repopt_vgg(name: str, *, mode: str, num_classes: int) -> RepOptVGG:
    """Build the RepOpt-VGG ``name`` (a key of :data:`REPOPT_VGG_CONFIGS`) in ``mode``."""
    return RepOptVGG(_config(name), mode=mode, num_classes=num_classes, arch=name)


def repopt_vgg_b1(*, mode: str = "target", num_classes: int = 1000) -> RepOptVGG:
    """RepOpt-VGG-B1: blocks [4, 6, 16, 1], widths 64 / 128, 256, 512, 2048."""
    return build_repopt_vgg("repopt-vgg-b1", mode=mode, num_classes=num_classes)


def repopt_vgg_tiny(*, mode: str = "target", num_classes: int = 10) -> RepOptVGG:
    """Tiny RepOpt-VGG for CPU runs: blocks [1, 2, 2, 1], widths 16 / 16, 32, 64, 128."""
    return build_repopt_vgg("repopt-vgg-tiny", mode=mode, num_classes=num_classes)


def repopt_vgg_default_scales(name: str) -> dict[str, torch.Tensor]:
    """Hyper-search initial scales of RepOpt-VGG ``name``, keyed like ``repopt_scales``."""
    scales: dict[str, torch.Tensor] = {}
    for stage in _plan(_config(name)):
        for p in stage:
            scales[f"{p.path}.scale_3x3"] = torch.full((p.out_channels,), p.scale_init)
            scales[f"{p.path}.scale_1x1"] = torch.full((p.out_channels,), p.scale_init)
            if p.identity:
                scales[f"{p.path}.scale_identity"] = torch.ones(p.out_channels)
    return scales
