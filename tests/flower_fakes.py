"""Flower reply messages as a SuperLink would hand them to a strategy (for strategy tests), and
a Grid that runs the real ClientApp in this process (for ServerApp tests without processes)."""

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.app.error import Error
from flwr.supercore.task_identity import TaskIdentity

from fedssl.flwr_app import client_app


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


class InProcessGrid:
    """A Grid whose nodes are the real ClientApp functions, called in this process."""

    def __init__(self, cfg, num_nodes: int) -> None:
        self.contexts = {
            1000 + p: Context(run_id=1, node_id=1000 + p, state=RecordDict(),
                              node_config={"partition-id": p, "num-partitions": num_nodes},
                              run_config=cfg.to_run_config())
            for p in range(num_nodes)
        }

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages, timeout=None):
        handlers = {MessageType.TRAIN: client_app.train, MessageType.EVALUATE: client_app.evaluate,
                    MessageType.QUERY: client_app.query}
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            reply = handlers[msg.metadata.message_type](msg, self.contexts[node])
            reply.metadata.__dict__["_src_node_id"] = node
            replies.append(reply)
        return replies
