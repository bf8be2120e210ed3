"""What a strategy accumulates over rounds, for checkpoints and resume."""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import Strategy

__all__ = ["restore_strategy_state", "strategy_state"]

_NESTED = "__strategy__"


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The server-side state a strategy accumulates over rounds, as a picklable dict.

    Flower strategies keep it (FedOpt's moments m_t and v_t, FedAvgM's momentum vector and
    current arrays) in plain public attributes. Scalars and functions are configuration: on
    resume they come from the current run config, so a resumed run may change e.g.
    fraction-train. Private attributes (leading underscore) are per-round scratch. Strategies
    held by a strategy (the server optimiser inside L-DAWA) are saved recursively.
    """
    state: dict[str, Any] = {}
    for key, value in vars(strategy).items():
        if key.startswith("_") or callable(value) or isinstance(value, (bool, int, float, str)):
            continue
        state[key] = {_NESTED: strategy_state(value)} if isinstance(value, Strategy) else value
    return state


def restore_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` saved, into a strategy built from the run config."""
    for key, value in state.items():
        if isinstance(value, dict) and _NESTED in value:
            restore_strategy_state(getattr(strategy, key), value[_NESTED])
        else:
            setattr(strategy, key, value)
