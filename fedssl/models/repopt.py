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
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping

import torch
from torch import nn

from fedssl.models.reparam import fold_bn

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

REPOPT_MODES: tuple[str, ...] = ("rep", "csla", "hs", "target")
"""Block modes: RepVGG/RepGhost training-time branches, constant-scale (CSLA) branches,
hyper-search (trainable-scale) branches, and the plain model."""

REPOPT_MODELS: tuple[str, ...] = (
    "repopt-vgg-b1",
    "repopt-vgg-tiny",
    "repopt-ghost-0.5x",
    "repopt-ghost-tiny",
)
"""Built-in architectures, in documented order (see the family modules for their tables)."""


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


def _families() -> dict[str, tuple[Callable[..., nn.Module], Callable[[str], dict]]]:
    # Imported lazily: the family modules import ScaleLayer and RepOptBlock from this module.
    from fedssl.models import repopt_ghostnet, repopt_vgg

    families: dict[str, tuple[Callable[..., nn.Module], Callable[[str], dict]]] = {}
    for name in repopt_vgg.REPOPT_VGG_CONFIGS:
        families[name] = (repopt_vgg.build_repopt_vgg, repopt_vgg.repopt_vgg_default_scales)
    for name in repopt_ghostnet.REPOPT_GHOSTNET_CONFIGS:
        families[name] = (repopt_ghostnet.build_repopt_ghostnet,
                          repopt_ghostnet.repopt_ghostnet_default_scales)
    if set(families) != set(REPOPT_MODELS):
        raise RuntimeError(f"RepOpt family tables {sorted(families)} differ from "
                           f"REPOPT_MODELS {REPOPT_MODELS}")
    return families


def _family(name: str) -> tuple[Callable[..., nn.Module], Callable[[str], dict]]:
    families = _families()
    if name not in families:
        raise ValueError(f"unknown RepOpt model name {name!r}; valid names: "
                         f"{', '.join(REPOPT_MODELS)}")
    return families[name]


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

