"""Audio clip-order prediction (ACOP): predictive self-supervision by temporal order.

The audio counterpart of VCOP (Xu et al., "Self-supervised Spatiotemporal Learning via Video
Clip Order Prediction", CVPR 2019), the predictive method FASSL compares with SimCLR and
Barlow Twins. A log-mel ``(B, C, T, F)`` is cut along time into ``n`` equal segments, which
are shuffled by one of the ``n!`` permutations drawn per sample; the shared backbone encodes
each segment, every pair of segment features (in shuffled order) passes through a shared
pairwise layer, and a linear classifier over the concatenated pair features predicts which
permutation was applied.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from fedssl.models.base import SSLOptions, feature_dim_of

__all__ = ["ClipOrder"]


class ClipOrder(nn.Module):
    """Backbone + VCOP-style pairwise order head with a cross-entropy loss.

    Parameters
    ----------
    backbone
        Encoder of ``(B, C, T/n, F)`` segments with an int ``feature_dim``.
    num_segments
        ``n``: segments per clip; the task has ``n!`` classes (3 → 6, as in VCOP).
    hidden_dim
        Width of the pairwise layer.
    dropout
        Dropout before the order classifier (VCOP uses 0.5).
    """

    def __init__(self, backbone: nn.Module, *, num_segments: int = 3, hidden_dim: int = 512,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if not 2 <= num_segments <= 5:
            raise ValueError(f"num_segments must be in 2..5 (n! classes); got {num_segments}")
        self.feature_dim = feature_dim_of(backbone)
        self.backbone = backbone
        self.num_segments = num_segments
        self.register_buffer(
            "orders",
            torch.tensor(list(itertools.permutations(range(num_segments)))),
            persistent=False,
        )
        num_pairs = math.comb(num_segments, 2)
        self.pair = nn.Sequential(nn.Linear(2 * self.feature_dim, hidden_dim), nn.ReLU())
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(num_pairs * hidden_dim, len(self.orders)))
        self.criterion = nn.CrossEntropyLoss()

    @classmethod
    def from_options(cls, backbone: nn.Module, options: SSLOptions) -> ClipOrder:
        """Build from the options every SSL method takes (uses num_segments, hidden_dim)."""
        return cls(backbone, num_segments=options.num_segments, hidden_dim=options.hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of whole clips ``(B, feature_dim)`` (what evaluation uses)."""
        return self.backbone(x)

    def on_step_start(self, progress: float) -> None:
        """Nothing to schedule (the hook every SSL model offers)."""
        del progress

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, F)`` -> ``(B, n, C, T // n, F)``; the last ``T mod n`` frames are dropped."""
        length = x.shape[2] // self.num_segments
        if length < 1:
            raise ValueError(f"{x.shape[2]} frames cannot be cut into {self.num_segments}")
        x = x[:, :, : length * self.num_segments]
        return x.unflatten(2, (self.num_segments, length)).movedim(2, 1)

    def order_logits(self, x: torch.Tensor, order_ids: torch.Tensor) -> torch.Tensor:
        """Logits over the ``n!`` orders for clips whose segments are shuffled by ``order_ids``."""
        segments = self.segments(x)
        batch = segments.shape[0]
        perm = self.orders[order_ids]  # (B, n): position j shows segment perm[b, j]
        shuffled = segments[torch.arange(batch, device=x.device).unsqueeze(1), perm]
        features = self.backbone(shuffled.flatten(0, 1)).view(batch, self.num_segments, -1)
        pairs = [
            self.pair(torch.cat([features[:, i], features[:, j]], dim=1))
            for i, j in itertools.combinations(range(self.num_segments), 2)
        ]
        return self.classifier(torch.cat(pairs, dim=1))

    def training_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the permutation; uses the first view, drawing orders per sample."""
        x = views[0]
        order_ids = torch.randint(len(self.orders), (x.shape[0],), device=x.device)
        return self.criterion(self.order_logits(x, order_ids), order_ids)
