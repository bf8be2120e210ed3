"""Partial weight updating (FedVSSL): take some arrays from the server, keep the rest local.

A client loads only the global arrays whose key starts with a prefix (``backbone.``) and keeps
its own copy of every other array (projection and prediction heads, momentum encoders) from
one round it takes part in to the next. The kept arrays live in the node's ``Context.state``,
which Flower keeps per node for the whole run, in simulation and deployment alike (the
ClientApp stores what :meth:`PartialLoading.keep` returns under
:data:`fedssl.common.messages.LOCAL_ARRAYS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from fedssl.clients.instructions import LOCAL_RULES, LocalRule, StateDict
from fedssl.common import messages

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = [
    "LOCAL_ARRAYS_KEY",
    "PartialLoading",
    "merge_partial",
    "split_by_prefix",
]

LOCAL_ARRAYS_KEY = messages.LOCAL_ARRAYS


def split_by_prefix(
    state: Mapping[str, torch.Tensor], prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(shared, local)``: the entries whose key starts with ``prefix``, and all others.

    Raises ``ValueError`` when the prefix matches no key, naming the prefixes that exist.
    """
    shared = {k: v for k, v in state.items() if k.startswith(prefix)}
    if not shared:
        tops = sorted({k.split(".", 1)[0] + "." for k in state})
        raise ValueError(
            f"partial-prefix={prefix!r} matches none of the model's keys; "
            f"the model's keys start with: {', '.join(tops)}"
        )
    local = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return shared, local


def merge_partial(
    global_state: Mapping[str, torch.Tensor],
    local_state: Mapping[str, torch.Tensor] | None,
    prefix: str,
) -> tuple[dict[str, torch.Tensor], bool]:
    """The state a partially updating client trains from, and whether its own arrays are in it.

    Keys with ``prefix`` come from ``global_state``; every other key from ``local_state``, the
    client's own arrays after its last round. Without a local state (the client's first
    round, or a model whose keys changed) the whole global state is used.
    """
    shared, local_keys = split_by_prefix(global_state, prefix)
    if local_state is None or set(local_state) != set(local_keys):
        return dict(global_state), False
    return {k: shared[k] if k in shared else local_state[k] for k in global_state}, True


@LOCAL_RULES.register("partial-loading")
class PartialLoading(LocalRule):
    """FedVSSL's client half, on when the run sets ``partial-prefix``: train from the
    server's arrays under the prefix and the node's own for the rest, and keep the rest."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.used_kept = False

    @classmethod
    def from_message(cls, config: Mapping[str, Any], arrays: Mapping[str, StateDict],
                     cfg: RunConfig) -> PartialLoading | None:
        return cls(cfg.partial_prefix) if cfg.partial_prefix else None

    def start_state(self, incoming: StateDict, kept: StateDict | None
                    ) -> tuple[StateDict, bool]:
        state, self.used_kept = merge_partial(incoming, kept, self.prefix)
        return state, self.used_kept

    def keep(self, trained: StateDict) -> StateDict:
        _, local = split_by_prefix(trained, self.prefix)
        return {k: v.detach().cpu() for k, v in local.items()}

    def reply_metrics(self) -> dict[str, int]:
        # 1 when this round started from the client's own non-shared arrays.
        return {messages.PARTIAL_LOCAL_ARRAYS_USED: int(self.used_kept)}
