"""The strategy registry: name -> Flower strategy builder, tagged.

Each entry is a builder ``(StrategyParams) -> Strategy``. Tags:

``replaces_mean``
    ``True`` for strategies that replace the client mean (L-DAWA, FedVSSL) and so hand their
    result to a server optimiser (``server-optimizer``).
``check``
    ``(cfg, models) -> list[str]``: what in the run config does not fit the strategy (each
    entry a whole sentence naming the key, the value and the fix). The composer asks it and
    hands it the model registry (``models.tags(name)``, ``models.names(**tags)``), which this
    package does not import.
``warn``
    ``(cfg) -> list[str]``: settings that are valid but probably not meant (logged).

An unknown name raises ValueError listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

from fedssl.common.messages import IDENTITY_METRICS
from fedssl.common.registry import Registry
from fedssl.common.scales import load_scales
from fedssl.strategies.fedrepopt import FedRepOpt
from fedssl.strategies.fedvssl import FedVSSL
from fedssl.strategies.ldawa import LDAWA, LDAWA_WEIGHTINGS

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = [
    "ACCEPTS_SERVER_OPTIMIZER",
    "IDENTITY_METRICS",
    "SERVER_OPTIMIZERS",
    "STRATEGIES",
    "StrategyParams",
    "build_strategy",
]

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


def _check_ldawa(cfg: RunConfig, models: Registry) -> list[str]:
    if cfg.ldawa_weighting not in LDAWA_WEIGHTINGS:
        return [f"ldawa-weighting={cfg.ldawa_weighting!r} is not valid; choose one of: "
                f"{', '.join(LDAWA_WEIGHTINGS)}"]
    return []


def _warn_fedvssl(cfg: RunConfig) -> list[str]:
    if not cfg.partial_prefix:
        return ["strategy=fedvssl with partial-prefix empty: clients load the whole global "
                "model (the paper's FedVSSL uses partial-prefix=backbone.)"]
    return []


def _check_fedrepopt(cfg: RunConfig, models: Registry) -> list[str]:
    wrong = []
    if cfg.task != "image-classification":
        wrong.append(f"task={cfg.task!r} (needs image-classification)")
    if models.tags(cfg.model).get("family") != "repopt":
        wrong.append(f"model={cfg.model!r} (needs one of "
                     f"{', '.join(models.names(family='repopt'))})")
    if cfg.repopt_mode != "target":
        wrong.append(f"repopt-mode={cfg.repopt_mode!r} (needs target)")
    if not cfg.repopt_scales:
        wrong.append("repopt-scales='' (needs the file `fedssl hyper-search` writes)")
    if wrong:
        return ["strategy=fedrepopt trains a plain RepOpt model with masked gradients; fix: "
                + "; ".join(wrong)]
    return []


STRATEGIES: Registry[Callable[[StrategyParams], Strategy]] = Registry("strategy")
for _name, _build in {
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
}.items():
    STRATEGIES.register(_name, _build, replaces_mean=False)
STRATEGIES.register(
    "ldawa",
    lambda p: LDAWA(_server_optimizer(p), warmup_rounds=p.ldawa_warmup_rounds,
                    weighting=p.ldawa_weighting),
    replaces_mean=True, check=_check_ldawa)
STRATEGIES.register(
    "fedvssl", lambda p: FedVSSL(_server_optimizer(p), alpha=p.fedvssl_alpha, beta=p.fedvssl_beta),
    replaces_mean=True, warn=_warn_fedvssl)
STRATEGIES.register("fedrepopt", lambda p: FedRepOpt(_repopt_scales(p), **_common(p)),
                    replaces_mean=False, check=_check_fedrepopt)

# Strategies that replace the client mean and so can hand it to a server optimiser.
ACCEPTS_SERVER_OPTIMIZER = STRATEGIES.names(replaces_mean=True)

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
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](params)
