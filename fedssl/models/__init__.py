"""Backbones, self-supervised methods and their transforms, selected by name.

>>> backbone = build_backbone("small-cnn", image_size=32)
>>> model = build_ssl_model("simclr", backbone)
>>> transform = build_ssl_transform("simclr", image_size=32)  # PIL image -> [view0, view1]
>>> audio = audio_rep_inceptionnext("tiny", num_classes=0, in_chans=1)  # (B, 1, T, F) log-mel
>>> fused = reparameterize(audio)  # multi-branch kernels merged for inference

Importing this package registers every family. :data:`BACKBONES` and :data:`SSL_METHODS`
are the built-in names in their documented order. This package must not import ``flwr``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL.Image import Image
from torch import nn

# Importing a family module registers it; the public order is fixed by the tuples below,
# not by import order.
from fedssl.models import barlowtwins, byol, lska, resnet, simclr, simsiam, small_cnn, vit
from fedssl.models.audio_inception import audio_inceptionnext, audio_rep_inceptionnext
from fedssl.models.barlowtwins import BarlowTwins
from fedssl.models.base import BACKBONE_REGISTRY, SSL_REGISTRY, SSLModel, SSLOptions
from fedssl.models.byol import BYOL
from fedssl.models.registry import Registry
from fedssl.models.reparam import reparameterize
from fedssl.models.simclr import SimCLR
from fedssl.models.simsiam import SimSiam
from fedssl.models.transforms import NORMALIZE, ViewOptions, build_eval_transform

__all__ = [
    "BACKBONES",
    "BACKBONE_REGISTRY",
    "BYOL",
    "NORMALIZE",
    "SSL_METHODS",
    "SSL_REGISTRY",
    "BarlowTwins",
    "Registry",
    "SSLModel",
    "SSLOptions",
    "SimCLR",
    "SimSiam",
    "ViewOptions",
    "audio_inceptionnext",
    "audio_rep_inceptionnext",
    "build_backbone",
    "build_eval_transform",
    "build_ssl_model",
    "build_ssl_transform",
    "reparameterize",
]

BACKBONES: tuple[str, ...] = (
    "small-cnn", "resnet18", "resnet34", "resnet50", "vit-tiny",
    "van-lska-tiny", "van-lska-small", "van-lska-base",
)
SSL_METHODS: tuple[str, ...] = ("simclr", "byol", "simsiam", "barlowtwins")

# The family modules must have registered exactly the advertised built-in names.
_FAMILIES = (small_cnn, resnet, vit, lska, simclr, byol, simsiam, barlowtwins)
if set(BACKBONE_REGISTRY.names()) != set(BACKBONES) or set(SSL_REGISTRY.names()) != set(
    SSL_METHODS
):
    raise RuntimeError(
        f"registries out of sync: backbones {BACKBONE_REGISTRY.names()}, "
        f"methods {SSL_REGISTRY.names()}"
    )


def build_backbone(name: str, *, image_size: int = 32) -> nn.Module:
    """Build a randomly initialised backbone.

    Parameters
    ----------
    name
        One of :data:`BACKBONES`.
    image_size
        Side length of the (square) input images.

    Returns
    -------
    nn.Module
        Maps ``[B, 3, H, W]`` float images to ``[B, feature_dim]``; has int ``feature_dim``.

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists valid names) or ``image_size`` is invalid.
    """
    return BACKBONE_REGISTRY.get(name)(image_size=image_size)


def build_ssl_model(
    method: str,
    backbone: nn.Module,
    *,
    projection_dim: int = 128,
    hidden_dim: int = 512,
    temperature: float = 0.5,
    byol_momentum: float = 0.99,
) -> SSLModel:
    """Wrap ``backbone`` with the heads and loss of an SSL method.

    Parameters
    ----------
    method
        One of :data:`SSL_METHODS`.
    backbone
        Feature extractor with int ``feature_dim``, e.g. from :func:`build_backbone`; becomes
        ``model.backbone`` (not copied).
    projection_dim, hidden_dim
        Projection head output and hidden widths.
    temperature
        SimCLR's NT-Xent temperature (ignored by other methods).
    byol_momentum
        BYOL's starting EMA momentum (ignored by other methods).

    Raises
    ------
    ValueError
        If ``method`` is unknown (the message lists valid names) or an option is invalid.
    """
    cls = SSL_REGISTRY.get(method)
    options = SSLOptions(
        projection_dim=projection_dim,
        hidden_dim=hidden_dim,
        temperature=temperature,
        byol_momentum=byol_momentum,
    )
    return cls.from_options(backbone, options)


def build_ssl_transform(
    method: str, *, image_size: int = 32, views: ViewOptions | None = None
) -> Callable[[Image], list[torch.Tensor]]:
    """Return the method's lightly two-view training transform (normalised float tensors).

    Randomness: crops, flips, jitter and grayscale draw from torch's global RNG. Lightly's
    ``GaussianBlur``, ``RandomSolarization`` and ``RandomRotate`` draw from numpy's global
    RNG; of those, only solarisation is active at ``image_size <= 64`` (BYOL and Barlow
    Twins' second view), so seed numpy as well as torch for reproducible views there.

    Raises
    ------
    ValueError
        If ``method`` is unknown (the message lists valid names).
    """
    return SSL_REGISTRY.get(method).build_transform(
        image_size=image_size, views=views or ViewOptions()
    )
