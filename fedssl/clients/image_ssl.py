"""Federated self-supervised learning on images (SimCLR, BYOL, SimSiam, Barlow Twins)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fedssl.clients.evaluation import cached_accuracy, extract_features, linear_probe_accuracy
from fedssl.clients.image_data import IMAGE_DATA
from fedssl.clients.ssl_task import SSLTask
from fedssl.datasets import ImageArrays
from fedssl.models import ViewOptions, build_eval_transform, build_ssl_transform

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["ImageSSLTask", "MultiViewDataset", "raw_pixel_probe"]


class MultiViewDataset(Dataset):
    """uint8 images [N, H, W, 3] -> list of augmented views (labels are never used)."""

    def __init__(self, images: np.ndarray, transform: Callable) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        return self.transform(Image.fromarray(self.images[index]))


def raw_pixel_probe(train: ImageArrays, test: ImageArrays, *, seed: int) -> float:
    """Linear-probe accuracy on raw pixels: the floor any learned encoder should clear.

    It depends on the data alone, not on the run, so it is computed once per data (keyed by a
    fingerprint of the arrays, which survives dataset rebuilds) and kept in the cache directory.
    """
    fingerprint = hashlib.sha1(train.images[:256].tobytes() + test.labels.tobytes())
    fingerprint.update(repr((len(train), len(test), seed)).encode())
    return cached_accuracy(
        "raw-pixel-probe", fingerprint.hexdigest()[:16], train.name,
        lambda: linear_probe_accuracy(
            train.images.reshape(len(train), -1) / 255.0,
            train.labels,
            test.images.reshape(len(test), -1) / 255.0,
            test.labels,
            seed=seed,
        ),
    )


class ImageSSLTask(SSLTask):
    """Backbone + projection head(s) + lightly loss, trained on unlabelled image partitions;
    each sample yields the method's two lightly views."""

    name = "image-ssl"
    modality = "image"
    data = IMAGE_DATA
    data_probe_key = "raw-pixel-linear-probe-accuracy"

    def samples(self, data: ImageArrays, cfg: RunConfig) -> Dataset:
        views = ViewOptions(
            min_scale=cfg.crop_min_scale, cj_strength=cfg.color_jitter, hf_prob=cfg.hflip_prob
        )
        transform = build_ssl_transform(cfg.ssl_method, image_size=cfg.image_size, views=views)
        return MultiViewDataset(data.images, transform)

    def batch_views(self, cfg: RunConfig, device: torch.device
                    ) -> Callable[[Any], list[torch.Tensor]]:
        return lambda views: [v.to(device) for v in views]

    def features(self, encoder: torch.nn.Module, cfg: RunConfig,
                 data: ImageArrays) -> torch.Tensor:
        return extract_features(encoder, data.images, build_eval_transform(
            image_size=cfg.image_size), device=next(encoder.parameters()).device)

    def data_probe(self, train: ImageArrays, test: ImageArrays, cfg: RunConfig) -> float:
        return raw_pixel_probe(train, test, seed=cfg.seed)
