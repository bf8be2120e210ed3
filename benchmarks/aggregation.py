"""Server-side aggregation cost: L-DAWA and FedVSSL vs. Flower's FedAvg, on the same replies.

Builds K train replies (Flower Messages, arrays serialised as Flower sends them) of a
ResNet-18-sized model (torchvision's resnet18 state_dict: 11.7 M parameters, 102 arrays), then
times each strategy's ``aggregate_train`` on them and measures its peak of newly allocated
memory (tracemalloc, which sees numpy's buffers) on top of the replies already held:

* ``FedAvg``: Flower's strategy, the reference;
* ``LDAWA``: fedssl's L-DAWA in place of FedAvg's mean (warm-up over);
* ``FedVSSL``: fedssl's FedVSSL (alpha 0.9, beta 1, round 2, so the smoothing step runs);
* ``FedYogi`` and ``LDAWA+FedYogi``: the same with Flower's FedYogi as server optimiser.

    python benchmarks/aggregation.py [--clients 10 100] [--repeats 3]

Prints one table and the ratios to the reference (target: time <= 1.3x; peak memory within a
model or two of FedAvg's, not growing with the number of clients). Not a test: timings depend
on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import pandas as pd
import torchvision
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvg, FedYogi, Strategy
from flwr.supercore.task_identity import TaskIdentity

from fedssl.strategies import LDAWA, FedVSSL


class _Grid:
    def __init__(self, node_ids: list[int]) -> None:
        self.node_ids = node_ids

    def get_node_ids(self) -> list[int]:
        return self.node_ids


def resnet18_arrays() -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in torchvision.models.resnet18().state_dict().items()}


def make_replies(global_arrays: dict[str, np.ndarray], num_clients: int) -> list[Message]:
    rng = np.random.default_rng(0)
    replies = []
    for node in range(1, num_clients + 1):
        arrays = {
            k: (v + rng.standard_normal(v.shape, dtype=np.float32) * 0.01).astype(v.dtype)
            if v.dtype.kind == "f" else v
            for k, v in global_arrays.items()
        }
        instruction = Message(RecordDict({"config": ConfigRecord()}), dst_node_id=node,
                              message_type=MessageType.TRAIN)
        content = RecordDict({
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord({"num-examples": int(rng.integers(50, 500)),
                                     "train-loss": float(rng.uniform(1, 3))}),
        })
        replies.append(Message(content, reply_to=instruction))
    return replies


def _base(cls: type[FedAvg] = FedAvg, **kwargs) -> FedAvg:
    return cls(min_train_nodes=1, min_available_nodes=1, fraction_evaluate=0.0, **kwargs)


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "FedAvg": _base,
    "LDAWA": lambda: LDAWA(_base(), warmup_rounds=0),
    "FedVSSL": lambda: FedVSSL(_base(), alpha=0.9, beta=1.0),
    "FedYogi": lambda: _base(FedYogi),
    "LDAWA+FedYogi": lambda: LDAWA(_base(FedYogi), warmup_rounds=0),
}
REFERENCE = {"LDAWA": "FedAvg", "FedVSSL": "FedAvg", "LDAWA+FedYogi": "FedYogi"}


def one_round(build: Callable[[], Strategy], global_record: ArrayRecord,
              replies: list[Message]) -> Callable[[], None]:
    """A fresh strategy told the global model (configure_train), ready to aggregate round 2."""
    strategy = build()
    strategy.configure_train(2, global_record, ConfigRecord(), _Grid(list(range(1, 4))))

    def run() -> None:
        arrays, _ = strategy.aggregate_train(2, replies)
        assert arrays is not None

    return run


def measure(build: Callable[[], Strategy], global_record: ArrayRecord,
            replies: list[Message], repeats: int) -> tuple[float, float]:
    """(median seconds, peak MiB allocated during aggregation)."""
    times = []
    for _ in range(repeats):
        run = one_round(build, global_record, replies)
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    run = one_round(build, global_record, replies)
    gc.collect()
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.ERROR)  # per-strategy construction warnings
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1

    global_arrays = resnet18_arrays()
    model_mib = sum(v.nbytes for v in global_arrays.values()) / 2**20
    global_record = ArrayRecord({k: Array(v) for k, v in global_arrays.items()})
    print(f"model: resnet18, {len(global_arrays)} arrays, {model_mib:.1f} MiB")
    rows = []
    for num_clients in args.clients:
        replies = make_replies(global_arrays, num_clients)
        print(f"{num_clients} replies built ({num_clients * model_mib:.0f} MiB held)", flush=True)
        for name, build in STRATEGIES.items():
            seconds, peak = measure(build, global_record, replies, args.repeats)
            rows.append({"clients": num_clients, "strategy": name, "seconds": seconds,
                         "peak-MiB": peak, "peak/model": peak / model_mib})
            print(f"  {name:14s} {seconds:7.3f} s   peak {peak:7.1f} MiB", flush=True)
        del replies
        gc.collect()
    table = pd.DataFrame(rows)
    for name, reference in REFERENCE.items():
        for num_clients in args.clients:
            ours = table[(table.strategy == name) & (table.clients == num_clients)].iloc[0]
            ref = table[(table.strategy == reference) & (table.clients == num_clients)].iloc[0]
            mask = (table.strategy == name) & (table.clients == num_clients)
            table.loc[mask, "vs"] = reference
            table.loc[mask, "time-ratio"] = ours.seconds / ref.seconds
            table.loc[mask, "peak-ratio"] = ours["peak-MiB"] / ref["peak-MiB"]
    print()
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
