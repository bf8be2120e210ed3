"""RepOpt-GhostNet: a RepGhost-style network re-parameterised through the optimiser.

The network follows RepGhost (Chen et al., "RepGhost: A Hardware-Efficient Ghost Module via
Re-parameterization", 2022): stem conv3x3/2 + BN + ReLU, stages of Ghost bottlenecks, a 1x1
ConvBnAct, global pooling, a 1x1 ``conv_head`` + ReLU, dropout and ``classifier``. Its Ghost
module is the RepOpt one of FedRepOpt (Lau et al., ACCV 2024), after RepOpt (Ding et al.,
ICLR 2023): ``x1 = relu?(bn(conv1x1(x)))``, then, with a depthwise 3x3 ``cheap_conv``,

* ``rep`` (RepGhost's training-time module, FedRepOpt's "-Tr" baseline):
  ``x2 = cheap_bn(cheap_conv(x1)) + fusion_bn(x1)`` (no final BN);
* ``csla``: ``x2 = final_bn(s_dw ⊙ cheap_conv(x1) + s_id ⊙ x1)``, constant ``s_dw`` (frozen,
  kept in the ``state_dict``), trainable ``s_id``;
* ``hs`` (hyper-search): the same with both scales trainable;
* ``target``: ``x2 = final_bn(cheap_conv(x1))``;

and the output is ``relu?(x2)``. There is no concat (RepGhost's "org" mode is not built).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedssl.models.repopt_blocks import (
    RepOptBlock,
    ScaleLayer,
    as_channel_scale,
    check_mode,
    fuse_bn,
    ghost_grad_mask,
    identity_kernel,
)

__all__ = [
    "REPOPT_GHOSTNET_CONFIGS",
    "GhostBottleneckConfig",
    "RepOptGhostBottleneck",
    "RepOptGhostModule",
    "RepOptGhostNet",
    "RepOptGhostNetConfig",
    "SqueezeExcite",
    "build_repopt_ghostnet",
    "ghost_scale_init",
    "make_divisible",
    "repopt_ghostnet_0_5x",
    "repopt_ghostnet_default_scales",
    "repopt_ghostnet_tiny",
]


def make_divisible(value: float, divisor: int = 4) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), going up
    one step if rounding lost more than 10% (the MobileNet/GhostNet channel rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def ghost_scale_init(module_index: int) -> float:
    """Hyper-search init of a Ghost module's ``scale_dw``: ``sqrt(2 / (module_index + 1))``.

    ``module_index`` counts Ghost modules along a run of stride-1, same-width bottlenecks:
    ``2b - 1`` for ``ghost1`` and ``2b`` for ``ghost2`` of the run's ``b``-th block (``b``
    restarts at 1 on a block that changes width or stride), as in FedRepOpt's code.
    """
    return math.sqrt(2.0 / (module_index + 1))


@dataclass(frozen=True)
class GhostBottleneckConfig:
    """One row of the GhostNet table (Han et al., CVPR 2020, Table 1), before width scaling.

    Attributes
    ----------
    kernel_size : int
        Depthwise kernel of the stride-2 conv and of the shortcut.
    expansion : int
        Hidden ("exp size") channels.
    channels : int
        Output channels.
    se_ratio : float
        Squeeze-excite reduction ratio; 0 for none.
    stride : int
        1 or 2.
    """

    kernel_size: int
    expansion: int
    channels: int
    se_ratio: float
    stride: int


@dataclass(frozen=True)
class RepOptGhostNetConfig:
    """A RepOpt-GhostNet: bottleneck table, width multiplier and head.

    Attributes
    ----------
    stages : tuple of tuples of GhostBottleneckConfig
        One inner tuple per stage (``blocks.0``, ``blocks.1``, ...).
    width : float
        Width multiplier, applied with :func:`make_divisible` to every channel count except
        ``head_channels``.
    head_channels : int (default: 1280)
        Output channels of ``conv_head``.
    stem_channels : int (default: 16)
        Stem output channels before width scaling.
    dropout : float (default: 0.2)
        Dropout before ``classifier``.
    """

    stages: tuple[tuple[GhostBottleneckConfig, ...], ...]
    width: float
    head_channels: int = 1280
    stem_channels: int = 16
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not self.stages or any(not stage for stage in self.stages):
            raise ValueError("stages must be a non-empty tuple of non-empty stages")
        if self.width <= 0 or self.head_channels < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"need width > 0, head_channels >= 1 and dropout in [0, 1), got "
                             f"{self.width}, {self.head_channels}, {self.dropout}")


def _stages(*rows: list[list[float]]) -> tuple[tuple[GhostBottleneckConfig, ...], ...]:
    return tuple(
        tuple(GhostBottleneckConfig(int(k), int(t), int(c), float(se), int(s))
              for k, t, c, se, s in stage)
        for stage in rows
    )


# GhostNet / RepGhost rows: kernel, expansion, channels, SE ratio, stride.
_GHOSTNET_STAGES = _stages(
    [[3, 8, 16, 0, 1]],
    [[3, 24, 24, 0, 2]],
    [[3, 36, 24, 0, 1]],
    [[5, 36, 40, 0.25, 2]],
    [[5, 60, 40, 0.25, 1]],
    [[3, 120, 80, 0, 2]],
    [[3, 100, 80, 0, 1], [3, 120, 80, 0, 1], [3, 120, 80, 0, 1], [3, 240, 112, 0.25, 1],
     [3, 336, 112, 0.25, 1]],
    [[5, 336, 160, 0.25, 2]],
    [[5, 480, 160, 0, 1], [5, 480, 160, 0.25, 1], [5, 480, 160, 0, 1],
     [5, 480, 160, 0.25, 1]],
)

REPOPT_GHOSTNET_CONFIGS: dict[str, RepOptGhostNetConfig] = {
    # FedRepOpt's GhostNet 0.5x (RepGhost table, width 0.5).
    "repopt-ghost-0.5x": RepOptGhostNetConfig(stages=_GHOSTNET_STAGES, width=0.5),
    # Ours, for CPU runs on 32x32 images: the first six stages and the first bottleneck of
    # the seventh (four stride-2 steps including the stem, ending at 80·0.5 = 40 channels),
    # and a 256-wide head.
    "repopt-ghost-tiny": RepOptGhostNetConfig(
        stages=(*_GHOSTNET_STAGES[:6], _GHOSTNET_STAGES[6][:1]),
        width=0.5,
        head_channels=256,
    ),
}


@dataclass(frozen=True)
class _BottleneckPlan:
    path: str
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    se_ratio: float
    block_index: int  # b of ghost_scale_init

    @property
    def ghost_inits(self) -> tuple[float, float]:
        return (ghost_scale_init(2 * self.block_index - 1),
                ghost_scale_init(2 * self.block_index))


def _plan(config: RepOptGhostNetConfig) -> tuple[int, list[list[_BottleneckPlan]], int, int]:
    """Stem width, per-stage bottleneck plans, and the final ConvBnAct's in/out widths."""
    stem = make_divisible(config.stem_channels * config.width, 4)
    in_channels, block_index, stages = stem, 0, []
    for s, stage in enumerate(config.stages):
        plans = []
        for j, row in enumerate(stage):
            out_channels = make_divisible(row.channels * config.width, 4)
            # The counter runs on across stage boundaries and restarts on width/stride changes.
            block_index = (block_index + 1
                           if row.stride == 1 and in_channels == out_channels else 1)
            plans.append(_BottleneckPlan(
                f"blocks.{s}.{j}", in_channels, make_divisible(row.expansion * config.width, 4),
                out_channels, row.kernel_size, row.stride, row.se_ratio, block_index))
            in_channels = out_channels
        stages.append(plans)
    last_expansion = config.stages[-1][-1].expansion
    return stem, stages, in_channels, make_divisible(last_expansion * config.width * 2, 4)


class RepOptGhostModule(RepOptBlock):
    """The RepOpt Ghost module (no concat) in one of the modes ``rep``, ``csla``, ``hs``,
    ``target`` (see the module docstring).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output widths; the primary 1x1 conv maps ``in -> out`` and the cheap
        depthwise 3x3 conv works on ``out`` channels.
    relu : bool (default: True)
        ReLU after the primary conv and at the output.
    mode : str (default: "target")
        One of :data:`fedssl.models.repopt.REPOPT_MODES`.
    scale_init : float (default: 1.0)
        Initial ``scale_dw`` (csla/hs); ``scale_identity`` starts at 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        relu: bool = True,
        mode: str = "target",
        scale_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.in_channels, self.out_channels, self.relu = in_channels, out_channels, relu
        self.has_identity = True
        self.primary_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.primary_bn = nn.BatchNorm2d(out_channels)
        self.primary_act = nn.ReLU() if relu else nn.Identity()
        self.cheap_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1,
                                    groups=out_channels, bias=False)
        if mode == "rep":
            self.cheap_bn = nn.BatchNorm2d(out_channels)
            self.fusion_bn = nn.BatchNorm2d(out_channels)
        else:
            if mode in ("csla", "hs"):
                self.scale_dw = ScaleLayer(out_channels, init=scale_init)
                self.scale_identity = ScaleLayer(out_channels, init=1.0)
                if mode == "csla":  # constant, but kept in the state_dict
                    self.scale_dw.requires_grad_(False)
            self.final_bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_act(self.primary_bn(self.primary_conv(x)))
        if self.mode == "rep":
            x2 = self.cheap_bn(self.cheap_conv(x1)) + self.fusion_bn(x1)
        elif self.mode == "target":
            x2 = self.final_bn(self.cheap_conv(x1))
        else:
            x2 = self.final_bn(self.scale_dw(self.cheap_conv(x1)) + self.scale_identity(x1))
        return self.act(x2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, relu={self.relu}, mode={self.mode!r}"

    # -- RepOptBlock hooks ---------------------------------------------------------------------

    def scale_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"scale_dw": (self.out_channels,), "scale_identity": (self.out_channels,)}

    def scales(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).weight.detach().clone() for name in self.scale_shapes()}

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The single depthwise kernel (and, for ``rep``, the bias) of the cheap operation.

        ``rep``: ``cheap_bn`` and ``fusion_bn`` folded and summed; ``csla``/``hs``:
        ``s_dw·W_dw + s_id·I_dw`` with no bias; ``target``: the kernel itself.
        """
        weight = self.cheap_conv.weight
        identity = identity_kernel(self.out_channels, depthwise=True, like=weight)
        if self.mode == "target":
            return weight.detach().clone(), None
        if self.mode == "rep":
            k_dw, b_dw = fuse_bn(weight, self.cheap_bn)
            k_id, b_id = fuse_bn(identity, self.fusion_bn)
            return k_dw + k_id, b_dw + b_id
        return (as_channel_scale(self.scale_dw.weight, weight) * weight
                + as_channel_scale(self.scale_identity.weight, weight) * identity), None

    @torch.no_grad()
    def reparameterized(self) -> RepOptGhostModule:
        reference = self.primary_bn.weight
        target = RepOptGhostModule(self.in_channels, self.out_channels, relu=self.relu,
                                   mode="target").to(device=reference.device,
                                                     dtype=reference.dtype)
        target.primary_conv.load_state_dict(self.primary_conv.state_dict())
        target.primary_bn.load_state_dict(self.primary_bn.state_dict())
        kernel, bias = self.merged_kernel()
        target.cheap_conv.weight.copy_(kernel)
        if bias is None:
            target.final_bn.load_state_dict(self.final_bn.state_dict())
        else:  # rep has no final BN: make it an exact affine pass-through adding the bias
            bn = target.final_bn
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        return target.train(self.training)

    def _require_target(self, caller: str) -> None:
        if self.mode != "target":
            raise ValueError(f"{caller} needs a target-mode module, got mode {self.mode!r}")

    @torch.no_grad()
    def init_from_scales(self, scales: Mapping[str, torch.Tensor]) -> None:
        self._require_target("init_from_scales")
        weight = self.cheap_conv.weight
        weight.copy_(as_channel_scale(scales["scale_dw"], weight) * weight
                     + as_channel_scale(scales["scale_identity"], weight)
                     * identity_kernel(self.out_channels, depthwise=True, like=weight))

    def grad_masks(self, scales: Mapping[str, torch.Tensor]) -> dict[nn.Parameter, torch.Tensor]:
        self._require_target("grad_masks")
        weight = self.cheap_conv.weight
        mask = ghost_grad_mask(torch.as_tensor(scales["scale_dw"]).detach().cpu())
        return {weight: mask.to(device=weight.device, dtype=weight.dtype)}


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a hard-sigmoid gate (GhostNet's SE).

    Parameters
    ----------
    channels : int
        Input (and output) channels.
    se_ratio : float
        Reduced width is ``make_divisible(channels * se_ratio, 4)``.
    """

    def __init__(self, channels: int, se_ratio: float) -> None:
        super().__init__()
        reduced = make_divisible(channels * se_ratio, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU()
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.conv_expand(self.act(self.conv_reduce(self.pool(x))))
        return x * F.hardsigmoid(gate)


class RepOptGhostBottleneck(nn.Module):
    """Ghost bottleneck with RepOpt Ghost modules and optional SE (RepGhost layout).

    ``ghost1`` (ReLU) ``in -> mid``; a depthwise ``conv_dw`` (``kernel_size``, ``stride``) +
    ``bn_dw`` when ``stride > 1``; optional ``se``; ``ghost2`` (no ReLU) ``mid -> out``; plus
    ``shortcut``: identity when ``in == out`` and stride 1, else depthwise conv + BN + 1x1 conv +
    BN.

    Parameters
    ----------
    in_channels, mid_channels, out_channels : int
    kernel_size : int
    stride : int
    se_ratio : float
        0 for no SE.
    mode : str
        Mode of both Ghost modules.
    scale_inits : tuple of 2 floats (default: (1.0, 1.0))
        ``scale_init`` of ``ghost1`` and ``ghost2``.
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        mode: str = "target",
        scale_inits: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        pad = kernel_size // 2
        self.ghost1 = RepOptGhostModule(in_channels, mid_channels, relu=True, mode=mode,
                                        scale_init=scale_inits[0])
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid_channels, mid_channels, kernel_size, stride=stride,
                                     padding=pad, groups=mid_channels, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_channels)
        self.se = SqueezeExcite(mid_channels, se_ratio) if se_ratio > 0 else nn.Identity()
        self.ghost2 = RepOptGhostModule(mid_channels, out_channels, relu=False, mode=mode,
                                        scale_init=scale_inits[1])
        if in_channels == out_channels and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=pad,
                          groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        if self.stride > 1:
            out = self.bn_dw(self.conv_dw(out))
        out = self.ghost2(self.se(out))
        return out + self.shortcut(x)


class _ConvBnAct(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()


class RepOptGhostNet(nn.Module):
    """RepOpt-GhostNet classifier (RepGhost layout, FedRepOpt's RepOpt Ghost modules).

    Parameters
    ----------
    config : RepOptGhostNetConfig
        Table, width and head, e.g. ``REPOPT_GHOSTNET_CONFIGS["repopt-ghost-0.5x"]``.
    mode : str
        Mode of every Ghost module, one of :data:`fedssl.models.repopt.REPOPT_MODES`.
    num_classes : int
        Outputs of ``classifier``.
    arch : str (default: "custom")
        Name stored as ``self.arch``.
    """

    def __init__(
        self, config: RepOptGhostNetConfig, *, mode: str, num_classes: int, arch: str = "custom"
    ) -> None:
        super().__init__()
        self.arch, self.mode, self.num_classes = arch, check_mode(mode), num_classes
        stem, plan, last_in, last_out = _plan(config)
        self.conv_stem = nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = nn.ReLU()
        stages: list[nn.Module] = [
            nn.Sequential(*(
                RepOptGhostBottleneck(p.in_channels, p.mid_channels, p.out_channels,
                                      kernel_size=p.kernel_size, stride=p.stride,
                                      se_ratio=p.se_ratio, mode=mode, scale_inits=p.ghost_inits)
                for p in stage_plan))
            for stage_plan in plan
        ]
        stages.append(nn.Sequential(_ConvBnAct(last_in, last_out)))
        self.blocks = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(last_out, config.head_channels, 1, bias=True)
        self.act2 = nn.ReLU()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.act1(self.bn1(self.conv_stem(x))))
        x = self.act2(self.conv_head(self.global_pool(x)))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def _config(name: str) -> RepOptGhostNetConfig:
    if name not in REPOPT_GHOSTNET_CONFIGS:
        raise ValueError(f"unknown RepOpt-GhostNet name {name!r}; valid names: "
                         f"{', '.join(REPOPT_GHOSTNET_CONFIGS)}")
    return REPOPT_GHOSTNET_CONFIGS[name]


def build_repopt_ghostnet(name: str, *, mode: str, num_classes: int) -> RepOptGhostNet:
    """Build the RepOpt-GhostNet ``name`` (a key of :data:`REPOPT_GHOSTNET_CONFIGS`)."""
    return RepOptGhostNet(_config(name), mode=mode, num_classes=num_classes, arch=name)


def repopt_ghostnet_0_5x(*, mode: str = "target", num_classes: int = 1000) -> RepOptGhostNet:
    """RepOpt-GhostNet 0.5x (FedRepOpt's Ghost model)."""
    return build_repopt_ghostnet("repopt-ghost-0.5x", mode=mode, num_classes=num_classes)


def repopt_ghostnet_tiny(*, mode: str = "target", num_classes: int = 10) -> RepOptGhostNet:
    """Tiny RepOpt-GhostNet for CPU runs (seven stages at width 0.5, 256-wide head)."""
    return build_repopt_ghostnet("repopt-ghost-tiny", mode=mode, num_classes=num_classes)


def repopt_ghostnet_default_scales(name: str) -> dict[str, torch.Tensor]:
    """Hyper-search initial scales of RepOpt-GhostNet ``name``, keyed like ``repopt_scales``."""
    scales: dict[str, torch.Tensor] = {}
    for stage in _plan(_config(name))[1]:
        for p in stage:
            for ghost, channels, init in (("ghost1", p.mid_channels, p.ghost_inits[0]),
                                          ("ghost2", p.out_channels, p.ghost_inits[1])):
                scales[f"{p.path}.{ghost}.scale_dw"] = torch.full((channels,), init)
                scales[f"{p.path}.{ghost}.scale_identity"] = torch.ones(channels)
    return scales
