"""Barlow Twins (Zbontar et al., 2021): push the views' cross-correlation to the identity."""

from __future__ import annotations

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead
from lightly.transforms import BYOLTransform
from torch import nn

from fedssl.models.base import SSLModel, SSLOptions
from fedssl.models.byol import build_byol_views
from fedssl.models.transforms import DEFAULT_VIEWS, ViewOptions

__all__ = ["BarlowTwins"]


class BarlowTwins(SSLModel):
    """Barlow Twins with lightly's 3-layer projector and loss (``lambda=5e-3``).

    Parameters
    ----------
    backbone
        Feature extractor with ``feature_dim``.
    projection_dim, hidden_dim
        Projector output and hidden widths.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        projection_dim: int = SSLOptions.projection_dim,
        hidden_dim: int = SSLOptions.hidden_dim,
    ) -> None:
        super().__init__(backbone)
        self.projection_head = BarlowTwinsProjectionHead(
            self.feature_dim, hidden_dim, projection_dim
        )
        self.criterion = BarlowTwinsLoss()

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> BarlowTwins:
        """Build from the shared options."""
        return cls(backbone, projection_dim=options.projection_dim, hidden_dim=options.hidden_dim)

    @classmethod
    def build_transform(
        cls, *, image_size: int = 32, views: ViewOptions = DEFAULT_VIEWS
    ) -> BYOLTransform:
        """Lightly's asymmetric BYOL views, as in lightly's Barlow Twins example.

        See :func:`fedssl.models.byol.build_byol_views`.
        """
        return build_byol_views(image_size=image_size, views=views)

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Barlow Twins loss between the projections of the two views."""
        x0, x1 = self._check_views(views)
        z0 = self.projection_head(self.backbone(x0))
        z1 = self.projection_head(self.backbone(x1))
        return self.criterion(z0, z1)
