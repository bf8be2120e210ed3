"""Fine-tuning a global backbone on labelled data: the downstream protocol of FedVSSL and CtP
(``next-systems.md`` §1.5) at our sizes, for the image, audio and video SSL tasks.

Model (CtP's TSN head): the backbone's globally average-pooled features, dropout 0.5 and one
linear layer with as many outputs as the labelled data has classes (:class:`FineTuneNet`).
``full`` fine-tuning trains the backbone too (the paper protocol); ``linear`` freezes it (its
weights and its BatchNorm statistics) and trains the head alone.

Training (:func:`finetune`): a stratified, seeded fraction of the train split's labels
(:func:`labelled_subset`: 1 %, 10 %, all), SGD with momentum 0.9, weight decay 5e-4 (``full``;
0 for ``linear``, L-DAWA's linear evaluation), gradient norm clipped at 40, and the learning
rate cut by 10 after 40 % and 80 % of the epochs (CtP: 150 epochs, steps at 60 and 120).
Each modality keeps the inputs its SSL task evaluates on:

* image: the run's supervised augmentation (``augment``, the recipe of
  ``task=image-classification``: a padded random crop by default, no flips) for training,
  normalised pixels for testing;
* audio: clean log-mels for both (the task has no label-preserving augmentation of its own);
* video: one clip of ``clip-frames`` consecutive frames per video per step, cut at a random
  time and randomly resized-cropped (the video task's crop); at test time ten uniformly spaced
  clips per video (VCOP's clip starts, :func:`~fedssl.common.retrieval.retrieval_clip_starts`)
  whose logits are averaged (:func:`clip_averaged_logits`).

Departures from CtP's protocol: no frame stride 2, no multi-scale resize, flip or colour jitter
(a mirrored digit is another shape), clip and image sizes of the run (16 x 32² by default, not
16 x 112²), and a few epochs on the CPU rather than 150 on GPUs.

Everything is seeded: the labelled subset, the head's initialisation, the batch order and the
augmentation, so a run on the CPU repeats exactly.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

from fedssl.clients.base import seed_everything
from fedssl.clients.image_classification import build_train_transform
from fedssl.clients.video_ssl import RETRIEVAL_CLIPS, clip_tensor, crop_clips, random_windows
from fedssl.common.retrieval import retrieval_clip_starts

if TYPE_CHECKING:
    from fedssl.clients.ssl_task import SSLTask
    from fedssl.config import RunConfig

__all__ = [
    "LABEL_FRACTIONS",
    "MODES",
    "FineTuneError",
    "FineTuneNet",
    "FineTuneSettings",
    "clip_averaged_logits",
    "finetune",
    "labelled_subset",
    "lr_milestones",
    "topk_accuracy",
]

#: ``full``: backbone and head are trained (the paper protocol); ``linear``: the head only.
MODES: tuple[str, ...] = ("full", "linear")
#: The label fractions L-DAWA's and FASSL's semi-supervised tables report (any in (0, 1] works).
LABEL_FRACTIONS: tuple[float, ...] = (1.0, 0.1, 0.01)
#: Where the learning rate is cut, as fractions of the epochs (CtP: epochs 60 and 120 of 150).
LR_STEPS: tuple[float, ...] = (0.4, 0.8)


class FineTuneError(ValueError):
    """A fine-tuning request cannot be served; the message says what is valid instead."""


@dataclass(frozen=True)
class FineTuneSettings:
    """How to fine-tune (CtP's recipe by default, with a CPU-sized number of epochs).

    Parameters
    ----------
    mode
        ``"full"`` (backbone trained too) or ``"linear"`` (frozen backbone).
    label_fraction
        Share of each class's train samples whose labels are used, in (0, 1]; at least one
        sample per class is kept.
    epochs
        Passes over the labelled samples (CtP: 150).
    batch_size
        Samples (videos, images, clips) per step, capped at the labelled samples (CtP: 32).
    lr
        SGD learning rate (CtP: 0.01).
    momentum
        SGD momentum (CtP: 0.9).
    weight_decay
        SGD weight decay; ``None``: 5e-4 for ``full`` (CtP), 0 for ``linear`` (L-DAWA's linear
        evaluation).
    grad_clip
        Largest gradient norm (CtP: 40; 0: no clipping).
    dropout
        Dropout before the linear layer (TSN head: 0.5).
    test_clips
        Clips per test video whose logits are averaged (CtP: 10); video only.
    max_test_samples
        Cap on the test split (seeded by the run's seed, like ``eval-max-samples``; 0: all).
    """

    mode: str = "full"
    label_fraction: float = 1.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float | None = None
    grad_clip: float = 40.0
    dropout: float = 0.5
    test_clips: int = RETRIEVAL_CLIPS
    max_test_samples: int = 0

    def __post_init__(self) -> None:
        wrong = []
        if self.mode not in MODES:
            wrong.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not (isinstance(self.label_fraction, int | float) and 0 < self.label_fraction <= 1):
            wrong.append(f"label fraction {self.label_fraction!r} is not in (0, 1]; give e.g. "
                         f"{', '.join(f'{f:g}' for f in LABEL_FRACTIONS)}")
        for name, low in (("epochs", 1), ("batch_size", 2), ("test_clips", 1),
                          ("max_test_samples", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                wrong.append(f"{name.replace('_', ' ')} {value!r} must be an integer >= {low}")
        for name in ("lr", "momentum", "grad_clip", "dropout"):
            if not getattr(self, name) >= 0:
                wrong.append(f"{name.replace('_', ' ')} {getattr(self, name)!r} must be >= 0")
        if not self.lr > 0:
            wrong.append(f"lr {self.lr!r} must be > 0")
        if not self.dropout < 1:
            wrong.append(f"dropout {self.dropout!r} must be below 1")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            wrong.append(f"weight decay {self.weight_decay!r} must be >= 0")
        if wrong:
            raise FineTuneError("; ".join(wrong))

    @property
    def decay(self) -> float:
        """The weight decay in use (the mode's default when none was given)."""
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return 5e-4 if self.mode == "full" else 0.0


def labelled_subset(labels: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """Indices of a stratified, seeded ``fraction`` of ``labels``, sorted.

    Each class present keeps ``round(fraction * n_c)`` of its ``n_c`` samples, and at least
    one. The samples of a class are drawn in a random order fixed by ``(seed, class)`` and
    the first ones kept, so with one seed a smaller fraction is a subset of a larger one (the
    1 % labels are among the 10 %), and a class's draw does not depend on the other classes.

    Raises
    ------
    FineTuneError
        If ``fraction`` is not in (0, 1].
    """
    if not 0 < fraction <= 1:
        raise FineTuneError(f"label fraction {fraction!r} is not in (0, 1]; give e.g. "
                            f"{', '.join(f'{f:g}' for f in LABEL_FRACTIONS)}")
    labels = np.asarray(labels)
    kept = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng = np.random.default_rng([seed, int(cls)])
        count = max(1, round(fraction * len(members)))
        kept.append(members[rng.permutation(len(members))[:count]])
    return np.sort(np.concatenate(kept)) if kept else np.empty(0, dtype=np.int64)


def lr_milestones(epochs: int, steps: tuple[float, ...] = LR_STEPS) -> list[int]:
    """Epochs after which the learning rate is cut: ``round(f * epochs)`` for each step ``f``,
    at least 1 (so a one-epoch fine-tune runs at the full rate). CtP: 150 -> [60, 120]."""
    return [max(1, round(f * epochs)) for f in steps]


class FineTuneNet(nn.Module):
    """Backbone, dropout and a linear classifier (CtP's TSN head on a pooled backbone).

    Parameters
    ----------
    backbone
        Maps inputs to pooled features ``(B, feature_dim)`` and has an int ``feature_dim``.
    num_classes
        Outputs of the linear layer.
    dropout
        Dropout probability before the linear layer.
    freeze_backbone
        Train the head only: the backbone's parameters get no gradient and it stays in eval
        mode (BatchNorm statistics fixed) even while the net trains.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, dropout: float = 0.5,
                 freeze_backbone: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(int(backbone.feature_dim), num_classes)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> FineTuneNet:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.backbone(x)))


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor | np.ndarray,
                  ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` largest logits, for each ``k`` (capped
    at the number of classes)."""
    labels = torch.from_numpy(np.array(labels, dtype=np.int64)).to(logits.device)
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    ranked = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = ranked == labels[:, None]
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


@torch.no_grad()
def clip_averaged_logits(net: nn.Module, videos: np.ndarray, *, clip_frames: int,
                         image_size: int, num_clips: int = RETRIEVAL_CLIPS,
                         videos_per_batch: int = 8) -> torch.Tensor:
    """Per-video logits ``(N, C)``: the mean of ``net``'s logits over ``num_clips`` clips of
    ``clip_frames`` frames evenly spaced over each video (CtP's test protocol; the clip
    starts are VCOP's, :func:`retrieval_clip_starts`). ``videos`` is uint8 ``[N, T, H, W,
    3]``; ``net`` runs in eval mode on its own device. The mean is of logits, not of
    probabilities or votes: one confident clip can outweigh several unsure ones."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    num_frames = int(videos.shape[1])
    starts = retrieval_clip_starts(num_frames, num_clips=num_clips, clip_len=clip_frames)
    index = np.minimum(starts[:, None] + np.arange(clip_frames), num_frames - 1)
    chunks = []
    for first in range(0, len(videos), videos_per_batch):
        batch = torch.from_numpy(np.ascontiguousarray(
            videos[first : first + videos_per_batch][:, index]))  # [b, clips, L, H, W, 3]
        logits = net(clip_tensor(batch.flatten(0, 1), device, image_size)).float()
        chunks.append(logits.view(len(batch), num_clips, -1).mean(dim=1).cpu())
    net.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


# ------------------------------------------------------------------ the modalities' inputs
class _Inputs(Protocol):
    """How a modality turns labelled samples into network inputs."""

    def train_batch(self, data: Any, index: np.ndarray, device: torch.device) -> torch.Tensor:
        """Augmented inputs of the samples at ``index`` (randomness from torch's RNG)."""

    def test_logits(self, net: nn.Module, data: Any) -> torch.Tensor:
        """Eval-mode logits ``(N, C)`` of every sample of ``data``."""


@torch.no_grad()
def _batched_logits(net: nn.Module, count: int, batch_size: int,
                    inputs: Callable[[slice, torch.device], torch.Tensor]) -> torch.Tensor:
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    chunks = [net(inputs(slice(i, i + batch_size), device)).float().cpu()
              for i in range(0, count, batch_size)]
    net.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


class _ImageInputs:
    def __init__(self, cfg: RunConfig) -> None:
        self.train_transform = build_train_transform(cfg.augment, cfg.image_size)
        self.test_transform = build_train_transform("none", cfg.image_size)

    def train_batch(self, data: Any, index: np.ndarray, device: torch.device) -> torch.Tensor:
        images = torch.from_numpy(np.ascontiguousarray(data.images[index])).permute(0, 3, 1, 2)
        return torch.stack([self.train_transform(im) for im in images]).to(device)

    def test_logits(self, net: nn.Module, data: Any) -> torch.Tensor:
        def inputs(part: slice, device: torch.device) -> torch.Tensor:
            images = torch.from_numpy(np.array(data.images[part]))
            return self.test_transform(images.permute(0, 3, 1, 2)).to(device)

        return _batched_logits(net, len(data), 256, inputs)


class _AudioInputs:
    def __init__(self, cfg: RunConfig) -> None:
        from fedssl.datasets.audio_loader import AUDIO_DATASETS
        from fedssl.models.audio_frontend import AUDIO_FRONTENDS, LogMelSpectrogram

        self.frontend = LogMelSpectrogram(AUDIO_FRONTENDS[AUDIO_DATASETS[cfg.dataset].frontend])

    @torch.no_grad()
    def _log_mels(self, waveforms: np.ndarray, device: torch.device) -> torch.Tensor:
        self.frontend = self.frontend.to(device)
        return self.frontend(torch.from_numpy(np.array(waveforms)).to(device)).unsqueeze(1)

    def train_batch(self, data: Any, index: np.ndarray, device: torch.device) -> torch.Tensor:
        return self._log_mels(data.waveforms[index], device)

    def test_logits(self, net: nn.Module, data: Any) -> torch.Tensor:
        return _batched_logits(net, len(data), 128,
                               lambda part, device: self._log_mels(data.waveforms[part], device))


class _VideoInputs:
    def __init__(self, cfg: RunConfig, test_clips: int) -> None:
        self.clip_frames, self.image_size, self.test_clips = (cfg.clip_frames, cfg.image_size,
                                                              test_clips)
        # The video task's crop (its two-view methods): one crop per clip, on every frame.
        self.crop = v2.RandomResizedCrop(cfg.image_size, scale=(cfg.crop_min_scale, 1.0),
                                         antialias=True)

    def train_batch(self, data: Any, index: np.ndarray, device: torch.device) -> torch.Tensor:
        videos = torch.from_numpy(np.ascontiguousarray(data.clips[index]))  # [B, T, H, W, 3]
        length = min(self.clip_frames, videos.shape[1])
        clips = clip_tensor(random_windows(videos, length), device, self.image_size)
        return crop_clips(clips, self.crop)

    def test_logits(self, net: nn.Module, data: Any) -> torch.Tensor:
        return clip_averaged_logits(net, data.clips, clip_frames=self.clip_frames,
                                    image_size=self.image_size, num_clips=self.test_clips)


def _inputs(modality: str, cfg: RunConfig, settings: FineTuneSettings) -> _Inputs:
    if modality == "image":
        return _ImageInputs(cfg)
    if modality == "audio":
        return _AudioInputs(cfg)
    if modality == "video":
        return _VideoInputs(cfg, settings.test_clips)
    raise FineTuneError(f"fine-tuning knows image, audio and video tasks, not modality "
                        f"{modality!r}")


# ------------------------------------------------------------------ the loop
EpochCallback = Callable[[int, dict[str, float]], None]


def finetune(
    task: SSLTask,
    cfg: RunConfig,
    backbone: nn.Module,
    settings: FineTuneSettings,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Fine-tune a copy of ``backbone`` with a new head on the labelled train split of the
    run's dataset, then test it.

    Parameters
    ----------
    task
        The run's SSL task (its ``modality`` and ``data``).
    cfg
        The run's config (dataset, clip and image sizes, augmentation).
    backbone
        The global model's backbone; copied, never changed.
    settings
        The recipe (:class:`FineTuneSettings`).
    seed
        Seeds the labelled subset, the head's initialisation, the batch order and the
        augmentation.
    device
        Where to train.
    on_epoch
        Called after each epoch with the epoch (1-based) and ``{"train-loss", "train-top1",
        "lr", "epoch-time-s"}``.

    Returns
    -------
    dict
        ``top1``, ``top5``, ``test-loss``; ``train-loss`` and ``train-top1`` of the last epoch;
        ``train-samples``, ``test-samples``, ``num-classes``, ``wall-s`` and ``history`` (the
        per-epoch dicts).
    """
    start = time.perf_counter()
    device = torch.device(device)
    train = task.data.split(cfg, "train")
    test = task.data.split(cfg, "test")
    if settings.max_test_samples and len(test) > settings.max_test_samples:
        # The same capped sample for every seed (the run's seed, as eval-max-samples does).
        rng = np.random.default_rng(cfg.seed)
        test = test.subset(np.sort(rng.choice(len(test), settings.max_test_samples,
                                              replace=False)))
    labelled = labelled_subset(train.labels, settings.label_fraction, seed=seed)
    if len(labelled) < 2:
        raise FineTuneError(f"{train.name} gives {len(labelled)} labelled sample at label "
                            f"fraction {settings.label_fraction:g}; fine-tuning needs 2 or more")
    inputs = _inputs(task.modality, cfg, settings)

    seed_everything(seed)
    net = FineTuneNet(copy.deepcopy(backbone), train.num_classes, dropout=settings.dropout,
                      freeze_backbone=settings.mode == "linear").to(device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=lr_milestones(settings.epochs), gamma=0.1)
    order = torch.Generator().manual_seed(seed)
    batch_size = min(settings.batch_size, len(labelled))
    labels = torch.from_numpy(np.array(train.labels, dtype=np.int64))

    history = []
    for epoch in range(1, settings.epochs + 1):
        t_epoch = time.perf_counter()
        net.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen = 0.0, 0, 0
        shuffled = labelled[torch.randperm(len(labelled), generator=order).numpy()]
        for first in range(0, len(shuffled), batch_size):
            index = shuffled[first : first + batch_size]
            if len(index) < 2 and seen:  # a last batch of one breaks BatchNorm: dropped
                break
            target = labels[index].to(device)
            logits = net(inputs.train_batch(train, index, device))
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
            optimizer.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == target).sum())
            seen += len(index)
        scheduler.step()
        record = {"epoch": epoch, "train-loss": loss_sum / seen, "train-top1": correct / seen,
                  "lr": lr, "epoch-time-s": time.perf_counter() - t_epoch}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)

    logits = inputs.test_logits(net, test)
    accuracy = topk_accuracy(logits, test.labels, ks=(1, 5))
    test_loss = float(F.cross_entropy(logits, torch.from_numpy(np.array(test.labels,
                                                                         dtype=np.int64))))
    return {
        "top1": accuracy[1],
        "top5": accuracy[5],
        "test-loss": test_loss,
        "train-loss": history[-1]["train-loss"],
        "train-top1": history[-1]["train-top1"],
        "train-samples": len(labelled),
        "test-samples": len(test),
        "num-classes": int(train.num_classes),
        "wall-s": time.perf_counter() - start,
        "history": history,
    }

