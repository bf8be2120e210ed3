"""SimSiam (Chen & He, 2021): BYOL without the momentum encoder, using stop-gradient."""

from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from lightly.transforms import SimSiamTransform
from torch import nn

from fedssl.models.base import SSLModel, SSLOptions
from fedssl.models.transforms import DEFAULT_VIEWS, NORMALIZE, ViewOptions, check_image_size

__all__ = ["SimSiam"]


class SimSiam(SSLModel):
    """SimSiam with lightly's 3-layer projector and bottleneck predictor.

    Parameters
    ----------
    backbone
        Feature extractor with ``feature_dim``.
    projection_dim, hidden_dim
        Projector output and hidden widths. The predictor's hidden width is
        ``max(1, projection_dim // 2)``: a bottleneck, as in lightly's SimSiam example
        (128 -> 64 -> 128); the paper uses a 4x bottleneck at width 2048.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        projection_dim: int = SSLOptions.projection_dim,
        hidden_dim: int = SSLOptions.hidden_dim,
    ) -> None:
        super().__init__(backbone)
        self.projection_head = SimSiamProjectionHead(self.feature_dim, hidden_dim, projection_dim)
        self.prediction_head = SimSiamPredictionHead(
            projection_dim, max(1, projection_dim // 2), projection_dim
        )
        self.criterion = NegativeCosineSimilarity()

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> SimSiam:
        """Build from the shared options."""
        return cls(backbone, projection_dim=options.projection_dim, hidden_dim=options.hidden_dim)

    @classmethod
    def build_transform(
        cls, *, image_size: int = 32, views: ViewOptions = DEFAULT_VIEWS
    ) -> SimSiamTransform:
        """Lightly's SimSiam views: crop ``min_scale=0.2`` (lightly's default), flip, jitter.

        Gaussian blur is off for ``image_size <= 64`` (lightly's CIFAR-10 setting), on
        (p=0.5) otherwise.
        """
        check_image_size(image_size)
        return SimSiamTransform(
            input_size=image_size,
            **views.kwargs(min_scale=0.2),
            gaussian_blur=0.0 if image_size <= 64 else 0.5,
            normalize=NORMALIZE,
        )

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Symmetrised negative cosine similarity; projections are detached (stop-gradient)."""
        x0, x1 = self._check_views(views)
        z0 = self.projection_head(self.backbone(x0))
        z1 = self.projection_head(self.backbone(x1))
        p0, p1 = self.prediction_head(z0), self.prediction_head(z1)
        return 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))
