"""``resnet18`` / ``resnet34`` / ``resnet50``: torchvision ResNets without the classifier.

Small images (``image_size <= 64``) get the CIFAR stem: a 3x3 stride-1 ``conv1`` and no
max-pool, since the ImageNet stem would shrink a 32x32 image to 8x8 before the first block.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import ResNet, resnet18, resnet34, resnet50

from fedssl.models.transforms import check_image_size

__all__ = [
    "CIFAR_STEM_MAX_SIZE",
    "build_resnet",
    "resnet18_backbone",
    "resnet34_backbone",
    "resnet50_backbone",
]

CIFAR_STEM_MAX_SIZE = 64


def build_resnet(factory: Callable[..., ResNet], *, image_size: int = 32) -> ResNet:
    """Build a randomly initialised torchvision ResNet as a feature extractor.

    Parameters
    ----------
    factory
        A torchvision builder such as :func:`torchvision.models.resnet18`.
    image_size
        Input side length; ``<= 64`` selects the CIFAR stem.

    Returns
    -------
    ResNet
        ``fc`` replaced by ``nn.Identity``; int attribute ``feature_dim`` set.
    """
    check_image_size(image_size)
    model = factory(weights=None)  # never download weights
    if image_size <= CIFAR_STEM_MAX_SIZE:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    model.feature_dim = feature_dim
    return model


def resnet18_backbone(*, image_size: int = 32) -> ResNet:
    """ResNet-18 backbone, ``feature_dim`` 512."""
    return build_resnet(resnet18, image_size=image_size)


def resnet34_backbone(*, image_size: int = 32) -> ResNet:
    """ResNet-34 backbone, ``feature_dim`` 512."""
    return build_resnet(resnet34, image_size=image_size)


def resnet50_backbone(*, image_size: int = 32) -> ResNet:
    """ResNet-50 backbone, ``feature_dim`` 2048."""
    return build_resnet(resnet50, image_size=image_size)
