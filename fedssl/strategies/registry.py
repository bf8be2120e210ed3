"""Name -> Flower strategy builder. An unknown name raises ValueError listing the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

__all__ = ["IDENTITY_METRICS", "STRATEGIES", "StrategyParams", "build_strategy"]

# Metrics that identify a reply rather than measure it: never averaged across clients.
IDENTITY_METRICS = ("partition-id",)


@dataclass(frozen=True)
class StrategyParams:
    """Server-side settings shared by all strategies (see the run-config keys of the same name)."""

    fraction_train: float = 1.0
    fraction_evaluate: float = 0.0
    min_train_nodes: int = 2
    min_available_nodes: int = 2
    server_lr: float = 1.0
    server_momentum: float = 0.9
    proximal_mu: float = 0.01
    fedopt_tau: float = 1e-3
    fedopt_beta1: float = 0.9
    fedopt_beta2: float = 0.99
    trimmed_beta: float = 0.2
    krum_num_malicious: int = 0


def aggregate_client_metrics(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Flower's weighted metric average, leaving out identity keys such as ``partition-id``."""
    cleaned = []
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        kept = {k: v for k, v in metrics.items() if k not in IDENTITY_METRICS}
        cleaned.append(RecordDict({"metrics": MetricRecord(kept)}))
    return aggregate_metricrecords(cleaned, weight_key)


def _common(p: StrategyParams) -> dict:
    return {
        "fraction_train": p.fraction_train,
        "fraction_evaluate": p.fraction_evaluate,
        "min_train_nodes": p.min_train_nodes,
        "min_evaluate_nodes": max(1, min(p.min_train_nodes, p.min_available_nodes)),
        "min_available_nodes": p.min_available_nodes,
        "train_metrics_aggr_fn": aggregate_client_metrics,
        "evaluate_metrics_aggr_fn": aggregate_client_metrics,
    }


def _fedopt(p: StrategyParams) -> dict:
    return {"eta": p.server_lr, "tau": p.fedopt_tau}


def _betas(p: StrategyParams) -> dict:
    return {"beta_1": p.fedopt_beta1, "beta_2": p.fedopt_beta2}


STRATEGIES: dict[str, Callable[[StrategyParams], Strategy]] = {
    "fedavg": lambda p: FedAvg(**_common(p)),
    "fedavgm": lambda p: FedAvgM(
        **_common(p), server_learning_rate=p.server_lr, server_momentum=p.server_momentum
    ),
    "fedprox": lambda p: FedProx(**_common(p), proximal_mu=p.proximal_mu),
    "fedadam": lambda p: FedAdam(**_common(p), **_fedopt(p), **_betas(p)),
    "fedyogi": lambda p: FedYogi(**_common(p), **_fedopt(p), **_betas(p)),
    "fedadagrad": lambda p: FedAdagrad(**_common(p), **_fedopt(p)),
    "fedmedian": lambda p: FedMedian(**_common(p)),
    "fedtrimmedavg": lambda p: FedTrimmedAvg(**_common(p), beta=p.trimmed_beta),
    "krum": lambda p: Krum(**_common(p), num_malicious_nodes=p.krum_num_malicious),
}


def build_strategy(name: str, params: StrategyParams) -> Strategy:
    """Build the Flower strategy registered under ``name``."""
    try:
        builder = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}"
        ) from None
    return builder(params)
