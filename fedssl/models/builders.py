"""Build networks, SSL methods and their transforms by registered name.

>>> backbone = build_backbone("small-cnn", image_size=32)
>>> audio = build_backbone("audio-rep-inceptionnext-tiny", modality="audio")
>>> model = build_ssl_model("simclr", backbone)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL.Image import Image
from torch import nn

from fedssl.models.base import MODELS, SSL_REGISTRY, SSLModel, SSLOptions
from fedssl.models.transforms import ViewOptions

__all__ = ["backbone_names", "build_backbone", "build_ssl_model", "build_ssl_transform"]

# What a backbone builder is given for each modality: images have a size; log-mel
# spectrograms one channel (their size follows from the dataset's front end); 3D CNNs over
# video clips take clips of any size (they pool at the end).
_BACKBONE_INPUTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "image": lambda image_size: {"image_size": image_size},
    "audio": lambda image_size: {"in_chans": 1},
    "video": lambda image_size: {},
}


def backbone_names(modality: str = "image") -> tuple[str, ...]:
    """Registered backbones for ``modality``, in registration order."""
    return MODELS.names(kind="backbone", modalities=modality)


def build_backbone(name: str, *, image_size: int = 32, modality: str = "image") -> nn.Module:
    """Build a randomly initialised backbone.

    Parameters
    ----------
    name
        A backbone of ``modality`` (:func:`backbone_names`).
    image_size
        Side length of the (square) input images (``modality="image"``).
    modality
        ``"image"``: ``[B, 3, H, W]`` images; ``"audio"``: ``[B, 1, T, F]`` log-mel
        spectrograms; ``"video"``: ``[B, 3, T, H, W]`` clips.

    Returns
    -------
    nn.Module
        Maps the input to ``[B, feature_dim]``; has int ``feature_dim``.

    Raises
    ------
    ValueError
        If ``name`` is not a backbone of ``modality`` (the message lists valid names) or
        ``image_size`` is invalid.
    """
    if modality not in _BACKBONE_INPUTS:
        raise ValueError(f"modality={modality!r}; backbones exist for: "
                         f"{', '.join(_BACKBONE_INPUTS)}")
    valid = backbone_names(modality)
    if name not in valid:
        kind = "backbone" if modality == "image" else f"{modality} backbone"
        raise ValueError(f"unknown {kind} {name!r}; valid names: "
                         f"{', '.join(repr(n) for n in valid)}")
    return MODELS.get(name)(**_BACKBONE_INPUTS[modality](image_size))


def build_ssl_model(
    method: str,
    backbone: nn.Module,
    *,
    projection_dim: int = SSLOptions.projection_dim,
    hidden_dim: int = SSLOptions.hidden_dim,
    temperature: float = SSLOptions.temperature,
    byol_momentum: float = SSLOptions.byol_momentum,
    num_segments: int = SSLOptions.num_segments,
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
    num_segments
        Clip-order prediction's segments per clip (ignored by other methods).

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
        num_segments=num_segments,
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
