"""The contract between the Flower glue and a client task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["ClientTask", "seed_everything"]


def seed_everything(*parts: int) -> int:
    """Seed torch and numpy's global RNGs from a tuple of integers (seed, round, partition).

    Local training seeds from (seed, round, partition) rather than carrying RNG state, so a
    resumed run and an uninterrupted one draw the same augmentations. numpy is seeded too
    because some of lightly's transforms (solarisation, blur) draw from its global RNG.
    """
    seed = int(np.random.SeedSequence(list(parts)).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    return seed


class ClientTask(ABC):
    """One kind of local work. The model's whole ``state_dict`` is what gets federated."""

    name: str

    @abstractmethod
    def build_model(self, cfg: RunConfig) -> torch.nn.Module:
        """A freshly initialised model (seeded by the caller)."""

    @abstractmethod
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
        """Train in place on one partition; return metrics including ``num-examples``."""

    @abstractmethod
    def evaluate_local(
        self, model: torch.nn.Module, cfg: RunConfig, *, partition_id: int, num_partitions: int
    ) -> dict[str, float | int]:
        """Evaluate on one partition without training; metrics include ``num-examples``."""

    @abstractmethod
    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        """Samples per class (columns) in each partition (rows), saved with every run."""

    @abstractmethod
    def central_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        """Cheap monitor of the global model on held-out data, run every few rounds."""

    @abstractmethod
    def final_evaluate(
        self, model: torch.nn.Module, cfg: RunConfig, baseline: torch.nn.Module
    ) -> dict[str, float]:
        """Full evaluation at the end; ``baseline`` is the random-init model for comparison."""
