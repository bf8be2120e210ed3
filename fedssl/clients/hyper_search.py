"""RepOpt hyper-search: where FedRepOpt's constant scales come from.

Ding et al. (ICLR 2023) train the ``hs`` model, whose branches carry trainable per-channel
scales, centrally on a small proxy dataset (CIFAR-100 in the paper) and freeze the learned
scales as the constants of the target task's optimiser. FedRepOpt (Lau et al., ACCV 2024) does
this once, on the server side, before federated training. Recipe of the authors' scripts:
SGD momentum 0.9, lr warm-up then cosine decay, weight decay 4e-5 (not on BN, biases or
scales), label smoothing 0.1, gradient clipping at 5.

The scales file's format and reader are in :mod:`fedssl.common.scales` (the server's FedRepOpt
strategy reads it too).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fedssl.clients.base import seed_everything
from fedssl.clients.image_classification import (
    LabelledImages,
    build_train_transform,
    evaluate_classifier,
    train_classifier,
    weight_decay_groups,
)
from fedssl.common.scales import load_scales, write_scales
from fedssl.datasets import load_image_dataset
from fedssl.models.repopt import REPOPT_MODELS, build_repopt_model, repopt_scales

__all__ = [
    "HyperSearchSettings",
    "load_scales",
    "plot_scales",
    "run_hyper_search",
    "save_scales",
    "scale_summary",
]

@dataclass(frozen=True)
class HyperSearchSettings:
    """Settings of one hyper-search (defaults: the authors' RepOpt-VGG recipe, shorter)."""

    model: str
    dataset: str = "embedded-digits"
    data_dir: str = ""
    image_size: int = 32
    epochs: int = 10
    warmup_epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    augment: str = "crop"
    seed: int = 0
    max_steps: int = 0  # 0: every batch of every epoch (a cap is for tests)

    def __post_init__(self) -> None:
        if self.model not in REPOPT_MODELS:
            raise ValueError(f"model={self.model!r} has no hyper-search; valid: "
                             f"{', '.join(REPOPT_MODELS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be in 0..epochs-1 "
                             f"({self.epochs - 1})")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")


def _warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_hyper_search(settings: HyperSearchSettings, *, progress: bool = True) -> dict[str, Any]:
    """Train the ``hs`` model centrally; return ``{"scales", "history", "test-accuracy", ...}``.

    The proxy's test split is used only to report how well the proxy was learned.
    """
    seed_everything(settings.seed)
    train = load_image_dataset(settings.dataset, "train", data_dir=settings.data_dir,
                               image_size=settings.image_size)
    test = load_image_dataset(settings.dataset, "test", data_dir=settings.data_dir,
                              image_size=settings.image_size)
    model = build_repopt_model(settings.model, mode="hs", num_classes=train.num_classes)
    loader = DataLoader(
        LabelledImages(train.images, train.labels,
                       build_train_transform(settings.augment, settings.image_size)),
        batch_size=min(settings.batch_size, len(train)), shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimizer = torch.optim.SGD(weight_decay_groups(model, settings.weight_decay),
                                lr=settings.lr, momentum=settings.momentum)
    steps_per_epoch = len(loader)
    if settings.max_steps:
        steps_per_epoch = max(1, min(steps_per_epoch, settings.max_steps // settings.epochs))
    scheduler = _warmup_cosine(optimizer, settings.warmup_epochs * steps_per_epoch,
                               settings.epochs * steps_per_epoch)
    history = []
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.epochs, desc=f"hyper-search {settings.model}", unit="epoch")
    for epoch in range(1, settings.epochs + 1):
        metrics = train_classifier(model, loader, optimizer, steps=steps_per_epoch,
                                   label_smoothing=settings.label_smoothing,
                                   grad_clip=settings.grad_clip, scheduler=scheduler)
        evaluation = evaluate_classifier(model, test.images, test.labels)
        row = {"epoch": epoch, "train-loss": metrics["train-loss"],
               "train-accuracy": metrics["train-accuracy"],
               "test-accuracy": evaluation["accuracy"], "lr": scheduler.get_last_lr()[0]}
        history.append(row)
        if bar is not None:
            bar.set_postfix(loss=f"{row['train-loss']:.3f}", acc=f"{row['test-accuracy']:.3f}")
            bar.update()
    if bar is not None:
        bar.close()
    scales = {k: v.detach().clone() for k, v in repopt_scales(model).items()}
    for key, value in scales.items():
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"hyper-search diverged: scale {key} is not finite; "
                                     "lower --lr")
    return {
        "scales": scales,
        "history": history,
        "test-accuracy": history[-1]["test-accuracy"],
        "train-time-s": time.perf_counter() - start,
        "proxy": train.name,
        "num-classes": train.num_classes,
    }


def save_scales(path: str | Path, settings: HyperSearchSettings, result: dict[str, Any]) -> Path:
    """Write the scales file (format: :mod:`fedssl.common.scales`)."""
    return write_scales(path, arch=settings.model, scales=result["scales"],
                        settings=asdict(settings), proxy=result["proxy"],
                        **{"proxy-test-accuracy": result["test-accuracy"],
                           "history": result["history"]})


def scale_summary(scales: dict[str, torch.Tensor]) -> list[tuple[str, float, float, float]]:
    """(key, mean, min, max) per scale vector, in file order: what the command prints."""
    return [(k, float(v.mean()), float(v.min()), float(v.max())) for k, v in scales.items()]


def plot_scales(scales: dict[str, torch.Tensor], path: str | Path) -> None:
    """Mean ± range of every scale vector, one line per branch kind, blocks in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds: dict[str, list[tuple[int, torch.Tensor]]] = {}
    blocks: list[str] = []
    for key, value in scales.items():
        block, kind = key.rsplit(".", 1)
        if block not in blocks:
            blocks.append(block)
        kinds.setdefault(kind, []).append((blocks.index(block), value))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(blocks)), 3.5))
    for kind, rows in kinds.items():
        x = np.array([i for i, _ in rows])
        mean = np.array([float(v.mean()) for _, v in rows])
        low = np.array([float(v.min()) for _, v in rows])
        high = np.array([float(v.max()) for _, v in rows])
        ax.plot(x, mean, marker="o", label=kind)
        ax.fill_between(x, low, high, alpha=0.2)
    ax.set_xlabel("block (network order)")
    ax.set_ylabel("scale (mean, min-max band)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
