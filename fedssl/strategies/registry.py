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

from fedssl.strategies.fedrepopt import FedRepOpt
from fedssl.strategies.fedvssl import FedVSSL
from fedssl.strategies.ldawa import LDAWA

__all__ = [
    "ACCEPTS_SERVER_OPTIMIZER",
    "IDENTITY_METRICS",
    "SERVER_OPTIMIZERS",
    "STRATEGIES",
    "StrategyParams",
    "build_strategy",
]

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
    fedopt_eta: float = 1e-2
    fedopt_tau: float = 1e-3
    fedopt_beta1: float = 0.9
    fedopt_beta2: float = 0.99
    trimmed_beta: float = 0.2
    krum_num_malicious: int = 0
    server_optimizer: str = "none"
    ldawa_warmup_rounds: int = 2
    ldawa_weighting: str = "uniform"
    fedvssl_alpha: float = 0.9
    fedvssl_beta: float = 1.0
    repopt_scales: str = ""


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
    return {"eta": p.fedopt_eta, "tau": p.fedopt_tau}


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
    "ldawa": lambda p: LDAWA(
        _server_optimizer(p), warmup_rounds=p.ldawa_warmup_rounds, weighting=p.ldawa_weighting
    ),
    "fedvssl": lambda p: FedVSSL(_server_optimizer(p), alpha=p.fedvssl_alpha, beta=p.fedvssl_beta),
    "fedrepopt": lambda p: FedRepOpt(_repopt_scales(p), **_common(p)),
}

# Strategies that replace the client mean and so can hand it to a server optimiser.
ACCEPTS_SERVER_OPTIMIZER = ("ldawa", "fedvssl")

# What strategies that replace the client mean (ldawa, fedvssl) may hand their result to:
# Flower's FedAvg (no server optimiser) or one of its server-optimiser subclasses.
SERVER_OPTIMIZERS: dict[str, Callable[[StrategyParams], FedAvg]] = {
    "none": STRATEGIES["fedavg"],
    "fedavgm": STRATEGIES["fedavgm"],
    "fedadam": STRATEGIES["fedadam"],
    "fedyogi": STRATEGIES["fedyogi"],
    "fedadagrad": STRATEGIES["fedadagrad"],
}


def _repopt_scales(p: StrategyParams) -> dict:
    if not p.repopt_scales:
        raise ValueError("strategy=fedrepopt needs repopt-scales, the file `fedssl hyper-search` "
                         "writes")
    from fedssl.clients.hyper_search import load_scales

    return load_scales(p.repopt_scales)


def _server_optimizer(p: StrategyParams) -> FedAvg:
    try:
        return SERVER_OPTIMIZERS[p.server_optimizer](p)
    except KeyError:
        raise ValueError(
            f"unknown server optimiser {p.server_optimizer!r}; "
            f"valid: {', '.join(SERVER_OPTIMIZERS)}"
        ) from None


def build_strategy(name: str, params: StrategyParams) -> Strategy:
    """Build the Flower strategy registered under ``name``."""
    try:
        builder = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}"
        ) from None
    return builder(params)
