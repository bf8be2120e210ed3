"""RepOptSGD: SGD whose gradients are multiplied by constant masks (FedRepOpt's local optimiser)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = ["RepOptSGD"]


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
