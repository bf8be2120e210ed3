"""SimCLR (Chen et al., 2020): NT-Xent contrastive loss between two augmented views."""

from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from torch import nn

from fedssl.models.base import SSLModel, SSLOptions
from fedssl.models.transforms import DEFAULT_VIEWS, NORMALIZE, ViewOptions, check_image_size

__all__ = ["SimCLR"]


class SimCLR(SSLModel):
    """SimCLR with lightly's 2-layer projection head and NT-Xent loss.

    Parameters
    ----------
    backbone
        Feature extractor with ``feature_dim``.
    projection_dim, hidden_dim
        Projection head output and hidden widths.
    temperature
        NT-Xent temperature.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        projection_dim: int = SSLOptions.projection_dim,
        hidden_dim: int = SSLOptions.hidden_dim,
        temperature: float = SSLOptions.temperature,
    ) -> None:
        super().__init__(backbone)
        self.projection_head = SimCLRProjectionHead(
            input_dim=self.feature_dim, hidden_dim=hidden_dim, output_dim=projection_dim
        )
        self.criterion = NTXentLoss(temperature=temperature)

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> SimCLR:
        """Build from the shared options; uses ``temperature``."""
        return cls(
            backbone,
            projection_dim=options.projection_dim,
            hidden_dim=options.hidden_dim,
            temperature=options.temperature,
        )

    @classmethod
    def build_transform(
        cls, *, image_size: int = 32, views: ViewOptions = DEFAULT_VIEWS
    ) -> SimCLRTransform:
        """Lightly's SimCLR views with the settings of lightly's CIFAR-10 benchmark.

        Random resized crop (``min_scale=0.08``), horizontal flip, colour jitter (p=0.8,
        ``cj_strength=0.5`` as in all of lightly's benchmarks) and grayscale (p=0.2).
        Gaussian blur is off for ``image_size <= 64`` because it wipes out most of a 32x32
        image (lightly's CIFAR-10 setting) and on (p=0.5, lightly's default) above that.
        """
        check_image_size(image_size)
        small = image_size <= 64
        return SimCLRTransform(
            input_size=image_size,
            **views.kwargs(cj_strength=0.5, min_scale=0.08),
            gaussian_blur=0.0 if small else 0.5,
            normalize=NORMALIZE,
        )

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """NT-Xent loss between the projections of the two views."""
        x0, x1 = self._check_views(views)
        z0 = self.projection_head(self.backbone(x0))
        z1 = self.projection_head(self.backbone(x1))
        return self.criterion(z0, z1)
