"""Flower ServerApp: one run from config to summary.

Order of work: parse the config, open the run directory (or reopen it on resume), learn which
partition each node holds, build the chosen strategy wrapped in :class:`GuardedStrategy`, run
Flower's round loop with a per-round callback (central eval, checkpoint, logging, progress),
then evaluate the final encoder against its random initialisation and write the summary.
"""

from __future__ import annotations

import random
import time
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedssl.clients import get_task
from fedssl.clients.base import seed_global
from fedssl.config import RunConfig
from fedssl.datasets import plot_class_histograms
from fedssl.strategies import (
    GuardedStrategy,
    StrategyParams,
    build_strategy,
    restore_strategy_state,
    strategy_state,
)
from fedssl.tracking import (
    RunRecorder,
    WandbSink,
    load_checkpoint,
    save_checkpoint,
    save_round_model,
)

app = ServerApp()

PROGRESS_PREFIX = "[fedssl]"


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = RunConfig.from_run_config(context.run_config)
    run_federated(grid, cfg)


def resolve_run_dir(cfg: RunConfig) -> tuple[Path, str]:
    """The run directory (always absolute) and the run name."""
    if cfg.resume_from and not cfg.output_dir:
        run_dir = Path(cfg.resume_from)
    elif cfg.output_dir:
        run_dir = Path(cfg.output_dir)
    else:
        name = cfg.run_name or cfg.default_run_name()
        run_dir = Path.home() / "fedssl-runs" / name
    return run_dir.expanduser().resolve(), cfg.run_name or run_dir.name


def discover_partitions(grid: Grid, cfg: RunConfig) -> dict[int, int]:
    """Ask every node for its partition id (node ids are random, partitions are not)."""
    while len(node_ids := list(grid.get_node_ids())) < cfg.min_available_nodes:
        log(INFO, "Waiting for nodes: %d connected, %d needed", len(node_ids),
            cfg.min_available_nodes)
        time.sleep(1)
    messages = [
        Message(RecordDict({"config": ConfigRecord()}), dst_node_id=nid,
                message_type=MessageType.QUERY)
        for nid in node_ids
    ]
    partition_of: dict[int, int] = {}
    for reply in grid.send_and_receive(messages, timeout=cfg.round_timeout):
        if reply.has_error():
            log(WARNING, "node %s did not say its partition: %s", reply.metadata.src_node_id,
                reply.error.reason)
            continue
        partition_of[reply.metadata.src_node_id] = int(reply.content["metrics"]["partition-id"])
    return partition_of


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def run_federated(grid: Grid, cfg: RunConfig) -> dict[str, Any]:
    """Run all rounds of ``cfg`` on ``grid``; return the summary written to summary.json."""
    t_start = time.perf_counter()
    run_dir, run_name = resolve_run_dir(cfg)
    task = get_task(cfg.task)

    seed_global(cfg.seed)
    initial_model = task.build_model(cfg)
    initial_arrays = ArrayRecord(initial_model.state_dict())

    checkpoint = load_checkpoint(cfg.resume_from) if cfg.resume_from else None
    done_rounds = checkpoint["round"] if checkpoint else 0
    if done_rounds >= cfg.num_server_rounds:
        raise ValueError(
            f"resume-from={cfg.resume_from!r} already finished {done_rounds} rounds; "
            f"set num-server-rounds above {done_rounds} to continue"
        )
    recorder = RunRecorder(run_dir, resume_round=done_rounds if checkpoint else None)
    recorder.write_json("config.json", cfg.to_run_config() | {"run-dir": str(run_dir)})
    log(INFO, "%s run directory: %s", PROGRESS_PREFIX, run_dir)

    wandb = WandbSink(
        mode=cfg.wandb_mode, project=cfg.wandb_project, name=run_name, group=cfg.wandb_group,
        tags=cfg.tags, config=cfg.to_run_config(), run_dir=run_dir,
        run_id=checkpoint.get("wandb-id") if checkpoint else None, job_type=cfg.strategy,
    )

    partition_of = discover_partitions(grid, cfg)
    num_partitions = len(partition_of)
    histograms = task.class_histograms(cfg, num_partitions)
    histograms.to_csv(run_dir / "partitions.csv", index_label="partition")
    plot_class_histograms(histograms, run_dir / "partitions.png")
    wandb.log_partitions(histograms, run_dir / "partitions.png")
    log(INFO, "%s %d partitions (%s), sizes %s", PROGRESS_PREFIX, num_partitions,
        cfg.partitioner, histograms.sum(axis=1).tolist())

    if cfg.strategy == "fedvssl" and not cfg.partial_prefix:
        log(WARNING, "%s strategy=fedvssl with partial-prefix empty: clients load the whole "
            "global model (the paper's FedVSSL uses partial-prefix=backbone.)", PROGRESS_PREFIX)
    params = StrategyParams(**{f: getattr(cfg, f) for f in StrategyParams.__dataclass_fields__})
    inner = build_strategy(cfg.strategy, params)
    if checkpoint:
        restore_strategy_state(inner, checkpoint["strategy-state"])
        _set_rng_state(checkpoint["rng"])
        initial_arrays = ArrayRecord(checkpoint["arrays"])
        log(INFO, "%s resuming after round %d from %s", PROGRESS_PREFIX, done_rounds,
            cfg.resume_from)

    def on_client_metrics(rnd: int, phase: str, pid: int, metrics: dict) -> None:
        recorder.log(rnd, phase, metrics, partition=pid)
        wandb.add_client_metrics(rnd, phase, pid, metrics)

    strategy = GuardedStrategy(
        inner,
        min_train_nodes=cfg.min_train_nodes,
        partition_of=lambda nid: partition_of.get(nid, num_partitions + (nid % 10**6)),
        round_offset=done_rounds,
        on_client_metrics=on_client_metrics,
        # A lost or faulty client is a row of metrics.csv too: which partition, which round.
        on_client_failure=lambda rnd, phase, pid, reason: recorder.log(
            rnd, phase, {"failed": 1}, partition=pid),
    )
    eval_model = task.build_model(cfg)
    t_rounds = time.perf_counter()
    round_clock = [t_rounds]  # end of the previous round, for per-round wall times

    def after_round(local_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        rnd = local_round + done_rounds
        if local_round == 0:
            round_clock[0] = time.perf_counter()
            return None  # round 0 is the random init; the final evaluation covers it
        now = time.perf_counter()
        train_metrics = strategy.train_metrics.get(rnd, {}) | {
            "round-wall-time-s": now - round_clock[0]}
        round_clock[0] = now
        recorder.log(rnd, "train", train_metrics)
        central: dict[str, float] = {}
        if cfg.eval_every and (rnd % cfg.eval_every == 0 or rnd == cfg.num_server_rounds):
            eval_model.load_state_dict(arrays.to_torch_state_dict())
            central = task.central_evaluate(eval_model, cfg)
            recorder.log(rnd, "central", central)
        wandb.log_round(rnd, train_metrics, central)
        if cfg.keep_round_models:
            # Before the checkpoint: every round a resume can start after has its model kept
            # (`fedssl select-best` scores them afterwards).
            save_round_model(run_dir, rnd, arrays.to_torch_state_dict())
        save_checkpoint(run_dir, {
            "round": rnd,
            "arrays": arrays.to_torch_state_dict(),
            "strategy-state": strategy_state(inner),
            "rng": _rng_state(),
            "wandb-id": wandb.run_id,
        })
        elapsed = time.perf_counter() - t_rounds
        shown = " | ".join(f"{k} {v:.4g}" for k, v in (train_metrics | central).items()
                           if k in ("train-loss", "knn-accuracy", "test-accuracy", "failures",
                                    "ldawa-delta-mean"))
        log(INFO, "%s round %d/%d | %s | %.1fs", PROGRESS_PREFIX, rnd, cfg.num_server_rounds,
            shown, elapsed)
        return MetricRecord(central) if central else None

    result = strategy.start(
        grid=grid,
        initial_arrays=initial_arrays,
        num_rounds=cfg.num_server_rounds - done_rounds,
        timeout=cfg.round_timeout,
        train_config=ConfigRecord({}),
        evaluate_fn=after_round,
    )
    # Flower leaves Result.arrays empty when no round produced an aggregate.
    final_arrays = result.arrays if len(result.arrays) else initial_arrays
    t_train = time.perf_counter() - t_rounds

    log(INFO, "%s final evaluation", PROGRESS_PREFIX)
    eval_model.load_state_dict(final_arrays.to_torch_state_dict())
    final = task.final_evaluate(eval_model, cfg, baseline=initial_model)
    recorder.log(cfg.num_server_rounds, "final", final)
    torch.save(final_arrays.to_torch_state_dict(), run_dir / "final_model.pt")

    metrics = recorder.metrics()
    summary = {
        "run-name": run_name,
        "run-dir": str(run_dir),
        "rounds": cfg.num_server_rounds,
        "resumed-after-round": done_rounds,
        "num-partitions": num_partitions,
        "total-failures": int(metrics[(metrics["metric"] == "failures")]["value"].sum()),
        "server-wall-time-s": round(time.perf_counter() - t_start, 2),
        "rounds-wall-time-s": round(t_train, 2),
        **final,
    }
    recorder.write_json("summary.json", summary)
    recorder.plot()
    wandb.log_plots(run_dir)
    wandb.log_summary(summary)
    wandb.finish()
    for key, value in final.items():
        log(INFO, "%s final %s = %.4f", PROGRESS_PREFIX, key, value)
    log(INFO, "%s results in %s", PROGRESS_PREFIX, run_dir)
    return summary
