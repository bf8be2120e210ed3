"""Structural re-parameterisation: fold a multi-branch training network into a plain one.

A linear branch ``BN(conv_k(x))`` is one convolution with a bias once the BatchNorm's running
statistics are frozen (RepVGG, Ding et al., "RepVGG: Making VGG-style ConvNets Great Again",
CVPR 2021), and parallel branches whose kernels differ only in size along one axis sum into one
kernel once the smaller ones are zero-padded to the largest, centred (the "same" padding keeps
their centres aligned). AudioRepInceptionNeXt (Lau, Rehman, Po, "AudioRepInceptionNeXt: A
lightweight single-stream architecture for efficient audio recognition", Neurocomputing 2024)
uses both to turn its 21/11/3-tap parallel depthwise branches into a single 21-tap
depthwise convolution per axis at inference.

This module holds the pure kernel arithmetic (:func:`fold_bn`, :func:`fold_conv_bn`,
:func:`pad_and_sum`) and the family-independent entry point :func:`reparameterize`.

Contract for a re-parameterisable module
----------------------------------------
Any ``nn.Module`` joins by defining a method ``reparameterize(self) -> None`` that

* rewrites the module **in place** into its fused inference form (after it, the module holds
  the fused layers, no longer the branches, and ``forward`` uses the fused path);
* leaves the module's eval-mode function unchanged (up to float rounding);
* is idempotent: a second call on an already fused module does nothing;
* touches only its own subtree.

:func:`reparameterize` calls it on a deep copy, on every module that has it, in
``model.modules()`` order (as RepVGG's ``repvgg_model_convert`` does).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import nn

__all__ = ["fold_bn", "fold_conv_bn", "pad_and_sum", "reparameterizable_modules",
           "reparameterize"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def fold_bn(kernel: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
            weight: torch.Tensor, bias: torch.Tensor, eps: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the bias-free convolution kernel before it.

    ``BN(conv(x, W)) == conv(x, W') + b`` with ``W' = W·γ/σ`` and ``b = β − μ·γ/σ``,
    ``σ = sqrt(running_var + eps)`` (RepVGG, Ding et al., CVPR 2021).

    Parameters
    ----------
    kernel : torch.Tensor
        Convolution weight ``(out, in/groups, kh, kw)``.
    running_mean, running_var, weight, bias : torch.Tensor
        The BatchNorm's ``μ``, ``σ²``, ``γ`` and ``β``, each ``(out,)``.
    eps : float
        The BatchNorm's epsilon.

    Returns
    -------
    tuple of torch.Tensor
        The folded kernel (same shape as ``kernel``) and the bias ``(out,)``.
    """
    factor = weight / (running_var + eps).sqrt()
    return kernel * factor.reshape(-1, *([1] * (kernel.dim() - 1))), bias - running_mean * factor


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fold_bn` for modules: the kernel and bias of ``bn(conv(x))`` in eval mode.

    A conv bias ``c`` is absorbed as well: ``BN(Wx + c)`` is ``BN`` with mean ``μ − c``.
    A BatchNorm without affine parameters counts as ``γ = 1``, ``β = 0``.

    Raises
    ------
    ValueError
        If ``bn`` keeps no running statistics (then it has no fixed eval-mode map to fold).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics "
                         "(track_running_stats=False)")
    mean = bn.running_mean if conv.bias is None else bn.running_mean - conv.bias
    weight = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    bias = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    return fold_bn(conv.weight, mean, bn.running_var, weight, bias, bn.eps)


def pad_and_sum(kernels: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], size: int,
                dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad kernels to ``size`` taps along ``dim``, centred, and sum them and their biases.

    With stride 1 and "same" padding ``k // 2``, a ``k``-tap kernel is the ``size``-tap kernel
    with ``(size − k) / 2`` zeros on either side, so parallel branches that differ only in
    kernel size along one axis add up into one convolution (AudioRepInceptionNeXt's 21/11/3-tap
    depthwise branches, Lau et al., 2024).

    Parameters
    ----------
    kernels : sequence of torch.Tensor
        Kernels ``(out, in/groups, kh, kw)`` that agree in every dimension but ``dim``.
    biases : sequence of torch.Tensor
        One bias ``(out,)`` per kernel.
    size : int
        Taps of the merged kernel along ``dim``; ``size − k`` must be even and ≥ 0 for each
        kernel's ``k`` (so that the centres line up).
    dim : int
        The kernel dimension to pad: 2 (or -2) for a ``k×1`` kernel, 3 (or -1) for ``1×k``.

    Returns
    -------
    tuple of torch.Tensor
        The merged kernel, ``size`` taps along ``dim``, and the summed bias.
    """
    if not kernels or len(kernels) != len(biases):
        raise ValueError(f"need one bias per kernel and at least one kernel, got "
                         f"{len(kernels)} kernels and {len(biases)} biases")
    dim = dim % kernels[0].dim()
    if dim not in (2, 3):
        raise ValueError(f"dim must be a spatial dimension of a 2-d kernel (2 or 3), got {dim}")
    merged = None
    for kernel in kernels:
        excess = size - kernel.shape[dim]
        if excess < 0 or excess % 2:
            raise ValueError(f"cannot centre a {kernel.shape[dim]}-tap kernel in {size} taps")
        # F.pad lists (left, right) pairs from the last dimension backwards.
        pad = [0, 0, excess // 2, excess // 2] if dim == 2 else [excess // 2, excess // 2]
        padded = nn.functional.pad(kernel, pad)
        if merged is not None and padded.shape != merged.shape:
            raise ValueError(f"kernel shapes differ off dim {dim}: {tuple(kernel.shape)} vs "
                             f"{tuple(merged.shape)}")
        merged = padded if merged is None else merged + padded
    return merged, torch.stack(list(biases)).sum(dim=0)


def reparameterizable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(path, module)`` for every module of ``model`` (itself included) that defines a
    callable ``reparameterize`` method, in ``model.modules()`` order."""
    return [(name, module) for name, module in model.named_modules()
            if callable(getattr(module, "reparameterize", None))]


@torch.no_grad()
def reparameterize(model: ModuleT) -> ModuleT:
    """A fused, eval-mode copy of ``model``: ``reparameterize()`` called on each module.

    Every module that defines ``reparameterize()`` (see the module docstring for the contract)
    is fused in place in a deep copy; the rest of the network is copied as it is. This is the
    inference-time conversion of RepVGG (Ding et al., CVPR 2021) and AudioRepInceptionNeXt
    (Lau et al., Neurocomputing 2024): in eval mode the result computes the same function with
    fewer, larger kernels.

    Parameters
    ----------
    model : nn.Module
        A network (or a single block) containing re-parameterisable modules; not modified.

    Returns
    -------
    nn.Module
        The fused copy, in eval mode (its BatchNorms were folded with their running statistics,
        so only eval mode is equivalent), on the same device and dtype.

    Raises
    ------
    ValueError
        If no module of ``model`` defines ``reparameterize()``: fusing such a model would
        silently do nothing, which usually means the wrong model was passed.
    """
    if not reparameterizable_modules(model):
        raise ValueError(f"{type(model).__name__} has no module with a reparameterize() method; "
                         "nothing to fuse")
    fused = copy.deepcopy(model).eval()
    # Collect first: fusing rewrites the module tree that named_modules() walks.
    for _, module in reparameterizable_modules(fused):
        module.reparameterize()
    return fused.eval()
