"""FedRepOpt's client half: RepOptSGD, SGD whose gradients are multiplied by constant masks,
and the rule that trains with it when a train message carries the strategy's scales."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from fedssl.clients.instructions import LOCAL_RULES, LocalRule, StateDict
from fedssl.common import messages
from fedssl.models.repopt import repopt_grad_masks

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["RepOptMasks", "RepOptSGD"]


class RepOptSGD(torch.optim.Optimizer):
    """SGD on a plain model that trains like the multi-branch model its masks came from.

    Per parameter ``p`` with gradient ``g``: ``d = g ⊙ mask`` (mask 1 where none is given),
    ``d += weight_decay · p``, then torch's SGD momentum (``buf = d`` on the first step,
    ``buf = momentum · buf + d`` afterwards, no dampening, no Nesterov) and ``p -= lr · buf``
    (``p -= lr · d`` without momentum). With the masks of
    :func:`fedssl.models.repopt.vgg_grad_mask`, steps on the plain 3x3 kernel equal SGD steps
    on the constant-scale branches it merges (with or without momentum, without weight decay;
    weight decay is applied to the merged kernel, as in the authors' optimiser).

    Parameters
    ----------
    params : iterable of torch.nn.Parameter or parameter groups
    lr : float
        Learning rate.
    momentum : float (default: 0.0)
    weight_decay : float (default: 0.0)
        L2 penalty added to the masked gradient (give groups without it for BN and biases).
    grad_masks : dict[torch.nn.Parameter, torch.Tensor], optional
        Constant masks, each with its parameter's shape.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        grad_masks: dict[torch.nn.Parameter, torch.Tensor] | None = None,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        known = {id(p) for group in self.param_groups for p in group["params"]}
        self.grad_masks: dict[int, torch.Tensor] = {}
        for param, mask in (grad_masks or {}).items():
            if id(param) not in known:
                raise ValueError("grad_masks has a mask for a parameter the optimiser does "
                                 "not train")
            if tuple(mask.shape) != tuple(param.shape):
                raise ValueError(f"mask shape {tuple(mask.shape)} differs from its "
                                 f"parameter's {tuple(param.shape)}")
            self.grad_masks[id(param)] = mask.detach().to(param.device, param.dtype)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                d = param.grad
                mask = self.grad_masks.get(id(param))
                if mask is not None:
                    d = d * mask
                if group["weight_decay"]:
                    d = d.add(param, alpha=group["weight_decay"])
                if group["momentum"]:
                    state = self.state[param]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d.detach().clone()
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(d)
                    d = state["momentum_buffer"]
                param.add_(d, alpha=-group["lr"])
        return loss


@LOCAL_RULES.register("repopt-masks")
class RepOptMasks(LocalRule):
    """Train with :class:`RepOptSGD` and the masks of the scales the FedRepOpt strategy sends
    under ``grad-scales`` (the plain RepOpt model then learns like its multi-branch form).

    Raises ``ValueError`` (from :func:`fedssl.models.repopt.repopt_grad_masks`) when the model
    has no RepOpt blocks the scales fit.
    """

    def __init__(self, scales: Mapping[str, torch.Tensor]) -> None:
        self.scales = dict(scales)

    @classmethod
    def from_message(cls, config: Mapping[str, Any], arrays: Mapping[str, StateDict],
                     cfg: RunConfig) -> RepOptMasks | None:
        scales = arrays.get(messages.GRAD_SCALES)
        return cls(scales) if scales else None

    def optimizer(self, model: torch.nn.Module, params: Iterable, **sgd: Any) -> RepOptSGD:
        try:
            masks = repopt_grad_masks(model, self.scales)
        except ValueError as err:
            raise ValueError(f"RepOpt gradient scales (strategy=fedrepopt) need a plain RepOpt "
                             f"classifier (task=image-classification, a RepOpt model, "
                             f"repopt-mode=target); {type(model).__name__}: {err}") from None
        return RepOptSGD(params, grad_masks=masks, **sgd)

    def reply_metrics(self) -> dict[str, int]:
        return {"repopt-masks": 1}
