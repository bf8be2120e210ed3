"""The round's instructions as a task sees them, and the client halves of strategies.

A strategy sends what it wants from the clients under a key of the train message
(:mod:`fedssl.common.messages`): FedProx its ``proximal-mu``, FedRepOpt its per-channel scales.
Each such key has a small client half here, a :class:`LocalRule`, registered in
:data:`LOCAL_RULES`. :meth:`RoundInstructions.from_message` asks every rule whether the
message (or the run config) calls for it; a task only ever asks the instructions for its
optimiser, its extra loss term and the state to start from, so a new strategy's client half
is one new rule and no change to any task.

Nothing here imports Flower: the ClientApp hands over the message's config as a plain mapping
and its extra array records as state dicts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from fedssl.common import messages
from fedssl.common.registry import Registry

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["LOCAL_RULES", "LocalRule", "RoundInstructions", "StateDict"]

StateDict = dict[str, torch.Tensor]


class LocalRule(ABC):
    """One strategy's client half. Override only the hooks the strategy needs.

    Subclasses register with ``@LOCAL_RULES.register(name)`` and implement
    :meth:`from_message`, which returns an instance when the round calls for the rule.
    """

    @classmethod
    @abstractmethod
    def from_message(cls, config: Mapping[str, Any], arrays: Mapping[str, StateDict],
                     cfg: RunConfig) -> LocalRule | None:
        """The rule for this round, or ``None`` when the message does not ask for it."""

    def start_state(self, incoming: StateDict, kept: StateDict | None
                    ) -> tuple[StateDict, bool] | None:
        """The state to train from, and whether the node's kept arrays are in it; ``None``:
        the server's arrays as they are."""
        return None

    def optimizer(self, model: torch.nn.Module, params: Iterable, **sgd: Any
                  ) -> torch.optim.Optimizer | None:
        """An optimiser that replaces plain SGD over ``params`` (``sgd``: lr, momentum,
        weight_decay as the task chose them); ``None``: no opinion."""
        return None

    def penalty(self, model: torch.nn.Module) -> Callable[[], torch.Tensor | float] | None:
        """A term added to the task's loss at every step (made once, before the first)."""
        return None

    def keep(self, trained: StateDict) -> StateDict | None:
        """Arrays the node keeps for its next round (in its ``Context.state``)."""
        return None

    def reply_metrics(self) -> dict[str, int | float]:
        """Metrics the rule adds to the reply (after :meth:`start_state` ran)."""
        return {}


LOCAL_RULES: Registry[type[LocalRule]] = Registry("local rule")


@dataclass(frozen=True)
class RoundInstructions:
    """What the server asks of one client in one round: a typed view of the train message.

    Attributes
    ----------
    server_round
        The round number the strategy set (``server-round``).
    rules
        The client halves of the strategy that apply this round (often none).
    """

    server_round: int
    rules: tuple[LocalRule, ...] = ()

    @classmethod
    def from_message(cls, config: Mapping[str, Any], arrays: Mapping[str, StateDict],
                     cfg: RunConfig) -> RoundInstructions:
        """Read a train message: ``config`` its config record, ``arrays`` its array records
        other than the model's (as state dicts)."""
        rules = tuple(rule for rule_cls in LOCAL_RULES.values()
                      if (rule := rule_cls.from_message(config, arrays, cfg)) is not None)
        return cls(server_round=int(config.get(messages.SERVER_ROUND, 0)), rules=rules)

    def start_state(self, incoming: StateDict, kept: StateDict | None
                    ) -> tuple[StateDict, bool]:
        """The state the model loads before training (see :meth:`LocalRule.start_state`)."""
        for rule in self.rules:
            if (chosen := rule.start_state(incoming, kept)) is not None:
                return chosen
        return incoming, False

    def optimizer(self, model: torch.nn.Module, params: Iterable, **sgd: Any
                  ) -> torch.optim.Optimizer:
        """The local optimiser: a rule's (FedRepOpt's masked SGD) or ``torch.optim.SGD``."""
        params = list(params)
        for rule in self.rules:
            if (optimizer := rule.optimizer(model, params, **sgd)) is not None:
                return optimizer
        return torch.optim.SGD(params, **sgd)

    def penalty(self, model: torch.nn.Module) -> Callable[[], torch.Tensor | float]:
        """The sum of the rules' loss terms (FedProx's proximal term); ``0.0`` without one.

        Call it after the model holds the round's starting weights: a term may anchor them.
        """
        terms = [t for rule in self.rules if (t := rule.penalty(model)) is not None]
        if not terms:
            return lambda: 0.0
        if len(terms) == 1:
            return terms[0]
        return lambda: sum(term() for term in terms)

    def keep(self, trained: StateDict) -> StateDict | None:
        """What the node keeps for its next round, if a rule keeps anything."""
        for rule in self.rules:
            if (kept := rule.keep(trained)) is not None:
                return kept
        return None

    def reply_metrics(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        for rule in self.rules:
            out |= rule.reply_metrics()
        return out
