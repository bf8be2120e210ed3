"""The building blocks shared by the RepOpt families: block modes, per-channel scales, the
gradient masks of FedRepOpt and the :class:`RepOptBlock` base every family unit derives from.

A constant-scale multi-branch block ``s3 ⊙ conv3x3(x) + s1 ⊙ conv1x1(x) [+ identity]`` is one
3x3 convolution with kernel ``W' = s3·W3 + s1·pad(W1) [+ I]``. Training the branches with SGD
moves ``W'`` exactly as training ``W'`` alone does when its gradient is first multiplied by a
constant mask (derivation: ∂L/∂W3 = s3·∂L/∂W', ∂L/∂W1 = s1·centre(∂L/∂W'), so
ΔW' = s3·ΔW3 + s1·pad(ΔW1) = -lr·(s3²·G + s1²·pad(centre G))). :func:`vgg_grad_mask` and
:func:`ghost_grad_mask` are those masks (the optimiser that applies them is
:class:`fedssl.clients.repopt.RepOptSGD`). The family modules (:mod:`fedssl.models.repopt_vgg`,
:mod:`fedssl.models.repopt_ghostnet`) import this module; :mod:`fedssl.models.repopt` imports
them. No Flower, no training loop.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping

import torch
from torch import nn

from fedssl.catalogue.models import REPOPT_MODES as _REPOPT_MODES
from fedssl.models.reparam import fold_bn

__all__ = [
    "REPOPT_MODES",
    "RepOptBlock",
    "ScaleLayer",
    "as_channel_scale",
    "check_mode",
    "fuse_bn",
    "ghost_grad_mask",
    "identity_kernel",
    "vgg_grad_mask",
]

# The catalogue owns the list (the image-classification task checks repopt-mode without torch).
REPOPT_MODES = _REPOPT_MODES
"""Block modes: RepVGG/RepGhost training-time branches, constant-scale (CSLA) branches,
hyper-search (trainable-scale) branches, and the plain model."""

def _per_channel(scale: torch.Tensor, name: str) -> torch.Tensor:
    scale = torch.as_tensor(scale)
    if scale.ndim != 1 or scale.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-d per-channel tensor, got shape "
                         f"{tuple(scale.shape)}")
    return scale


def vgg_grad_mask(
    scale_3x3: torch.Tensor, scale_1x1: torch.Tensor, in_channels: int, identity: bool
) -> torch.Tensor:
    """Gradient mask of a RepOpt-VGG block's plain 3x3 kernel, shape ``(out, in, 3, 3)``.

    ``scale_3x3[o]²`` at every tap, plus ``scale_1x1[o]²`` at the centre tap of every
    ``(o, i)``, plus 1.0 at ``[c, c, 1, 1]`` when ``identity``: the identity branch counts as
    a trainable per-channel weight, as in the authors' code (not ``s_id²``).

    Parameters
    ----------
    scale_3x3, scale_1x1 : torch.Tensor
        Per-output-channel constant scales of the 3x3 and 1x1 branches (from hyper-search).
    in_channels : int
        Input channels of the convolution.
    identity : bool
        Whether the block has an identity branch (needs ``in_channels == out_channels``).
    """
    s3 = _per_channel(scale_3x3, "scale_3x3")
    s1 = _per_channel(scale_1x1, "scale_1x1")
    if s1.shape != s3.shape:
        raise ValueError(f"scale_1x1 has {s1.numel()} channels, scale_3x3 {s3.numel()}")
    out_channels = s3.numel()
    if identity and in_channels != out_channels:
        raise ValueError(f"an identity branch needs in_channels == out_channels, got "
                         f"{in_channels} and {out_channels}")
    mask = (s3**2).reshape(-1, 1, 1, 1).expand(out_channels, in_channels, 3, 3).clone()
    mask[:, :, 1, 1] += (s1**2).reshape(-1, 1)
    if identity:
        channels = torch.arange(out_channels)
        mask[channels, channels, 1, 1] += 1.0
    return mask


def ghost_grad_mask(scale_dw: torch.Tensor, identity: bool = True) -> torch.Tensor:
    """Gradient mask of a RepOpt-GhostNet depthwise 3x3 kernel, shape ``(C, 1, 3, 3)``.

    ``scale_dw[c]²`` at every tap, plus 1.0 at the centre when ``identity`` (the fused
    identity branch of the RepGhost module, treated as a trainable per-channel weight).
    """
    s = _per_channel(scale_dw, "scale_dw")
    mask = (s**2).reshape(-1, 1, 1, 1).expand(s.numel(), 1, 3, 3).clone()
    if identity:
        mask[:, 0, 1, 1] += 1.0
    return mask


# --------------------------------------------------------------------------------------------
# Building blocks shared by the families
# --------------------------------------------------------------------------------------------


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`REPOPT_MODES`, else raise ``ValueError``."""
    if mode not in REPOPT_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, REPOPT_MODES))}; "
                         f"got {mode!r}")
    return mode


class ScaleLayer(nn.Module):
    """Per-channel multiplicative scale ``x * weight.view(1, -1, 1, 1)`` (no bias).

    The branch scale of CSLA / hyper-search blocks (Ding et al., ICLR 2023, Sec. 3). A constant
    scale is a frozen parameter (``requires_grad_(False)``), so it is still saved in the
    ``state_dict``.

    Parameters
    ----------
    num_features : int
        Number of channels ``C``; ``weight`` has shape ``(C,)``.
    init : float (default: 1.0)
        Initial value of every channel's scale.
    """

    def __init__(self, num_features: int, *, init: float = 1.0) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.weight = nn.Parameter(torch.full((num_features,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}"


def fuse_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the bias-free convolution kernel before it.

    ``bn(conv(x, kernel)) == conv(x, kernel') + bias'`` with ``kernel' = kernel·γ/σ`` and
    ``bias' = β - μ·γ/σ``, ``σ = sqrt(running_var + eps)`` (RepVGG, Ding et al., CVPR 2021).

    Parameters
    ----------
    kernel : torch.Tensor
        Convolution weight ``(out, in/groups, kh, kw)``.
    bn : nn.BatchNorm2d
        The BatchNorm over the ``out`` channels (affine, with running statistics).

    Returns
    -------
    tuple of torch.Tensor
        The fused kernel (same shape) and the bias ``(out,)``.
    """
    return fold_bn(kernel, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)


def identity_kernel(channels: int, *, depthwise: bool, like: torch.Tensor) -> torch.Tensor:
    """The 3x3 kernel of an identity map: 1 at the centre tap of channel ``c`` -> ``c``.

    Shape ``(channels, channels, 3, 3)`` for a dense convolution, ``(channels, 1, 3, 3)`` for a
    depthwise one; dtype and device of ``like``.
    """
    kernel = torch.zeros(channels, 1 if depthwise else channels, 3, 3, dtype=like.dtype,
                         device=like.device)
    index = torch.arange(channels, device=like.device)
    kernel[index, 0 if depthwise else index, 1, 1] = 1.0
    return kernel


def as_channel_scale(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``scale`` as a ``(C, 1, 1, 1)`` tensor with the dtype and device of ``like``."""
    return torch.as_tensor(scale).to(dtype=like.dtype, device=like.device).reshape(-1, 1, 1, 1)


class RepOptBlock(nn.Module, metaclass=ABCMeta):
    """Base class of the units that exist in every :data:`REPOPT_MODES` mode.

    A family block (:class:`fedssl.models.repopt_vgg.RepOptVGGBlock`,
    :class:`fedssl.models.repopt_ghostnet.RepOptGhostModule`) keeps the same module path in all
    modes and implements the hooks below; the module-level functions of
    :mod:`fedssl.models.repopt` find a model's blocks with ``named_modules()`` and call them.
    Scale names are local here (``"scale_3x3"``); the functions prefix the block's path.
    """

    mode: str

    @abstractmethod
    def scale_shapes(self) -> dict[str, tuple[int, ...]]:
        """Local scale name -> shape, the same in every mode."""

    @abstractmethod
    def scales(self) -> dict[str, torch.Tensor]:
        """Detached copies of the scales (csla/hs modes)."""

    @abstractmethod
    def init_from_scales(self, scales: Mapping[str, torch.Tensor]) -> None:
        """Re-initialise the plain kernel from the scales (target mode), in place."""

    @abstractmethod
    def grad_masks(self, scales: Mapping[str, torch.Tensor]) -> dict[nn.Parameter, torch.Tensor]:
        """RepOptSGD masks of the plain kernel (target mode)."""

    @abstractmethod
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The one kernel the branches sum to, and the bias to add (``rep`` mode) or None."""

    @abstractmethod
    def reparameterized(self) -> RepOptBlock:
        """A new target-mode block with equal eval-mode outputs (a copy for a target block)."""


# --------------------------------------------------------------------------------------------
# Model-level API
# --------------------------------------------------------------------------------------------
