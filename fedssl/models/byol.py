"""BYOL (Grill et al., 2020): an online branch predicts an EMA target branch's projections."""

from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from fedssl.models.base import SSLModel, SSLOptions
from fedssl.models.transforms import DEFAULT_VIEWS, NORMALIZE, ViewOptions, check_image_size

__all__ = ["BYOL", "build_byol_views"]

# progress in [0, 1] is mapped onto this many integer steps for lightly's cosine_schedule,
# which is defined on step counts.
_SCHEDULE_STEPS = 10_000


def build_byol_views(*, image_size: int = 32, views: ViewOptions = DEFAULT_VIEWS) -> BYOLTransform:
    """Lightly's asymmetric BYOL views (also used for Barlow Twins, as in lightly's example).

    View 1: blur p=1.0, no solarisation; view 2: blur p=0.1, solarisation p=0.2 (lightly's
    defaults). Both use ``min_scale=0.08``. For ``image_size <= 64`` blur is switched off
    in both views, following lightly's CIFAR-10 benchmark; solarisation stays.
    """
    check_image_size(image_size)
    small = image_size <= 64
    return BYOLTransform(
        view_1_transform=BYOLView1Transform(
            input_size=image_size,
            **views.kwargs(min_scale=0.08),
            gaussian_blur=0.0 if small else 1.0,
            normalize=NORMALIZE,
        ),
        view_2_transform=BYOLView2Transform(
            input_size=image_size,
            **views.kwargs(min_scale=0.08),
            gaussian_blur=0.0 if small else 0.1,
            normalize=NORMALIZE,
        ),
    )


class BYOL(SSLModel):
    """BYOL with lightly's heads; the target branch is an EMA of the online branch.

    The target (``backbone_momentum``, ``projection_head_momentum``) is part of the
    ``state_dict`` as ordinary float tensors (with ``requires_grad=False``), so federated
    averaging averages it like any other weight.

    Parameters
    ----------
    backbone
        Feature extractor with ``feature_dim``.
    projection_dim, hidden_dim
        Head output and hidden widths (the predictor maps ``projection_dim`` to itself).
    momentum
        EMA momentum at ``progress=0``; it rises to 1.0 along a cosine schedule.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        projection_dim: int = SSLOptions.projection_dim,
        hidden_dim: int = SSLOptions.hidden_dim,
        momentum: float = SSLOptions.byol_momentum,
    ) -> None:
        super().__init__(backbone)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.base_momentum = momentum
        self.projection_head = BYOLProjectionHead(self.feature_dim, hidden_dim, projection_dim)
        self.prediction_head = BYOLPredictionHead(projection_dim, hidden_dim, projection_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> BYOL:
        """Build from the shared options; uses ``byol_momentum``."""
        return cls(
            backbone,
            projection_dim=options.projection_dim,
            hidden_dim=options.hidden_dim,
            momentum=options.byol_momentum,
        )

    @classmethod
    def build_transform(
        cls, *, image_size: int = 32, views: ViewOptions = DEFAULT_VIEWS
    ) -> BYOLTransform:
        """See :func:`build_byol_views`."""
        return build_byol_views(image_size=image_size, views=views)

    def momentum_at(self, progress: float) -> float:
        """EMA momentum for ``progress`` in [0, 1]: cosine from ``base_momentum`` to 1.0."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        return cosine_schedule(
            step=round(progress * _SCHEDULE_STEPS),
            max_steps=_SCHEDULE_STEPS + 1,
            start_value=self.base_momentum,
            end_value=1.0,
        )

    @torch.no_grad()
    def on_step_start(self, progress: float) -> None:
        """Move the target branch towards the online branch (EMA of parameters)."""
        m = self.momentum_at(progress)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        # no_grad: the target gets no gradient anyway, and this skips storing activations.
        return self.projection_head_momentum(self.backbone_momentum(x))

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Symmetrised negative cosine similarity between predictions and target projections."""
        x0, x1 = self._check_views(views)
        p0, p1 = self._online(x0), self._online(x1)
        z0, z1 = self._target(x0), self._target(x1)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
