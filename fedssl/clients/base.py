"""The contract between the Flower glue and a client task, and the pieces every task uses
(seeding, the partition loader, the local step budget, the training reply)."""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from fedssl.clients.instructions import RoundInstructions
    from fedssl.config import RunConfig

__all__ = [
    "ClientTask",
    "device_for_training",
    "empty_partition_metrics",
    "local_loader",
    "local_step_budget",
    "seed_everything",
    "seed_global",
    "ssl_local_steps",
    "steps_over",
    "train_reply",
]


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


def seed_global(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs with ``seed``: what the server does
    before it builds the initial global model, so that model can be rebuilt exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def local_loader(dataset: Dataset, batch_size: int, *, shuffle: bool) -> DataLoader:
    """A client's DataLoader over its partition.

    The batch is capped at the partition size; a ragged last batch of one sample (which breaks
    BatchNorm) is dropped; shuffling draws from a generator seeded from torch's current seed,
    so the order follows :func:`seed_everything`.
    """
    batch_size = min(batch_size, len(dataset))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=len(dataset) % batch_size == 1,
        generator=torch.Generator().manual_seed(torch.initial_seed()) if shuffle else None,
    )


def local_step_budget(batches_per_epoch: int, cfg: RunConfig) -> int:
    """Local steps of one round: ``local-epochs`` passes, capped by ``max-local-steps``."""
    total = cfg.local_epochs * batches_per_epoch
    return min(total, cfg.max_local_steps) if cfg.max_local_steps else total


def steps_over(loader: Iterable, total_steps: int) -> Iterator:
    """Batches of ``loader`` for exactly ``total_steps`` steps, starting new passes as needed."""
    done = 0
    while done < total_steps:
        for batch in loader:
            if done >= total_steps:
                return
            done += 1
            yield batch
        if done == 0:  # an empty loader would loop forever
            return


def ssl_local_steps(
    model: torch.nn.Module,
    loader: Iterable,
    cfg: RunConfig,
    *,
    instructions: RoundInstructions,
    to_views: Callable[[object], list[torch.Tensor]],
) -> list[float]:
    """One round of local SGD on a self-supervised model; returns the loss of every step.

    ``local-epochs`` passes over ``loader`` (capped by ``max-local-steps``), each batch turned
    into views by ``to_views`` and scored by ``model.training_loss``, plus the round's penalty
    (FedProx's term when the strategy asks for it); ``model.on_step_start`` gets the progress
    through the round (BYOL's momentum schedule).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    penalty = instructions.penalty(model)
    optimizer = instructions.optimizer(model, params, lr=cfg.lr, momentum=cfg.momentum,
                                       weight_decay=cfg.weight_decay)
    total_steps = local_step_budget(len(loader), cfg)
    model.train()
    losses: list[float] = []
    for batch in steps_over(loader, total_steps):
        model.on_step_start(len(losses) / max(total_steps, 1))
        loss = model.training_loss(to_views(batch)) + penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_reply(losses: list[float], num_examples: int, started: float,
                partition_id: int) -> dict[str, float | int]:
    """The metrics every training reply carries (the keys must match across clients)."""
    return {
        "train-loss": float(np.mean(losses)) if losses else float("nan"),
        "num-examples": num_examples,
        "local-steps": len(losses),
        "train-time": time.perf_counter() - started,
        "partition-id": partition_id,
    }


def empty_partition_metrics(partition_id: int, started: float) -> dict[str, float | int]:
    """The reply of a client with (almost) no data.

    A Dirichlet split can leave a client (almost) empty; BatchNorm cannot train on one sample.
    The reply carries weight num-examples=0, so it changes nothing.
    """
    return {
        "train-loss": 0.0,
        "num-examples": 0,
        "local-steps": 0,
        "train-time": time.perf_counter() - started,
        "partition-id": partition_id,
    }


def device_for_training() -> torch.device:
    # Ray hides GPUs from actors that were given none (CUDA_VISIBLE_DEVICES=''), so this
    # picks the GPU exactly when the client was allotted one.
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ClientTask(ABC):
    """The fixed contract of one kind of local work; the model's whole ``state_dict`` is
    what gets federated.

    A task declares its ``name`` (the run config's ``task``), its ``modality`` (the datasets
    and backbones it takes, by their registry tags), the ``model_kinds`` it trains and whether
    it ``trains_ssl_method``. The run config is checked from its registry entry's tags (and
    the entry's own ``check``, a torch-free function), without importing the task:
    :func:`fedssl.catalogue.tasks.check_task`. It trains on one partition given the round's
    :class:`~fedssl.clients.instructions.RoundInstructions` (which carry every strategy's
    client half: a task never sees a strategy) and evaluates: locally, centrally every few
    rounds, at the end against the random initialisation, and for model selection.

    A new task is one file plus one registry entry: its line in :mod:`fedssl.catalogue.tasks`
    (or, outside the package, the class decorated with :func:`fedssl.clients.register_task`).
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    #: The kinds of registered model (``fedssl.models.MODELS`` tag ``kind``) it trains.
    model_kinds: ClassVar[tuple[str, ...]] = ("backbone",)
    #: Whether it trains the run's ``ssl-method`` (which must then fit its modality).
    trains_ssl_method: ClassVar[bool] = False

    def _model_once(self, key: tuple, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        """``build()`` on the training device, once per process and ``key``: Flower makes a
        new ClientApp call per message and Ray reuses the worker, so rebuilding every round
        would waste time (the weights are overwritten by each message's arrays anyway)."""
        cache = self.__dict__.setdefault("_model_cache", {})
        if key not in cache:
            cache[key] = build().to(device_for_training())
        return cache[key]

    def run_name(self, cfg: RunConfig) -> str:
        """What names a run of this task by default (after the dataset): the model."""
        return cfg.model

    @abstractmethod
    def build_model(self, cfg: RunConfig) -> torch.nn.Module:
        """A freshly initialised model (seeded by the caller): the global model's start."""

    @abstractmethod
    def cached_model(self, cfg: RunConfig) -> torch.nn.Module:
        """A model of this configuration on the training device, built once per process; its
        weights get overwritten by each message's arrays."""

    @abstractmethod
    def train(
        self,
        model: torch.nn.Module,
        cfg: RunConfig,
        *,
        partition_id: int,
        num_partitions: int,
        instructions: RoundInstructions,
    ) -> dict[str, float | int]:
        """Train in place on one partition; return metrics including ``num-examples``.

        Take the optimiser and any extra loss term from ``instructions`` (they carry the
        strategy's client half); every reply of a task has the same metric keys.
        """

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

    def selection_evaluate(self, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
        """Score used to pick the best global checkpoint of a run (``fedssl select-best``).

        It must score on data that the final report does not use (a held-out part of the
        train split, see :meth:`fedssl.clients.data.PartitionedData.selection_split`), so
        there is no default that could fall back to the test split.

        Raises
        ------
        ValueError
            For a task that defines no selection protocol.
        """
        raise ValueError(f"task {self.name!r} has no selection protocol (selection_evaluate); "
                         "fedssl select-best needs one that scores on held-out train data")
