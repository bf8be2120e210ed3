"""Flower reply messages as a SuperLink would hand them to a strategy (for strategy tests)."""

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.app.error import Error
from flwr.supercore.task_identity import TaskIdentity


def set_task_identity() -> None:
    """Messages built outside a running ServerApp need a task identity."""
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1


def reply(node_id: int, arrays: dict[str, np.ndarray] | None, metrics: dict | None = None,
          *, error: bool = False) -> Message:
    """A train reply from ``node_id`` carrying ``arrays`` and ``metrics`` (or an error)."""
    instruction = Message(RecordDict({"config": ConfigRecord()}), dst_node_id=node_id,
                          message_type=MessageType.TRAIN)
    if error:
        msg = Message(Error(code=2, reason="Traceback...\nRuntimeError: boom"),
                      reply_to=instruction)
    else:
        content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                              "metrics": MetricRecord(metrics or {})})
        msg = Message(content, reply_to=instruction)
    msg.metadata.__dict__["_src_node_id"] = node_id
    return msg


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})


def numpy_of(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: a.numpy() for k, a in arrays.items()}


class FakeGrid:
    """The part of a Grid that Flower's node sampling reads."""

    def __init__(self, node_ids) -> None:
        self.node_ids = list(node_ids)

    def get_node_ids(self):
        return self.node_ids
