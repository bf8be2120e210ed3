"""Partial weight updating (FedVSSL): take some arrays from the server, keep the rest local.

A client loads only the global arrays whose key starts with a prefix (``backbone.``) and keeps
its own copy of every other array (projection and prediction heads, momentum encoders) from
one round it takes part in to the next. The kept arrays live in the node's ``Context.state``,
which Flower keeps per node for the whole run, in simulation and deployment alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from flwr.app import ArrayRecord, RecordDict

__all__ = [
    "LOCAL_ARRAYS_KEY",
    "merge_partial",
    "recall_local",
    "remember_local",
    "split_by_prefix",
]

LOCAL_ARRAYS_KEY = "partial-local-arrays"


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


def remember_local(state: RecordDict, model_state: Mapping[str, torch.Tensor], prefix: str) -> None:
    """Keep the non-shared arrays of ``model_state`` in a node's ``Context.state``."""
    _, local = split_by_prefix(model_state, prefix)
    state[LOCAL_ARRAYS_KEY] = ArrayRecord({k: v.detach().cpu() for k, v in local.items()})


def recall_local(state: RecordDict) -> dict[str, torch.Tensor] | None:
    """The arrays :func:`remember_local` kept, or ``None`` before the first round."""
    if LOCAL_ARRAYS_KEY not in state.array_records:
        return None
    return dict(state.array_records[LOCAL_ARRAYS_KEY].to_torch_state_dict())
