"""Flower ClientApp: unpack the message, call the client task, reply with arrays and metrics."""

from __future__ import annotations

import functools

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedssl.clients import get_task
from fedssl.clients.partial import merge_partial, recall_local, remember_local
from fedssl.config import RunConfig
from fedssl.strategies.fedrepopt import GRAD_SCALES_KEY

app = ClientApp()


@functools.lru_cache(maxsize=4)
def _config(items: frozenset, node_data_dir: str) -> RunConfig:
    run_config = dict(items)
    if node_data_dir:
        # In deployment every SuperNode keeps its data at its own path
        # (`fedssl deploy supernode --data-dir`); it wins over the run's data-dir, which
        # names the path on the SuperLink's machine (central evaluation).
        run_config["data-dir"] = node_data_dir
    return RunConfig.from_run_config(run_config)


def _setup(context: Context):
    cfg = _config(frozenset(context.run_config.items()),
                  str(context.node_config.get("data-dir", "")))
    pid = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    task = get_task(cfg.task)
    return cfg, task, pid, num_partitions


def _incoming_state(
    msg: Message, context: Context, cfg: RunConfig
) -> tuple[dict[str, torch.Tensor], bool]:
    """The server's arrays, or with partial-prefix set, its shared part plus our own rest;
    and whether our own arrays were used."""
    state = msg.content["arrays"].to_torch_state_dict()
    if not cfg.partial_prefix:
        return state, False
    return merge_partial(state, recall_local(context.state), cfg.partial_prefix)


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, task, pid, num_partitions = _setup(context)
    if pid == cfg.fault_partition and cfg.fault_kind == "raise":
        raise RuntimeError(f"fault injected in partition {pid} (fault-kind=raise)")
    config = msg.content["config"]
    model = task.cached_model(cfg)
    state, kept_local = _incoming_state(msg, context, cfg)
    model.load_state_dict(state)
    metrics = task.train(
        model,
        cfg,
        partition_id=pid,
        num_partitions=num_partitions,
        server_round=int(config["server-round"]),
        proximal_mu=float(config.get("proximal-mu", 0.0)),
        grad_scales=_grad_scales(msg),
    )
    state = model.state_dict()
    if cfg.partial_prefix:
        remember_local(context.state, state, cfg.partial_prefix)
        # 1 when this round started from the client's own non-shared arrays.
        metrics["partial-local-arrays"] = int(kept_local)
    if pid == cfg.fault_partition:
        state = inject_fault(state, cfg.fault_kind)
    return Message(
        RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}),
        reply_to=msg,
    )


def _grad_scales(msg: Message) -> dict[str, torch.Tensor] | None:
    """FedRepOpt's per-channel scales, when the strategy sent them with the instructions."""
    if GRAD_SCALES_KEY not in msg.content.array_records:
        return None
    return msg.content.array_records[GRAD_SCALES_KEY].to_torch_state_dict()


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    cfg, task, pid, num_partitions = _setup(context)
    model = task.cached_model(cfg)
    model.load_state_dict(_incoming_state(msg, context, cfg)[0])
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


def inject_fault(state: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Corrupt a reply the way a broken client would (fault-kind = nan | shape | keys)."""
    state = dict(state)
    first = next(k for k, v in state.items() if v.is_floating_point())
    if kind == "nan":
        state[first] = torch.full_like(state[first], float("nan"))
    elif kind == "shape":
        state[first] = torch.zeros((*state[first].shape, 2), dtype=state[first].dtype)
    elif kind == "keys":
        del state[first]
    return state
