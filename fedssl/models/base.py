"""The SSL model base class, and the two registries (declared in :mod:`fedssl.catalogue.models`).

:data:`MODELS` holds every network a run config names with ``model``, tagged with its
``kind`` (``"backbone"``: features out; ``"classifier"``: logits out), the ``modalities`` it
takes, and its ``family`` where one applies (``"repopt"``). A backbone builder is keyword-only:
``(*, image_size)`` for images, ``(*, in_chans)`` for log-mel spectrograms (see
:func:`fedssl.models.build_backbone`). :data:`SSL_REGISTRY` holds the self-supervised methods
(``ssl-method``), each an :class:`SSLModel`-like class with ``from_options``, tagged with its
``objective`` (``"feature-matching"`` or ``"predictive"``), the ``views`` per sample it
trains on and the ``modalities`` it fits.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import torch
from lightly.transforms.multi_view_transform import MultiViewTransform
from torch import nn

from fedssl.catalogue.models import MODELS, SSL_REGISTRY

__all__ = [
    "BACKBONE_REGISTRY",
    "MODELS",
    "SSL_REGISTRY",
    "BackboneBuilder",
    "SSLModel",
    "SSLOptions",
    "feature_dim_of",
]

BackboneBuilder = Callable[..., nn.Module]

# The name the backbone families registered under before MODELS held every kind of network.
BACKBONE_REGISTRY = MODELS


@dataclass(frozen=True)
class SSLOptions:
    """Hyper-parameters shared by all SSL methods; each method reads the ones it uses.

    Attributes
    ----------
    projection_dim
        Output width of the projection (and prediction) head.
    hidden_dim
        Hidden width of the projection head.
    temperature
        NT-Xent temperature (SimCLR only).
    byol_momentum
        Starting EMA momentum of BYOL's target branch; it follows a cosine schedule to 1.0.
    num_segments
        Segments per clip of clip-order prediction (``num_segments!`` orders).

    The defaults are the run config's (``fedssl.config.RunConfig``), so a model built here
    with defaults is the model a default run trains.
    """

    projection_dim: int = 128
    hidden_dim: int = 512
    temperature: float = 0.1
    byol_momentum: float = 0.99
    num_segments: int = 3

    def __post_init__(self) -> None:
        if self.projection_dim < 1:
            raise ValueError(f"projection_dim must be >= 1, got {self.projection_dim}")
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {self.hidden_dim}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.byol_momentum <= 1.0:
            raise ValueError(f"byol_momentum must be in [0, 1], got {self.byol_momentum}")
        if not 2 <= self.num_segments <= 5:
            raise ValueError(f"num_segments must be in 2..5, got {self.num_segments}")


def feature_dim_of(backbone: nn.Module) -> int:
    """Return ``backbone.feature_dim``, which every backbone from :mod:`fedssl.models` has.

    Raises
    ------
    ValueError
        If the backbone does not declare a positive integer ``feature_dim``.
    """
    dim = getattr(backbone, "feature_dim", None)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(
            f"backbone {type(backbone).__name__} must have a positive int attribute "
            f"'feature_dim', got {dim!r}"
        )
    return dim


class SSLModel(nn.Module, abc.ABC):
    """A backbone plus the heads and loss of one self-supervised method.

    Subclasses hold every tensor they need (momentum branches included) as float
    parameters/buffers so that the whole ``state_dict`` can be averaged by the server.

    Parameters
    ----------
    backbone
        Feature extractor with an int attribute ``feature_dim``; kept as ``self.backbone``
        (the same object, not a copy) so callers can evaluate it after training.
    """

    backbone: nn.Module

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.feature_dim = feature_dim_of(backbone)
        self.backbone = backbone

    @classmethod
    @abc.abstractmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> SSLModel:
        """Build the model from the shared options (used by ``build_ssl_model``)."""

    @classmethod
    @abc.abstractmethod
    def build_transform(cls, *, image_size: int = 32) -> MultiViewTransform:
        """Return the method's two-view training augmentation (lightly's transform)."""

    @abc.abstractmethod
    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Return the scalar training loss for two augmented batches ``[B, 3, H, W]``."""

    def on_step_start(self, progress: float) -> None:
        """Hook called before each optimisation step; ``progress`` in [0, 1]. No-op here."""
        del progress

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return backbone features ``[B, feature_dim]`` (what downstream evaluation uses)."""
        return self.backbone(x)

    @staticmethod
    def _check_views(views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        # Every method here is a two-view method; fail loudly rather than silently use two
        # of several crops. A view is a batch of images or log-mels [B, C, H, W] or of video
        # clips [B, C, T, H, W]: the losses see only the backbone's [B, D] features.
        if len(views) != 2:
            raise ValueError(f"expected exactly 2 views, got {len(views)}")
        x0, x1 = views
        if x0.shape != x1.shape or x0.dim() not in (4, 5):
            raise ValueError(
                f"views must be two [B, C, H, W] (or [B, C, T, H, W] clip) tensors of equal "
                f"shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        return x0, x1
