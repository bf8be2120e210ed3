"""Federated self-supervised learning on images (SimCLR, BYOL, SimSiam, Barlow Twins)."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fedssl.clients.base import ClientTask, seed_everything
from fedssl.clients.evaluation import extract_features, knn_accuracy, linear_probe_accuracy
from fedssl.datasets import (
    ImageArrays,
    class_histograms,
    default_cache_dir,
    load_image_dataset,
    partition_indices,
)
from fedssl.models import (
    SSLModel,
    ViewOptions,
    build_backbone,
    build_eval_transform,
    build_ssl_model,
    build_ssl_transform,
)

if TYPE_CHECKING:
    from collections.abc import Callable

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


def device_for_training() -> torch.device:
    # Ray hides GPUs from actors that were given none (CUDA_VISIBLE_DEVICES=''), so this
    # picks the GPU exactly when the client was allotted one.
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=16)
def _partitions(
    cfg_key: tuple, num_partitions: int, method: str, alpha: float, k: int, seed: int
) -> list[np.ndarray]:
    return partition_indices(
        _train(cfg_key).labels,
        num_partitions,
        method=method,
        alpha=alpha,
        classes_per_partition=k,
        seed=seed,
    )


def _data_key(cfg: RunConfig) -> tuple:
    return (cfg.dataset, cfg.data_dir, cfg.hf_dataset, cfg.image_size)


def _split(data_key: tuple, split: str) -> ImageArrays:
    # load_image_dataset keeps loaded datasets in a per-process cache: Ray workers load once.
    name, data_dir, hf_dataset, image_size = data_key
    return load_image_dataset(
        name, split, data_dir=data_dir, hf_dataset=hf_dataset, image_size=image_size
    )


def _train(data_key: tuple) -> ImageArrays:
    return _split(data_key, "train")


def _test(data_key: tuple) -> ImageArrays:
    return _split(data_key, "test")


def raw_pixel_probe(train: ImageArrays, test: ImageArrays, *, seed: int) -> float:
    """Linear-probe accuracy on raw pixels: the floor any learned encoder should clear.

    It depends on the data alone, not on the run, so it is computed once per data (keyed by a
    fingerprint of the arrays, which survives dataset rebuilds) and kept in the cache directory.
    """
    fingerprint = hashlib.sha1(train.images[:256].tobytes() + test.labels.tobytes())
    fingerprint.update(repr((len(train), len(test), seed)).encode())
    path = default_cache_dir() / f"raw-pixel-probe-{fingerprint.hexdigest()[:16]}.json"
    if path.exists():
        return float(json.loads(path.read_text())["accuracy"])
    accuracy = linear_probe_accuracy(
        train.images.reshape(len(train), -1) / 255.0,
        train.labels,
        test.images.reshape(len(test), -1) / 255.0,
        test.labels,
        seed=seed,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": accuracy, "dataset": train.name}))
    return accuracy


class ImageSSLTask(ClientTask):
    """Backbone + projection head(s) + lightly loss, trained on unlabelled image partitions.

    Models are cached per process and configuration: Flower builds a new ClientApp call per
    message, and Ray reuses the worker, so rebuilding every round would waste time.
    """

    name = "image-ssl"

    def __init__(self) -> None:
        self._models: dict[tuple, SSLModel] = {}

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
        if key not in self._models:
            self._models[key] = self.build_model(cfg).to(device_for_training())
        return self._models[key]

    def _partition(self, cfg: RunConfig, partition_id: int, num_partitions: int) -> ImageArrays:
        if not 0 <= partition_id < num_partitions:
            raise ValueError(f"partition-id={partition_id} outside 0..{num_partitions - 1}")
        parts = self._partition_indices(cfg, num_partitions)
        return _train(_data_key(cfg)).subset(parts[partition_id])

    def _partition_indices(self, cfg: RunConfig, num_partitions: int) -> list[np.ndarray]:
        return _partitions(_data_key(cfg), num_partitions, cfg.partitioner,
                           cfg.dirichlet_alpha, cfg.classes_per_client, cfg.seed)

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        parts = self._partition_indices(cfg, num_partitions)
        train = _train(_data_key(cfg))
        return class_histograms(train.labels, parts, train.num_classes)

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
    ) -> dict[str, float | int]:
        start = time.perf_counter()
        data = self._partition(cfg, partition_id, num_partitions)
        if len(data) < 2:
            # A Dirichlet split can leave a client (almost) empty; BatchNorm cannot train on
            # one sample. The reply carries weight num-examples=0, so it changes nothing.
            return {
                "train-loss": 0.0,
                "num-examples": 0,
                "local-steps": 0,
                "train-time": time.perf_counter() - start,
                "partition-id": partition_id,
            }
        seed_everything(cfg.seed, server_round, partition_id)
        device = next(model.parameters()).device
        loader = self._loader(data, cfg, shuffle=True)
        params = [p for p in model.parameters() if p.requires_grad]
        global_params = [p.detach().clone() for p in params] if proximal_mu > 0 else []
        optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        total_steps = cfg.local_epochs * len(loader)
        if cfg.max_local_steps:
            total_steps = min(total_steps, cfg.max_local_steps)
        model.train()
        losses: list[float] = []
        while len(losses) < total_steps:
            for views in loader:
                if len(losses) >= total_steps:
                    break
                model.on_step_start(len(losses) / max(total_steps, 1))
                loss = model.training_loss([v.to(device) for v in views])
                if global_params:
                    # FedProx: Flower's strategy only sends mu; the proximal term is ours.
                    pairs = zip(params, global_params, strict=True)
                    prox = sum(((p - g) ** 2).sum() for p, g in pairs)
                    loss = loss + 0.5 * proximal_mu * prox
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        return {
            "train-loss": float(np.mean(losses)) if losses else float("nan"),
            "num-examples": len(data),
            "local-steps": len(losses),
            "train-time": time.perf_counter() - start,
            "partition-id": partition_id,
        }

    @torch.no_grad()
    def evaluate_local(
        self, model: torch.nn.Module, cfg: RunConfig, *, partition_id: int, num_partitions: int
    ) -> dict[str, float | int]:
        data = self._partition(cfg, partition_id, num_partitions)
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
        batch_size = min(cfg.batch_size, len(data))
        # A last batch of one sample breaks BatchNorm; drop the ragged tail when it exists.
        return DataLoader(
            MultiViewDataset(data.images, transform),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=len(data) % batch_size == 1,
            generator=torch.Generator().manual_seed(torch.initial_seed()) if shuffle else None,
        )

    # ------------------------------------------------------------------ server side
    def _eval_split(self, cfg: RunConfig, split: str) -> ImageArrays:
        data = _train(_data_key(cfg)) if split == "train" else _test(_data_key(cfg))
        if cfg.eval_max_samples and len(data) > cfg.eval_max_samples:
            rng = np.random.default_rng(cfg.seed)
            data = data.subset(np.sort(rng.choice(len(data), cfg.eval_max_samples, replace=False)))
        return data

    def _features(self, model: SSLModel, cfg: RunConfig) -> tuple:
        transform = build_eval_transform(image_size=cfg.image_size)
        device = next(model.parameters()).device
        train, test = self._eval_split(cfg, "train"), self._eval_split(cfg, "test")
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
