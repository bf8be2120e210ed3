"""RepOpt (Ding et al., ICLR 2023) as used by FedRepOpt (Lau et al., ACCV 2024).

A constant-scale multi-branch block ``s3 ⊙ conv3x3(x) + s1 ⊙ conv1x1(x) [+ identity]`` is one
3x3 convolution with kernel ``W' = s3·W3 + s1·pad(W1) [+ I]``. Training the branches with SGD
moves ``W'`` exactly as training ``W'`` alone does when its gradient is first multiplied by a
constant mask (derivation: ∂L/∂W3 = s3·∂L/∂W', ∂L/∂W1 = s1·centre(∂L/∂W'), so
ΔW' = s3·ΔW3 + s1·pad(ΔW1) = -lr·(s3²·G + s1²·pad(centre G))). This module holds those masks;
the optimiser that applies them is :class:`fedssl.clients.repopt.RepOptSGD`.

Pure tensor functions: no Flower, no training loop.
"""

from __future__ import annotations

import torch

__all__ = ["ghost_grad_mask", "vgg_grad_mask"]


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
