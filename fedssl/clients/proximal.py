"""FedProx's client half: the proximal term ``mu/2 · ||w - w_global||²``.

Flower's ``FedProx`` strategy only sends ``proximal-mu`` with the train config; the term is the
client's (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from fedssl.clients.instructions import LOCAL_RULES, LocalRule, StateDict
from fedssl.common import messages

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["ProximalRule", "ProximalTerm"]


class ProximalTerm:
    """``mu/2 · ||w - w_global||²`` over ``params``, anchored at their values when made.
    Zero (and no copy of the weights kept) when ``mu`` is 0."""

    def __init__(self, params: list[torch.nn.Parameter], mu: float) -> None:
        self.mu = mu
        self.params = params
        self.anchors = [p.detach().clone() for p in params] if mu > 0 else []

    def __call__(self) -> torch.Tensor | float:
        if not self.anchors:
            return 0.0
        pairs = zip(self.params, self.anchors, strict=True)
        return 0.5 * self.mu * sum(((p - g) ** 2).sum() for p, g in pairs)


@LOCAL_RULES.register("proximal")
class ProximalRule(LocalRule):
    """Adds the proximal term when the train config carries ``proximal-mu``."""

    def __init__(self, mu: float) -> None:
        self.mu = mu

    @classmethod
    def from_message(cls, config: Mapping[str, Any], arrays: Mapping[str, StateDict],
                     cfg: RunConfig) -> ProximalRule | None:
        if messages.PROXIMAL_MU not in config:
            return None
        return cls(float(config[messages.PROXIMAL_MU]))

    def penalty(self, model: torch.nn.Module) -> ProximalTerm:
        return ProximalTerm([p for p in model.parameters() if p.requires_grad], self.mu)
