"""Aggregation strategies, chosen by name in the run config.

Flower's own strategies are used as they are; :class:`GuardedStrategy` wraps whichever one is
chosen with what a long research run needs (faulty replies left out, deterministic reply
order, round offset on resume). L-DAWA and FedVSSL replace only the client mean
(:class:`CustomMeanStrategy`): sampling and the server optimiser stay Flower's. A new
aggregation rule is one file here (a pure numeric core plus a thin strategy) and one registry
line.
"""

from fedssl.strategies.custom_mean import CustomMeanStrategy
from fedssl.strategies.fedvssl import FedVSSL, fedvssl_aggregate
from fedssl.strategies.guard import GuardedStrategy, check_reply_arrays
from fedssl.strategies.ldawa import LDAWA, ldawa_aggregate
from fedssl.strategies.registry import (
    SERVER_OPTIMIZERS,
    STRATEGIES,
    StrategyParams,
    build_strategy,
)
from fedssl.strategies.state import restore_strategy_state, strategy_state

__all__ = [
    "LDAWA",
    "SERVER_OPTIMIZERS",
    "STRATEGIES",
    "CustomMeanStrategy",
    "FedVSSL",
    "GuardedStrategy",
    "StrategyParams",
    "build_strategy",
    "check_reply_arrays",
    "fedvssl_aggregate",
    "ldawa_aggregate",
    "restore_strategy_state",
    "strategy_state",
]
