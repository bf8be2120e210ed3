"""The body every self-supervised task shares; a modality specialises its data and views.

Local training: the partition, seeded from (seed, round, partition), ``local-epochs`` of the
SSL method's loss on augmented views (:func:`~fedssl.clients.base.ssl_local_steps`, which
takes its optimiser and penalty from the round's instructions). Evaluation on frozen backbone
features: a monitor every few rounds (kNN, and retrieval where the modality reports it), and
at the end the monitor plus a linear probe for the trained and the random-init encoder, next
to a probe on hand-made features of the data alone (the floor an encoder should clear).
Model selection (``fedssl select-best``) runs the monitor within the train split only: a
held-out quarter of it queries the rest, so the test split stays for the final report.

A modality subclass says how a partition becomes a dataset of samples, how a batch becomes
views, how an encoder turns a split into features, and which data-only probe it reports.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from fedssl.clients.base import (
    ClientTask,
    empty_partition_metrics,
    local_loader,
    seed_everything,
    ssl_local_steps,
    train_reply,
)
from fedssl.clients.evaluation import knn_accuracy, linear_probe_accuracy
from fedssl.models import build_backbone, build_ssl_model

if TYPE_CHECKING:
    from fedssl.clients.data import PartitionedData
    from fedssl.clients.instructions import RoundInstructions
    from fedssl.config import RunConfig

__all__ = ["SSLTask"]


class SSLTask(ClientTask):
    """Backbone + SSL objective (``ssl-method``), trained on unlabelled partitions."""

    trains_ssl_method = True

    #: The modality's splits and partitions.
    data: ClassVar[PartitionedData]
    #: Metrics of :meth:`monitor` that the central evaluation reports every few rounds.
    central_metrics: ClassVar[tuple[str, ...]] = ("knn-accuracy",)
    #: The summary key of :meth:`data_probe`.
    data_probe_key: ClassVar[str]
    #: Whether the local evaluation scores the loss with the model in eval mode.
    local_eval_in_eval_mode: ClassVar[bool] = False

    # ------------------------------------------------------------------ modality hooks
    @abstractmethod
    def samples(self, data: Any, cfg: RunConfig) -> Dataset:
        """A partition as a dataset of training samples."""

    @abstractmethod
    def batch_views(self, cfg: RunConfig, device: torch.device
                    ) -> Callable[[Any], list[torch.Tensor]]:
        """A function from a loader batch to the method's views on ``device``."""

    @abstractmethod
    def features(self, encoder: torch.nn.Module, cfg: RunConfig, data: Any) -> torch.Tensor:
        """Frozen-encoder features ``(N, D)`` of a labelled split (clean inputs, eval mode)."""

    @abstractmethod
    def data_probe(self, train: Any, test: Any, cfg: RunConfig) -> float:
        """Linear-probe accuracy on features of the data alone (no encoder)."""

    def monitor(self, f_bank: torch.Tensor, bank: Any, f_query: torch.Tensor, query: Any,
                cfg: RunConfig, prefix: str = "") -> dict[str, float]:
        """Scores of query features against a labelled bank: kNN accuracy by default."""
        return {f"{prefix}knn-accuracy": knn_accuracy(
            f_bank, bank.labels, f_query, query.labels, num_classes=bank.num_classes,
            k=cfg.knn_k)}

    # ------------------------------------------------------------------ config and model
    def run_name(self, cfg: RunConfig) -> str:
        return cfg.ssl_method

    def build_model(self, cfg: RunConfig) -> torch.nn.Module:
        backbone = build_backbone(cfg.model, image_size=cfg.image_size, modality=self.modality)
        return build_ssl_model(
            cfg.ssl_method, backbone, projection_dim=cfg.projection_dim,
            hidden_dim=cfg.hidden_dim, temperature=cfg.temperature,
            byol_momentum=cfg.byol_momentum, num_segments=cfg.clip_order_segments)

    def cached_model(self, cfg: RunConfig) -> torch.nn.Module:
        key = (cfg.model, cfg.ssl_method, cfg.image_size, cfg.clip_order_segments,
               cfg.projection_dim, cfg.hidden_dim, cfg.temperature, cfg.byol_momentum)
        return self._model_once(key, lambda: self.build_model(cfg))

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        return self.data.class_histograms(cfg, num_partitions)

    # ------------------------------------------------------------------ local work
    def _loader(self, data: Any, cfg: RunConfig, *, shuffle: bool) -> DataLoader:
        return local_loader(self.samples(data, cfg), cfg.batch_size, shuffle=shuffle)

    def train(
        self,
        model: torch.nn.Module,
        cfg: RunConfig,
        *,
        partition_id: int,
        num_partitions: int,
        instructions: RoundInstructions,
    ) -> dict[str, float | int]:
        start = time.perf_counter()
        data = self.data.partition(cfg, partition_id, num_partitions)
        if len(data) < 2:
            return empty_partition_metrics(partition_id, start)
        seed_everything(cfg.seed, instructions.server_round, partition_id)
        device = next(model.parameters()).device
        to_views = self.batch_views(cfg, device)
        losses = ssl_local_steps(model, self._loader(data, cfg, shuffle=True), cfg,
                                 instructions=instructions, to_views=to_views)
        return train_reply(losses, len(data), start, partition_id)

    @torch.no_grad()
    def evaluate_local(
        self, model: torch.nn.Module, cfg: RunConfig, *, partition_id: int, num_partitions: int
    ) -> dict[str, float | int]:
        data = self.data.partition(cfg, partition_id, num_partitions)
        seed_everything(cfg.seed, 0, partition_id)
        device = next(model.parameters()).device
        to_views = self.batch_views(cfg, device)
        was_training = model.training
        if self.local_eval_in_eval_mode:
            model.eval()
        losses = [model.training_loss(to_views(batch)).item()
                  for batch in self._loader(data, cfg, shuffle=False)]
        model.train(was_training)
        return {
            "eval-loss": float(np.mean(losses)) if losses else float("nan"),
            "num-examples": len(data),
            "partition-id": partition_id,
        }

    # ------------------------------------------------------------------ server side
    def _monitor(self, encoder: torch.nn.Module, cfg: RunConfig, bank: Any, query: Any,
                 prefix: str = "") -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        f_bank, f_query = self.features(encoder, cfg, bank), self.features(encoder, cfg, query)
        return self.monitor(f_bank, bank, f_query, query, cfg, prefix), f_bank, f_query

    def central_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        scores, _, _ = self._monitor(model.backbone, cfg, self.data.eval_split(cfg, "train"),
                                     self.data.eval_split(cfg, "test"))
        return {k: scores[k] for k in self.central_metrics}

    def selection_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        """The monitor within the train split, keys prefixed ``val-``: a seeded quarter of the
        groups (speakers) when the data has at least four, else of the samples, queries the
        rest (:meth:`~fedssl.clients.data.PartitionedData.selection_split`).

        Never touches the test split, so picking a round (``fedssl select-best``) does not peek
        at the data :meth:`final_evaluate` reports on. The clients trained on all of the train
        split, so the held-out quarter is not unseen by the encoder (only its labels are);
        the guarantee is about the test split. The first key is the default selection metric
        (``val-knn-accuracy`` for the kNN monitor, ``val-retrieval-r1`` for audio).
        """
        bank, query = self.data.selection_split(cfg)
        scores, _, _ = self._monitor(model.backbone, cfg, bank, query, prefix="val-")
        return scores

    def final_evaluate(
        self, model: torch.nn.Module, cfg: RunConfig, baseline: torch.nn.Module
    ) -> dict[str, float]:
        train, test = self.data.eval_split(cfg, "train"), self.data.eval_split(cfg, "test")
        out: dict[str, float] = {}
        for prefix, net in (("", model), ("random-init-", baseline)):
            scores, f_train, f_test = self._monitor(net.backbone, cfg, train, test, prefix)
            out |= scores
            if cfg.linear_probe:
                out[f"{prefix}linear-probe-accuracy"] = linear_probe_accuracy(
                    f_train.numpy(), train.labels, f_test.numpy(), test.labels, seed=cfg.seed)
        if cfg.linear_probe:
            # The same (possibly capped) samples the encoders were probed on.
            out[self.data_probe_key] = self.data_probe(train, test, cfg)
        return out
