"""The aggregation strategies (``strategy``) and server optimisers (``server-optimizer``).

:data:`STRATEGIES`: each entry a builder ``(StrategyParams) -> flwr Strategy``
(:mod:`fedssl.strategies.registry`). Tags:

``replaces_mean``
    ``True`` for strategies that replace the client mean (L-DAWA, FedVSSL) and so hand their
    result to a server optimiser (``server-optimizer``).
``check``
    ``(cfg, models) -> list[str]``: what in the run config does not fit the strategy (each
    entry a whole sentence naming the key, the value and the fix). The composer asks it and
    hands it the model registry (``models.tags(name)``, ``models.names(**tags)``). Like
    everything in the catalogue it imports no torch and no Flower.
``warn``
    ``(cfg) -> list[str]``: settings that are valid but probably not meant (logged).

:data:`SERVER_OPTIMIZERS`: what a strategy that replaces the client mean may hand its result
to: Flower's FedAvg (``none``) or one of its server-optimiser subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fedssl.common.registry import Registry

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = [
    "LDAWA_WEIGHTINGS",
    "SERVER_OPTIMIZERS",
    "STRATEGIES",
    "StrategyParams",
    "check_fedrepopt",
    "check_ldawa",
    "warn_fedvssl",
]

#: How L-DAWA weights the clients it averages (``ldawa-weighting``).
LDAWA_WEIGHTINGS: tuple[str, ...] = ("uniform", "num-examples")


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


def check_ldawa(cfg: RunConfig, models: Registry) -> list[str]:
    """L-DAWA's weighting must be one it knows."""
    if cfg.ldawa_weighting not in LDAWA_WEIGHTINGS:
        return [f"ldawa-weighting={cfg.ldawa_weighting!r} is not valid; choose one of: "
                f"{', '.join(LDAWA_WEIGHTINGS)}"]
    return []


def warn_fedvssl(cfg: RunConfig) -> list[str]:
    """FedVSSL without partial loading is probably not the paper's FedVSSL."""
    if not cfg.partial_prefix:
        return ["strategy=fedvssl with partial-prefix empty: clients load the whole global "
                "model (the paper's FedVSSL uses partial-prefix=backbone.)"]
    return []


def check_fedrepopt(cfg: RunConfig, models: Registry) -> list[str]:
    """FedRepOpt trains a plain RepOpt classifier from hyper-searched scales."""
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


_BUILDERS = "fedssl.strategies.registry"

STRATEGIES: Registry[Any] = Registry("strategy")
for _name in ("fedavg", "fedavgm", "fedprox", "fedadam", "fedyogi", "fedadagrad", "fedmedian",
              "fedtrimmedavg", "krum"):
    STRATEGIES.declare(_name, f"{_BUILDERS}:build_{_name}", replaces_mean=False)
STRATEGIES.declare("ldawa", f"{_BUILDERS}:build_ldawa", replaces_mean=True, check=check_ldawa)
STRATEGIES.declare("fedvssl", f"{_BUILDERS}:build_fedvssl", replaces_mean=True,
                   warn=warn_fedvssl)
STRATEGIES.declare("fedrepopt", f"{_BUILDERS}:build_fedrepopt", replaces_mean=False,
                   check=check_fedrepopt)

SERVER_OPTIMIZERS: Registry[Any] = Registry("server optimiser")
SERVER_OPTIMIZERS.declare("none", f"{_BUILDERS}:build_fedavg")
for _name in ("fedavgm", "fedadam", "fedyogi", "fedadagrad"):
    SERVER_OPTIMIZERS.declare(_name, f"{_BUILDERS}:build_{_name}")
