"""L-DAWA: Layer-wise Divergence Aware Weight Aggregation.

Paper: Rehman et al., "L-DAWA: Layer-wise Divergence Aware Weight Aggregation in Federated
Self-Supervised Visual Representation Learning", ICCV 2023 (arXiv:2307.07393). The rule
follows the authors' aggregation code (``yasar-rehman/L-DAWA:L-DAWA-Agg.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from logging import INFO
from typing import Any

import numpy as np
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg

from fedssl.catalogue.strategies import LDAWA_WEIGHTINGS
from fedssl.strategies.arraymath import (
    accumulate,
    accumulator_dtype,
    cast_like,
    check_same_keys,
    check_shape,
    normalised,
)
from fedssl.strategies.custom_mean import CustomMeanStrategy

__all__ = [
    "LDAWA",
    "LDAWA_WEIGHTINGS",
    "layer_cosine",
    "ldawa_aggregate",
    "ldawa_aggregate_with_deltas",
]

def _flat(value: np.ndarray) -> np.ndarray:
    # Dot products of integer or half-precision arrays are taken in the accumulator dtype.
    flat = value.reshape(-1)
    dtype = accumulator_dtype(flat.dtype)
    return flat if flat.dtype == dtype else flat.astype(dtype)


def layer_cosine(client: np.ndarray, global_: np.ndarray) -> float:
    """L-DAWA's layer weight: ``min(cos(client, global), 1)`` over the flattened arrays.

    Returns 1.0 when either array is all zeros (the cosine is undefined there; the authors'
    code leaves such layers unscaled). A negative cosine is returned as it is.
    """
    a, b = _flat(np.asarray(client)), _flat(np.asarray(global_))
    return _cosine(a, b, float(np.dot(b, b)))


def _cosine(client_flat: np.ndarray, global_flat: np.ndarray, global_sq: float) -> float:
    client_sq = float(np.dot(client_flat, client_flat))
    if client_sq == 0.0 or global_sq == 0.0:
        return 1.0
    return min(float(np.dot(client_flat, global_flat)) / math.sqrt(client_sq * global_sq), 1.0)


def _check_weighting(weighting: str) -> None:
    if weighting not in LDAWA_WEIGHTINGS:
        raise ValueError(
            f"weighting={weighting!r} is not valid; choose one of: {', '.join(LDAWA_WEIGHTINGS)}"
        )


def _client_weights(
    num_clients: int, num_examples: Sequence[float] | None, weighting: str
) -> list[float]:
    _check_weighting(weighting)
    if weighting == "uniform":
        return [1.0 / num_clients] * num_clients
    if num_examples is None or len(num_examples) != num_clients:
        raise ValueError(
            f"weighting='num-examples' needs one count per client ({num_clients}), "
            f"got {num_examples!r}"
        )
    return normalised(num_examples, "num_examples")


def ldawa_aggregate_with_deltas(
    global_arrays: Mapping[str, np.ndarray],
    client_arrays: Sequence[Mapping[str, np.ndarray]],
    num_examples: Sequence[float] | None = None,
    weighting: str = "uniform",
) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """:func:`ldawa_aggregate`, plus each layer's δ for every client (ndim > 0 keys only)."""
    if not client_arrays:
        raise ValueError("L-DAWA needs at least one client")
    weights = _client_weights(len(client_arrays), num_examples, weighting)
    check_same_keys(global_arrays, client_arrays, "L-DAWA")
    out: dict[str, np.ndarray] = {}
    deltas: dict[str, list[float]] = {}
    for key in global_arrays:
        reference = np.asarray(global_arrays[key])
        scaled = reference.ndim > 0
        if scaled:
            global_flat = _flat(reference)
            global_sq = float(np.dot(global_flat, global_flat))
            deltas[key] = []
        acc = np.zeros(reference.shape, accumulator_dtype(reference.dtype))
        for index, (arrays, weight) in enumerate(zip(client_arrays, weights, strict=True)):
            value = check_shape(arrays[key], key, reference.shape, index)
            coefficient = weight
            if scaled:
                delta = _cosine(_flat(value), global_flat, global_sq)
                deltas[key].append(delta)
                coefficient *= delta
            accumulate(acc, value, coefficient)
        out[key] = cast_like(acc, reference.dtype)
    return out, deltas


def ldawa_aggregate(
    global_arrays: dict[str, np.ndarray],
    client_arrays: list[dict[str, np.ndarray]],
    num_examples: list[int] | None = None,
    weighting: str = "uniform",
) -> dict[str, np.ndarray]:
    """Aggregate client models layer by layer, each layer scaled by its angular agreement.

    For every key whose array has ``ndim > 0``, client k's array is scaled by
    ``δ_k = min(cos(w_k, w_g), 1)``, the cosine between the flattened client and global
    arrays (``δ_k = 1`` where either norm is zero), and the result is the mean of the scaled
    arrays over clients: uniform (``weighting="uniform"``, the authors' code) or weighted by
    ``num_examples`` (``weighting="num-examples"``). The weights are not renormalised by
    ``Σδ``, so the aggregate shrinks slightly (δ ≤ 1 acts like weight decay). Keys with
    ``ndim == 0`` (e.g. ``num_batches_tracked``) are averaged the same way without scaling.
    BatchNorm running statistics are ordinary 1-d keys and are scaled by their own cosine.

    Negative cosines are not clipped, as in the authors' code: a client layer pointing away
    from the global layer is added with its sign flipped.

    Parameters
    ----------
    global_arrays : dict[str, np.ndarray]
        The global model the clients started the round from (w_g).
    client_arrays : list[dict[str, np.ndarray]]
        Each client's model after local training, with the global model's keys and shapes.
    num_examples : list[int], optional
        Samples per client; required for ``weighting="num-examples"``.
    weighting : str (default: "uniform")
        ``"uniform"`` (1/K) or ``"num-examples"`` (n_k / Σn).

    Returns
    -------
    dict[str, np.ndarray]
        The global model's keys, shapes and dtypes (integer arrays rounded back).
    """
    return ldawa_aggregate_with_deltas(global_arrays, client_arrays, num_examples, weighting)[0]


class LDAWA(CustomMeanStrategy):
    """L-DAWA aggregation, optionally followed by a Flower server optimiser.

    Implementation based on https://arxiv.org/abs/2307.07393 and the authors' code. For the
    first ``warmup_rounds`` rounds ``base`` aggregates as it always does (sample-weighted
    FedAvg, then its optimiser step, if any); afterwards :func:`ldawa_aggregate` replaces the
    weighted mean. With an optimiser base (FedAvgM, FedAdam, FedYogi, FedAdagrad), the L-DAWA
    aggregate minus the global model is the pseudo-gradient the optimiser applies: this
    combination is our extrapolation, the paper does not describe it.

    Each L-DAWA round reports the mean δ of every layer over the round's clients
    (``ldawa-delta/<key>``), the mean over layers (``ldawa-delta-mean``) and the smallest δ of
    the round (``ldawa-delta-min``).

    Parameters
    ----------
    base : FedAvg, optional
        Flower strategy for sampling, evaluation and the server update (default: ``FedAvg()``).
    warmup_rounds : int (default: 2)
        Rounds of plain ``base`` aggregation before L-DAWA starts (the authors use 2).
    weighting : str (default: "uniform")
        ``"uniform"`` (the authors' 1/K mean) or ``"num-examples"``.
    """

    label = "L-DAWA"

    def __init__(
        self, base: FedAvg | None = None, *, warmup_rounds: int = 2, weighting: str = "uniform"
    ) -> None:
        super().__init__(base if base is not None else FedAvg())
        if warmup_rounds < 0:
            raise ValueError(f"warmup_rounds must be >= 0, got {warmup_rounds}")
        _check_weighting(weighting)
        self.warmup_rounds = warmup_rounds
        self.weighting = weighting

    def active(self, server_round: int) -> bool:
        return server_round > self.warmup_rounds

    def combine(
        self,
        server_round: int,
        global_arrays: Mapping[str, np.ndarray],
        client_arrays: Sequence[Mapping[str, np.ndarray]],
        client_metrics: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        num_examples = [float(m[self.weighted_by_key]) for m in client_metrics]
        aggregate, deltas = ldawa_aggregate_with_deltas(
            global_arrays, client_arrays, num_examples, self.weighting
        )
        per_layer = {key: float(np.mean(values)) for key, values in deltas.items()}
        diagnostics = {f"ldawa-delta/{key}": value for key, value in per_layer.items()}
        if per_layer:
            diagnostics["ldawa-delta-mean"] = float(np.mean(list(per_layer.values())))
            diagnostics["ldawa-delta-min"] = float(min(min(v) for v in deltas.values()))
        return aggregate, diagnostics

    def summary(self) -> None:
        super().summary()
        log(INFO, "\t│\tL-DAWA: warm-up rounds %d, weighting %s", self.warmup_rounds,
            self.weighting)
