"""RepOpt (Ding et al., ICLR 2023) as used by FedRepOpt (Lau et al., ACCV 2024).

A constant-scale multi-branch block ``s3 ⊙ conv3x3(x) + s1 ⊙ conv1x1(x) [+ identity]`` is one
3x3 convolution with kernel ``W' = s3·W3 + s1·pad(W1) [+ I]``. Training the branches with SGD
moves ``W'`` exactly as training ``W'`` alone does when its gradient is first multiplied by a
constant mask (derivation: ∂L/∂W3 = s3·∂L/∂W', ∂L/∂W1 = s1·centre(∂L/∂W'), so
ΔW' = s3·ΔW3 + s1·pad(ΔW1) = -lr·(s3²·G + s1²·pad(centre G))). This module holds those masks
(the optimiser that applies them is :class:`fedssl.clients.repopt.RepOptSGD`) and the
family-independent API of the RepOpt models:

* :func:`build_repopt_model` builds one of :data:`REPOPT_MODELS` in one of :data:`REPOPT_MODES`:
  ``"rep"`` (training-time RepVGG / RepGhost branches, a BN per branch: the "-Tr" baseline),
  ``"csla"`` (constant-scale linear addition: per-channel constant scales, one BN after the
  sum), ``"hs"`` (hyper-search: the same with trainable scales) and ``"target"`` (the plain
  model, trained with RepOptSGD). The families live in :mod:`fedssl.models.repopt_vgg`
  (RepOpt-VGG) and :mod:`fedssl.models.repopt_ghostnet` (RepOpt-GhostNet).
* :func:`repopt_scales` reads the scales of a csla/hs model, :func:`default_scales` gives the
  hyper-search initial values, :func:`check_scales` validates a scale dict for a model.
* :func:`init_target_from_scales` and :func:`repopt_grad_masks` prepare a target model for
  FedRepOpt; :func:`reparameterize_repopt` folds a rep/csla/hs model into an equivalent
  target model.

Every family unit that re-parameterises (a RepOpt-VGG block, a RepOpt Ghost module) is a
:class:`RepOptBlock`; the functions here find them with ``named_modules()``, so they also work
on a bare block (whose scale keys then have no module-path prefix) or on a model that embeds
RepOpt blocks. Scale keys are ``"<block path>.<scale name>"``, e.g. ``"stage1.0.scale_3x3"``.

No Flower, no training loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import torch
from torch import nn

from fedssl.models import repopt_ghostnet, repopt_vgg

# The block-level API lives in repopt_blocks (the families import it); re-exported here, where
# the earlier issues fixed its public names.
from fedssl.models.repopt_blocks import (
    REPOPT_MODES,
    RepOptBlock,
    ScaleLayer,
    as_channel_scale,
    check_mode,
    fuse_bn,
    ghost_grad_mask,
    identity_kernel,
    vgg_grad_mask,
)

__all__ = [
    "REPOPT_MODELS",
    "REPOPT_MODES",
    "RepOptBlock",
    "ScaleLayer",
    "as_channel_scale",
    "build_repopt_model",
    "check_mode",
    "check_scales",
    "default_scales",
    "fuse_bn",
    "ghost_grad_mask",
    "identity_kernel",
    "init_target_from_scales",
    "reparameterize_repopt",
    "repopt_grad_masks",
    "repopt_scales",
    "vgg_grad_mask",
]

REPOPT_MODELS: tuple[str, ...] = (
    "repopt-vgg-b1",
    "repopt-vgg-tiny",
    "repopt-ghost-0.5x",
    "repopt-ghost-tiny",
)
"""Built-in architectures, in documented order (see the family modules for their tables)."""


_Family = tuple[Callable[..., nn.Module], Callable[[str], dict]]


def _families() -> dict[str, _Family]:
    families: dict[str, _Family] = {}
    for name in repopt_vgg.REPOPT_VGG_CONFIGS:
        families[name] = (repopt_vgg.build_repopt_vgg, repopt_vgg.repopt_vgg_default_scales)
    for name in repopt_ghostnet.REPOPT_GHOSTNET_CONFIGS:
        families[name] = (repopt_ghostnet.build_repopt_ghostnet,
                          repopt_ghostnet.repopt_ghostnet_default_scales)
    if set(families) != set(REPOPT_MODELS):
        raise RuntimeError(f"RepOpt family tables {sorted(families)} differ from "
                           f"REPOPT_MODELS {REPOPT_MODELS}")
    return families


_FAMILIES = _families()


def _family(name: str) -> _Family:
    if name not in _FAMILIES:
        raise ValueError(f"unknown RepOpt model name {name!r}; valid names: "
                         f"{', '.join(REPOPT_MODELS)}")
    return _FAMILIES[name]


def build_repopt_model(name: str, *, mode: str, num_classes: int) -> nn.Module:
    """Build a randomly initialised RepOpt-VGG or RepOpt-GhostNet classifier.

    RepOpt: Ding et al., "Re-parameterizing Your Optimizers rather than Architectures", ICLR
    2023; FedRepOpt: Lau et al., "FedRepOpt: Gradient Re-parametrized Optimizers in Federated
    Learning", ACCV 2024.

    Parameters
    ----------
    name : str
        One of :data:`REPOPT_MODELS`.
    mode : str
        One of :data:`REPOPT_MODES`: ``"rep"`` (RepVGG/RepGhost training-time branches),
        ``"csla"`` (constant branch scales), ``"hs"`` (trainable scales, for hyper-search) or
        ``"target"`` (the plain network FedRepOpt trains with RepOptSGD).
    num_classes : int
        Outputs of the classifier.

    Returns
    -------
    nn.Module
        Maps ``[B, 3, H, W]`` images to ``[B, num_classes]`` logits; has attributes ``arch``
        (``name``), ``mode`` and ``num_classes``. Module paths of the blocks are the same in
        every mode.

    Raises
    ------
    ValueError
        If ``name`` or ``mode`` is unknown (the message lists the valid values) or
        ``num_classes < 1``.
    """
    check_mode(mode)
    builder, _ = _family(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return builder(name, mode=mode, num_classes=num_classes)


def default_scales(name: str) -> dict[str, torch.Tensor]:
    """The hyper-search initial scales of architecture ``name``, keyed like :func:`repopt_scales`.

    RepOpt-VGG: ``scale_3x3 = scale_1x1 = 1`` for the first block of a stage and ``sqrt(2/i)``
    for block ``i >= 1``, ``scale_identity = 1`` (Ding et al., ICLR 2023). RepOpt-GhostNet:
    ``scale_dw = sqrt(2/(module_idx + 1))``, ``scale_identity = 1`` (FedRepOpt's code). Computed
    from the configuration table without building the model. These are the values an ``hs``
    (and a ``csla``) model starts from, not searched scales.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`REPOPT_MODELS`.
    """
    _, scales = _family(name)
    return scales(name)


def _key(path: str, local: str) -> str:
    return f"{path}.{local}" if path else local


def _blocks(model: nn.Module, *, modes: tuple[str, ...], caller: str) -> list[
        tuple[str, RepOptBlock]]:
    blocks = [(path, m) for path, m in model.named_modules() if isinstance(m, RepOptBlock)]
    if not blocks:
        raise ValueError(f"{caller} needs a model with RepOpt blocks (from build_repopt_model), "
                         f"got a {type(model).__name__} without any")
    wrong = sorted({m.mode for _, m in blocks} - set(modes))
    if wrong:
        raise ValueError(f"{caller} needs a model in mode {' or '.join(map(repr, modes))}, got "
                         f"blocks in mode {', '.join(map(repr, wrong))}; build it with "
                         f"build_repopt_model(..., mode={modes[0]!r})")
    return blocks


def _local(scales: Mapping[str, torch.Tensor], path: str, block: RepOptBlock) -> dict[
        str, torch.Tensor]:
    return {local: scales[_key(path, local)] for local in block.scale_shapes()}


def repopt_scales(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the branch scales of a ``csla`` or ``hs`` model.

    After hyper-search these are FedRepOpt's constants (Lau et al., ACCV 2024, Sec. 3).

    Parameters
    ----------
    model : nn.Module
        A csla/hs model (or block) from :func:`build_repopt_model`.

    Returns
    -------
    dict[str, torch.Tensor]
        ``"<block path>.scale_3x3"``, ``".scale_1x1"`` and, for blocks with an identity
        branch, ``".scale_identity"`` per RepOpt-VGG block (e.g. ``"stage1.0.scale_3x3"``);
        ``"<module path>.scale_dw"`` and ``".scale_identity"`` per Ghost module (e.g.
        ``"blocks.1.0.ghost1.scale_dw"``). Each tensor has shape ``(C,)``.

    Raises
    ------
    ValueError
        If the model has no RepOpt blocks or is in ``rep`` or ``target`` mode.
    """
    scales: dict[str, torch.Tensor] = {}
    for path, block in _blocks(model, modes=("csla", "hs"), caller="repopt_scales"):
        scales.update({_key(path, k): v for k, v in block.scales().items()})
    return scales


def check_scales(model: nn.Module, scales: Mapping[str, torch.Tensor]) -> None:
    """Check that ``scales`` has exactly the keys and shapes the model's blocks need.

    Parameters
    ----------
    model : nn.Module
        A RepOpt model (usually a ``target`` one) or block; any mode is accepted, since block
        paths and scale shapes do not depend on the mode.
    scales : Mapping[str, torch.Tensor]
        As returned by :func:`repopt_scales` or :func:`default_scales` for the same
        architecture.

    Raises
    ------
    ValueError
        Naming up to five missing and five unexpected keys, or the first keys whose tensor
        shape differs from the expected ``(C,)``.
    """
    expected: dict[str, tuple[int, ...]] = {}
    for path, block in _blocks(model, modes=REPOPT_MODES, caller="check_scales"):
        expected.update({_key(path, k): v for k, v in block.scale_shapes().items()})
    missing = [k for k in expected if k not in scales]
    extra = [k for k in scales if k not in expected]
    arch = getattr(model, "arch", type(model).__name__)
    if missing or extra:
        raise ValueError(
            f"scales do not fit {arch}: {len(missing)} missing keys {_few(missing)}, "
            f"{len(extra)} unexpected keys {_few(extra)}; expected the keys of "
            f"repopt_scales() of an hs/csla model of the same architecture"
        )
    wrong = [f"{k}: {tuple(torch.as_tensor(scales[k]).shape)} (expected {shape})"
             for k, shape in expected.items() if tuple(torch.as_tensor(scales[k]).shape) != shape]
    if wrong:
        raise ValueError(f"scales do not fit {arch}: {len(wrong)} wrong shapes, "
                         f"{_few(wrong)}")


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


@torch.no_grad()
def init_target_from_scales(model: nn.Module, scales: Mapping[str, torch.Tensor]) -> None:
    """Re-initialise a freshly built ``target`` model from constant scales, in place.

    RepOpt's initialisation (Ding et al., ICLR 2023, Sec. 3.2), so that the plain model starts
    where the equivalent CSLA model would: per RepOpt-VGG block
    ``W' = s3·W + s1·pad(W1) [+ s_id·I]``, with ``W`` the block's current kernel, ``W1`` the
    weight of a freshly initialised 1x1 ``nn.Conv2d`` (default init, drawn from torch's global
    RNG, one per block in module order) and the identity term only for blocks with an identity
    branch; per Ghost module ``W_dw = s_dw·W_dw + s_id·I_dw`` (identity at the centre tap).

    Parameters
    ----------
    model : nn.Module
        A target-mode model (or block) from :func:`build_repopt_model`.
    scales : Mapping[str, torch.Tensor]
        Keys and shapes as :func:`check_scales` demands.

    Raises
    ------
    ValueError
        If the model is not in target mode or the scales do not fit.
    """
    blocks = _blocks(model, modes=("target",), caller="init_target_from_scales")
    check_scales(model, scales)
    for path, block in blocks:
        block.init_from_scales(_local(scales, path, block))


def repopt_grad_masks(
    model: nn.Module, scales: Mapping[str, torch.Tensor]
) -> dict[nn.Parameter, torch.Tensor]:
    """RepOptSGD gradient masks for a ``target`` model, one per re-parameterised kernel.

    ``{block.conv.weight: vgg_grad_mask(s3, s1, in, identity)}`` per RepOpt-VGG block and
    ``{module.cheap_conv.weight: ghost_grad_mask(s_dw)}`` per Ghost module; pass them to
    :class:`fedssl.clients.repopt.RepOptSGD` as ``grad_masks``. Each mask has its parameter's
    shape, dtype and device.

    Parameters
    ----------
    model : nn.Module
        A target-mode model (or block) from :func:`build_repopt_model`.
    scales : Mapping[str, torch.Tensor]
        Keys and shapes as :func:`check_scales` demands (``scale_identity`` is checked but does
        not enter the masks: the identity branch adds 1.0, as in the authors' code).

    Raises
    ------
    ValueError
        If the model is not in target mode or the scales do not fit.
    """
    blocks = _blocks(model, modes=("target",), caller="repopt_grad_masks")
    check_scales(model, scales)
    masks: dict[nn.Parameter, torch.Tensor] = {}
    for path, block in blocks:
        masks.update(block.grad_masks(_local(scales, path, block)))
    return masks


def reparameterize_repopt(model: nn.Module) -> nn.Module:
    """Fold a ``rep``, ``csla`` or ``hs`` model into a new, equivalent ``target`` model.

    ``rep`` (RepVGG, Ding et al., CVPR 2021; RepGhost, Chen et al., 2022): each branch BN is
    folded into its kernel (the identity branch as an identity kernel), 1x1 kernels are padded
    to 3x3 and the branches summed into one kernel and bias; the bias moves into the target's
    BN (RepOpt-VGG: ``running_mean -= bias`` of the post-sum BN; Ghost: the target's final BN
    becomes an exact affine pass-through adding the bias). ``csla``/``hs`` (RepOpt, Ding et al.,
    ICLR 2023): ``W' = s3·W3 + s1·pad(W1) + s_id·I`` (Ghost: ``s_dw·W_dw + s_id·I_dw``) with
    the post-sum BN copied. Everything outside the blocks is deep-copied.

    Parameters
    ----------
    model : nn.Module
        A RepOpt model (or block) in any mode; the input is not modified.

    Returns
    -------
    nn.Module
        A new target-mode model with the same module paths and, in eval mode, the same outputs
        (up to float rounding). A copy if ``model`` is already in target mode. Train/eval flags,
        dtype and device are kept.

    Raises
    ------
    ValueError
        If the model has no RepOpt blocks.
    """
    blocks = _blocks(model, modes=REPOPT_MODES, caller="reparameterize_repopt")
    if blocks[0][0] == "":  # the model is a bare block
        return blocks[0][1].reparameterized()
    new = copy.deepcopy(model)
    for path, _ in blocks:
        parent_path, _, child = path.rpartition(".")
        parent = new.get_submodule(parent_path)
        setattr(parent, child, getattr(parent, child).reparameterized())
    if hasattr(new, "mode"):
        new.mode = "target"
    return new

