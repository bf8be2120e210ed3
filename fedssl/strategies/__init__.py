"""Aggregation strategies, chosen by name in the run config.

Flower's own strategies are used as they are; :class:`GuardedStrategy` wraps whichever one is
chosen with what a long research run needs (faulty replies left out, deterministic reply
order, round offset on resume). A new aggregation rule is one file here plus one registry line.
"""

from fedssl.strategies.guard import GuardedStrategy, check_reply_arrays
from fedssl.strategies.registry import STRATEGIES, StrategyParams, build_strategy

__all__ = [
    "STRATEGIES",
    "GuardedStrategy",
    "StrategyParams",
    "build_strategy",
    "check_reply_arrays",
]
