"""The strategies' builders: name -> Flower strategy, one ``build_<name>(StrategyParams)`` each.

The names, tags (``replaces_mean``, ``check``, ``warn``) and config checks are declared in
:mod:`fedssl.catalogue.strategies`, which points at the builders here and imports neither
Flower nor this module; :data:`STRATEGIES` and :data:`SERVER_OPTIMIZERS` are its registries.
An unknown name raises ValueError listing the valid ones.
"""

from __future__ import annotations

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

from fedssl.catalogue.strategies import SERVER_OPTIMIZERS, STRATEGIES, StrategyParams
from fedssl.common.messages import IDENTITY_METRICS
from fedssl.common.scales import load_scales
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


def build_fedavg(p: StrategyParams) -> FedAvg:
    return FedAvg(**_common(p))


def build_fedavgm(p: StrategyParams) -> FedAvgM:
    return FedAvgM(**_common(p), server_learning_rate=p.server_lr,
                   server_momentum=p.server_momentum)


def build_fedprox(p: StrategyParams) -> FedProx:
    return FedProx(**_common(p), proximal_mu=p.proximal_mu)


def build_fedadam(p: StrategyParams) -> FedAdam:
    return FedAdam(**_common(p), **_fedopt(p), **_betas(p))


def build_fedyogi(p: StrategyParams) -> FedYogi:
    return FedYogi(**_common(p), **_fedopt(p), **_betas(p))


def build_fedadagrad(p: StrategyParams) -> FedAdagrad:
    return FedAdagrad(**_common(p), **_fedopt(p))


def build_fedmedian(p: StrategyParams) -> FedMedian:
    return FedMedian(**_common(p))


def build_fedtrimmedavg(p: StrategyParams) -> FedTrimmedAvg:
    return FedTrimmedAvg(**_common(p), beta=p.trimmed_beta)


def build_krum(p: StrategyParams) -> Krum:
    return Krum(**_common(p), num_malicious_nodes=p.krum_num_malicious)


def build_ldawa(p: StrategyParams) -> LDAWA:
    return LDAWA(_server_optimizer(p), warmup_rounds=p.ldawa_warmup_rounds,
                 weighting=p.ldawa_weighting)


def build_fedvssl(p: StrategyParams) -> FedVSSL:
    return FedVSSL(_server_optimizer(p), alpha=p.fedvssl_alpha, beta=p.fedvssl_beta)


def build_fedrepopt(p: StrategyParams) -> FedRepOpt:
    return FedRepOpt(_repopt_scales(p), **_common(p))


# Strategies that replace the client mean and so can hand it to a server optimiser.
ACCEPTS_SERVER_OPTIMIZER = STRATEGIES.names(replaces_mean=True)


def _repopt_scales(p: StrategyParams) -> dict:
    if not p.repopt_scales:
        raise ValueError("strategy=fedrepopt needs repopt-scales, the file `fedssl hyper-search` "
                         "writes")
    return load_scales(p.repopt_scales)


def _server_optimizer(p: StrategyParams) -> FedAvg:
    try:
        build = SERVER_OPTIMIZERS[p.server_optimizer]
    except KeyError:
        raise ValueError(
            f"unknown server optimiser {p.server_optimizer!r}; "
            f"valid: {', '.join(SERVER_OPTIMIZERS)}"
        ) from None
    return build(p)


def build_strategy(name: str, params: StrategyParams) -> Strategy:
    """Build the Flower strategy registered under ``name``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](params)
