"""Federated audio self-supervised learning (FASSL): feature-matching and predictive SSL.

Feature matching: SimCLR or Barlow Twins (lightly's losses, the wrappers of
:mod:`fedssl.models`) on two augmented log-mel views of each clip (:class:`AudioViews`).
Predictive: audio clip-order prediction (:class:`ClipOrder`) on one view. Either runs under
every strategy; FedVSSL's backbone-only updating is ``partial-prefix = "backbone."``.

Evaluation (centrally, on frozen backbone features of clean log-mels): retrieval recall@k
(test clips query the train set), a kNN monitor and a linear probe, each next to the
random-init backbone. Model selection (the shared
:meth:`~fedssl.clients.ssl_task.SSLTask.selection_evaluate`) scores on the train split only
(held-out speakers query the others), so picking the best round does not peek at the test set.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from fedssl.clients.audio_data import AUDIO_DATA
from fedssl.clients.evaluation import (
    cached_accuracy,
    linear_probe_accuracy,
    retrieval_recall,
)
from fedssl.clients.ssl_task import SSLTask
from fedssl.datasets.audio_base import AudioArrays
from fedssl.datasets.audio_loader import AUDIO_DATASETS
from fedssl.models import SSL_REGISTRY
from fedssl.models.audio_frontend import AUDIO_FRONTENDS, LogMelSpectrogram
from fedssl.models.audio_views import AudioViewOptions, AudioViews

if TYPE_CHECKING:
    from collections.abc import Callable

    from fedssl.config import RunConfig

__all__ = ["PREDICTIVE_METHODS", "AudioSSLTask", "audio_features", "log_mel_probe"]

# The registered audio methods that predict a transformation instead of matching two views.
PREDICTIVE_METHODS: tuple[str, ...] = SSL_REGISTRY.names(objective="predictive",
                                                         modalities="audio")
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


class AudioSSLTask(SSLTask):
    """Audio backbone + SSL objective, trained on unlabelled audio partitions: two augmented
    log-mel views for feature matching, one for clip-order prediction."""

    name = "audio-ssl"
    modality = "audio"
    data = AUDIO_DATA
    central_metrics = ("retrieval-r1", "knn-accuracy")
    data_probe_key = "log-mel-linear-probe-accuracy"
    local_eval_in_eval_mode = True

    def views(self, cfg: RunConfig) -> AudioViews:
        """The augmentation of the run: two views for feature matching, one for a predictive
        method (without time shift, which would move the end of a clip to its start)."""
        num_views = SSL_REGISTRY.tags(cfg.ssl_method)["views"]
        options = AudioViewOptions(
            max_shift=cfg.audio_max_shift if num_views > 1 else 0.0,
            gain_db=cfg.audio_gain_db,
            mix_prob=cfg.audio_mix_prob,
            time_masks=2 if cfg.spec_time_width else 0,
            time_width=cfg.spec_time_width,
            freq_masks=2 if cfg.spec_freq_width else 0,
            freq_width=cfg.spec_freq_width,
        )
        settings = AUDIO_FRONTENDS[AUDIO_DATASETS[cfg.dataset].frontend]
        return AudioViews(settings, options, num_views=num_views)

    def samples(self, data: AudioArrays, cfg: RunConfig) -> Dataset:
        return TensorDataset(torch.from_numpy(np.array(data.waveforms)))

    def batch_views(self, cfg: RunConfig, device: torch.device
                    ) -> Callable[[tuple[torch.Tensor]], list[torch.Tensor]]:
        views = self.views(cfg).to(device)
        return lambda batch: views(batch[0].to(device))

    def features(self, encoder: torch.nn.Module, cfg: RunConfig,
                 data: AudioArrays) -> torch.Tensor:
        return audio_features(encoder, data.waveforms, _frontend(cfg))

    def monitor(self, f_bank: torch.Tensor, bank: AudioArrays, f_query: torch.Tensor,
                query: AudioArrays, cfg: RunConfig, prefix: str = "") -> dict[str, float]:
        """Retrieval recall@k (queries against the bank), then the kNN monitor."""
        recall = retrieval_recall(f_query, query.labels, f_bank, bank.labels, ks=RETRIEVAL_KS)
        out = {f"{prefix}retrieval-r{k}": r for k, r in recall.items()}
        return out | super().monitor(f_bank, bank, f_query, query, cfg, prefix)

    def data_probe(self, train: AudioArrays, test: AudioArrays, cfg: RunConfig) -> float:
        return log_mel_probe(train, test, _frontend(cfg), seed=cfg.seed)
