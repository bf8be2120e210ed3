"""Federated self-supervised learning on images (SimCLR, BYOL, SimSiam, Barlow Twins)."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fedssl.clients.base import (
    ClientTask,
    empty_partition_metrics,
    local_loader,
    seed_everything,
    ssl_local_steps,
    train_reply,
)
from fedssl.clients.evaluation import (
    cached_accuracy,
    extract_features,
    knn_accuracy,
    linear_probe_accuracy,
)
from fedssl.clients.image_data import (
    eval_split,
    partition,
    partition_class_histograms,
)
from fedssl.datasets import ImageArrays
from fedssl.models import (
    SSLModel,
    ViewOptions,
    build_backbone,
    build_eval_transform,
    build_ssl_model,
    build_ssl_transform,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fedssl.config import RunConfig

__all__ = ["ImageSSLTask", "MultiViewDataset"]


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


class ImageSSLTask(ClientTask):
    """Backbone + projection head(s) + lightly loss, trained on unlabelled image partitions.

    Models are cached per process and configuration: Flower builds a new ClientApp call per
    message, and Ray reuses the worker, so rebuilding every round would waste time.
    """

    name = "image-ssl"

    # ------------------------------------------------------------------ model
    def build_model(self, cfg: RunConfig) -> SSLModel:
        backbone = build_backbone(cfg.model, image_size=cfg.image_size)
        return build_ssl_model(
            cfg.ssl_method,
            backbone,
            projection_dim=cfg.projection_dim,
            hidden_dim=cfg.hidden_dim,
            temperature=cfg.temperature,
            byol_momentum=cfg.byol_momentum,
        )

    def cached_model(self, cfg: RunConfig) -> SSLModel:
        """A model of this configuration, built once per process (weights get overwritten)."""
        key = (
            cfg.model,
            cfg.ssl_method,
            cfg.image_size,
            cfg.projection_dim,
            cfg.hidden_dim,
            cfg.temperature,
            cfg.byol_momentum,
        )
        return self._model_once(key, lambda: self.build_model(cfg))

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        return partition_class_histograms(cfg, num_partitions)

    # ------------------------------------------------------------------ local work
    def train(
        self,
        model: torch.nn.Module,
        cfg: RunConfig,
        *,
        partition_id: int,
        num_partitions: int,
        server_round: int,
        proximal_mu: float = 0.0,
        grad_scales: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, float | int]:
        if grad_scales:
            raise ValueError("RepOpt gradient scales (strategy=fedrepopt) need "
                             "task=image-classification; image-ssl trains with plain SGD")
        start = time.perf_counter()
        data = partition(cfg, partition_id, num_partitions)
        if len(data) < 2:
            return empty_partition_metrics(partition_id, start)
        seed_everything(cfg.seed, server_round, partition_id)
        device = next(model.parameters()).device
        losses = ssl_local_steps(
            model, self._loader(data, cfg, shuffle=True), cfg, proximal_mu=proximal_mu,
            to_views=lambda views: [v.to(device) for v in views])
        return train_reply(losses, len(data), start, partition_id)

    @torch.no_grad()
    def evaluate_local(
        self, model: torch.nn.Module, cfg: RunConfig, *, partition_id: int, num_partitions: int
    ) -> dict[str, float | int]:
        data = partition(cfg, partition_id, num_partitions)
        seed_everything(cfg.seed, 0, partition_id)
        device = next(model.parameters()).device
        losses = [
            model.training_loss([v.to(device) for v in views]).item()
            for views in self._loader(data, cfg, shuffle=False)
        ]
        return {
            "eval-loss": float(np.mean(losses)) if losses else float("nan"),
            "num-examples": len(data),
            "partition-id": partition_id,
        }

    def _loader(self, data: ImageArrays, cfg: RunConfig, *, shuffle: bool) -> DataLoader:
        views = ViewOptions(
            min_scale=cfg.crop_min_scale, cj_strength=cfg.color_jitter, hf_prob=cfg.hflip_prob
        )
        transform = build_ssl_transform(cfg.ssl_method, image_size=cfg.image_size, views=views)
        return local_loader(MultiViewDataset(data.images, transform), cfg.batch_size,
                            shuffle=shuffle)

    # ------------------------------------------------------------------ server side
    def _features(self, model: SSLModel, cfg: RunConfig) -> tuple:
        transform = build_eval_transform(image_size=cfg.image_size)
        device = next(model.parameters()).device
        train, test = eval_split(cfg, "train"), eval_split(cfg, "test")
        f_train = extract_features(model.backbone, train.images, transform, device=device)
        f_test = extract_features(model.backbone, test.images, transform, device=device)
        return f_train, train, f_test, test

    def central_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        f_train, train, f_test, test = self._features(model, cfg)
        acc = knn_accuracy(
            f_train, train.labels, f_test, test.labels, num_classes=train.num_classes, k=cfg.knn_k
        )
        return {"knn-accuracy": acc}

    def final_evaluate(
        self, model: torch.nn.Module, cfg: RunConfig, baseline: torch.nn.Module
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for prefix, net in (("", model), ("random-init-", baseline)):
            f_train, train, f_test, test = self._features(net, cfg)
            out[f"{prefix}knn-accuracy"] = knn_accuracy(
                f_train,
                train.labels,
                f_test,
                test.labels,
                num_classes=train.num_classes,
                k=cfg.knn_k,
            )
            if cfg.linear_probe:
                out[f"{prefix}linear-probe-accuracy"] = linear_probe_accuracy(
                    f_train.numpy(), train.labels, f_test.numpy(), test.labels, seed=cfg.seed
                )
        if cfg.linear_probe:
            # The same (possibly capped) samples the encoders were probed on.
            out["raw-pixel-linear-probe-accuracy"] = raw_pixel_probe(
                train, test, seed=cfg.seed
            )
        return out
