"""``vit-tiny``: torchvision's VisionTransformer at ViT-Ti width (192) without the head."""

from __future__ import annotations

from torch import nn
from torchvision.models import VisionTransformer

from fedssl.models.transforms import check_image_size

__all__ = ["vit_tiny"]


def vit_tiny(*, image_size: int = 32) -> VisionTransformer:
    """Build ViT-Tiny (12 layers, 3 heads, width 192, MLP 768), ``feature_dim`` 192.

    The patch size is ``image_size // 8`` (4 for 32x32), i.e. an 8x8 grid of patches, so
    the token count and cost do not grow with the image size.

    Parameters
    ----------
    image_size
        Input side length; must be >= 8 and divisible by ``image_size // 8``.
    """
    check_image_size(image_size)
    patch_size = image_size // 8
    if patch_size < 1 or image_size % patch_size:
        raise ValueError(
            f"vit-tiny needs image_size >= 8 divisible by image_size // 8, got {image_size}"
        )
    model = VisionTransformer(
        image_size=image_size,
        patch_size=patch_size,
        num_layers=12,
        num_heads=3,
        hidden_dim=192,
        mlp_dim=768,
    )
    # The class-token output is the feature; heads would be the classifier.
    model.heads = nn.Identity()
    model.feature_dim = 192
    return model
