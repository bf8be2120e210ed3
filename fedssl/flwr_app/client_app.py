"""Flower ClientApp: unpack the message, call the client task, reply with arrays and metrics.

The train message becomes the task's :class:`~fedssl.clients.RoundInstructions` (which find
the strategy's client half by the message's keys); the node's ``Context.state`` keeps what a
rule keeps between rounds (FedVSSL's local heads). No strategy is imported here.
"""

from __future__ import annotations

import functools

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedssl.clients import ClientTask, RoundInstructions, get_task
from fedssl.common import messages
from fedssl.config import RunConfig

__all__ = ["app", "inject_fault"]

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


def _setup(context: Context) -> tuple[RunConfig, ClientTask, int, int]:
    cfg = _config(frozenset(context.run_config.items()),
                  str(context.node_config.get("data-dir", "")))
    pid = int(context.node_config[messages.PARTITION_ID])
    return cfg, get_task(cfg.task), pid, int(context.node_config[messages.NUM_PARTITIONS])


def _instructions(msg: Message, cfg: RunConfig) -> RoundInstructions:
    extra = {key: record.to_torch_state_dict()
             for key, record in msg.content.array_records.items() if key != messages.ARRAYS}
    return RoundInstructions.from_message(dict(msg.content[messages.CONFIG]), extra, cfg)


def _kept(context: Context) -> dict[str, torch.Tensor] | None:
    if messages.LOCAL_ARRAYS not in context.state.array_records:
        return None
    return dict(context.state.array_records[messages.LOCAL_ARRAYS].to_torch_state_dict())


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, task, pid, num_partitions = _setup(context)
    if pid == cfg.fault_partition and cfg.fault_kind == "raise":
        raise RuntimeError(f"fault injected in partition {pid} (fault-kind=raise)")
    instructions = _instructions(msg, cfg)
    model = task.cached_model(cfg)
    state, _ = instructions.start_state(msg.content[messages.ARRAYS].to_torch_state_dict(),
                                        _kept(context))
    model.load_state_dict(state)
    metrics = task.train(model, cfg, partition_id=pid, num_partitions=num_partitions,
                         instructions=instructions)
    state = model.state_dict()
    if (kept := instructions.keep(state)) is not None:
        context.state[messages.LOCAL_ARRAYS] = ArrayRecord(kept)
    metrics |= instructions.reply_metrics()
    if pid == cfg.fault_partition:
        state = inject_fault(state, cfg.fault_kind)
    return Message(RecordDict({messages.ARRAYS: ArrayRecord(state),
                               messages.METRICS: MetricRecord(metrics)}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    cfg, task, pid, num_partitions = _setup(context)
    model = task.cached_model(cfg)
    state, _ = _instructions(msg, cfg).start_state(
        msg.content[messages.ARRAYS].to_torch_state_dict(), _kept(context))
    model.load_state_dict(state)
    metrics = task.evaluate_local(model, cfg, partition_id=pid, num_partitions=num_partitions)
    return Message(RecordDict({messages.METRICS: MetricRecord(metrics)}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds (node ids are random per run)."""
    metrics = MetricRecord({key: int(context.node_config[key])
                            for key in (messages.PARTITION_ID, messages.NUM_PARTITIONS)})
    return Message(RecordDict({messages.METRICS: metrics}), reply_to=msg)


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
