"""A wrapper that makes any Flower strategy safe for long research runs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from logging import INFO, WARNING
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.constant import ErrorCode
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

__all__ = ["GuardedStrategy", "check_reply_arrays"]

ArraySpec = Mapping[str, tuple[tuple[int, ...], str]]


def check_reply_arrays(expected: ArraySpec, arrays: Mapping[str, np.ndarray]) -> str | None:
    """Why a client's arrays cannot be aggregated, or ``None`` when they can.

    ``expected`` maps each key of the global model to its (shape, dtype); the reply must have
    exactly those keys and shapes, and only finite values.
    """
    missing, extra = set(expected) - set(arrays), set(arrays) - set(expected)
    if missing or extra:
        return f"wrong keys (missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})"
    for key, (shape, _) in expected.items():
        value = arrays[key]
        if tuple(value.shape) != tuple(shape):
            return f"wrong shape for {key!r}: {tuple(value.shape)} instead of {tuple(shape)}"
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            return f"non-finite values in {key!r}"
    return None


class _OrderedGrid:
    """A Grid whose node list is ordered by partition id.

    Flower samples with ``random.sample(grid.get_node_ids(), k)``; node ids are random per
    run, so ordering them by partition makes the seeded sample pick the same partitions.
    """

    def __init__(self, grid: Grid, order_key: Callable[[int], Any]) -> None:
        self._grid, self._order_key = grid, order_key

    def get_node_ids(self) -> list[int]:
        return sorted(self._grid.get_node_ids(), key=self._order_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class GuardedStrategy(Strategy):
    """Wrap a Flower strategy with fault handling, deterministic order and a round offset.

    The wrapped strategy keeps its own sampling and aggregation. Around it this class:

    * leaves out of the aggregate every reply that is an error, lacks the weight key, or
      carries arrays with the wrong keys, wrong shapes or non-finite values, or metric keys
      other than most replies' (Flower would refuse the whole round); each is logged with its
      reason and counted in the round's ``failures`` metric;
    * keeps the previous global model (and says so) when fewer than ``min_train_nodes``
      valid replies remain;
    * hands replies to the inner strategy sorted by partition id, so floating-point sums do
      not depend on arrival order (same seed, same global model);
    * adds ``round_offset`` to every round number it passes on, so a resumed run continues
      the inner strategy's schedule at the right round.

    Parameters
    ----------
    inner : Strategy
        The strategy that samples nodes and aggregates.
    min_train_nodes : int
        Fewest valid replies needed to update the global model.
    partition_of : Callable[[int], int]
        Maps a node id to its partition id (unknown nodes should map to a large number).
    round_offset : int (default: 0)
        Rounds already done before this process started (resume).
    on_client_metrics : Callable[[int, str, int, dict], None], optional
        Called as ``(round, phase, partition_id, metrics)`` for every valid reply.
    on_client_failure : Callable[[int, str, int, str], None], optional
        Called as ``(round, phase, partition_id, reason)`` for every reply left out, including
        the error reply the SuperLink sends for a node that stopped heartbeating (deployment).
    on_train_sent : Callable[[int, int], None], optional
        Called as ``(round, number of training instructions sent)`` each round, so a caller
        can tell what share of the sampled clients failed.
    weight_key : str (default: "num-examples")
        Metric used as the aggregation weight; replies without it are left out.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        min_train_nodes: int,
        partition_of: Callable[[int], int],
        round_offset: int = 0,
        on_client_metrics: Callable[[int, str, int, dict], None] | None = None,
        on_client_failure: Callable[[int, str, int, str], None] | None = None,
        on_train_sent: Callable[[int, int], None] | None = None,
        weight_key: str = "num-examples",
    ) -> None:
        self.inner = inner
        self.min_train_nodes = min_train_nodes
        self.partition_of = partition_of
        self.round_offset = round_offset
        self.on_client_metrics = on_client_metrics
        self.on_client_failure = on_client_failure
        self.on_train_sent = on_train_sent
        # This round's instructions: a lost node's error reply comes from the SuperLink, so
        # its addressee is found through the instruction it answers.
        self._sent: list[Message] = []
        self.weight_key = weight_key
        self._expected: dict[str, tuple[tuple[int, ...], str]] = {}
        # Aggregated train metrics per (offset) round, for the server's per-round callback.
        self.train_metrics: dict[int, dict] = {}

    # ------------------------------------------------------------------ train
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._expected = {k: (tuple(a.shape), a.dtype) for k, a in arrays.items()}
        self._sent = list(self.inner.configure_train(
            server_round + self.round_offset, arrays, config, _OrderedGrid(grid, self.partition_of)
        ))
        if self.on_train_sent:
            self.on_train_sent(server_round + self.round_offset, len(self._sent))
        return self._sent

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        rnd = server_round + self.round_offset
        valid, failures = self._filter(rnd, "train", list(replies), check_arrays=True)
        summary = {"failures": len(failures), "valid-replies": len(valid)}
        if len(valid) < self.min_train_nodes:
            log(
                WARNING,
                "round %d: %d valid replies, fewer than min-train-nodes=%d; "
                "keeping the previous global model",
                rnd,
                len(valid),
                self.min_train_nodes,
            )
            self.train_metrics[rnd] = summary
            return None, MetricRecord(summary)
        if not any(_weight(msg, self.weight_key) > 0 for msg in valid):
            # Every sampled client had an empty partition: a weighted mean is undefined.
            log(WARNING, "round %d: every valid reply has %s=0; keeping the previous global "
                "model", rnd, self.weight_key)
            self.train_metrics[rnd] = summary
            return None, MetricRecord(summary)
        arrays, metrics = self.inner.aggregate_train(rnd, valid)
        metrics = MetricRecord() if metrics is None else metrics
        for key, value in summary.items():
            metrics[key] = value
        self.train_metrics[rnd] = dict(metrics)
        return arrays, metrics

    # ------------------------------------------------------------------ evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._sent = list(self.inner.configure_evaluate(
            server_round + self.round_offset, arrays, config, _OrderedGrid(grid, self.partition_of)
        ))
        return self._sent

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        rnd = server_round + self.round_offset
        valid, _ = self._filter(rnd, "evaluate", list(replies), check_arrays=False)
        return self.inner.aggregate_evaluate(rnd, valid) if valid else None

    def summary(self) -> None:
        log(INFO, "\t├── GuardedStrategy: min train nodes %d, round offset %d",
            self.min_train_nodes, self.round_offset)
        self.inner.summary()

    # ------------------------------------------------------------------ helpers
    def _filter(
        self, rnd: int, phase: str, replies: list[Message], *, check_arrays: bool
    ) -> tuple[list[Message], list[str]]:
        valid: list[Message] = []
        failures: list[str] = []
        for msg in replies:
            reason = self._reason_to_drop(msg, check_arrays)
            if reason is None:
                valid.append(msg)
                continue
            failures.append(reason)
            self._report_failure(rnd, phase, self.node_of(msg), reason)
        valid.sort(key=lambda m: self.partition_of(m.metadata.src_node_id))
        for msg, reason in _odd_metric_keys(valid):
            valid.remove(msg)
            failures.append(reason)
            self._report_failure(rnd, phase, msg.metadata.src_node_id, reason)
        if self.on_client_metrics is not None:
            for msg in valid:
                metrics = dict(next(iter(msg.content.metric_records.values())))
                pid = self.partition_of(msg.metadata.src_node_id)
                self.on_client_metrics(rnd, phase, pid, metrics)
        return valid, failures

    def node_of(self, reply: Message) -> int:
        """The node a reply speaks for.

        An error reply for a node that stopped heartbeating comes from the SuperLink (source
        node 1, error code 5 NODE_UNAVAILABLE); the instruction it answers names the node.
        """
        if reply.has_error():
            for instruction in self._sent:
                if instruction.metadata.message_id == reply.metadata.reply_to_message_id:
                    return instruction.metadata.dst_node_id
        return reply.metadata.src_node_id

    def _report_failure(self, rnd: int, phase: str, node: int, reason: str) -> None:
        pid = self.partition_of(node)
        log(WARNING, "round %d %s: reply of partition %s (node %s) left out: %s", rnd, phase,
            pid, node, reason)
        if self.on_client_failure is not None:
            self.on_client_failure(rnd, phase, pid, reason)

    def _reason_to_drop(self, msg: Message, check_arrays: bool) -> str | None:
        if msg.has_error():
            first_line = (msg.error.reason or "").strip().splitlines()
            last = first_line[-1] if first_line else ""
            if msg.error.code == ErrorCode.NODE_UNAVAILABLE:
                return f"node lost (code {msg.error.code}, no heartbeat): {last}"
            return f"client error (code {msg.error.code}): {last}"
        metric_records = list(msg.content.metric_records.values())
        if len(metric_records) != 1:
            return f"{len(metric_records)} MetricRecords instead of 1"
        metrics = metric_records[0]
        if self.weight_key not in metrics:
            return f"no {self.weight_key!r} metric"
        for key, value in metrics.items():
            values = value if isinstance(value, list) else [value]
            if not all(math.isfinite(v) for v in values):
                return f"non-finite metric {key!r}"
        if check_arrays:
            array_records = list(msg.content.array_records.values())
            if len(array_records) != 1:
                return f"{len(array_records)} ArrayRecords instead of 1"
            arrays = {k: a.numpy() for k, a in array_records[0].items()}
            return check_reply_arrays(self._expected, arrays)
        return None


def _metric_keys(msg: Message) -> frozenset[str]:
    return frozenset(next(iter(msg.content.metric_records.values())).keys())


def _odd_metric_keys(replies: list[Message]) -> list[tuple[Message, str]]:
    """Replies whose metric keys differ from the most common key set, with the reason.

    Flower's strategies refuse to aggregate a round whose replies have different metric keys
    (the whole run fails); leaving out the odd ones keeps the run going. Ties go to the key
    set of the earliest reply in partition order, so the choice is deterministic.
    """
    if not replies:
        return []
    sets = [_metric_keys(m) for m in replies]
    # most_common keeps first-encountered order among equal counts: partition order.
    usual = Counter(sets).most_common(1)[0][0]
    return [
        (msg, f"metric keys differ from the other replies (missing {sorted(usual - keys)[:3]}, "
              f"unexpected {sorted(keys - usual)[:3]})")
        for msg, keys in zip(replies, sets, strict=True) if keys != usual
    ]


def _weight(msg: Message, key: str) -> float:
    return float(next(iter(msg.content.metric_records.values()))[key])
