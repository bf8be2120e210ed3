"""``small-cnn``: a tiny all-convolutional CNN, small enough for CPU-only federated runs."""

from __future__ import annotations

import torch
from torch import nn

from fedssl.models.transforms import check_image_size

__all__ = ["SmallCNN", "small_cnn"]


def _block(in_ch: int, out_ch: int, *, kernel_size: int, stride: int) -> list[nn.Module]:
    # bias=False: the following BatchNorm has its own shift.
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """Stride-2 conv3x3-BN-ReLU blocks ``16 -> 32 -> 64 -> 128``, conv1x1-BN-ReLU to 256, GAP.

    At 32x32 input the blocks run at 16, 8, 4 and 2 pixels. Downsampling is done by the
    convolutions rather than by max-pools after stride-1 convolutions: on one CPU thread
    anything at full 32x32 resolution (a conv, a max-pool, even BN/ReLU) costs about as much
    as the rest of the network. Measured SimCLR steps (batch 128, two 32x32 views, fwd+bwd,
    one thread, on a shared 2-core AMD EPYC VM): ~0.6 s for 32->64->128->256 with stride-1
    convs and max-pools, ~0.22 s for the same widths with stride-2 convs, ~0.15 s for
    24->48->96->192, ~0.09 s for these defaults. Global average pooling makes the
    network accept any input size.

    Parameters
    ----------
    widths
        Output channels of the stride-2 3x3 blocks.
    feature_dim
        Output channels of the final 1x1 block, i.e. the feature size.
    """

    def __init__(
        self, *, widths: tuple[int, ...] = (16, 32, 64, 128), feature_dim: int = 256
    ) -> None:
        super().__init__()
        if not widths or any(w < 1 for w in widths) or feature_dim < 1:
            raise ValueError(
                f"widths and feature_dim must be positive, got {widths}, {feature_dim}"
            )
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            layers += _block(in_ch, width, kernel_size=3, stride=2)
            in_ch = width
        layers += _block(in_ch, feature_dim, kernel_size=1, stride=1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = feature_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, 3, H, W]`` images to ``[B, feature_dim]`` features."""
        return torch.flatten(self.pool(self.features(x)), 1)


def small_cnn(*, image_size: int = 32) -> SmallCNN:
    """Build the ``small-cnn`` backbone (``feature_dim`` 256).

    Parameters
    ----------
    image_size
        Input side length; only validated, since the network is size-agnostic.
    """
    check_image_size(image_size)
    return SmallCNN()
