"""Federated video self-supervised learning (FedVSSL's video half): pretext tasks on clips.

Predictive: Catch-the-Patch (``ctp``: track patches pasted along trajectories; the backbone in
CtP's geometry), VCOP (``vcop``: the order of ``clip-order-segments`` shuffled clips) and
playback speed (``speed``). Feature matching: SimCLR or BYOL (lightly's losses) on two clips
of one video, each cut at its own time and cropped. Every method keeps its encoder under
``backbone.``, so FedVSSL's backbone-only updating is ``partial-prefix = "backbone."``.

A client's samples are whole videos; each batch cuts its clips (``clip-frames`` long) at
random times, seeded from torch's RNG (:func:`~fedssl.clients.base.seed_everything`).
Evaluation on frozen backbone features follows VCOP's retrieval protocol: ten clips evenly
spaced over each video, pooled features averaged per video, test videos query the train
videos by cosine (R@1, 5, 10, 20, 50), plus the kNN monitor and, at the end, a linear probe,
each next to the random-init backbone and a probe on frame-difference statistics of the
pixels (the floor a motion encoder should clear).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset
from torchvision.transforms import v2

from fedssl.clients.evaluation import cached_accuracy, linear_probe_accuracy
from fedssl.clients.ssl_task import SSLTask
from fedssl.clients.video_data import VIDEO_DATA
from fedssl.common.retrieval import (
    VIDEO_RETRIEVAL_KS,
    pool_clip_maps,
    pool_video_features,
    retrieval_clip_starts,
    retrieval_recall,
)
from fedssl.datasets.video_loader import VideoArrays
from fedssl.models.ctp import CtPModel
from fedssl.models.speed import sample_speed_clip
from fedssl.models.vcop import sample_vcop_tuple

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["RETRIEVAL_CLIPS", "VideoSSLTask", "clip_tensor", "crop_clips", "frame_difference_probe",
           "random_windows", "video_features"]

#: Clips per video in retrieval and the probes (VCOP's protocol).
RETRIEVAL_CLIPS = 10


def clip_tensor(frames: torch.Tensor, device: torch.device, image_size: int) -> torch.Tensor:
    """uint8 clips ``[..., T, H, W, 3]`` -> float ``[..., 3, T, H, W]`` in [-1, 1] on
    ``device``, resized to ``image_size`` when their side differs."""
    lead = frames.shape[:-4]
    x = frames.to(device).reshape(-1, *frames.shape[-4:]).permute(0, 4, 1, 2, 3).float()
    x = x.div_(127.5).sub_(1.0)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(x.shape[2], image_size, image_size), mode="trilinear",
                          align_corners=False)
    return x.reshape(*lead, *x.shape[1:])


def _rng() -> np.random.Generator:
    """A generator seeded from torch's RNG, so the clips follow ``seed_everything``."""
    return np.random.default_rng(int(torch.randint(2**62, (1,)).item()))


def random_windows(videos: torch.Tensor, length: int,
                   rng: np.random.Generator | None = None) -> torch.Tensor:
    """One ``length``-frame window per video of ``[B, T, ...]``, each at a random start
    (``rng`` ``None``: one seeded from torch's RNG, so ``seed_everything`` fixes them)."""
    rng = _rng() if rng is None else rng
    starts = rng.integers(0, videos.shape[1] - length + 1, size=len(videos))
    index = torch.as_tensor(starts[:, None] + np.arange(length))
    return videos[torch.arange(len(videos))[:, None], index]


def crop_clips(clips: torch.Tensor, crop: Callable[[torch.Tensor], torch.Tensor]
               ) -> torch.Tensor:
    """``crop`` (a torchvision v2 transform) applied to each clip of ``[B, 3, L, H, W]``
    with one set of parameters for all its frames (v2 treats the leading dim of
    ``[L, 3, H, W]`` as a batch of frames sharing them)."""
    return torch.stack([crop(c.transpose(0, 1)).transpose(0, 1) for c in clips])


@torch.no_grad()
def video_features(encoder: torch.nn.Module, data: VideoArrays, *, clip_frames: int,
                   image_size: int, clips_per_video: int = RETRIEVAL_CLIPS,
                   pooling: str = "maxpool122-flatten", videos_per_batch: int = 8,
                   ) -> torch.Tensor:
    """Per-video features ``(N, D)``: the encoder's last-block maps of ``clips_per_video``
    clips evenly spaced over each video (:func:`retrieval_clip_starts`), each pooled with
    ``pooling`` (:func:`pool_clip_maps`), averaged over the clips."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    starts = retrieval_clip_starts(data.num_frames, num_clips=clips_per_video,
                                   clip_len=clip_frames)
    index = np.minimum(starts[:, None] + np.arange(clip_frames), data.num_frames - 1)
    chunks = []
    for first in range(0, len(data), videos_per_batch):
        videos = torch.from_numpy(np.ascontiguousarray(
            data.clips[first : first + videos_per_batch][:, index]))  # [b, clips, L, H, W, 3]
        clips = clip_tensor(videos.flatten(0, 1), device, image_size)
        clip_features = pool_clip_maps(encoder.forward_features(clips).float(), pooling)
        chunks.append(pool_video_features(clip_features.cpu(), clips_per_video=clips_per_video))
    encoder.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def _motion_statistics(data: VideoArrays, grid: int = 8) -> np.ndarray:
    """Hand-made motion features of each video: on a ``grid`` x ``grid`` of blocks of the
    grey frames, the mean absolute and the mean signed frame difference, and the spread over
    time of the block means."""
    features = []
    for first in range(0, len(data), 64):
        grey = data.clips[first : first + 64].astype(np.float32).mean(axis=-1) / 255.0
        n, t, h, w = grey.shape
        blocks = grey[:, :, : h - h % grid, : w - w % grid].reshape(
            n, t, grid, h // grid, grid, w // grid).mean(axis=(3, 5))
        diff = np.diff(blocks, axis=1)
        features.append(np.concatenate([np.abs(diff).mean(1), diff.mean(1), blocks.std(1)],
                                       axis=1).reshape(n, -1))
    return np.concatenate(features)


def frame_difference_probe(train: VideoArrays, test: VideoArrays, *, seed: int) -> float:
    """Linear-probe accuracy on :func:`_motion_statistics` of the pixels: the floor a learned
    motion encoder should clear. Depends on the data alone, so it is cached per data."""
    fingerprint = hashlib.sha1(np.ascontiguousarray(train.clips[:8]).tobytes()
                               + test.labels.tobytes())
    fingerprint.update(repr((len(train), len(test), seed, train.name)).encode())
    return cached_accuracy(
        "frame-difference-probe", fingerprint.hexdigest()[:16], train.name,
        lambda: linear_probe_accuracy(_motion_statistics(train), train.labels,
                                      _motion_statistics(test), test.labels, seed=seed))


class VideoSSLTask(SSLTask):
    """Video backbone + pretext task or two-view objective, trained on unlabelled video
    partitions."""

    name = "video-ssl"
    modality = "video"
    data = VIDEO_DATA
    central_metrics = ("retrieval-r1", "knn-accuracy")
    data_probe_key = "frame-difference-linear-probe-accuracy"
    local_eval_in_eval_mode = True

    def build_model(self, cfg: RunConfig) -> torch.nn.Module:
        if cfg.ssl_method != "ctp":
            return super().build_model(cfg)
        from fedssl.models import build_backbone

        backbone = build_backbone(cfg.model, image_size=cfg.image_size, modality="video")
        return CtPModel(backbone, num_frames=cfg.clip_frames, image_size=cfg.image_size)

    def cached_model(self, cfg: RunConfig) -> torch.nn.Module:
        key = (cfg.model, cfg.ssl_method, cfg.image_size, cfg.clip_frames,
               cfg.clip_order_segments, cfg.projection_dim, cfg.hidden_dim, cfg.temperature,
               cfg.byol_momentum)
        return self._model_once(key, lambda: self.build_model(cfg))

    def samples(self, data: VideoArrays, cfg: RunConfig) -> Dataset:
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(data.clips)))

    def batch_views(self, cfg: RunConfig, device: torch.device
                    ) -> Callable[[tuple[torch.Tensor]], list[torch.Tensor]]:
        """Whole videos ``[B, T, H, W, 3]`` -> the method's views, cut at random times:
        ``[clips]`` (ctp), ``[tuples, orders]`` (vcop), ``[clips, rates]`` (speed), or two
        independently timed and cropped clips (simclr, byol)."""
        length, size = cfg.clip_frames, cfg.image_size

        def to_clips(frames: torch.Tensor) -> torch.Tensor:
            return clip_tensor(frames, device, size)

        if cfg.ssl_method == "vcop":
            segments = cfg.clip_order_segments

            def vcop_views(batch: tuple[torch.Tensor]) -> list[torch.Tensor]:
                rng = _rng()
                drawn = [sample_vcop_tuple(v, clip_len=length, interval=length // 2,
                                           num_clips=segments, seed=rng) for v in batch[0]]
                tuples = torch.stack([clips for clips, _ in drawn])  # [B, n, L, H, W, 3]
                orders = torch.tensor([label for _, label in drawn], device=device)
                return [to_clips(tuples), orders]

            return vcop_views
        if cfg.ssl_method == "speed":

            def speed_views(batch: tuple[torch.Tensor]) -> list[torch.Tensor]:
                rng = _rng()
                drawn = [sample_speed_clip(v, clip_len=length, seed=rng) for v in batch[0]]
                clips = torch.stack([clip for clip, _ in drawn])
                rates = torch.tensor([label for _, label in drawn], device=device)
                return [to_clips(clips), rates]

            return speed_views
        if cfg.ssl_method == "ctp":
            return lambda batch: [to_clips(random_windows(batch[0], length))]
        crop = v2.RandomResizedCrop(size, scale=(cfg.crop_min_scale, 1.0), antialias=True)

        def two_views(batch: tuple[torch.Tensor]) -> list[torch.Tensor]:
            rng = _rng()
            views = []
            for _ in range(2):
                clips = to_clips(random_windows(batch[0], length, rng))  # [B, 3, L, H, W]
                views.append(crop_clips(clips, crop))
            return views

        return two_views

    def features(self, encoder: torch.nn.Module, cfg: RunConfig,
                 data: VideoArrays) -> torch.Tensor:
        return video_features(encoder, data, clip_frames=cfg.clip_frames,
                              image_size=cfg.image_size, pooling=cfg.retrieval_pooling)

    def monitor(self, f_bank: torch.Tensor, bank: VideoArrays, f_query: torch.Tensor,
                query: VideoArrays, cfg: RunConfig, prefix: str = "") -> dict[str, float]:
        """Video retrieval recall@k (test videos query the train videos), then kNN."""
        recall = retrieval_recall(f_query, query.labels, f_bank, bank.labels,
                                  ks=VIDEO_RETRIEVAL_KS)
        out = {f"{prefix}retrieval-r{k}": r for k, r in recall.items()}
        return out | super().monitor(f_bank, bank, f_query, query, cfg, prefix)

    def data_probe(self, train: VideoArrays, test: VideoArrays, cfg: RunConfig) -> float:
        return frame_difference_probe(train, test, seed=cfg.seed)
