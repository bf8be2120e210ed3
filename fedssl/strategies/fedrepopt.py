"""FedRepOpt: FedAvg whose training instructions carry RepOpt's gradient scales."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from logging import INFO

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedssl.common.messages import GRAD_SCALES

__all__ = ["GRAD_SCALES_KEY", "FedRepOpt", "scales_record"]

# The key of the scales' ArrayRecord in a training message (fedssl.common.messages); the
# client half that consumes it is fedssl.clients.repopt.RepOptMasks.
GRAD_SCALES_KEY = GRAD_SCALES


def scales_record(scales: Mapping[str, torch.Tensor | np.ndarray]) -> ArrayRecord:
    """The scales as one ArrayRecord (float32, 1-d per-channel vectors), checked finite."""
    tensors = {k: torch.as_tensor(v, dtype=torch.float32).detach().cpu()
               for k, v in scales.items()}
    for key, tensor in tensors.items():
        if tensor.ndim != 1 or not torch.isfinite(tensor).all():
            raise ValueError(f"scale {key!r} must be a finite 1-d per-channel vector, got shape "
                             f"{tuple(tensor.shape)}")
    if not tensors:
        raise ValueError("no scales given; FedRepOpt needs the hyper-search's scales")
    return ArrayRecord(tensors)


class FedRepOpt(FedAvg):
    """Federated gradient re-parameterised optimisers.

    Implementation based on https://arxiv.org/abs/2409.15898 (Lau et al., "FedRepOpt:
    Gradient Re-parametrized Optimizers in Federated Learning", ACCV 2024), which applies
    RepOpt (Ding et al., https://arxiv.org/abs/2205.15242) to federated learning: clients
    train the plain, inference-time network with SGD whose gradients are multiplied by
    constant masks derived from per-channel scales found once by a central hyper-search, so
    the plain network learns like the multi-branch one.

    Aggregation is Flower's sample-weighted FedAvg (the authors' ``Reopt_FedAvg``); only the
    plain weights travel. The scales ride along with every training instruction under
    ``"grad-scales"`` (a few KB), so clients need no local file; each client builds the masks
    and trains with :class:`fedssl.clients.repopt.RepOptSGD` (the client half
    :class:`fedssl.clients.repopt.RepOptMasks`).

    Parameters
    ----------
    scales : Mapping[str, torch.Tensor | np.ndarray]
        Per-channel scales keyed as :func:`fedssl.models.repopt.repopt_scales` writes them.
    **fedavg_kwargs
        Everything :class:`flwr.serverapp.strategy.FedAvg` takes (fractions, minimum nodes,
        metric aggregation functions, record keys).
    """

    def __init__(self, scales: Mapping[str, torch.Tensor | np.ndarray], **fedavg_kwargs) -> None:
        super().__init__(**fedavg_kwargs)
        # Configuration, not accumulated state: a resumed run takes them from its run config
        # (the leading underscore keeps them out of checkpoints, see strategies/state.py).
        self._scales = scales_record(scales)

    @property
    def scales(self) -> ArrayRecord:
        """The per-channel scales sent with every training instruction."""
        return self._scales

    def summary(self) -> None:
        total = sum(int(np.prod(a.shape)) for a in self.scales.values())
        log(INFO, "\t├──> FedRepOpt settings:")
        log(INFO, "\t│\t└── %d scale vectors, %d values sent with each training instruction",
            len(self.scales), total)
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(super().configure_train(server_round, arrays, config, grid))
        for message in messages:
            # FedAvg's messages share one RecordDict; setting the key again is harmless.
            message.content[GRAD_SCALES_KEY] = self._scales
        return messages
