"""Supervised image classification: FedRepOpt's client task (and any backbone + linear head).

The client settings default to FedRepOpt's (Lau et al., ACCV 2024) when an experiment sets
them: batch 32, SGD lr 0.01, momentum 0, weight decay 4e-5 on conv/linear weights only (not on
BatchNorm, biases or scales), cross-entropy with label smoothing 0.1. With gradient scales in
the training instructions (``strategy=fedrepopt``) the plain RepOpt model trains with
:class:`~fedssl.clients.repopt.RepOptSGD` and masks built from those scales.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from fedssl.clients.base import (
    ClientTask,
    empty_partition_metrics,
    local_loader,
    local_step_budget,
    seed_everything,
    steps_over,
)
from fedssl.clients.image_data import IMAGE_DATA
from fedssl.common.scales import load_scales
from fedssl.models import MODELS, NORMALIZE, build_backbone, reparameterize_model
from fedssl.models.repopt import build_repopt_model, init_target_from_scales

if TYPE_CHECKING:
    from collections.abc import Callable

    from fedssl.clients.instructions import RoundInstructions
    from fedssl.config import RunConfig

__all__ = [
    "BackboneClassifier",
    "ImageClassificationTask",
    "LabelledImages",
    "build_train_transform",
    "evaluate_classifier",
    "train_classifier",
    "weight_decay_groups",
]


class LabelledImages(Dataset):
    """uint8 images [N, H, W, 3] and int labels -> (normalised float [3, H, W], label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: v2.Transform) -> None:
        # A view, no copy; cached datasets are read-only, and torch wants writable arrays.
        images = images if images.flags.writeable else images.copy()
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2)
        self.labels = torch.as_tensor(np.array(labels, dtype=np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def _to_normalised_float() -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(**NORMALIZE)]


def build_train_transform(augment: str, image_size: int) -> v2.Transform:
    """Training transform on uint8 CHW tensors.

    ``none``: normalise only. ``crop``: random crop with 4-pixel zero padding (the CIFAR
    recipe; no flips, which would turn digits into other shapes). ``randaugment``:
    torchvision's RandAugment (2 ops, magnitude 15, as FedRepOpt's ``raug15``), then the crop.
    """
    ops: list[v2.Transform] = []
    if augment == "randaugment":
        ops.append(v2.RandAugment(num_ops=2, magnitude=15))
    if augment in ("crop", "randaugment"):
        ops.append(v2.RandomCrop(image_size, padding=max(1, image_size // 8)))
    elif augment != "none":
        raise ValueError(f"augment={augment!r}; valid: none, crop, randaugment")
    return v2.Compose(ops + _to_normalised_float())


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups with weight decay on weights of ndim > 1 only.

    BatchNorm affine parameters, biases and per-channel scales (all 1-d) get none, as in the
    RepOpt and FedRepOpt recipes.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim > 1]
    no_decay = [p for p in trainable if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train_classifier(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    label_smoothing: float = 0.0,
    grad_clip: float = 0.0,
    penalty: Callable[[], torch.Tensor | float] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict[str, float | int]:
    """``steps`` optimiser steps of cross-entropy training; mean loss and accuracy over them."""
    device = next(model.parameters()).device
    model.train()
    loss_sum, correct, seen, done = 0.0, 0, 0, 0
    for images, labels in steps_over(loader, steps):
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        objective = loss + penalty() if penalty is not None else loss
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        done += 1
    return {
        "train-loss": loss_sum / seen if seen else float("nan"),
        "train-accuracy": correct / seen if seen else float("nan"),
        "local-steps": done,
    }


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 500
) -> dict[str, float]:
    """Cross-entropy and top-1 accuracy of ``model`` (eval mode) on uint8 images [N, H, W, 3]."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    normalise = v2.Compose(_to_normalised_float())
    loss_sum, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        batch = torch.tensor(images[start : start + batch_size]).permute(0, 3, 1, 2)
        target = torch.tensor(labels[start : start + batch_size]).to(device)
        logits = model(normalise(batch).to(device))
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    count = max(len(labels), 1)
    return {"loss": loss_sum / count, "accuracy": correct / count}


class BackboneClassifier(nn.Module):
    """A registered SSL backbone with a linear classifier (supervised baselines)."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


class ImageClassificationTask(ClientTask):
    """Cross-entropy training of a classifier on labelled image partitions: a RepOpt network
    (``repopt-mode`` picks its form) or a registered backbone with a linear head."""

    name = "image-classification"
    modality = "image"
    model_kinds = ("classifier", "backbone")

    def _is_repopt(self, cfg: RunConfig) -> bool:
        return MODELS.tags(cfg.model).get("family") == "repopt"

    # ------------------------------------------------------------------ model
    def _architecture(self, cfg: RunConfig) -> nn.Module:
        num_classes = IMAGE_DATA.split(cfg, "train").num_classes
        if self._is_repopt(cfg):
            return build_repopt_model(cfg.model, mode=cfg.repopt_mode, num_classes=num_classes)
        return BackboneClassifier(build_backbone(cfg.model, image_size=cfg.image_size),
                                  num_classes)

    def build_model(self, cfg: RunConfig) -> nn.Module:
        """The global model's start; a plain RepOpt model with ``repopt-scales`` is initialised
        from the scales (W' = s3·W + s1·pad(W1) + s_id·I), as the authors' re-init does."""
        model = self._architecture(cfg)
        if cfg.repopt_scales:
            init_target_from_scales(model, load_scales(cfg.repopt_scales, arch=cfg.model))
        return model

    def cached_model(self, cfg: RunConfig) -> nn.Module:
        key = (cfg.model, cfg.repopt_mode, cfg.dataset, cfg.data_dir, cfg.hf_dataset,
               cfg.image_size)
        return self._model_once(key, lambda: self._architecture(cfg))

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        return IMAGE_DATA.class_histograms(cfg, num_partitions)

    # ------------------------------------------------------------------ local work
    def train(
        self,
        model: nn.Module,
        cfg: RunConfig,
        *,
        partition_id: int,
        num_partitions: int,
        instructions: RoundInstructions,
    ) -> dict[str, float | int]:
        start = time.perf_counter()
        data = IMAGE_DATA.partition(cfg, partition_id, num_partitions)
        if len(data) < 2:
            # Same keys as a real reply: Flower refuses to aggregate differing metric keys.
            return empty_partition_metrics(partition_id, start) | {"train-accuracy": 0.0}
        seed_everything(cfg.seed, instructions.server_round, partition_id)
        loader = local_loader(
            LabelledImages(data.images, data.labels,
                           build_train_transform(cfg.augment, cfg.image_size)),
            cfg.batch_size, shuffle=True)
        optimizer = instructions.optimizer(model, weight_decay_groups(model, cfg.weight_decay),
                                           lr=cfg.lr, momentum=cfg.momentum)
        metrics = train_classifier(
            model, loader, optimizer, steps=local_step_budget(len(loader), cfg),
            label_smoothing=cfg.label_smoothing, penalty=instructions.penalty(model),
        )
        return metrics | {
            "num-examples": len(data),
            "train-time": time.perf_counter() - start,
            "partition-id": partition_id,
        }

    def evaluate_local(
        self, model: nn.Module, cfg: RunConfig, *, partition_id: int, num_partitions: int
    ) -> dict[str, float | int]:
        data = IMAGE_DATA.partition(cfg, partition_id, num_partitions)
        result = evaluate_classifier(model, data.images, data.labels)
        return {"eval-loss": result["loss"], "eval-accuracy": result["accuracy"],
                "num-examples": len(data), "partition-id": partition_id}

    # ------------------------------------------------------------------ server side
    def central_evaluate(self, model: nn.Module, cfg: RunConfig) -> dict[str, float]:
        test = IMAGE_DATA.eval_split(cfg, "test")
        result = evaluate_classifier(model, test.images, test.labels)
        return {"test-accuracy": result["accuracy"], "test-loss": result["loss"]}

    def selection_evaluate(self, model: nn.Module, cfg: RunConfig) -> dict[str, float]:
        """Accuracy and loss on a seeded held-out quarter of the train eval split
        (:meth:`~fedssl.clients.data.PartitionedData.selection_split`): ``val-accuracy``
        (the default selection metric) and ``val-loss``.

        Never touches the test split, which :meth:`final_evaluate` reports on. The clients
        trained on all of the train split (labels included), so this quarter is not unseen
        by the model and its accuracy runs above a true validation score: the compromise the
        SSL tasks make too; the guarantee is that the reported test score is not picked on.
        """
        _, held_out = IMAGE_DATA.selection_split(cfg)
        result = evaluate_classifier(model, held_out.images, held_out.labels)
        return {"val-accuracy": result["accuracy"], "val-loss": result["loss"]}

    def final_evaluate(
        self, model: nn.Module, cfg: RunConfig, baseline: nn.Module
    ) -> dict[str, float]:
        out = self.central_evaluate(model, cfg)
        out["random-init-test-accuracy"] = self.central_evaluate(baseline, cfg)["test-accuracy"]
        if self._is_repopt(cfg) and cfg.repopt_mode != "target":
            # The deployable network: the multi-branch model folded into the plain one.
            plain = reparameterize_model(model)
            out["reparameterized-test-accuracy"] = self.central_evaluate(plain, cfg)[
                "test-accuracy"]
        return out
