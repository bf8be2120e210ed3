"""LSKA: Large Separable Kernel Attention, and VAN backbones built on it.

Lau, Po, Rehman, "Large Separable Kernel Attention: Rethinking the Large Kernel Attention
Design in CNN" (Expert Systems with Applications, 2024, arXiv 2309.01439). LSKA replaces the
k×k depthwise and dilated-depthwise kernels of VAN's Large Kernel Attention by cascades of
1-d kernels (1×k0, k0×1, then dilated 1×kd, kd×1), so the cost grows linearly, not
quadratically, with k; the attention map gates the input element-wise (no softmax).

The backbone follows the Visual Attention Network (Guo et al., 2022): overlapping patch
embeddings (7×7 stride 4, then 3×3 stride 2, each with BatchNorm), blocks of BN → attention
and BN → convolutional MLP with layer scale and stochastic depth, a LayerNorm per stage.
Inputs may be images (B, 3, H, W) or spectrograms (B, 1, T, F) (``in_chans=1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from fedssl.models.transforms import check_image_size

__all__ = [
    "LSKA",
    "LSKA_KERNELS",
    "VANLSKA",
    "VAN_CONFIGS",
    "LSKAAttention",
    "LSKABlock",
    "LSKADecomposition",
    "VANConfig",
    "van_lska_backbone",
    "van_lska_base",
    "van_lska_small",
    "van_lska_tiny",
]


@dataclass(frozen=True)
class LSKADecomposition:
    """How a k×k depthwise kernel is split: a k0-tap local pair, a kd-tap dilated pair."""

    local: int
    dilated: int
    dilation: int

    @property
    def dilated_padding(self) -> int:
        return (self.dilated - 1) * self.dilation // 2

    @property
    def effective_kernel(self) -> int:
        return (self.local - 1) + (self.dilated - 1) * self.dilation + 1


# The paper's table (official models/van.py): target kernel -> decomposition.
LSKA_KERNELS: dict[int, LSKADecomposition] = {
    7: LSKADecomposition(local=3, dilated=3, dilation=2),
    11: LSKADecomposition(local=3, dilated=5, dilation=2),
    23: LSKADecomposition(local=5, dilated=7, dilation=3),
    35: LSKADecomposition(local=5, dilated=11, dilation=3),
    41: LSKADecomposition(local=5, dilated=13, dilation=3),
    53: LSKADecomposition(local=5, dilated=17, dilation=3),
}


def _depthwise(dim: int, kernel: tuple[int, int], padding: tuple[int, int],
               dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, kernel, padding=padding, dilation=dilation, groups=dim)


class LSKA(nn.Module):
    """Large separable kernel attention: ``x * conv1x1(dil_v(dil_h(local_v(local_h(x)))))``.

    Parameters
    ----------
    dim : int
        Channels of the input ``(B, dim, H, W)``; the output has the same shape.
    k_size : int
        Effective kernel size, one of :data:`LSKA_KERNELS` (7, 11, 23, 35, 41, 53).
    """

    def __init__(self, dim: int, k_size: int) -> None:
        super().__init__()
        if k_size not in LSKA_KERNELS:
            raise ValueError(f"k_size={k_size!r} is not supported; valid: "
                             f"{', '.join(map(str, LSKA_KERNELS))}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        spec = LSKA_KERNELS[k_size]
        self.k_size = k_size
        half, pad = (spec.local - 1) // 2, spec.dilated_padding
        self.conv0h = _depthwise(dim, (1, spec.local), (0, half))
        self.conv0v = _depthwise(dim, (spec.local, 1), (half, 0))
        self.conv_spatial_h = _depthwise(dim, (1, spec.dilated), (0, pad), spec.dilation)
        self.conv_spatial_v = _depthwise(dim, (spec.dilated, 1), (pad, 0), spec.dilation)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gating map before it multiplies ``x``."""
        a = self.conv0v(self.conv0h(x))
        a = self.conv_spatial_v(self.conv_spatial_h(a))
        return self.conv1(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class LSKAAttention(nn.Module):
    """VAN's spatial attention with LSKA: ``x + proj2(LSKA(GELU(proj1(x))))``."""

    def __init__(self, dim: int, k_size: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LSKA(dim, k_size)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.spatial_gating_unit(self.activation(self.proj_1(x)))
        return x + self.proj_2(y)


class _ConvMlp(nn.Module):
    """1×1 conv → 3×3 depthwise conv → GELU → 1×1 conv (VAN's MLP)."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class LSKABlock(nn.Module):
    """``x += drop_path(ls1·Attention(BN(x)))``, then ``x += drop_path(ls2·MLP(BN(x)))``.

    Parameters
    ----------
    dim : int
    k_size : int
        LSKA kernel size.
    mlp_ratio : float (default: 4.0)
    drop : float (default: 0.0)
        Dropout inside the MLP.
    drop_path : float (default: 0.0)
        Stochastic depth rate (torchvision's ``StochasticDepth``, row mode).
    layer_scale_init : float (default: 1e-2)
    """

    def __init__(self, dim: int, k_size: int, mlp_ratio: float = 4.0, drop: float = 0.0,
                 drop_path: float = 0.0, layer_scale_init: float = 1e-2) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = LSKAAttention(dim, k_size)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = _ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = StochasticDepth(drop_path, "row")
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1.view(1, -1, 1, 1) * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2.view(1, -1, 1, 1) * self.mlp(self.norm2(x)))


class _OverlapPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=stride, padding=patch // 2)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


@dataclass(frozen=True)
class VANConfig:
    """Widths, MLP ratios and depths of the four stages (the VAN paper's table)."""

    dims: tuple[int, int, int, int]
    mlp_ratios: tuple[float, float, float, float]
    depths: tuple[int, int, int, int]


VAN_CONFIGS: dict[str, VANConfig] = {
    "tiny": VANConfig((32, 64, 160, 256), (8, 8, 4, 4), (3, 3, 5, 2)),
    "small": VANConfig((64, 128, 320, 512), (8, 8, 4, 4), (2, 2, 4, 2)),
    "base": VANConfig((64, 128, 320, 512), (8, 8, 4, 4), (3, 3, 12, 3)),
}


class VANLSKA(nn.Module):
    """VAN backbone with LSKA attention: (B, in_chans, H, W) -> (B, num_classes) logits, or
    (B, feature_dim) pooled features when ``num_classes`` is 0.

    Parameters
    ----------
    config : VANConfig
    k_size : int (default: 23)
        LSKA kernel size of every block.
    in_chans : int (default: 3)
        3 for images, 1 for log-mel spectrograms.
    num_classes : int (default: 0)
    drop_path_rate : float (default: 0.0)
        Stochastic depth, rising linearly over the blocks to this value.
    """

    def __init__(self, config: VANConfig, *, k_size: int = 23, in_chans: int = 3,
                 num_classes: int = 0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if in_chans < 1 or num_classes < 0:
            raise ValueError(f"need in_chans >= 1 and num_classes >= 0, got {in_chans}, "
                             f"{num_classes}")
        total = sum(config.depths)
        rates = torch.linspace(0, drop_path_rate, total).tolist() if total else []
        self.stages = nn.ModuleList()
        channels, block = in_chans, 0
        for i, (dim, ratio, depth) in enumerate(zip(config.dims, config.mlp_ratios,
                                                    config.depths, strict=True)):
            embed = _OverlapPatchEmbed(channels, dim, 7 if i == 0 else 3, 4 if i == 0 else 2)
            blocks = [LSKABlock(dim, k_size, ratio, drop_path=rates[block + j])
                      for j in range(depth)]
            block += depth
            self.stages.append(nn.ModuleDict({"embed": embed, "blocks": nn.Sequential(*blocks),
                                              "norm": nn.LayerNorm(dim)}))
            channels = dim
        self.feature_dim = config.dims[-1]
        self.head = nn.Linear(self.feature_dim, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, feature_dim)."""
        for stage in self.stages:
            x = stage["blocks"](stage["embed"](x))
            # LayerNorm over channels, as VAN does on the flattened tokens.
            x = stage["norm"](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _van(size: str, **kwargs) -> VANLSKA:
    return VANLSKA(VAN_CONFIGS[size], **kwargs)


def van_lska_tiny(**kwargs) -> VANLSKA:
    """VAN-LSKA-Tiny: dims 32/64/160/256, depths 3/3/5/2."""
    return _van("tiny", **kwargs)


def van_lska_small(**kwargs) -> VANLSKA:
    """VAN-LSKA-Small: dims 64/128/320/512, depths 2/2/4/2."""
    return _van("small", **kwargs)


def van_lska_base(**kwargs) -> VANLSKA:
    """VAN-LSKA-Base: dims 64/128/320/512, depths 3/3/12/3."""
    return _van("base", **kwargs)


def van_lska_backbone(size: str, *, image_size: int = 32, in_chans: int = 3) -> VANLSKA:
    """VAN-LSKA ``size`` as a backbone (no head, ``feature_dim`` its last stage's width): the
    ``van-lska-<size>`` models, for RGB images (image-ssl) or, with ``in_chans=1``, log-mel
    spectrograms (audio-ssl).

    Raises
    ------
    ValueError
        If ``image_size`` is below 32 (the network downsamples 32x) or ``size`` is unknown.
    """
    if size not in VAN_CONFIGS:
        raise ValueError(f"unknown VAN-LSKA size {size!r}; valid sizes: {', '.join(VAN_CONFIGS)}")
    if check_image_size(image_size) < 32:
        raise ValueError(f"van-lska-{size} downsamples 32x; image_size must be >= 32, "
                         f"got {image_size}")
    return VANLSKA(VAN_CONFIGS[size], in_chans=in_chans, num_classes=0)
