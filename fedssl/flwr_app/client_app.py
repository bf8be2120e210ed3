"""Flower ClientApp: unpack the message, call the client task, reply with arrays and metrics."""

from __future__ import annotations

import functools

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedssl.clients import get_task
from fedssl.config import RunConfig

app = ClientApp()


@functools.lru_cache(maxsize=4)
def _config(items: frozenset) -> RunConfig:
    return RunConfig.from_run_config(dict(items))


def _setup(context: Context):
    cfg = _config(frozenset(context.run_config.items()))
    pid = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    task = get_task(cfg.task)
    return cfg, task, pid, num_partitions


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, task, pid, num_partitions = _setup(context)
    if pid == cfg.fault_partition and cfg.fault_kind == "raise":
        raise RuntimeError(f"fault injected in partition {pid} (fault-kind=raise)")
    config = msg.content["config"]
    model = task.cached_model(cfg)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    metrics = task.train(
        model,
        cfg,
        partition_id=pid,
        num_partitions=num_partitions,
        server_round=int(config["server-round"]),
        proximal_mu=float(config.get("proximal-mu", 0.0)),
    )
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    if pid == cfg.fault_partition:
        arrays = inject_fault(arrays, cfg.fault_kind)
    return Message(
        RecordDict({"arrays": to_array_record(arrays), "metrics": MetricRecord(metrics)}),
        reply_to=msg,
    )


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    cfg, task, pid, num_partitions = _setup(context)
    model = task.cached_model(cfg)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    metrics = task.evaluate_local(model, cfg, partition_id=pid, num_partitions=num_partitions)
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds (node ids are random per run)."""
    metrics = MetricRecord(
        {
            "partition-id": int(context.node_config["partition-id"]),
            "num-partitions": int(context.node_config["num-partitions"]),
        }
    )
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


def inject_fault(arrays: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """Corrupt a reply the way a broken client would (fault-kind = nan | shape | keys)."""
    arrays = dict(arrays)
    first = next(k for k, v in arrays.items() if v.dtype.kind == "f")
    if kind == "nan":
        arrays[first] = np.full_like(arrays[first], np.nan)
    elif kind == "shape":
        arrays[first] = np.zeros((*arrays[first].shape, 2), dtype=arrays[first].dtype)
    elif kind == "keys":
        del arrays[first]
    return arrays


def to_array_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})
