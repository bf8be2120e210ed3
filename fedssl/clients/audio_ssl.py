"""Federated audio self-supervised learning (FASSL): feature-matching and predictive SSL.

Feature matching: SimCLR or Barlow Twins (lightly's losses, the wrappers of
:mod:`fedssl.models`) on two augmented log-mel views of each clip (:class:`AudioViews`).
Predictive: audio clip-order prediction (:class:`ClipOrder`) on one view. Either runs under
every strategy; FedVSSL's backbone-only updating is ``partial-prefix = "backbone."``.

Evaluation (centrally, on frozen backbone features of clean log-mels): retrieval recall@k
(test clips query the train set), a kNN monitor and a linear probe, each next to the
random-init backbone. :meth:`AudioSSLTask.selection_evaluate` scores on the train split only
(held-out speakers query the others), so picking the best round does not peek at the test set.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from fedssl.clients.audio_data import (
    audio_eval_split,
    audio_partition,
    audio_partition_histograms,
)
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
    knn_accuracy,
    linear_probe_accuracy,
    retrieval_recall,
)
from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_loader import AUDIO_DATASETS
from fedssl.models import build_ssl_model
from fedssl.models.audio_backbones import build_audio_backbone
from fedssl.models.audio_frontend import AUDIO_FRONTENDS, LogMelSpectrogram
from fedssl.models.audio_views import AudioViewOptions, AudioViews
from fedssl.models.clip_order import ClipOrder

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fedssl.config import RunConfig

__all__ = ["PREDICTIVE_METHODS", "AudioSSLTask", "audio_features", "log_mel_probe"]

PREDICTIVE_METHODS = ("clip-order",)
RETRIEVAL_KS = (1, 5, 10)


def _frontend(cfg: RunConfig) -> LogMelSpectrogram:
    return LogMelSpectrogram(AUDIO_FRONTENDS[AUDIO_DATASETS[cfg.dataset].frontend])


@torch.no_grad()
def audio_features(encoder: torch.nn.Module, waveforms: np.ndarray, frontend: torch.nn.Module,
                   *, batch_size: int = 128) -> torch.Tensor:
    """Encode ``(N, L)`` waveforms (clean log-mels, eval mode) -> float features ``(N, D)``."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    frontend = frontend.to(device)
    chunks = []
    for start in range(0, len(waveforms), batch_size):
        batch = torch.from_numpy(np.array(waveforms[start : start + batch_size])).to(device)
        chunks.append(encoder(frontend(batch).unsqueeze(1)).float().cpu())
    encoder.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def log_mel_probe(train: AudioArrays, test: AudioArrays, frontend: torch.nn.Module, *,
                  seed: int) -> float:
    """Linear-probe accuracy on hand-made features, the per-band mean and standard deviation
    of the log-mel over time: the floor a learned audio encoder should clear.

    Depends on the data alone, so it is computed once per data and kept in the cache dir.
    """
    fingerprint = hashlib.sha1(np.ascontiguousarray(train.waveforms[:64]).tobytes()
                               + test.labels.tobytes())
    fingerprint.update(repr((len(train), len(test), seed, train.name)).encode())

    def pooled(data: AudioArrays) -> np.ndarray:
        with torch.no_grad():
            spec = torch.cat([frontend(torch.from_numpy(np.asarray(data.waveforms[i:i + 256])))
                              for i in range(0, len(data), 256)])
        return torch.cat([spec.mean(dim=1), spec.std(dim=1)], dim=1).numpy()

    return cached_accuracy(
        "log-mel-probe", fingerprint.hexdigest()[:16], train.name,
        lambda: linear_probe_accuracy(pooled(train), train.labels, pooled(test), test.labels,
                                      seed=seed))


class AudioSSLTask(ClientTask):
    """Audio backbone + SSL objective, trained on unlabelled audio partitions."""

    name = "audio-ssl"

    # ------------------------------------------------------------------ model
    def build_model(self, cfg: RunConfig) -> torch.nn.Module:
        backbone = build_audio_backbone(cfg.model)
        if cfg.ssl_method == "clip-order":
            return ClipOrder(backbone, num_segments=cfg.clip_order_segments,
                             hidden_dim=cfg.hidden_dim)
        return build_ssl_model(cfg.ssl_method, backbone, projection_dim=cfg.projection_dim,
                               hidden_dim=cfg.hidden_dim, temperature=cfg.temperature,
                               byol_momentum=cfg.byol_momentum)

    def cached_model(self, cfg: RunConfig) -> torch.nn.Module:
        key = (cfg.model, cfg.ssl_method, cfg.clip_order_segments, cfg.projection_dim,
               cfg.hidden_dim, cfg.temperature, cfg.byol_momentum)
        return self._model_once(key, lambda: self.build_model(cfg))

    def views(self, cfg: RunConfig) -> AudioViews:
        """The augmentation of the run: two views for feature matching, one for clip order
        (without time shift, which would move the end of a clip to its start)."""
        predictive = cfg.ssl_method in PREDICTIVE_METHODS
        options = AudioViewOptions(
            max_shift=0.0 if predictive else cfg.audio_max_shift,
            gain_db=cfg.audio_gain_db,
            mix_prob=cfg.audio_mix_prob,
            time_masks=2 if cfg.spec_time_width else 0,
            time_width=cfg.spec_time_width,
            freq_masks=2 if cfg.spec_freq_width else 0,
            freq_width=cfg.spec_freq_width,
        )
        settings = AUDIO_FRONTENDS[AUDIO_DATASETS[cfg.dataset].frontend]
        return AudioViews(settings, options, num_views=1 if predictive else 2)

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        return audio_partition_histograms(cfg, num_partitions)

    # ------------------------------------------------------------------ local work
    def _loader(self, data: AudioArrays, cfg: RunConfig, *, shuffle: bool) -> DataLoader:
        return local_loader(TensorDataset(torch.from_numpy(np.array(data.waveforms))),
                            cfg.batch_size, shuffle=shuffle)

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
                             "task=image-classification; audio-ssl trains with plain SGD")
        start = time.perf_counter()
        data = audio_partition(cfg, partition_id, num_partitions)
        if len(data) < 2:
            return empty_partition_metrics(partition_id, start)
        seed_everything(cfg.seed, server_round, partition_id)
        device = next(model.parameters()).device
        views = self.views(cfg).to(device)
        losses = ssl_local_steps(
            model, self._loader(data, cfg, shuffle=True), cfg, proximal_mu=proximal_mu,
            to_views=lambda batch: views(batch[0].to(device)))
        return train_reply(losses, len(data), start, partition_id)

    @torch.no_grad()
    def evaluate_local(
        self, model: torch.nn.Module, cfg: RunConfig, *, partition_id: int, num_partitions: int
    ) -> dict[str, float | int]:
        data = audio_partition(cfg, partition_id, num_partitions)
        seed_everything(cfg.seed, 0, partition_id)
        device = next(model.parameters()).device
        views = self.views(cfg).to(device)
        was_training = model.training
        model.eval()
        losses = [model.training_loss(views(w.to(device))).item()
                  for (w,) in self._loader(data, cfg, shuffle=False)]
        model.train(was_training)
        return {
            "eval-loss": float(np.mean(losses)) if losses else float("nan"),
            "num-examples": len(data),
            "partition-id": partition_id,
        }

    # ------------------------------------------------------------------ server side
    def _scores(self, encoder: torch.nn.Module, cfg: RunConfig, bank: AudioArrays,
                queries: AudioArrays, prefix: str = "") -> dict[str, float]:
        frontend = _frontend(cfg)
        f_bank = audio_features(encoder, bank.waveforms, frontend)
        f_query = audio_features(encoder, queries.waveforms, frontend)
        recall = retrieval_recall(f_query, queries.labels, f_bank, bank.labels, ks=RETRIEVAL_KS)
        out = {f"{prefix}retrieval-r{k}": r for k, r in recall.items()}
        out[f"{prefix}knn-accuracy"] = knn_accuracy(
            f_bank, bank.labels, f_query, queries.labels, num_classes=bank.num_classes,
            k=cfg.knn_k)
        return out

    def central_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        scores = self._scores(model.backbone, cfg, audio_eval_split(cfg, "train"),
                              audio_eval_split(cfg, "test"))
        return {k: scores[k] for k in ("retrieval-r1", "knn-accuracy")}

    def selection_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        """Retrieval within the train split: a quarter of the speakers (or of the clips when
        the dataset has no speakers) query the rest. Never touches the test split."""
        train = audio_eval_split(cfg, "train")
        rng = np.random.default_rng(cfg.seed)
        if train.groups is not None and len(np.unique(train.groups)) >= 4:
            ids = rng.permutation(np.unique(train.groups))
            held_out = np.isin(train.groups, ids[: len(ids) // 4])
        else:
            held_out = np.zeros(len(train), dtype=bool)
            held_out[rng.permutation(len(train))[: len(train) // 4]] = True
        return self._scores(model.backbone, cfg, train.subset(~held_out),
                            train.subset(held_out), prefix="val-")

    def final_evaluate(
        self, model: torch.nn.Module, cfg: RunConfig, baseline: torch.nn.Module
    ) -> dict[str, float]:
        train, test = audio_eval_split(cfg, "train"), audio_eval_split(cfg, "test")
        frontend = _frontend(cfg)
        out: dict[str, float] = {}
        for prefix, net in (("", model), ("random-init-", baseline)):
            out |= self._scores(net.backbone, cfg, train, test, prefix=prefix)
            if cfg.linear_probe:
                f_train = audio_features(net.backbone, train.waveforms, frontend)
                f_test = audio_features(net.backbone, test.waveforms, frontend)
                out[f"{prefix}linear-probe-accuracy"] = linear_probe_accuracy(
                    f_train.numpy(), train.labels, f_test.numpy(), test.labels, seed=cfg.seed)
        if cfg.linear_probe:
            out["log-mel-linear-probe-accuracy"] = log_mel_probe(train, test, frontend,
                                                                 seed=cfg.seed)
        return out
