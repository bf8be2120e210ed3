"""AudioInceptionNeXt and AudioRepInceptionNeXt: large-kernel audio CNNs on log-mel spectrograms.

* AudioInceptionNeXt (Lau, Rehman, Xie, Ma, "AudioInceptionNeXt: TCL AI LAB Submission to
  EPIC-SOUND Audio-Based-Interaction-Recognition Challenge 2023", arXiv 2307.07265). Each block
  projects with a 1×1 conv, then runs three depthwise cascades in parallel on all channels,
  each a temporal ``k×1`` conv then a frequency ``1×k`` conv (k = 21, 11, 3), each followed
  by BN and ReLU; the sum goes through an inverted-bottleneck 1×1 MLP (C → 4C → C) into a
  residual connection.
* AudioRepInceptionNeXt (Lau, Rehman, Po, "AudioRepInceptionNeXt: A lightweight
  single-stream architecture for efficient audio recognition", Neurocomputing 2024,
  arXiv 2404.13551). The cascades become two multi-scale stages, each a sum of parallel
  depthwise ``k×1`` (then ``1×k``) convs with their own BN plus an identity, then ReLU. Every
  branch is linear up to the sum, so for inference each stage folds exactly (up to float
  rounding) into one 21-tap depthwise conv with a bias
  (:meth:`RepMultiScaleDWConv.reparameterize`, :func:`fedssl.models.reparam.reparameterize`).

Both follow the authors' code (StevenLauHKHK/AudioInceptionNeXt and
StevenLauHKHK/AudioRepInceptionNeXt, built on Auditory SlowFast, Kazakos et al., ICASSP 2021):
a ResNet-50-shaped network (stages of 3, 4, 6, 3 blocks, widths 64 to 512) with a 5×7 stride-2
stem and a 3×3 stride-2 max-pool. The input is a log-mel spectrogram ``(B, in_chans, T, F)``,
time on the first spatial axis; the output is ``(B, num_classes)`` logits, or pooled
``(B, feature_dim)`` features when ``num_classes`` is 0.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from fedssl.models.reparam import fold_conv_bn, pad_and_sum

__all__ = [
    "AUDIO_INCEPTION_CONFIGS",
    "AUDIO_INCEPTION_VARIANTS",
    "AudioInceptionConfig",
    "AudioInceptionNeXt",
    "AudioInceptionNeXtBlock",
    "AudioRepInceptionNeXt",
    "AudioRepInceptionNeXtBlock",
    "RepMultiScaleDWConv",
    "SeparableCascade",
    "audio_inceptionnext",
    "audio_rep_inceptionnext",
]


@dataclass(frozen=True)
class AudioInceptionConfig:
    """Depths, widths and kernel sizes of an AudioInceptionNeXt / AudioRepInceptionNeXt.

    Attributes
    ----------
    depths : tuple of 4 ints
        Blocks per stage.
    widths : tuple of 4 ints
        Channels ``C`` of each stage; the last is ``feature_dim``.
    stem_width : int
        Output channels of the stem (the first stage's input).
    large_kernel, middle_kernel, small_kernel : int (default: 21, 11, 3)
        Taps of the three depthwise kernels along time and along frequency; odd, and each
        smaller one must centre in the next (so that the Rep branches fuse).
    mlp_ratio : int (default: 4)
        Inner width of the 1×1 MLP is ``mlp_ratio · C``.
    time_strides, freq_strides : tuple of 4 ints (default: 1, 2, 2, 2)
        Stride of each stage's first block along time and along frequency.
    stem_kernel : tuple of 2 ints (default: (5, 7))
        Time × frequency kernel of the stem conv (stride 2, "same" padding).
    """

    depths: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    stem_width: int
    large_kernel: int = 21
    middle_kernel: int = 11
    small_kernel: int = 3
    mlp_ratio: int = 4
    time_strides: tuple[int, int, int, int] = (1, 2, 2, 2)
    freq_strides: tuple[int, int, int, int] = (1, 2, 2, 2)
    stem_kernel: tuple[int, int] = (5, 7)

    def __post_init__(self) -> None:
        for name in ("depths", "widths", "time_strides", "freq_strides"):
            value = getattr(self, name)
            if len(value) != 4 or min(value) < 1:
                raise ValueError(f"{name} must be 4 positive ints, got {value}")
        if self.stem_width < 1 or self.mlp_ratio < 1:
            raise ValueError(f"stem_width and mlp_ratio must be positive, got "
                             f"{self.stem_width}, {self.mlp_ratio}")
        kernels = self.kernels
        if any(k % 2 == 0 for k in kernels) or not kernels[0] > kernels[1] > kernels[2] >= 1:
            raise ValueError(f"kernels must be odd and strictly decreasing (large, middle, "
                             f"small), got {kernels}")
        if len(self.stem_kernel) != 2 or any(k < 1 or k % 2 == 0 for k in self.stem_kernel):
            raise ValueError(f"stem_kernel must be 2 odd ints, got {self.stem_kernel}")

    @property
    def kernels(self) -> tuple[int, int, int]:
        """(large, middle, small) kernel taps."""
        return (self.large_kernel, self.middle_kernel, self.small_kernel)


AUDIO_INCEPTION_CONFIGS: dict[str, AudioInceptionConfig] = {
    # The papers' networks (RESNET.DEPTH 50, WIDTH_PER_GROUP 64, kernels 21 in every stage).
    "base": AudioInceptionConfig(depths=(3, 4, 6, 3), widths=(64, 128, 256, 512),
                                 stem_width=64),
    # Ours, for CPU runs and federated simulations.
    "small": AudioInceptionConfig(depths=(2, 2, 2, 2), widths=(32, 64, 128, 256),
                                  stem_width=32),
    "tiny": AudioInceptionConfig(depths=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                                 stem_width=16),
}
AUDIO_INCEPTION_VARIANTS: tuple[str, ...] = tuple(AUDIO_INCEPTION_CONFIGS)


def _conv_bn(dim_in: int, dim_out: int, kernel: tuple[int, int] = (1, 1),
             stride: tuple[int, int] = (1, 1), groups: int = 1) -> nn.Sequential:
    """Bias-free conv with "same" padding, then BN: ``Sequential(conv=..., bn=...)``."""
    conv = nn.Conv2d(dim_in, dim_out, kernel, stride=stride,
                     padding=(kernel[0] // 2, kernel[1] // 2), groups=groups, bias=False)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(dim_out)))


def _check_axis(axis: str) -> str:
    if axis not in ("time", "freq"):
        raise ValueError(f"axis must be 'time' or 'freq', got {axis!r}")
    return axis


def _axis_kernel(taps: int, axis: str) -> tuple[int, int]:
    return (taps, 1) if _check_axis(axis) == "time" else (1, taps)


def _init_weights(module: nn.Module) -> None:
    """Auditory SlowFast's init: Kaiming-normal convs (fan_out, ReLU), BN 1/0, FC N(0, 0.01)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def _pair(stride: int | tuple[int, int]) -> tuple[int, int]:
    time, freq = (stride, stride) if isinstance(stride, int) else stride
    if min(time, freq) < 1:
        raise ValueError(f"stride must be a positive int or (time, freq) pair, got {stride}")
    return int(time), int(freq)


class SeparableCascade(nn.Module):
    """``ReLU(BN(DW_{1×k}(ReLU(BN(DW_{k×1}(x))))))``: one AudioInceptionNeXt branch.

    Depthwise on all ``channels``; the temporal ``k×1`` conv comes first, as in the authors'
    ``MSThreeWayDWBottleneckTransform``.
    """

    def __init__(self, channels: int, taps: int) -> None:
        super().__init__()
        self.taps = taps
        self.time = _conv_bn(channels, channels, (taps, 1), groups=channels)
        self.time_act = nn.ReLU(inplace=True)
        self.freq = _conv_bn(channels, channels, (1, taps), groups=channels)
        self.freq_act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.freq_act(self.freq(self.time_act(self.time(x))))


class RepMultiScaleDWConv(nn.Module):
    """``Σ_k BN_k(DW_k(x)) + x`` over parallel depthwise kernels along one axis.

    The multi-scale stage of AudioRepInceptionNeXt (Lau et al., 2024): before
    :meth:`reparameterize` it holds one conv+BN branch per kernel size (``branches``); after it,
    one depthwise conv with a bias (``fused``) of the largest size. The identity term stays an
    explicit addition in both forms, as in the authors' inference graph
    (``MSThreeWayDWBottleneckInferenceTransform``): folding it as +1 on the centre tap would
    also be exact, but the explicit add keeps the fused graph identical to theirs. The ReLU
    after the sum belongs to the enclosing block. A fused checkpoint loads into a model that
    was built multi-branch and then re-parameterised (its keys are ``fused.*``).

    Parameters
    ----------
    channels : int
    kernels : tuple of int (default: (21, 11, 3))
        Taps of the parallel branches, odd; the first is the largest.
    axis : str (default: "time")
        ``"time"`` for ``k×1`` kernels (first spatial axis), ``"freq"`` for ``1×k``.
    """

    def __init__(self, channels: int, kernels: tuple[int, ...] = (21, 11, 3),
                 axis: str = "time") -> None:
        super().__init__()
        if not kernels or any(k % 2 == 0 or k > kernels[0] for k in kernels):
            raise ValueError(f"kernels must be odd with the largest first, got {kernels}")
        self.channels, self.kernels, self.axis = channels, tuple(kernels), _check_axis(axis)
        self.branches = nn.ModuleList(
            _conv_bn(channels, channels, _axis_kernel(k, axis), groups=channels)
            for k in kernels)
        self.fused: nn.Conv2d | None = None

    @property
    def is_fused(self) -> bool:
        return self.fused is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x) + x
        out = x
        for branch in self.branches:
            out = out + branch(x)
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse the branches in place into ``fused``, one depthwise conv with a bias.

        Each branch's BN is folded into its kernel, the smaller kernels are zero-padded to the
        largest along ``axis`` (centred) and everything is summed. Exact in eval mode; a no-op
        when already fused.
        """
        if self.fused is not None:
            return
        folded = [fold_conv_bn(branch.conv, branch.bn) for branch in self.branches]
        size = self.kernels[0]
        kernel, bias = pad_and_sum([k for k, _ in folded], [b for _, b in folded], size,
                                   dim=2 if self.axis == "time" else 3)
        shape = _axis_kernel(size, self.axis)
        conv = nn.Conv2d(self.channels, self.channels, shape,
                         padding=(shape[0] // 2, shape[1] // 2), groups=self.channels,
                         bias=True).to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.fused = conv
        del self.branches

    def extra_repr(self) -> str:
        return (f"{self.channels}, kernels={self.kernels}, axis={self.axis!r}, "
                f"fused={self.is_fused}")


class _Block(nn.Module, metaclass=ABCMeta):
    """Shared residual frame: ``ReLU(shortcut(x) + transform(x))``."""

    def __init__(self, dim_in: int, dim_out: int, stride: int | tuple[int, int],
                 mlp_ratio: int) -> None:
        super().__init__()
        stride = _pair(stride)
        if min(dim_in, dim_out, mlp_ratio) < 1:
            raise ValueError(f"dim_in, dim_out and mlp_ratio must be positive, got "
                             f"{dim_in}, {dim_out}, {mlp_ratio}")
        self.dim_in, self.dim_out, self.stride = dim_in, dim_out, stride
        # Stride on the first 1x1 conv (the authors' STRIDE_1X1 False still puts it there).
        self.head = _conv_bn(dim_in, dim_out, stride=stride)
        self.shortcut: nn.Module = (_conv_bn(dim_in, dim_out, stride=stride)
                                    if dim_in != dim_out or stride != (1, 1) else nn.Identity())
        self.act = nn.ReLU(inplace=True)

    def _reset_parameters(self) -> None:
        _init_weights(self)
        # Zero-init the last BN of the residual branch, as ResNet-style code does
        # (ZERO_INIT_FINAL_BN): every block starts as its shortcut.
        nn.init.zeros_(self.mlp.project.bn.weight)

    @abstractmethod
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch (everything but the shortcut and the final ReLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.transform(x))

    def extra_repr(self) -> str:
        return f"{self.dim_in}, {self.dim_out}, stride={self.stride}"


class AudioInceptionNeXtBlock(_Block):
    """AudioInceptionNeXt block (``ms_threeway_dw_bottleneck_transform``; Lau et al., 2023).

    ``h = BN(conv1x1_stride(x))`` (no activation); ``y = Σ_k cascade_k(h)`` over
    :class:`SeparableCascade` branches with k = ``kernels``; ``y = BN(conv1x1(BN(conv1x1(y))))``
    (C → mlp_ratio·C → C, no activation between, as in the authors' code; the last BN
    zero-initialised); ``out = ReLU(shortcut(x) + y)``.

    Parameters
    ----------
    dim_in, dim_out : int
    stride : int or (time, freq) (default: 1)
    kernels : tuple of int (default: (21, 11, 3))
    mlp_ratio : int (default: 4)
    """

    def __init__(self, dim_in: int, dim_out: int, stride: int | tuple[int, int] = 1,
                 kernels: tuple[int, ...] = (21, 11, 3), mlp_ratio: int = 4) -> None:
        super().__init__(dim_in, dim_out, stride, mlp_ratio)
        self.branches = nn.ModuleList(SeparableCascade(dim_out, k) for k in kernels)
        hidden = mlp_ratio * dim_out
        self.mlp = nn.Sequential(OrderedDict(expand=_conv_bn(dim_out, hidden),
                                             project=_conv_bn(hidden, dim_out)))
        self._reset_parameters()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        y = self.branches[0](h)
        for branch in self.branches[1:]:
            y = y + branch(h)
        return self.mlp(y)


class AudioRepInceptionNeXtBlock(_Block):
    """AudioRepInceptionNeXt block, training form (Lau et al., Neurocomputing 2024).

    ``h = ReLU(BN(conv1x1_stride(x)))``; ``y1 = ReLU(Σ_k BN(DW_{k×1}(h)) + h)``;
    ``y2 = ReLU(Σ_k BN(DW_{1×k}(y1)) + y1)`` (both :class:`RepMultiScaleDWConv`);
    ``y = BN(conv1x1(ReLU(BN(conv1x1(y2)))))`` (the last BN zero-initialised);
    ``out = ReLU(shortcut(x) + y)``. After :func:`fedssl.models.reparam.reparameterize` each
    multi-scale stage is a single 21-tap depthwise conv.

    Parameters
    ----------
    dim_in, dim_out : int
    stride : int or (time, freq) (default: 1)
    kernels : tuple of int (default: (21, 11, 3))
    mlp_ratio : int (default: 4)
    """

    def __init__(self, dim_in: int, dim_out: int, stride: int | tuple[int, int] = 1,
                 kernels: tuple[int, ...] = (21, 11, 3), mlp_ratio: int = 4) -> None:
        super().__init__(dim_in, dim_out, stride, mlp_ratio)
        self.head_act = nn.ReLU(inplace=True)
        self.time_mixer = RepMultiScaleDWConv(dim_out, kernels, axis="time")
        self.time_act = nn.ReLU(inplace=True)
        self.freq_mixer = RepMultiScaleDWConv(dim_out, kernels, axis="freq")
        self.freq_act = nn.ReLU(inplace=True)
        hidden = mlp_ratio * dim_out
        self.mlp = nn.Sequential(OrderedDict(expand=_conv_bn(dim_out, hidden),
                                             act=nn.ReLU(inplace=True),
                                             project=_conv_bn(hidden, dim_out)))
        self._reset_parameters()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head_act(self.head(x))
        y = self.time_act(self.time_mixer(h))
        y = self.freq_act(self.freq_mixer(y))
        return self.mlp(y)


class _AudioNet(nn.Module):
    """Stem, four stages of ``block`` and a pooled linear head (Auditory SlowFast's ResNet)."""

    block: type[_Block]

    def __init__(self, config: AudioInceptionConfig, *, num_classes: int = 0,
                 in_chans: int = 1, drop_rate: float = 0.5) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ValueError(f"need num_classes >= 0 and in_chans >= 1, got {num_classes}, "
                             f"{in_chans}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.config, self.num_classes = config, num_classes
        kt, kf = config.stem_kernel
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_chans, config.stem_width, (kt, kf), stride=2,
                           padding=(kt // 2, kf // 2), bias=False),
            bn=nn.BatchNorm2d(config.stem_width),
            act=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        ))
        stages, dim_in = [], config.stem_width
        for depth, width, st, sf in zip(config.depths, config.widths, config.time_strides,
                                        config.freq_strides, strict=True):
            blocks = [self.block(dim_in if i == 0 else width, width,
                                 (st, sf) if i == 0 else (1, 1), config.kernels,
                                 config.mlp_ratio) for i in range(depth)]
            stages.append(nn.Sequential(*blocks))
            dim_in = width
        self.stages = nn.Sequential(*stages)
        self.feature_dim: int = config.widths[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head: nn.Module = (nn.Sequential(OrderedDict(drop=nn.Dropout(drop_rate),
                                                          fc=nn.Linear(self.feature_dim,
                                                                       num_classes)))
                                if num_classes else nn.Identity())
        # The blocks initialised themselves (with their zero final BN); the rest here.
        _init_weights(self.stem)
        _init_weights(self.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, feature_dim)``."""
        if x.dim() != 4:
            raise ValueError(f"expected a (B, C, T, F) spectrogram batch, got shape "
                             f"{tuple(x.shape)}")
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class AudioInceptionNeXt(_AudioNet):
    """AudioInceptionNeXt (Lau, Rehman, Xie, Ma, arXiv 2307.07265, 2023).

    Parameters
    ----------
    config : AudioInceptionConfig
        E.g. ``AUDIO_INCEPTION_CONFIGS["base"]``.
    num_classes : int (default: 0)
        Logits of the linear head; 0 returns pooled features (no dropout, no FC).
    in_chans : int (default: 1)
        Channels of the spectrogram input.
    drop_rate : float (default: 0.5)
        Dropout before the FC.
    """

    block = AudioInceptionNeXtBlock


class AudioRepInceptionNeXt(_AudioNet):
    """AudioRepInceptionNeXt (Lau, Rehman, Po, Neurocomputing 2024), training form.

    :func:`fedssl.models.reparam.reparameterize` gives the fused inference network.
    Parameters as :class:`AudioInceptionNeXt`.
    """

    block = AudioRepInceptionNeXtBlock


def _config(variant: str) -> AudioInceptionConfig:
    if variant not in AUDIO_INCEPTION_CONFIGS:
        raise ValueError(f"unknown variant {variant!r}; valid: "
                         f"{', '.join(AUDIO_INCEPTION_VARIANTS)}")
    return AUDIO_INCEPTION_CONFIGS[variant]


def audio_inceptionnext(variant: str = "base", num_classes: int = 0, in_chans: int = 1,
                        drop_rate: float = 0.5) -> AudioInceptionNeXt:
    """AudioInceptionNeXt ``variant`` (one of :data:`AUDIO_INCEPTION_VARIANTS`).

    ``base``: depths 3/4/6/3, widths 64/128/256/512, kernels 21/11/3 (the paper's network).
    """
    return AudioInceptionNeXt(_config(variant), num_classes=num_classes, in_chans=in_chans,
                              drop_rate=drop_rate)


def audio_rep_inceptionnext(variant: str = "base", num_classes: int = 0, in_chans: int = 1,
                            drop_rate: float = 0.5) -> AudioRepInceptionNeXt:
    """AudioRepInceptionNeXt ``variant`` (one of :data:`AUDIO_INCEPTION_VARIANTS`), training
    form; fuse it with :func:`fedssl.models.reparam.reparameterize` for inference."""
    return AudioRepInceptionNeXt(_config(variant), num_classes=num_classes, in_chans=in_chans,
                                 drop_rate=drop_rate)
