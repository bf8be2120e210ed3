"""FedVSSL: loss-aware aggregation with a smoothing step, for partial-weight updating clients.

Paper: Rehman et al., "Federated Self-supervised Learning for Video Understanding", ECCV
Workshops 2022 (arXiv:2207.01975). The rule follows the authors' code
(``yasar-rehman/FEDVSSL``, ``main_cam_st_theta_b_mixed_+SWA_wo_mement.py``): α weighs the
loss-based aggregate, as there. Flower's FedVSSL baseline instead concatenates the two
aggregates as Python lists (so clients only ever receive ``mix_coeff × FedAvg``); here the mix
is element-wise.

The client side of the method, partial weight updating (clients take only the backbone from
the server and keep their own heads), is the run-config key ``partial-prefix``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from logging import INFO
from typing import Any

import numpy as np
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg

from fedssl.strategies.arraymath import (
    check_same_keys,
    check_unit_interval,
    normalised,
    weighted_sum,
)
from fedssl.strategies.custom_mean import CustomMeanStrategy

__all__ = ["FedVSSL", "fedvssl_aggregate", "fedvssl_coefficients", "loss_weights"]


def loss_weights(losses: Sequence[float]) -> list[float]:
    """``exp(-L_k) / Σ exp(-L_j)``, computed without overflow (a softmax of ``-L``)."""
    values = np.asarray(losses, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or not np.isfinite(values).all():
        raise ValueError(f"losses must be one finite number per client, got {list(losses)!r}")
    shifted = np.exp(-(values - values.min()))
    return (shifted / shifted.sum()).tolist()


def fedvssl_coefficients(
    num_examples: Sequence[float], losses: Sequence[float], alpha: float
) -> list[float]:
    """Each client's coefficient in θ_mix: ``α · exp(-L_k)/Σexp(-L) + (1-α) · n_k/Σn``."""
    check_unit_interval("alpha", alpha)
    if len(num_examples) != len(losses):
        raise ValueError(f"{len(num_examples)} example counts but {len(losses)} losses")
    by_size = normalised(num_examples, "num_examples")
    by_loss = loss_weights(losses)
    return [alpha * lw + (1.0 - alpha) * sw for lw, sw in zip(by_loss, by_size, strict=True)]


def fedvssl_aggregate(
    client_arrays: list[dict[str, np.ndarray]],
    num_examples: list[int],
    losses: list[float],
    alpha: float,
    beta: float,
    previous_global: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Mix the sample-weighted and the loss-weighted averages, then smooth with the last global.

    ``θ_fedavg = Σ n_k θ_k / Σ n_k`` and ``θ_loss = Σ exp(-L_k) θ_k / Σ exp(-L_k)`` (a lower
    loss gives a larger weight; computed as a softmax of ``-L``, so large losses do not
    underflow), ``θ_mix = α θ_loss + (1-α) θ_fedavg`` element-wise. Because both are weighted
    sums of the same arrays, θ_mix is computed as one weighted sum with coefficients
    ``α λ_k + (1-α) ν_k`` (see :func:`fedvssl_coefficients`): the same values, one accumulator.

    If ``previous_global`` is given, the result is ``(1 - β/2) θ_mix + (β/2) previous_global``:
    β=1 is the authors' 0.5/0.5 "SWA" step, β=0 disables it.

    Parameters
    ----------
    client_arrays : list[dict[str, np.ndarray]]
        Each client's arrays after local training (same keys and shapes).
    num_examples : list[int]
        Samples per client (n_k).
    losses : list[float]
        Each client's mean training loss of the round (L_k).
    alpha : float
        Weight of the loss-based aggregate, in [0, 1].
    beta : float
        Smoothing with the previous global model, in [0, 1].
    previous_global : dict[str, np.ndarray], optional
        The global model before this round; ``None`` skips the smoothing step.

    Returns
    -------
    dict[str, np.ndarray]
        The clients' keys, shapes and dtypes (integer arrays rounded back).
    """
    check_unit_interval("beta", beta)
    if len(client_arrays) != len(num_examples):
        raise ValueError(f"{len(client_arrays)} clients but {len(num_examples)} example counts")
    coefficients = fedvssl_coefficients(num_examples, losses, alpha)
    if previous_global is None or beta == 0.0:
        return weighted_sum(client_arrays, coefficients)
    check_same_keys(previous_global, client_arrays, "FedVSSL previous_global")
    # (1-β/2) Σ c_k θ_k + (β/2) θ_prev is again one weighted sum, with the previous global
    # model as one more term.
    keep = 1.0 - beta / 2.0
    return weighted_sum(
        [*client_arrays, previous_global], [keep * c for c in coefficients] + [beta / 2.0]
    )


class FedVSSL(CustomMeanStrategy):
    """FedVSSL aggregation: loss/FedAvg mix and "SWA" smoothing, in place of the mean.

    Implementation based on https://arxiv.org/abs/2207.01975 and the authors' code. Every
    round, :func:`fedvssl_aggregate` combines the clients' arrays with weights from their
    sample counts and their mean train loss (metric ``loss_key``). From round 2 on, with
    ``beta > 0``, the result is smoothed with the global model the round started from (round 1
    starts from the random initialisation, which the authors do not mix in). The paper's six
    variants are (α, β) ∈ {(0,0), (1,0), (0,1), (1,1), (0.9,0), (0.9,1)}.

    Replies without a finite ``loss_key`` metric cannot be weighted by loss; they are left out
    of the round's aggregate with a warning.

    Parameters
    ----------
    base : FedAvg, optional
        Flower strategy for sampling, evaluation and the server update (default: ``FedAvg()``).
    alpha : float (default: 0.9)
        Weight of the loss-based aggregate (Flower's baseline default ``mix_coeff``).
    beta : float (default: 1.0)
        Smoothing with the previous global model (Flower's baseline default ``swbeta``).
    loss_key : str (default: "train-loss")
        Client metric holding the mean local training loss.
    """

    label = "FedVSSL"

    def __init__(
        self,
        base: FedAvg | None = None,
        *,
        alpha: float = 0.9,
        beta: float = 1.0,
        loss_key: str = "train-loss",
    ) -> None:
        super().__init__(base if base is not None else FedAvg())
        check_unit_interval("alpha", alpha)
        check_unit_interval("beta", beta)
        self.alpha, self.beta, self.loss_key = alpha, beta, loss_key

    def combine(
        self,
        server_round: int,
        global_arrays: Mapping[str, np.ndarray],
        client_arrays: Sequence[Mapping[str, np.ndarray]],
        client_metrics: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        kept = [
            i for i, m in enumerate(client_metrics)
            if isinstance(m.get(self.loss_key), (int, float)) and np.isfinite(m[self.loss_key])
        ]
        if len(kept) < len(client_metrics):
            log(INFO, "round %d: %d replies without a finite %r metric left out of FedVSSL",
                server_round, len(client_metrics) - len(kept), self.loss_key)
        if not kept:
            raise ValueError(f"FedVSSL: no reply carries the {self.loss_key!r} metric")
        num_examples = [float(client_metrics[i][self.weighted_by_key]) for i in kept]
        losses = [float(client_metrics[i][self.loss_key]) for i in kept]
        aggregate = fedvssl_aggregate(
            [client_arrays[i] for i in kept],
            num_examples,
            losses,
            self.alpha,
            self.beta,
            previous_global=global_arrays if server_round > 1 else None,
        )
        weights = loss_weights(losses)
        return aggregate, {"fedvssl-max-loss-weight": max(weights)}

    def summary(self) -> None:
        super().summary()
        log(INFO, "\t│\tFedVSSL: alpha %g (loss-based share), beta %g (smoothing)", self.alpha,
            self.beta)
