"""Normalisation and the evaluation transform shared by every SSL method.

Training augmentations live with their method (``simclr.py`` etc.); all of them normalise
with :data:`NORMALIZE`, lightly's ImageNet statistics, which is also what lightly's CIFAR-10
benchmarks use. Evaluation must use the same statistics, so it is built here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T
from lightly.transforms.utils import IMAGENET_NORMALIZE
from PIL.Image import Image

__all__ = ["NORMALIZE", "build_eval_transform", "check_image_size"]

NORMALIZE: dict[str, list[float]] = {
    "mean": list(IMAGENET_NORMALIZE["mean"]),
    "std": list(IMAGENET_NORMALIZE["std"]),
}


def check_image_size(image_size: int) -> int:
    """Return ``image_size`` if it is a positive int, else raise ValueError."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    return image_size


def build_eval_transform(*, image_size: int = 32) -> Callable[[Image], torch.Tensor]:
    """Return the deterministic evaluation transform: resize, centre crop, tensor, normalise.

    Resize + centre crop are no-ops for images already ``image_size`` square (e.g. CIFAR at
    32) and make other sizes match the training crops. Uses lightly's ``ToTensor`` so the
    tensors are produced exactly as in the training transforms.

    Parameters
    ----------
    image_size
        Side length of the output image.
    """
    check_image_size(image_size)
    return T.Compose(
        [
            T.Resize(image_size),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(mean=NORMALIZE["mean"], std=NORMALIZE["std"]),
        ]
    )


@dataclass(frozen=True)
class ViewOptions:
    """Augmentation strengths shared by every method's two-view transform.

    ``None`` keeps the method's own lightly setting (SimCLR: min_scale 0.08, cj_strength 0.5;
    SimSiam: min_scale 0.2; BYOL/Barlow Twins: min_scale 0.08, lightly's jitter; hflip 0.5).
    Small digits need larger crops and no flips: a 0.08-area crop of a 32x32 digit image
    usually misses the digit, and a flipped 2 is a 5-like shape.
    """

    min_scale: float | None = None
    cj_strength: float | None = None
    hf_prob: float | None = None

    def kwargs(self, **defaults: float) -> dict[str, float]:
        """lightly keyword arguments: the set options over the method's ``defaults``."""
        chosen = {"min_scale": self.min_scale, "cj_strength": self.cj_strength,
                  "hf_prob": self.hf_prob}
        return defaults | {k: v for k, v in chosen.items() if v is not None}


DEFAULT_VIEWS = ViewOptions()
